"""The CPU GRPO backend (TRL's GRPOTrainer) and the SFT warm start on the toy task.

The reward test is the backend's reason to exist: after the warm start the tiny policy names the
asked city in about 1 of 4 samples; 20 GRPO steps with the binary ToolMatch reward must lift that by
a clear margin (seeded; measured 0.22-0.25 → 0.69-0.75 over model seeds 0 and 2).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path

import pytest

from inference.base import SamplingConfig
from inference.transformers_backend import TransformersBackend
from tests.trainer import toy
from tests.trainer.conftest import WARM_CITIES, WARM_STEPS
from toolcall.parsing import parse_output
from trainer.base import TrainingInterrupted, check_hf_folder, read_checkpoint_manifest
from trainer.config import TrainerSettings
from trainer.cpu_grpo import CpuGrpoBackend, plan_steps, summarise

EVAL_SAMPLES = 64


def settings(**overrides: object) -> TrainerSettings:
    values: dict[str, object] = {
        "group_size": 8,
        "prompts_per_step": 1,
        "learning_rate": 3e-4,
        "max_new_tokens": 40,
        "weight_decay": 0.0,
        "torch_threads": 1,
        "seed": 0,
    }
    values.update(overrides)
    return TrainerSettings(**values)  # type: ignore[arg-type]


async def sampled_reward(folder: Path, cities: tuple[str, ...], n: int = EVAL_SAMPLES) -> float:
    """Mean ToolMatch reward of ``n`` samples per prompt at temperature 1 (seeded)."""
    backend = TransformersBackend(folder, "eval", batch_size=64)
    rows = toy.rows(cities)
    generations = await backend.generate(
        [row.chat for row in rows], SamplingConfig(greedy=False, temperature=1.0, n=n, max_tokens=40, seed=7)
    )
    await backend.close()
    rewards = [row.reward(g.text) for row, group in zip(rows, generations, strict=True) for g in group]
    return sum(rewards) / len(rewards)


def test_the_grpo_reward_reads_completions_as_the_probe_does(toy_policy: Path, tmp_path: Path) -> None:
    """TRL's decoded text skips special tokens (a tokenizer may mark <tool_call> special) and does
    not say a completion was cut off; the reward reads the ids: tags kept, cut-off text refused."""
    import shutil

    from transformers import AutoTokenizer

    from toolcall.parsing import render_action
    from toolcall.types import Action
    from trainer.cpu_grpo import toolmatch_reward_for

    folder = tmp_path / "special"
    shutil.copytree(toy_policy, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<tool_call>", "</tool_call>"]})
    calls, asks = toy.rows(["Paris"])[0], toy.rows(["Paris"])[0]
    asks = dataclasses.replace(asks, label=Action(text="Which city?"))
    eos = tokenizer.eos_token_id
    reward = toolmatch_reward_for([calls, asks], tokenizer, ends={eos})

    def ids(text: str, *, ended: bool) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] + ([eos] if ended else [])

    skipped = tokenizer.decode(ids(render_action(calls.label), ended=True), skip_special_tokens=True)
    assert "<tool_call>" not in skipped  # what TRL hands the reward as text
    scores = reward(
        prompts=["", "", ""],
        completions=[skipped, "Which ci", "Which city?"],
        row_index=[0, 1, 1],
        completion_ids=[
            ids(render_action(calls.label), ended=True),
            ids("Which ci", ended=False),
            ids("Which city?", ended=True),
        ],
    )
    assert scores == [1.0, 0.0, 1.0]


def test_the_grpo_reward_reads_a_completion_from_inside_the_trace_its_prompt_opened() -> None:
    """A prompt ending in "<think>\n" (Qwen3-Thinking-2507, R1 distills) makes the completion start inside
    the trace: a call drafted there, with no </think> after it, earned the reward."""
    from tests.families import FAMILIES, build_tokenizer
    from toolcall.parsing import render_action
    from trainer.cpu_grpo import render_prompts, toolmatch_reward_for

    row = toy.rows(["Paris"])[0]
    call = render_action(row.label)
    scores = {}
    for family in ("qwen3_thinking", "qwen3"):
        tokenizer = build_tokenizer(FAMILIES[family])
        (prompt,) = render_prompts(tokenizer, [row])
        reward = toolmatch_reward_for([row], tokenizer, ends={tokenizer.eos_token_id})
        completions = [f"Plan: {call}", f"Plan: Paris.</think>\n\n{call}"]
        ids = [
            [*tokenizer(text, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
            for text in completions
        ]
        scores[family] = reward(
            prompts=[prompt, prompt], completions=completions, row_index=[0, 0], completion_ids=ids
        )
    assert scores["qwen3_thinking"] == [0.0, 1.0]  # the trace never closed: no answer came
    assert scores["qwen3"][0] == 1.0  # no trace opened: the text before the call is no trace


def test_grpo_config_is_the_papers_objective() -> None:
    config = CpuGrpoBackend(settings(group_size=16, prompts_per_step=4, learning_rate=1e-6)).grpo_config(
        Path("/tmp/unused"), prompts_per_step=4, steps=10, seed=3
    )
    assert config.num_generations == 16
    assert config.per_device_train_batch_size == 64  # prompts × G completions per step
    assert config.gradient_accumulation_steps == 1 and config.num_iterations == 1  # one update per rollout
    assert (config.epsilon, config.epsilon_high) == (0.2, 0.28)  # Clip-Higher
    assert config.beta == 0.0 and config.entropy_coef == 0.0  # no KL, no entropy
    assert config.scale_rewards == "group"  # advantages normalised within each group
    assert config.loss_type == "dapo"  # token-mean aggregation, verl's default
    assert config.temperature == 1.0 and config.top_p == 1.0 and config.top_k == 0
    assert config.learning_rate == 1e-6 and config.max_steps == 10 and config.seed == 3
    assert not config.bf16 and not config.gradient_checkpointing and config.use_cpu


@pytest.mark.parametrize(
    ("rows", "prompts_per_step", "epochs", "cap", "expected"),
    [
        (10, 4, 2, None, (4, 4)),  # the incomplete last batch is dropped
        (3, 8, 2, None, (3, 2)),  # a small round trains on smaller batches, not on none
        (100, 8, 2, 5, (8, 5)),
    ],
)
def test_plan_steps(
    rows: int, prompts_per_step: int, epochs: int, cap: int | None, expected: tuple[int, int]
) -> None:
    plan = settings(prompts_per_step=prompts_per_step, epochs_per_round=epochs, max_steps_per_round=cap)
    assert plan_steps(rows, plan) == expected


def test_summarise_averages_only_the_steps_that_report_a_metric() -> None:
    history = [{"reward_mean": 0.25, "loss": 1.0}, {"reward_mean": 0.75}, {"entropy": 2.0}]
    assert summarise(history) == {"reward_mean": 0.5, "loss": 1.0, "entropy": 2.0}


def test_sft_warm_start_teaches_the_output_format(warm_start: object, warm_policy: Path) -> None:
    assert warm_start.steps == WARM_STEPS  # type: ignore[attr-defined]
    assert warm_start.loss_last < warm_start.loss_first / 10  # type: ignore[attr-defined]
    check_hf_folder(warm_policy)

    async def outputs() -> list[str]:
        backend = TransformersBackend(warm_policy, "warm", batch_size=16)
        rows = toy.rows(WARM_CITIES)
        generations = await backend.generate(
            [row.chat for row in rows], SamplingConfig(greedy=False, n=4, max_tokens=40, seed=1)
        )
        return [g.text for group in generations for g in group]

    texts = asyncio.run(outputs())
    calls = [parse_output(text).action for text in texts]
    well_formed = [a for a in calls if a is not None and a.calls and a.calls[0].name == "get_weather"]
    assert len(well_formed) >= 0.75 * len(texts), texts


def test_grpo_raises_the_mean_reward_on_a_learnable_task(warm_policy: Path, tmp_path: Path) -> None:
    before = asyncio.run(sampled_reward(warm_policy, ("Paris",)))
    backend = CpuGrpoBackend(settings(max_steps_per_round=20, epochs_per_round=100), show_progress=False)
    final = backend.train_round(toy.dataset(("Paris",)), init_model=warm_policy, out_dir=tmp_path / "round")
    after = asyncio.run(sampled_reward(final.path, ("Paris",)))
    assert after >= before + 0.25, (before, after)
    assert final.final and final.step == 20 and final.round == 1
    check_hf_folder(final.path)
    manifest = read_checkpoint_manifest(final.path)
    assert manifest is not None and manifest["step"] == 20 and manifest["final"] is True
    metrics = final.metrics
    assert 0.0 <= metrics["reward_mean"] <= 1.0 and metrics["reward_std"] >= 0.0
    assert {"loss", "entropy", "clip_ratio_low", "clip_ratio_high", "response_length_mean"} <= set(metrics)
    assert "kl" not in metrics  # beta = 0: TRL computes no KL
    assert metrics["steps"] == 20.0 and metrics["samples_per_s"] > 0
    assert not (tmp_path / "round" / "trl-work").exists()


def test_intermediate_checkpoints_and_stop(warm_policy: Path, tmp_path: Path) -> None:
    """Online mode reports a checkpoint every N steps; a stop request ends the round without a final."""
    published = []
    halt = threading.Event()

    def on_checkpoint(info: object) -> None:
        published.append(info)
        halt.set()  # stop right after the first intermediate checkpoint

    backend = CpuGrpoBackend(
        settings(group_size=4, max_steps_per_round=6, epochs_per_round=100, publish_every_steps=2),
        show_progress=False,
    )
    with pytest.raises(TrainingInterrupted, match="stopped at step 3 of 6"):
        backend.train_round(
            toy.dataset(("Paris",)),
            init_model=warm_policy,
            out_dir=tmp_path / "round",
            on_checkpoint=on_checkpoint,
            stop=halt,
        )
    assert [(c.step, c.final) for c in published] == [(2, False)]  # type: ignore[attr-defined]
    check_hf_folder(published[0].path)  # type: ignore[attr-defined]
    assert published[0].metrics["steps_in_window"] == 2.0  # type: ignore[attr-defined]
    assert not (tmp_path / "round" / "final").exists()


def test_a_save_that_fails_leaves_no_half_folder(toy_policy: Path, tmp_path: Path) -> None:
    """A full disk during a save left `step-N.partial` behind, holding the space; retries write
    other attempt folders, so nothing ever removed it."""
    import errno

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.base import save_hf_checkpoint

    model = AutoModelForCausalLM.from_pretrained(toy_policy)
    tokenizer = AutoTokenizer.from_pretrained(toy_policy)

    def disk_full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    tokenizer.save_pretrained = disk_full  # the model's weights are written, then the disk fills
    with pytest.raises(OSError, match="No space left"):
        save_hf_checkpoint(model, tokenizer, tmp_path / "step-000004")
    assert list(tmp_path.iterdir()) == []


def test_checkpoints_keep_the_initial_policys_dtype(toy_policy: Path, tmp_path: Path) -> None:
    """A bf16 policy's checkpoints were written in float32 (twice its size, config saying float32)."""
    import json

    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.base import save_hf_checkpoint, saved_dtype

    bf16 = tmp_path / "bf16-policy"
    AutoModelForCausalLM.from_pretrained(toy_policy, dtype=torch.bfloat16).save_pretrained(bf16)
    AutoTokenizer.from_pretrained(toy_policy).save_pretrained(bf16)
    assert saved_dtype(bf16) == "bfloat16"
    model = AutoModelForCausalLM.from_pretrained(bf16, dtype="float32")  # as the CPU trains it
    folder = save_hf_checkpoint(
        model, AutoTokenizer.from_pretrained(bf16), tmp_path / "step-1", dtype=saved_dtype(bf16)
    )
    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        assert {weights.get_tensor(name).dtype for name in weights.keys()} == {torch.bfloat16}  # noqa: SIM118
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
    assert next(model.parameters()).dtype == torch.float32  # training goes on in float32
    reloaded = AutoModelForCausalLM.from_pretrained(folder)
    assert next(reloaded.parameters()).dtype == torch.bfloat16


def test_grpo_samples_from_the_prompt_ids_the_probe_decodes_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Llama-3-style template writes BOS itself and its tokenizer adds another by default: TRL,
    tokenizing the prompt text with default special tokens, sampled after two BOS while the probe
    decodes after one. The ids TRL hands to generate() are the probe's, whatever the tokenizer adds."""
    import transformers.generation.utils as generation_utils
    from transformers import AutoTokenizer

    from inference.transformers_backend import encode_prompt
    from tests.families import build_family_model

    folder = build_family_model("llama3", tmp_path / "llama3")
    seen: list[list[int]] = []
    original = generation_utils.GenerationMixin.generate

    def spy(self: object, *args: object, **kwargs: object) -> object:
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        for row, keep in zip(ids.tolist(), mask.tolist(), strict=True):  # type: ignore[attr-defined]
            seen.append([token for token, kept in zip(row, keep, strict=True) if kept])
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(generation_utils.GenerationMixin, "generate", spy)
    data = toy.dataset(WARM_CITIES[:1])
    run = settings(group_size=2, max_new_tokens=2, max_steps_per_round=1)
    CpuGrpoBackend(run, show_progress=False).train_round(data, init_model=folder, out_dir=tmp_path / "out")
    probe = encode_prompt(AutoTokenizer.from_pretrained(folder), data.rows[0].chat)
    assert seen and all(ids == probe for ids in seen)
