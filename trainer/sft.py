"""SFT warm start: teach a policy trained from scratch the output format before GRPO.

GRPO only learns from groups whose rewards differ; a random tiny model never writes a parseable
``<tool_call>`` block, so every reward is 0 and every advantage is 0. A few supervised steps on the
round's own labels (prompt → :meth:`TrainingRow.target`, loss on the completion only, with TRL's
SFTTrainer) give GRPO a policy that sometimes matches. Real pretrained policies skip this
(``sft_warmup_steps = 0``, the default).
"""

from __future__ import annotations

import gc
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.logs import get_logger
from trainer.base import RoundDataset, TrainingRow, save_hf_checkpoint
from trainer.cpu_grpo import import_trl, render_prompts, torch_threads

if TYPE_CHECKING:
    from trainer.config import TrainerSettings

log = get_logger(__name__)


@dataclass(frozen=True)
class SftResult:
    model_dir: Path
    steps: int
    loss_first: float | None
    loss_last: float | None
    wall_time_s: float

    def metrics(self) -> dict[str, float]:
        out = {"sft_steps": float(self.steps), "sft_wall_time_s": self.wall_time_s}
        if self.loss_first is not None:
            out["sft_loss_first"] = self.loss_first
        if self.loss_last is not None:
            out["sft_loss_last"] = self.loss_last
        return out


def warm_start_rows(dataset: RoundDataset, sft_data: Path | None) -> list[TrainingRow]:
    """What the round-1 warm start trains on: ``sft_data`` (JSONL, any ingest format) when set, else
    the round's own rows.

    A separate file keeps the warm start from memorising D_1: many SFT epochs over the very samples
    the probe then decodes teach the model their labels, noisy ones included, and the probe finds no
    mismatch to judge. The demo's file is a split of D_seed the loop never curates, plus copy drills
    (:mod:`world.drills`). A bad line fails the warm start with its line number: this is
    configuration, not streamed input.
    """
    import json

    from toolcall.formats import record_to_samples
    from trainer.dataset import sample_row

    if sft_data is None:
        return list(dataset.rows)
    rows: list[TrainingRow] = []
    for number, line in enumerate(Path(sft_data).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            samples = record_to_samples(json.loads(line))
        except ValueError as error:
            raise ValueError(f"{sft_data}:{number}: not a sample record: {error}") from error
        rows.extend(sample_row(f"sft-{number}-{index}", sample) for index, sample in enumerate(samples))
    if not rows:
        raise ValueError(f"{sft_data}: no samples to warm-start on")
    log.info("train.sft_data", path=str(sft_data), rows=len(rows))
    return rows


def configured_warm_start(
    dataset: RoundDataset,
    trainer: TrainerSettings,
    *,
    init_model: Path,
    out_dir: Path,
    show_progress: bool = True,
) -> SftResult:
    """Round 1's warm start as ``[trainer]`` configures it (steps, rate, batch, seed, threads, data)."""
    return sft_warm_start(
        warm_start_rows(dataset, trainer.sft_data),
        init_model=init_model,
        out_dir=out_dir,
        steps=trainer.sft_warmup_steps,
        learning_rate=trainer.sft_learning_rate,
        batch_size=trainer.sft_batch_size,
        seed=trainer.seed,
        threads=trainer.sft_torch_threads or trainer.torch_threads,
        show_progress=show_progress,
    )


def sft_warm_start(
    rows: Sequence[TrainingRow],
    *,
    init_model: Path,
    out_dir: Path,
    steps: int,
    learning_rate: float = 1e-4,
    batch_size: int = 8,
    seed: int = 0,
    threads: int | None = None,
    show_progress: bool = True,
) -> SftResult:
    """Fine-tune ``init_model`` on (prompt, label) pairs for ``steps`` steps; save to ``out_dir``."""
    if steps < 1:
        raise ValueError("sft_warm_start needs at least one step")
    if not rows:
        raise ValueError("sft_warm_start needs at least one row")
    started = time.monotonic()
    with torch_threads(threads):
        return _train(
            rows,
            Path(init_model),
            Path(out_dir),
            steps,
            learning_rate,
            batch_size,
            seed,
            show_progress,
            started,
        )


def _train(
    rows: Sequence[TrainingRow],
    init_model: Path,
    out_dir: Path,
    steps: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    show_progress: bool,
    started: float,
) -> SftResult:
    import datasets
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trl = import_trl()
    tokenizer = AutoTokenizer.from_pretrained(init_model)
    model = AutoModelForCausalLM.from_pretrained(init_model, dtype="float32")
    datasets.disable_progress_bars()
    # Completion = the label as the model writes it, closed by the end-of-turn token (TRL appends
    # eos_token when missing, which for a ChatML tokenizer is <|im_end|>).
    train_set = datasets.Dataset.from_dict(
        {"prompt": render_prompts(tokenizer, rows), "completion": [row.target() for row in rows]}
    )
    losses: list[float] = []
    progress = Progress(
        TextColumn("SFT warm start"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        disable=not show_progress,
    )
    task = progress.add_task("sft", total=steps, loss="-")

    class LossLog(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any
        ) -> Any:
            if logs and isinstance(logs.get("loss"), int | float):
                losses.append(float(logs["loss"]))
                progress.update(task, completed=state.global_step, loss=f"{losses[-1]:.3f}")
                log.debug("train.sft_step", step=state.global_step, loss=losses[-1])
            return control

    work_dir = out_dir.with_name(out_dir.name + ".trl-work")
    config = trl.SFTConfig(
        output_dir=str(work_dir),
        use_cpu=True,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        per_device_train_batch_size=min(batch_size, len(rows)),
        gradient_accumulation_steps=1,
        learning_rate=learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_steps=steps,
        max_length=None,  # never truncate: a cut prompt would teach the wrong continuation
        packing=False,
        completion_only_loss=True,
        shuffle_dataset=True,
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = trl.SFTTrainer(
        model=model, processing_class=tokenizer, args=config, train_dataset=train_set, callbacks=[LossLog()]
    )
    for noisy in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(noisy)
    try:
        with progress:
            trainer.train()
        save_hf_checkpoint(trainer.model, tokenizer, out_dir)
    finally:
        del trainer
        gc.collect()
        shutil.rmtree(work_dir, ignore_errors=True)
    result = SftResult(
        model_dir=out_dir,
        steps=steps,
        loss_first=losses[0] if losses else None,
        loss_last=losses[-1] if losses else None,
        wall_time_s=time.monotonic() - started,
    )
    log.info(
        "train.sft_done",
        steps=steps,
        rows=len(rows),
        loss_first=result.loss_first,
        loss_last=result.loss_last,
        seconds=round(result.wall_time_s, 1),
        model=str(out_dir),
    )
    return result
