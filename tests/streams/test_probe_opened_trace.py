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


@pytest.mark.parametrize("split_off", [False, True])
async def test_a_served_policy_whose_template_opens_the_trace_is_read_from_inside_it(split_off: bool) -> None:
    """A policy behind an OpenAI-compatible server: the server renders the prompt, so nothing here can
    see that its template opened the trace, and a cut-off trace's drafted call was the prediction.
    ``[policy] template_opens_trace`` says it; a server that splits the trace off (a reasoning
    parser: ``reasoning_content``) returns the answer alone, which is read as it is."""
    import json

    import httpx

    from inference.openai_backend import OpenAIBackend
    from looptool.wiring import policy_backend
    from streams.config import PolicySettings

    paris, lyon = toy.round_events(RUN, ["Paris", "Lyon"])[:2]
    draft = render_action(paris.payload.label)
    answer = render_action(lyon.payload.label)
    if split_off:
        messages = [
            ({"content": "", "reasoning_content": f"Plan: {draft} then I"}, "length"),
            ({"content": answer, "reasoning_content": f"Plan: {draft} wait, it is Lyon."}, "stop"),
        ]
    else:
        messages = [
            ({"content": f"Plan: {draft} then I"}, "length"),
            ({"content": f"Plan: {draft} wait, it is Lyon.</think>\n\n{answer}"}, "stop"),
        ]
    asked: list[Any] = []

    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "initial"}, {"id": f"{RUN}-r1"}]})
        body = json.loads(request.content)
        asked.append(body)
        message, finish = messages[len(asked) - 1]
        choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        return httpx.Response(200, json={"choices": [choice]})

    settings = PolicySettings(
        backend="openai",
        endpoint={"base_url": "http://policy.test/v1", "model": "initial"},
        template_opens_trace=True,
    )
    backend = policy_backend(SimpleNamespace(policy=settings))  # type: ignore[arg-type]
    assert isinstance(backend, OpenAIBackend) and backend.template_opens_trace
    await backend._client.aclose()
    backend._client = httpx.AsyncClient(transport=httpx.MockTransport(serve))
    backend.max_concurrency = 1  # the two answers in the order asked
    watcher = CheckpointWatcher(None, RUN)
    stage = ProbeStage(RUN, backend, watcher, mode="final", max_new_tokens=64)
    await watcher.publish(
        make_event(
            CheckpointPublished(
                new_checkpoint_id=f"{RUN}-r1", round=1, step=1, final=True, uri="served", backend="cpu"
            ),
            run_id=RUN,
            producer=Producer(stage="train", version="1"),
        )
    )
    outputs = await stage.process([paris, lyon])
    await backend.close()

    cut_probe, answered_probe = (event.payload for event in outputs)
    assert not cut_probe.matched and cut_probe.prediction is None
    if not split_off:
        assert "reasoning trace never closed" in (cut_probe.parse_error or "")
    assert answered_probe.matched and answered_probe.prediction == lyon.payload.label
    with pytest.raises(ValueError, match='template_opens_trace is for backend = "openai"'):
        PolicySettings(backend="transformers", template_opens_trace=True)
