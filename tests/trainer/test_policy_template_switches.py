"""``[policy] chat_template_kwargs``: a local policy's template switches (Qwen3's and SmolLM3's
``enable_thinking``, DeepSeek V3.1's ``thinking``) reach every side that renders a policy prompt, so
the probe, the CPU GRPO trainer, the SFT warm start and verl all see the same prompt."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from inference.base import SamplingConfig
from inference.transformers_backend import TransformersBackend, encode_prompt
from looptool.wiring import policy_backend
from streams.config import PolicySettings
from tests.families import TEMPLATES, build_family_model
from tests.trainer import toy
from tests.trainer.conftest import WARM_CITIES
from trainer.config import TrainerSettings
from trainer.cpu_grpo import CpuGrpoBackend

THINKING_OFF = {"enable_thinking": False}
QWEN3_EMPTY_TRACE = "<|im_start|>assistant\n<think>\n\n</think>\n\n"


def _prompts_decoded_by(backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The prompts the backend's model decodes from (left padding dropped), as text."""
    import transformers.generation.utils as generation_utils

    seen: list[str] = []
    original = generation_utils.GenerationMixin.generate

    def spy(self: object, *args: object, **kwargs: Any) -> object:
        for row, keep in zip(kwargs["input_ids"].tolist(), kwargs["attention_mask"].tolist(), strict=True):
            ids = [token for token, kept in zip(row, keep, strict=True) if kept]
            seen.append(backend.tokenizer.decode(ids, skip_special_tokens=False))
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(generation_utils.GenerationMixin, "generate", spy)
    chat = toy.dataset(WARM_CITIES[:1]).rows[0].chat
    asyncio.run(backend.generate([chat], SamplingConfig(max_tokens=2)))
    return seen


def test_the_setting_refuses_a_switch_the_rendering_passes_itself() -> None:
    assert PolicySettings(chat_template_kwargs=THINKING_OFF).chat_template_kwargs == THINKING_OFF
    for name in ("add_generation_prompt", "tools", "date_string", "tokenize"):
        with pytest.raises(ValidationError, match=rf"chat_template_kwargs may not set \['{name}'\]"):
            PolicySettings(chat_template_kwargs={name: True})


@pytest.mark.parametrize(
    ("family", "prompt_end", "mode"),
    [
        ("qwen3", QWEN3_EMPTY_TRACE, None),
        ("smollm3", "<|im_start|>assistant\n<think>\n\n</think>\n", "Reasoning Mode: /no_think\n"),
    ],
)
def test_the_probe_renders_a_local_policys_prompt_with_thinking_off(
    family: str, prompt_end: str, mode: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a served policy could be told enable_thinking = false; the transformers and vLLM
    backends rendered the template's default (thinking on) whatever the run wanted."""
    folder = build_family_model(family, tmp_path / family)
    settings = PolicySettings(model_path=folder, chat_template_kwargs=THINKING_OFF)
    backend = policy_backend(SimpleNamespace(policy=settings))  # type: ignore[arg-type]
    assert isinstance(backend, TransformersBackend)
    (prompt,) = _prompts_decoded_by(backend, monkeypatch)
    assert prompt.endswith(prompt_end)
    assert mode is None or mode in prompt
    default = TransformersBackend(folder, "default")  # the template's own default: thinking on
    (thinking,) = _prompts_decoded_by(default, monkeypatch)
    assert not thinking.endswith(prompt_end)


def test_a_switch_that_opens_the_trace_makes_the_probe_read_the_completion_inside_it(
    tmp_path: Path,
) -> None:
    """DeepSeek V3.1's ``thinking`` switch ends the generation prompt with "<think>": the probe must
    read its completion from inside the trace (prompt_opens_trace on the prompt it rendered)."""
    folder = build_family_model("qwen3", tmp_path / "qwen3")
    (folder / "chat_template.jinja").write_text((TEMPLATES / "deepseek_v31.jinja").read_text("utf-8"))
    chat = toy.dataset(WARM_CITIES[:1]).rows[0].chat
    sampling = SamplingConfig(max_tokens=2)
    opened = TransformersBackend(folder, "thinking", chat_template_kwargs={"thinking": True})
    closed = TransformersBackend(folder, "default")
    assert asyncio.run(opened.generate([chat], sampling))[0][0].trace_opened
    assert not asyncio.run(closed.generate([chat], sampling))[0][0].trace_opened


def test_grpo_samples_from_the_probes_prompt_with_the_policys_switches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TRL gets the prompts as text we render: with thinking off the trainer sampled after the
    template's default prompt while the probe decoded after the empty reasoning block."""
    import transformers.generation.utils as generation_utils
    from transformers import AutoTokenizer

    folder = build_family_model("qwen3", tmp_path / "qwen3")
    seen: list[list[int]] = []
    original = generation_utils.GenerationMixin.generate

    def spy(self: object, *args: object, **kwargs: Any) -> object:
        for row, keep in zip(kwargs["input_ids"].tolist(), kwargs["attention_mask"].tolist(), strict=True):
            seen.append([token for token, kept in zip(row, keep, strict=True) if kept])
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(generation_utils.GenerationMixin, "generate", spy)
    data = toy.dataset(WARM_CITIES[:1])
    run = TrainerSettings(group_size=2, prompts_per_step=1, max_new_tokens=2, max_steps_per_round=1)
    trainer = CpuGrpoBackend(run, show_progress=False, chat_template_kwargs=THINKING_OFF)
    trainer.train_round(data, init_model=folder, out_dir=tmp_path / "out")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    probe = encode_prompt(tokenizer, data.rows[0].chat, THINKING_OFF)
    assert tokenizer.decode(probe).endswith(QWEN3_EMPTY_TRACE)
    assert seen and all(ids == probe for ids in seen)


def test_the_warm_starts_labels_follow_the_prompt_the_switches_render(tmp_path: Path) -> None:
    """With thinking off the prompt already holds Qwen3's empty reasoning block; the label turn
    must not write a second one (the model would learn to answer with an empty trace of its own)."""
    from transformers import AutoTokenizer

    from trainer.sft import tokenize_examples

    tokenizer = AutoTokenizer.from_pretrained(build_family_model("qwen3", tmp_path / "qwen3"))
    row = toy.dataset(WARM_CITIES[:1]).rows[0]
    ((ids, prompt_length),) = tokenize_examples(tokenizer, [row], THINKING_OFF)
    assert ids[:prompt_length] == encode_prompt(tokenizer, row.chat, THINKING_OFF)
    text = tokenizer.decode(ids)
    assert text.count("<think>") == 1 and text.endswith(row.target() + "<|im_end|>")


def _verl_template_kwargs(overrides: list[str]) -> dict[str, Any]:
    """``data.apply_chat_template_kwargs`` as the round's Hydra overrides set them."""
    prefix = "+data.apply_chat_template_kwargs."
    values = {"true": True, "false": False}
    found = {}
    for override in overrides:
        if override.startswith(prefix):
            name, value = override.removeprefix(prefix).split("=", 1)
            found[name] = values.get(value, value.strip("'"))
    return found


def test_verl_renders_the_probes_prompt_with_the_policys_switches(tmp_path: Path) -> None:
    """verl renders its rollouts' prompts itself from the parquet's chats and
    data.apply_chat_template_kwargs, which held the round's date only: with thinking off verl
    trained on prompts without the empty reasoning block that the probe scored."""
    from transformers import AutoTokenizer

    from trainer.verl.backend import VerlBackend
    from trainer.verl.config import VerlSettings

    model = build_family_model("qwen3", tmp_path / "qwen3")
    rows = [
        toy_row_as_verl(row) for row in toy.dataset(WARM_CITIES[:4]).rows
    ]  # four rows: one batch of verl's
    settings = VerlSettings(n_gpus_per_node=1, train_batch_size=4, ppo_mini_batch_size=2)
    backend = VerlBackend(settings, tmp_path / "work", show_progress=False, chat_template_kwargs=THINKING_OFF)
    run_dir, _, overrides = backend.prepare_round(rows, round_index=1, model_path=model)
    kwargs = _verl_template_kwargs(overrides)
    assert kwargs["enable_thinking"] is False and "date_string" in kwargs
    tokenizer = AutoTokenizer.from_pretrained(model)
    written = pq.read_table(run_dir / "train.parquet").to_pylist()
    assert len(written) == len(rows)
    for row, record in zip(rows, written, strict=True):
        chat = [{"role": m["role"], "content": m["content"]} for m in record["prompt"]]
        # as verl's dataset and agent loop render a row: its chat, a generation prompt, the kwargs
        text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False, **kwargs)
        assert text.endswith(QWEN3_EMPTY_TRACE)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ids == encode_prompt(tokenizer, row.chat, THINKING_OFF)


def toy_row_as_verl(row: Any) -> Any:
    from trainer.verl.data import VerlRow

    return VerlRow(sample_id=row.sample_id, chat=row.chat, ground_truth=row.ground_truth)


def test_a_served_policy_is_sent_the_policys_switches() -> None:
    from inference.openai_backend import OpenAIBackend

    settings = PolicySettings(
        backend="openai",
        endpoint={"base_url": "http://policy.test/v1", "model": "initial"},
        chat_template_kwargs=THINKING_OFF,
    )
    backend = policy_backend(SimpleNamespace(policy=settings))  # type: ignore[arg-type]
    assert isinstance(backend, OpenAIBackend)
    payload = backend.chat_payload([{"role": "user", "content": "Hi"}], SamplingConfig(max_tokens=2))
    assert payload["chat_template_kwargs"] == THINKING_OFF
    asyncio.run(backend.close())


def test_doctor_renders_the_policys_template_with_its_switches(tmp_path: Path) -> None:
    """A template that refuses a switch's value must fail ``looptool doctor``, not the first round."""
    from looptool.preflight import check_policy

    folder = build_family_model("qwen3", tmp_path / "qwen3")
    refusing = (
        "{%- if reasoning_effort is defined and reasoning_effort not in ['low', 'medium', 'high'] %}"
        "{{- raise_exception('unknown reasoning_effort ' + reasoning_effort) }}{%- endif %}"
    )
    template = folder / "chat_template.jinja"
    template.write_text(refusing + template.read_text("utf-8"), encoding="utf-8")
    assert check_policy(
        PolicySettings(model_path=folder, chat_template_kwargs={"reasoning_effort": "low"})
    ).ok
    result = check_policy(PolicySettings(model_path=folder, chat_template_kwargs={"reasoning_effort": "max"}))
    assert not result.ok and "unknown reasoning_effort max" in result.detail


def test_a_final_trained_with_other_switches_is_not_taken_for_this_runs(tmp_path: Path) -> None:
    """The switches change every prompt trained on: a final on disk from a run with thinking on must
    not be recovered by one with it off (the training key); a run without switches keeps its key."""
    from trainer.service import training_key

    folder = build_family_model("qwen3", tmp_path / "qwen3")
    trainer = TrainerSettings()
    plain = training_key(folder, None, "cpu", trainer)
    assert training_key(folder, None, "cpu", trainer, {}) == plain
    assert training_key(folder, None, "cpu", trainer, THINKING_OFF) != plain
