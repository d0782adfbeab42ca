"""SFT warm start: teach a policy trained from scratch the output format before GRPO.

GRPO only learns from groups whose rewards differ; a random tiny model never writes a parseable
``<tool_call>`` block, so every reward is 0 and every advantage is 0. A few supervised steps on the
round's own labels (prompt → :meth:`TrainingRow.target`, loss on the completion only) give GRPO a
policy that sometimes matches. Real pretrained policies skip this (``sft_warmup_steps = 0``, the
default).

The loop is plain torch rather than TRL's SFTTrainer: the same objective (token-mean cross-entropy
on completion tokens, AdamW, a transformers LR schedule, gradient clipping at 1), but the language-
model head runs on completion positions only and batches are grouped by length, which made a step
of the demo's tiny policy ~2x cheaper on CPU (benchmarks/warm_start.py, ``--engine``).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.logs import get_logger
from trainer.base import RoundDataset, TrainingInterrupted, TrainingRow, save_hf_checkpoint, saved_dtype
from trainer.cpu_grpo import render_prompts, torch_threads

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
    stop: threading.Event | None = None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> SftResult:
    """Round 1's warm start as ``[trainer]`` configures it (steps, rate, batch, seed, threads, data),
    its prompts rendered with ``chat_template_kwargs`` (``[policy]``'s)."""
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
        stop=stop,
        chat_template_kwargs=chat_template_kwargs,
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
    schedule: str = "constant",
    warmup_ratio: float = 0.0,
    on_step: Callable[[int, Any], None] | None = None,
    stop: threading.Event | None = None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> SftResult:
    """Fine-tune ``init_model`` on (prompt, label) pairs for ``steps`` steps; save to ``out_dir``.

    ``schedule`` is a transformers scheduler name (``constant``, ``cosine``, ...), after a linear
    warm-up over ``warmup_ratio`` of the steps. ``on_step(step, model)`` is called after every
    optimizer step (learning curves; the model is in training mode and must be left so). When
    ``stop`` is set the warm start ends after the current step, saves nothing and raises
    :class:`~trainer.base.TrainingInterrupted` (Ctrl-C or SIGTERM waited for the whole warm start).
    ``chat_template_kwargs``: ``[policy] chat_template_kwargs``, for prompts and labels alike.
    """
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
            schedule,
            warmup_ratio,
            on_step,
            stop,
            chat_template_kwargs,
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
    schedule: str = "constant",
    warmup_ratio: float = 0.0,
    on_step: Callable[[int, Any], None] | None = None,
    stop: threading.Event | None = None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> SftResult:
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_scheduler

    tokenizer = AutoTokenizer.from_pretrained(init_model)
    model = AutoModelForCausalLM.from_pretrained(init_model, dtype="float32")
    model.config.use_cache = False
    model.train()
    examples = tokenize_examples(tokenizer, rows, chat_template_kwargs)
    batches = LengthGroupedBatches([len(ids) for ids, _ in examples], min(batch_size, len(examples)), seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    scheduler = get_scheduler(
        schedule, optimizer, num_warmup_steps=round(warmup_ratio * steps), num_training_steps=steps
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
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
    try:
        with progress, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for step in range(1, steps + 1):
                if stop is not None and stop.is_set():
                    raise TrainingInterrupted(f"the warm start stopped at step {step - 1} of {steps}")
                input_ids, attention, targets = collate([examples[i] for i in batches.next()], pad_id)
                loss = completion_loss(model, input_ids, attention, targets)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
                progress.update(task, completed=step, loss=f"{losses[-1]:.3f}")
                log.debug("train.sft_step", step=step, loss=losses[-1])
                if on_step is not None:
                    on_step(step, model)
        model.eval()
        save_hf_checkpoint(model, tokenizer, out_dir, dtype=saved_dtype(init_model))
    finally:
        del optimizer
        gc.collect()
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


def tokenize_examples(
    tokenizer: Any, rows: Sequence[TrainingRow], template_kwargs: Mapping[str, Any] | None = None
) -> list[tuple[list[int], int]]:
    """(prompt + completion token ids, prompt length) per row.

    The prompt is the chat template's rendering (as the probe and GRPO decode from it) and the
    completion the label as the template writes the assistant's turn, through the token that closes
    it (:func:`toolcall.templates.assistant_turn`: Gemma's ``<end_of_turn>``, Phi's
    ``<|end|>``, Qwen3's empty reasoning block before the label, Mistral's leading space); generation
    stops there. A template that does not show the turn gets the label and the tokenizer's EOS.
    Both are rendered with ``template_kwargs`` (``[policy] chat_template_kwargs``).
    """
    from toolcall.templates import assistant_turn

    prompts = tokenizer(render_prompts(tokenizer, rows, template_kwargs), add_special_tokens=False)[
        "input_ids"
    ]
    eos = tokenizer.eos_token_id
    examples = []
    for row, prompt in zip(rows, prompts, strict=True):
        target = row.target()
        turn = assistant_turn(tokenizer, row.chat, target, template_kwargs)
        if turn is not None:
            completion = list(tokenizer(turn, add_special_tokens=False)["input_ids"])
        else:
            completion = list(tokenizer(target, add_special_tokens=False)["input_ids"])
            completion += [eos] if eos is not None else []
        examples.append((list(prompt) + completion, len(prompt)))
    return examples


def collate(examples: Sequence[tuple[list[int], int]], pad_id: int) -> tuple[Any, Any, Any]:
    """Right-padded input ids, attention mask, and next-token targets (-100 outside completions)."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    targets = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, (ids, prompt_length) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        targets[row, prompt_length - 1 : len(ids) - 1] = torch.tensor(ids[prompt_length:])
    return input_ids, attention, targets


def completion_loss(model: Any, input_ids: Any, attention: Any, targets: Any) -> Any:
    """Token-mean cross-entropy over completion tokens only.

    The logits are the model's own forward's (a model may transform its head's output: Granite
    scales it, Gemma 2 soft-caps it), kept only at positions where some row of the batch predicts a
    completion token (``logits_to_keep``): for a tiny model with a few thousand tokens of vocabulary
    the head is a third of the compute, and prompts are two thirds of the tokens.
    """
    import torch

    where = targets != -100
    positions = where.any(dim=0).nonzero().squeeze(1)
    logits = model(
        input_ids=input_ids, attention_mask=attention, logits_to_keep=positions.to(input_ids.device)
    ).logits
    if logits.shape[1] != len(positions):  # a model that ignores logits_to_keep: all positions came back
        logits = logits[:, positions]
    kept = where[:, positions]
    return torch.nn.functional.cross_entropy(logits[kept].float(), targets[:, positions][kept])


class LengthGroupedBatches:
    """Endless random batches of similar lengths (less padding), reshuffled every epoch, seeded."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, group: int = 32) -> None:
        import random

        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.group = group  # batches per length-sorted chunk
        self.rng = random.Random(f"sft-batches-{seed}")
        self.queue: list[list[int]] = []

    def _epoch(self) -> list[list[int]]:
        order = list(range(len(self.lengths)))
        self.rng.shuffle(order)
        chunk = self.batch_size * self.group
        batches = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=self.lengths.__getitem__)
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        batches = [b for b in batches if len(b) == self.batch_size] or batches
        self.rng.shuffle(batches)
        return batches

    def next(self) -> list[int]:
        if not self.queue:
            self.queue = self._epoch()
        return self.queue.pop()
