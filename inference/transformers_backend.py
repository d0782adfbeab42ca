"""Policy inference with Hugging Face transformers: a local model folder, CPU or one GPU.

Prompts are rendered with the tokenizer's own chat template (``add_generation_prompt=True``) and
tokenized without extra special tokens, exactly as :mod:`inference.vllm_backend` does, so both
backends see the same token ids for the same chat.

Log-probabilities are those of the model's *raw* distribution (log-softmax of the logits, before
temperature or top-p), for greedy and sampled decoding alike; vLLM reports the same by default
(``logprobs_mode="raw_logprobs"``). They are recorded by a logits processor that runs before the
sampling warpers and keeps one step of log-probs at a time, so memory stays O(batch × vocab)
however long the completion.

All torch work runs in a worker thread (``asyncio.to_thread``) so the event loop keeps serving
Kafka heartbeats while a batch decodes; one lock serialises generate/score/load on a backend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common.logs import get_logger
from inference.base import (
    Chat,
    Generation,
    InferenceError,
    LocalModelBackend,
    SamplingConfig,
)
from toolcall.templates import end_token_ids, prompt_opens_trace, render_prompt

log = get_logger(__name__)


def encode_prompt(tokenizer: Any, chat: Chat, template_kwargs: Mapping[str, Any] | None = None) -> list[int]:
    return encode_generation_prompt(tokenizer, chat, template_kwargs)[0]


def encode_generation_prompt(
    tokenizer: Any, chat: Chat, template_kwargs: Mapping[str, Any] | None = None
) -> tuple[list[int], bool]:
    """The prompt's ids, and whether it ends inside a reasoning trace its chat template opened
    (:func:`toolcall.templates.prompt_opens_trace`; :attr:`Generation.trace_opened`);
    ``template_kwargs``: ``[policy] chat_template_kwargs``."""
    text = render_prompt(tokenizer, chat, template_kwargs)
    # The template already holds every special token the model expects; adding BOS/EOS here would
    # make the ids differ from what vLLM (given the same text) decodes from.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]), prompt_opens_trace(text)


def encode_continuation(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _resolve_dtype(dtype: Any, device: str) -> Any:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        resolved = getattr(torch, str(dtype))
    except AttributeError:
        resolved = None
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r} (use float32, bfloat16, float16 or auto)")
    return resolved


class _RawLogprobRecorder:
    """A logits processor that records each sampled token's log-prob under the raw distribution.

    At step t it sees the logits for token t; the token chosen from them only shows up as the last
    input id at step t+1, so it keeps the previous step's log-softmax and gathers from it then. The
    very last token is gathered by :meth:`finish` from the sequences ``generate`` returns.
    """

    def __init__(self) -> None:
        import torch

        self._previous: torch.Tensor | None = None
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self._previous is not None:
            self.steps.append(self._previous.gather(1, input_ids[:, -1:]).squeeze(1))
        self._previous = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: Any, new_tokens: int) -> Any:
        import torch

        if self._previous is not None and len(self.steps) < new_tokens:
            self.steps.append(self._previous.gather(1, sequences[:, -1:]).squeeze(1))
        if len(self.steps) != new_tokens:
            raise RuntimeError(f"recorded {len(self.steps)} log-prob steps for {new_tokens} new tokens")
        if not self.steps:
            return torch.zeros((sequences.shape[0], 0))
        return torch.stack(self.steps, dim=1)


class TransformersBackend(LocalModelBackend):
    """:class:`inference.base.InferenceBackend` on a local Hugging Face model folder."""

    name = "transformers"

    def __init__(
        self,
        model_path: str | Path,
        model_id: str,
        batch_size: int = 16,
        device: str = "cpu",
        dtype: Any = "float32",
        chat_template_kwargs: Mapping[str, Any] | None = None,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        super().__init__(model_id, chat_template_kwargs)
        self.batch_size = batch_size
        self.device = device
        self.dtype = _resolve_dtype(dtype, device)
        self._model: Any = None
        self._eos_ids: list[int] = []
        self._pad_id: int = 0
        self._load_sync(str(model_path), model_id)

    # -- loading -------------------------------------------------------------------------------

    def _load_sync(self, model_path: str, model_id: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        self._check_model_folder(model_path)
        started = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=self.dtype).to(self.device).eval()
        eos_ids = end_token_ids(tokenizer, model.generation_config.eos_token_id, self.chat_template_kwargs)
        if not eos_ids:
            raise ValueError(f"{model_path}: neither the tokenizer nor the generation config names an EOS")
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
        # A checkpoint's own sampling defaults (repetition penalty, top-k, ...) must not leak into
        # decoding: generate() fills every unset field from model.generation_config.
        model.generation_config = GenerationConfig(eos_token_id=eos_ids, pad_token_id=pad_id)
        old_model = self._model
        self._model, self._tokenizer = model, tokenizer
        self._eos_ids, self._pad_id = eos_ids, int(pad_id)
        self._model_id, self._model_path = model_id, model_path
        if old_model is not None:
            del old_model
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        log.info(
            "transformers.loaded",
            model_id=model_id,
            path=model_path,
            device=self.device,
            dtype=str(self.dtype),
            seconds=round(time.perf_counter() - started, 2),
        )

    async def close(self) -> None:
        async with self._lock:
            self._model = None
            gc.collect()

    # -- generation ----------------------------------------------------------------------------

    def _check_supported(self, sampling: SamplingConfig) -> None:
        if sampling.regex is not None:
            raise InferenceError(
                "the transformers backend cannot constrain decoding to a regex; use a vLLM backend",
                retryable=False,
            )

    def _require_loaded(self) -> None:
        if self._model is None:
            raise InferenceError("the transformers backend is closed", retryable=False)

    def _generate_sync(self, prompts: list[Chat], sampling: SamplingConfig) -> list[list[Generation]]:
        import torch

        started = time.perf_counter()
        encoded, opened = zip(
            *(encode_generation_prompt(self._tokenizer, chat, self.chat_template_kwargs) for chat in prompts),
            strict=True,
        )
        # batch_size bounds the sequences decoded together (prompts × n).
        per_batch = max(1, self.batch_size // sampling.n)
        results: list[list[Generation]] = []
        with torch.random.fork_rng(devices=[]) if sampling.seed is not None else contextlib.nullcontext():
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            for start in range(0, len(encoded), per_batch):
                results.extend(self._generate_batch(list(encoded[start : start + per_batch]), sampling))
        results = [
            [dataclasses.replace(generation, trace_opened=trace_opened) for generation in options]
            for options, trace_opened in zip(results, opened, strict=True)
        ]
        self._log_generated(log, len(prompts), sampling, results, time.perf_counter() - started)
        return results

    def _generate_batch(self, batch: list[list[int]], sampling: SamplingConfig) -> list[list[Generation]]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):  # left padding: every prompt ends where decoding starts
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        config = GenerationConfig(
            max_new_tokens=sampling.max_tokens,
            do_sample=not sampling.greedy,
            repetition_penalty=1.0,
            num_return_sequences=sampling.n,
            eos_token_id=self._eos_ids,
            pad_token_id=self._pad_id,
            stop_strings=list(sampling.stop) or None,
            return_dict_in_generate=True,
        )
        if not sampling.greedy:
            # top_k=0: no top-k cut (transformers' default is 50; vLLM's is none).
            config.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        recorder = _RawLogprobRecorder()
        with torch.inference_mode():
            output = self._model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                generation_config=config,
                logits_processor=LogitsProcessorList([recorder]),
                tokenizer=self._tokenizer if sampling.stop else None,
            )
        sequences = output.sequences.cpu()
        new_tokens = sequences.shape[1] - width
        logprobs = recorder.finish(sequences, new_tokens).cpu()
        generations: list[list[Generation]] = []
        for prompt_index in range(len(batch)):
            options = []
            for option in range(sampling.n):
                row = prompt_index * sampling.n + option  # generate() repeats each prompt n times in place
                options.append(
                    self._finish(
                        sequences[row, width:].tolist(),
                        logprobs[row].tolist(),
                        sampling.stop,
                        sampling.max_tokens,
                    )
                )
            generations.append(options)
        return generations

    def _finish(
        self, token_ids: list[int], logprobs: list[float], stop: Sequence[str], max_tokens: int
    ) -> Generation:
        """Cut one decoded row at EOS or the first stop string, the way vLLM reports it.

        Token ids and log-probs keep the token that ended the completion (EOS, or the token that
        completed a stop string); the text leaves out EOS and the stop string itself.
        """
        finish_reason = "length"
        end = len(token_ids)
        for index, token in enumerate(token_ids):
            if token in self._eos_ids:
                end, finish_reason = index + 1, "stop"
                break
        content = token_ids[: end - 1] if finish_reason == "stop" else token_ids[:end]
        # A completion cut mid-character ends in bytes that are not UTF-8 yet; like vLLM's
        # incremental detokenizer, leave them out of the text rather than emit U+FFFD.
        text = self._text_of(content).rstrip("\ufffd")
        hits = [(text.find(s), s) for s in stop if s and s in text]
        if hits:
            position, string = min(hits)
            text = text[:position]
            end = self._tokens_until(content, string)
            finish_reason = "stop"
        elif finish_reason == "length" and end < max_tokens:
            # Every row of the batch stopped; this one ended on a stop string split oddly by the
            # detokenizer, or on padding after a stop; either way it did not run out of tokens.
            finish_reason = "stop"
        return Generation(
            text=text,
            token_ids=token_ids[:end],
            token_logprobs=[float(x) for x in logprobs[:end]],
            finish_reason=finish_reason,
        )

    def _text_of(self, token_ids: list[int]) -> str:
        """The text of generated tokens without EOS and padding, special tokens kept: a tokenizer may
        mark the tool-call tags special (vLLM's Hermes parser decodes with them for that reason), and
        skipping them would turn every call into a text answer."""
        return self._tokenizer.decode(
            [token for token in token_ids if token != self._pad_id and token not in self._eos_ids],
            skip_special_tokens=False,
        )

    def _tokens_until(self, token_ids: list[int], stop: str) -> int:
        """The fewest leading tokens whose text contains ``stop`` (binary search: containment is monotone)."""
        low, high = 1, len(token_ids)
        while low < high:
            middle = (low + high) // 2
            if stop in self._text_of(token_ids[:middle]):
                high = middle
            else:
                low = middle + 1
        return high

    # -- scoring -------------------------------------------------------------------------------

    def _score_sync(self, prompts: list[Chat], continuations: list[str]) -> list[list[float]]:
        pairs = [
            (
                encode_prompt(self._tokenizer, chat, self.chat_template_kwargs),
                encode_continuation(self._tokenizer, text),
            )
            for chat, text in zip(prompts, continuations, strict=True)
        ]
        return self.score_token_ids(pairs)

    def score_token_ids(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[list[float]]:
        """Teacher-forced log-probs of each continuation's ids after its prompt's ids (blocking)."""
        import torch

        self._require_loaded()
        if any(not prompt for prompt, _ in pairs):
            raise ValueError("scoring needs a non-empty prompt")
        scores: list[list[float]] = []
        for start in range(0, len(pairs), self.batch_size):
            batch = pairs[start : start + self.batch_size]
            width = max(len(p) + len(c) for p, c in batch)
            longest = max(len(c) for _, c in batch)
            if longest == 0:
                scores.extend([] for _ in batch)
                continue
            # Left padding, as in generate(): every continuation ends at the last position, so the
            # model only needs logits for the last longest+1 positions (not batch × length × vocab).
            input_ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (prompt, continuation) in enumerate(batch):
                ids = prompt + continuation
                input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                attention_mask[row, width - len(ids) :] = 1
            position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self._model(
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention_mask.to(self.device),
                    position_ids=position_ids.to(self.device),
                    logits_to_keep=longest + 1,
                ).logits
            for row, (_, continuation) in enumerate(batch):
                if not continuation:
                    scores.append([])
                    continue
                # Kept logits cover the last longest+1 positions; the one at position i predicts
                # token i+1, so the continuation's predictors are the len(c) before the last.
                window = logits[row, longest - len(continuation) : longest].float()
                targets = torch.tensor(continuation, device=window.device).unsqueeze(1)
                picked = torch.log_softmax(window, dim=-1).gather(1, targets).squeeze(1)
                scores.append([float(x) for x in picked.cpu().tolist()])
        return scores
