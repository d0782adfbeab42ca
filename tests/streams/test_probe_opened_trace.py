"""A policy whose chat template opens the reasoning trace in the generation prompt (Qwen3-Thinking-2507,
DeepSeek-R1 distills, QwQ: the prompt ends with ``<think>\\n``) writes its trace with no opening tag.

Once, an output the token budget cut inside that trace was read as if it had no trace at all: a call
drafted in it became the probe's prediction and matched the label. Here the probe path runs for
real (the tiny model folder's tokenizer renders the prompt with its template, the transformers
backend decodes, the probe stage parses and matches); only the model's choice of tokens is scripted.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from inference.transformers_backend import TransformersBackend
from schemas.events import CheckpointPublished, ProbeResult, Producer, make_event
from streams.probe import CheckpointWatcher, ProbeStage
from tests.families import build_family_model
from tests.trainer import toy
from toolcall.parsing import render_action

RUN = "probe-opened-trace"


def scripted_generate(completions: list[list[int]], prompts_seen: list[list[int]]) -> Any:
    """``generate`` that writes ``completions`` (one per prompt, in order) token by token, with the
    logits processors seeing each step as in a real decode."""

    def generate(
        self: Any, *, input_ids: Any, logits_processor: Any, generation_config: Any, **_: Any
    ) -> Any:
        import torch

        prompts_seen.extend(row[row != generation_config.pad_token_id].tolist() for row in input_ids)
        script = completions[: input_ids.shape[0]]
        del completions[: input_ids.shape[0]]
        steps = min(generation_config.max_new_tokens, max(len(ids) for ids in script))
        sequences = input_ids
        for step in range(steps):
            tokens = [ids[step] if step < len(ids) else generation_config.pad_token_id for ids in script]
            scores = torch.full((input_ids.shape[0], self.config.vocab_size), -1e4)
            scores[torch.arange(len(tokens)), torch.tensor(tokens)] = 0.0
            for processor in logits_processor:
                processor(sequences, scores)
            sequences = torch.cat([sequences, torch.tensor(tokens).unsqueeze(1)], dim=1)
        return SimpleNamespace(sequences=sequences)

    return generate


async def test_a_call_drafted_in_a_trace_the_template_opened_is_no_prediction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    folder = build_family_model("qwen3_thinking", tmp_path / "policy")
    backend = TransformersBackend(str(folder), "initial", batch_size=4)
    tokenizer = backend.tokenizer
    paris, lyon = toy.round_events(RUN, ["Paris", "Lyon"])[:2]
    draft = render_action(paris.payload.label)  # exactly the label's call, drafted in the trace

    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    answered = f"Plan: {draft} wait, it is Lyon.</think>\n\n{render_action(lyon.payload.label)}"
    answered_ids = [*encode(answered), tokenizer.eos_token_id]
    cut = f"Plan: {draft} "  # the budget ends inside the trace, after the draft
    while len(encode(cut)) <= len(answered_ids):
        cut += "Let me check the city once more, then I "
    completions = [encode(cut), answered_ids]
    budget = len(completions[0])
    prompts_seen: list[list[int]] = []
    monkeypatch.setattr(
        transformers.Qwen3ForCausalLM, "generate", scripted_generate(completions, prompts_seen)
    )
    watcher = CheckpointWatcher(None, RUN)
    stage = ProbeStage(RUN, backend, watcher, mode="final", max_new_tokens=budget)
    checkpoint = make_event(
        CheckpointPublished(
            new_checkpoint_id=f"{RUN}-r1", round=1, step=1, final=True, uri=str(folder), backend="cpu"
        ),
        run_id=RUN,
        producer=Producer(stage="train", version="1"),
    )
    await watcher.publish(checkpoint)
    outputs = await stage.process([paris, lyon])
    await backend.close()

    assert all(tokenizer.decode(ids).endswith("<|im_start|>assistant\n<think>\n") for ids in prompts_seen)
    results = [event.payload for event in outputs]
    assert all(isinstance(result, ProbeResult) for result in results)
    cut_probe, answered_probe = results
    assert cut_probe.raw_output == cut and cut_probe.num_tokens == budget
    assert not cut_probe.matched and cut_probe.prediction is None
    assert "reasoning trace never closed" in (cut_probe.parse_error or "")
    # The answer after </think> is read as usual; the call drafted before it is no part of it.
    assert answered_probe.matched and answered_probe.prediction == lyon.payload.label
