"""The verl GRPO backend: one LoopTool round of GRPO on GPUs with verl 0.9.1 (a TrainerBackend).

A round: the rows are written as verl's parquet (:mod:`trainer.verl.data`); the settings (Table 6 of the
paper by default) become Hydra overrides of ``python -m verl.trainer.main_ppo`` (:mod:`trainer.verl.config`;
batch sizes shrink for a small round); verl runs in its own environment with its progress followed
(:mod:`trainer.verl.process`); the last actor checkpoint is merged into a Hugging Face folder with
``python -m verl.model_merger merge --backend fsdp`` and checked (config, safetensors, tokenizer, chat
template). The optimizer is reset every round and the weights start from the previous round's merged
model (``trainer.resume_mode=disable`` with a fresh checkpoint folder per round).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.logs import get_logger
from toolcall.prompts import date_template_kwargs
from trainer.base import CheckpointInfo, RoundDataset, TrainingInterrupted, has_chat_template
from trainer.verl.config import (
    REWARD_MANAGER_PATH,
    BatchPlan,
    VerlSettings,
    plan_batches,
    verl_config,
    verl_overrides,
)
from trainer.verl.data import (
    VerlRow,
    prompts_as_verl_renders,
    round_chat_template,
    round_date,
    write_verl_parquet,
)
from trainer.verl.process import (
    MetricsFollower,
    VerlRunError,
    resolve_verl_python,
    reward_core_path,
    run_streaming,
    summarize_step,
    verl_environment,
)

log = get_logger(__name__)


VERL_VERSION = "0.9.1"


ROLLOUT_GENERATION_CONFIG = "rollout-generation-config"  # a round folder's subfolder


def rollout_end_token_ids(
    model_path: str | Path, template_kwargs: Mapping[str, Any] | None = None
) -> list[int]:
    """The ids that end a completion by the probe's rule (:func:`inference.vllm_backend.stop_token_ids`,
    :func:`toolcall.templates.end_token_ids`): where verl's rollouts must stop, whatever the engine."""
    from transformers import AutoTokenizer

    from inference.vllm_backend import stop_token_ids

    return stop_token_ids(AutoTokenizer.from_pretrained(str(model_path)), Path(model_path), template_kwargs)


def write_rollout_generation_config(
    model_path: str | Path, folder: str | Path, template_kwargs: Mapping[str, Any] | None = None
) -> list[int]:
    """Write the generation config verl's vLLM rollouts read (``--generation-config``) into ``folder``:
    the model's own, with ``eos_token_id`` set to the ids that end a completion by the probe's rule
    (:func:`inference.vllm_backend.stop_token_ids`, :func:`toolcall.templates.end_token_ids`). Returns
    those ids.

    verl samples rollouts with no stop tokens of its own (its agent loop sends temperature, top-p,
    top-k and repetition penalty only), so vLLM stops at the tokenizer's EOS and the generation
    config's ``eos_token_id`` (``SamplingParams.update_from_generation_config``). A folder whose
    generation config leaves out the chat template's end-of-turn token (Phi's ``<|end|>``, Gemma's
    ``<end_of_turn>`` without generation_config.json) would let rollouts run past the assistant's
    turn to the budget, where the probe stops. Everything else is kept as the model has it (vLLM's
    ``auto`` reads the same file, or derives it from config.json when there is none); verl still
    overrides the sampling fields (``override_generation_config``).
    """
    from transformers import AutoConfig, GenerationConfig

    model_path, folder = Path(model_path), Path(folder)
    saved = model_path / "generation_config.json"
    if saved.is_file():
        config = json.loads(saved.read_text(encoding="utf-8"))
    else:  # what vLLM and transformers derive from config.json
        derived = GenerationConfig.from_model_config(AutoConfig.from_pretrained(str(model_path)))
        config = {k: v for k, v in derived.to_diff_dict().items() if k != "_from_model_config"}
    ends = rollout_end_token_ids(model_path, template_kwargs)
    config["eos_token_id"] = ends
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "generation_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return ends


@dataclass
class VerlRoundResult:
    """A finished round: the merged model and what the ``CheckpointPublished`` event reports."""

    round_index: int
    model_dir: Path
    checkpoint_dir: Path
    step: int
    metrics: dict[str, float]
    wall_time_s: float
    log_path: Path
    history: list[dict[str, float]] = field(default_factory=list)

    def checkpoint_published(
        self, *, new_checkpoint_id: str, parent_checkpoint_id: str | None, final: bool = True
    ) -> Any:
        """The ``CheckpointPublished`` payload of this round's model."""
        from schemas.events import CheckpointPublished

        return CheckpointPublished(
            new_checkpoint_id=new_checkpoint_id,
            parent_checkpoint_id=parent_checkpoint_id,
            round=self.round_index,
            step=self.step,
            final=final,
            uri=str(self.model_dir),
            backend="verl",
            metrics=dict(self.metrics),
            wall_time_s=self.wall_time_s,
        )


def latest_checkpoint(checkpoint_root: Path) -> tuple[int, Path]:
    """verl's last saved step and its actor folder (``global_step_N/actor``)."""
    tracker = checkpoint_root / "latest_checkpointed_iteration.txt"
    if not tracker.is_file():
        raise FileNotFoundError(f"verl wrote no checkpoint tracker at {tracker}")
    text = tracker.read_text(encoding="utf-8").strip()
    if not text.isdigit():
        raise ValueError(f"{tracker} holds {text!r}, not a step number")
    step = int(text)
    actor = checkpoint_root / f"global_step_{step}" / "actor"
    if not (actor / "fsdp_config.json").is_file():
        raise FileNotFoundError(f"checkpoint of step {step} has no FSDP actor at {actor}")
    return step, actor


def finish_hf_folder(target: Path, source_model: Path) -> None:
    """Check a merged folder is a loadable HF model; restore files the merge may drop from the source.

    The tokenizer never changes in training, so a missing chat template or generation config is
    copied from the round's input model (the probe and the next round need both).
    """
    if not (target / "config.json").is_file():
        raise VerlRunError(f"merged model at {target} has no config.json")
    if not any(target.glob("*.safetensors")):
        raise VerlRunError(f"merged model at {target} has no safetensors weights")
    if not ((target / "tokenizer.json").is_file() or (target / "tokenizer_config.json").is_file()):
        raise VerlRunError(f"merged model at {target} has no tokenizer")
    if not has_chat_template(target):
        copied = False
        for name in ("chat_template.jinja", "chat_template.json"):
            if (source_model / name).is_file():
                shutil.copy2(source_model / name, target / name)
                # chat_template.json is a processor's: the tokenizer still needs its own template.
                copied = copied or name == "chat_template.jinja"
        source_config = source_model / "tokenizer_config.json"
        if not copied and source_config.is_file():
            template = json.loads(source_config.read_text(encoding="utf-8")).get("chat_template")
            if template:
                target_config_path = target / "tokenizer_config.json"
                target_config = json.loads(target_config_path.read_text(encoding="utf-8"))
                target_config["chat_template"] = template
                target_config_path.write_text(
                    json.dumps(target_config, indent=2, ensure_ascii=False), "utf-8"
                )
                copied = True
        if not copied:
            raise VerlRunError(
                f"merged model at {target} has no chat template and {source_model} has none either"
            )
        log.info("verl.chat_template_restored", target=str(target), source=str(source_model))
    if (
        not (target / "generation_config.json").is_file()
        and (source_model / "generation_config.json").is_file()
    ):
        shutil.copy2(source_model / "generation_config.json", target / "generation_config.json")


class VerlBackend:
    """:class:`trainer.base.TrainerBackend` on verl: parquet → ``main_ppo`` → model merger → HF folder.

    verl publishes no intermediate checkpoints here; ``stop`` ends its process group within about a
    second (no final: :class:`~trainer.base.TrainingInterrupted`), and its own ``timeout_s`` bounds a
    round. ``work_dir`` is where rounds are written: the ``out_dir`` of
    :meth:`train_round`, or given at construction to drive the steps one by one.
    ``chat_template_kwargs`` (``[policy]``'s) join the round's ``data.apply_chat_template_kwargs``, so
    verl renders its prompts as the probe does.
    """

    name = "verl"

    def __init__(
        self,
        settings: VerlSettings,
        work_dir: str | Path | None = None,
        *,
        run_name: str = "looptool",
        show_progress: bool = True,
        chat_template_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.work_dir = Path(work_dir) if work_dir is not None else Path(".")
        self.run_name = run_name
        self.show_progress = show_progress

    def train_round(
        self,
        dataset: RoundDataset,
        *,
        init_model: Path,
        out_dir: Path,
        on_checkpoint: Callable[[CheckpointInfo], None] | None = None,
        stop: threading.Event | None = None,
    ) -> CheckpointInfo:
        """Train round ``dataset.round`` from ``init_model`` under ``out_dir``; the merged model is final."""
        self.work_dir = Path(out_dir)
        rows = [
            VerlRow(sample_id=r.sample_id, chat=r.chat, ground_truth=r.ground_truth) for r in dataset.rows
        ]
        result = self.run_round(rows, round_index=dataset.round, model_path=init_model, stop=stop)
        return CheckpointInfo(
            path=result.model_dir,
            round=dataset.round,
            step=result.step,
            final=True,
            metrics=dict(result.metrics),
            wall_time_s=result.wall_time_s,
        )

    def round_dir(self, round_index: int) -> Path:
        return self.work_dir / f"round-{round_index:03d}"

    def prepare_round(
        self, rows: Sequence[VerlRow], *, round_index: int, model_path: str | Path
    ) -> tuple[Path, BatchPlan, list[str]]:
        """Write the parquet and the overrides of a round; returns (round folder, plan, overrides).

        Rows whose prompt exceeds ``max_prompt_length`` tokens (with the model's chat template) are
        dropped here, logged, so the batch plan counts exactly the rows verl will train on.
        """
        model_path = Path(model_path)
        if not (model_path / "config.json").is_file():
            raise FileNotFoundError(
                f"model folder {model_path} has no config.json (need a Hugging Face folder)"
            )
        run_dir = self.round_dir(round_index)
        if run_dir.exists():
            # A previous attempt's checkpoints would confuse the checkpoint lookup; keep them aside.
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            aside = run_dir.with_name(f"{run_dir.name}.attempt-{stamp}")
            run_dir.rename(aside)
            log.warning("verl.previous_attempt_moved", round=round_index, to=str(aside))
        run_dir.mkdir(parents=True)
        limit = self.settings.max_prompt_length
        day, dates = round_date(rows)  # from the chats as written: the system turn states the time
        date = date_template_kwargs(day)["date_string"]
        if len(dates) > 1:
            log.warning("verl.round_dates_differ", round=round_index, date_string=date, rows_per_date=dates)
        # The settings refuse a switch named date_string, so the round's date is the one verl passes.
        template_kwargs = {**self.chat_template_kwargs, "date_string": date}
        # A template dating its prompt through strftime_now gets the round's date in its own text.
        chat_template = round_chat_template(model_path, day)
        rows, counts = prompts_as_verl_renders(model_path, rows, template_kwargs, chat_template)
        kept = [row for row, count in zip(rows, counts, strict=True) if count <= limit]
        too_long = [row.sample_id for row, count in zip(rows, counts, strict=True) if count > limit]
        if too_long:
            log.warning(
                "verl.rows_over_prompt_length",
                round=round_index,
                dropped=len(too_long),
                max_prompt_length=limit,
                sample_ids=too_long[:20],
            )
        if rows and not kept:
            raise ValueError(
                f"all {len(rows)} rows of round {round_index} exceed max_prompt_length={limit} tokens"
            )
        train_file = run_dir / "train.parquet"
        write_verl_parquet(kept, train_file, round_index=round_index)
        plan = plan_batches(len(kept), self.settings)
        generation_config = None
        if self.settings.rollout_engine == "vllm":
            generation_config = run_dir / ROLLOUT_GENERATION_CONFIG
            ends = write_rollout_generation_config(model_path, generation_config, self.chat_template_kwargs)
        else:  # SGLang reads no generation-config folder: the ids go in its model config override
            ends = rollout_end_token_ids(model_path, self.chat_template_kwargs)
        log.info(
            "verl.rollout_end_tokens",
            round=round_index,
            engine=self.settings.rollout_engine,
            eos_token_id=ends,
        )
        config = verl_config(
            self.settings,
            plan=plan,
            model_path=model_path,
            train_file=train_file,
            run_dir=run_dir,
            experiment_name=f"{self.run_name}-round-{round_index}",
            rollout_generation_config=generation_config,
            rollout_end_token_ids=ends,
            chat_template_kwargs=template_kwargs,
            chat_template=chat_template,
        )
        overrides = verl_overrides(config, self.settings.extra_overrides)
        (run_dir / "verl_overrides.json").write_text(json.dumps(overrides, indent=1), encoding="utf-8")
        log.info(
            "verl.round_prepared",
            round=round_index,
            rows=plan.rows,
            train_batch_size=plan.train_batch_size,
            ppo_mini_batch_size=plan.ppo_mini_batch_size,
            steps=plan.total_steps,
            unused_rows_per_epoch=plan.rows_unused_per_epoch,
        )
        return run_dir, plan, overrides

    def preflight(self, python: Path) -> str:
        """Check the verl environment imports verl, our reward and the rollout engine; returns its version."""
        manager = REWARD_MANAGER_PATH.removeprefix("pkg://")
        modules = ["verl", "toolcall.reward", manager, "transfer_queue", self.settings.rollout_engine]
        script = (
            "import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except Exception as error:\n"
            "        sys.exit(f'cannot import {name}: {type(error).__name__}: {error}')\n"
            "import verl\n"
            "print(verl.__version__)\n"
        )
        done = subprocess.run(
            [str(python), "-c", script],
            env=verl_environment(reward_core_path(self.work_dir / "reward-core")),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-20:]
            # The one line a CLI error shows must say why: the import that failed is the last line.
            reason = tail[-1] if tail else f"exit status {done.returncode}"
            raise VerlRunError(
                f"the verl environment at {python} is not usable: {reason} "
                "(see scripts/install-verl.sh --gpu)",
                tail=tail,
            )
        version = done.stdout.strip().splitlines()[-1]
        if version != VERL_VERSION:
            log.warning("verl.version_mismatch", found=version, expected=VERL_VERSION)
        return version

    def run_round(
        self,
        rows: Sequence[VerlRow],
        *,
        round_index: int,
        model_path: str | Path,
        stop: threading.Event | None = None,
    ) -> VerlRoundResult:
        """Train one round from ``model_path`` (previous round's merged model) and merge the result."""
        started = time.monotonic()
        python = resolve_verl_python(self.settings)
        self.preflight(python)
        run_dir, plan, overrides = self.prepare_round(rows, round_index=round_index, model_path=model_path)
        history = self.launch(python, run_dir, plan, overrides, round_index, stop=stop)
        step, actor_dir = latest_checkpoint(run_dir / "checkpoints")
        model_dir = run_dir / "model"
        self.merge(
            python, actor_dir, model_dir, source_model=Path(model_path), log_path=run_dir / "merge.log"
        )
        final = history[-1] if history else {}
        metrics = {**final, "steps": float(step), "rows": float(plan.rows)}
        result = VerlRoundResult(
            round_index=round_index,
            model_dir=model_dir,
            checkpoint_dir=actor_dir,
            step=step,
            metrics=metrics,
            wall_time_s=time.monotonic() - started,
            log_path=run_dir / "verl.log",
            history=history,
        )
        log.info("verl.round_done", round=round_index, step=step, model=str(model_dir), **metrics)
        return result

    def launch(
        self,
        python: Path,
        run_dir: Path,
        plan: BatchPlan,
        overrides: Sequence[str],
        round_index: int,
        *,
        stop: threading.Event | None = None,
    ) -> list[dict[str, float]]:
        """Run ``verl.trainer.main_ppo`` with ``overrides``; returns the per-step metric summaries."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        metrics_path = run_dir / "metrics.jsonl"
        log_path = run_dir / "verl.log"
        follower = MetricsFollower(metrics_path)
        history: list[dict[str, float]] = []
        command = [str(python), "-m", "verl.trainer.main_ppo", *overrides]
        log.info("verl.launch", round=round_index, steps=plan.total_steps, log=str(log_path))
        progress = Progress(
            TextColumn(f"verl round {round_index}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("reward {task.fields[reward]}"),
            TimeElapsedColumn(),
            disable=not self.show_progress,
        )
        task = progress.add_task("train", total=plan.total_steps, reward="-")

        def on_line(line: str) -> None:
            log.debug("verl.output", line=line)
            # verl logs its own step count once the dataloader exists; trust it over our plan.
            marker = "Total training steps:"
            if marker in line:
                tail = line.split(marker, 1)[1].strip().split()[0:1]
                if tail and tail[0].isdigit():
                    progress.update(task, total=int(tail[0]))

        def on_tick() -> None:
            for step, data in follower.read_new():
                summary = summarize_step(data)
                if not summary:
                    continue
                summary["step"] = float(step)
                history.append(summary)
                reward = summary.get("reward_mean")
                progress.update(task, completed=step, reward="-" if reward is None else f"{reward:.3f}")
                log.info("verl.step", round=round_index, **summary)

        with progress:
            run = run_streaming(
                command,
                env=verl_environment(reward_core_path(run_dir / "reward-core"), metrics_path),
                cwd=run_dir,
                log_path=log_path,
                on_line=on_line,
                on_tick=on_tick,
                timeout_s=self.settings.timeout_s,
                stop=stop,
            )
        if run.stopped:
            raise TrainingInterrupted(
                f"verl stopped in round {round_index} at step {len(history)} on request"
            )
        if run.timed_out:
            raise VerlRunError(
                f"verl did not finish round {round_index} within {self.settings.timeout_s:.0f}s",
                log_path=log_path,
                tail=run.tail,
            )
        if run.returncode != 0:
            raise VerlRunError(
                f"verl exited with status {run.returncode} in round {round_index}",
                log_path=log_path,
                tail=run.tail,
            )
        if not (run_dir / "checkpoints" / "latest_checkpointed_iteration.txt").is_file():
            raise VerlRunError(
                f"verl finished round {round_index} without a checkpoint ({plan.total_steps} steps planned)",
                log_path=log_path,
                tail=run.tail,
            )
        return history

    def merge(
        self, python: Path, actor_dir: Path, target: Path, *, source_model: Path, log_path: Path
    ) -> Path:
        """Merge an FSDP actor checkpoint into a Hugging Face folder with verl's model merger."""
        if target.exists():
            shutil.rmtree(target)
        command = [
            str(python),
            "-m",
            "verl.model_merger",
            "merge",
            "--backend",
            "fsdp",
            "--local_dir",
            str(actor_dir),
            "--target_dir",
            str(target),
        ]
        log.info("verl.merge", actor=str(actor_dir), target=str(target))
        run = run_streaming(
            command,
            env=verl_environment(reward_core_path(log_path.parent / "reward-core")),
            cwd=log_path.parent,
            log_path=log_path,
            on_line=lambda line: log.debug("verl.merge_output", line=line),
        )
        if run.returncode != 0:
            raise VerlRunError(
                f"verl's model merger exited with status {run.returncode}", log_path=log_path, tail=run.tail
            )
        finish_hf_folder(target, source_model)
        return target
