"""Run a policy on BFCL items through our inference backends and score every output.

Each item's prompt is the policy's own (:func:`toolcall.prompts.build_chat`: the paper's Figure 7
instruction with the tools in ``<tools></tools>``, BFCL's Python hint appended to each description as
BFCL does for every model); decoding is greedy. Single-turn outputs are scored by
:mod:`evaluation.scoring`; multi-turn conversations are run and scored by :mod:`evaluation.multi_turn`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from common.logs import get_logger
from evaluation.multi_turn import MultiTurnResult, Transcript, run_conversations, score_conversation
from evaluation.reading import DEFAULT_OUTPUT_READING, OutputReading
from evaluation.scoring import BfclSummary, ItemResult, score_output, summarise
from evaluation.suite import SUITE_NAME, BfclItem, MultiTurnItem, SuiteItem, suite_version
from inference.base import InferenceBackend, SamplingConfig
from toolcall.prompts import DEFAULT_CURRENT_TIME, build_chat

log = get_logger(__name__)


@dataclass(frozen=True)
class EvalRun:
    """One evaluation: which model on which items, every item's result, and the summary."""

    model_id: str
    suite: str
    suite_version: str
    categories: list[str]
    limit: int | None
    results: list[ItemResult | MultiTurnResult]
    summary: BfclSummary
    wall_time_s: float
    max_steps: int | None = None  # the multi-turn step limit (None: no multi-turn category ran)

    def steps(self) -> dict[str, int]:
        """Model outputs scored per category (one per single-turn item, every step of a conversation)."""
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result.category] = counts.get(result.category, 0) + result.steps
        return counts

    def error_types(self) -> dict[str, dict[str, int]]:
        """Per category, how many items failed with each of BFCL's error types."""
        counts: dict[str, dict[str, int]] = {}
        for result in self.results:
            if not result.correct:
                by_type = counts.setdefault(result.category, {})
                name = result.error_type or "unknown"
                by_type[name] = by_type.get(name, 0) + 1
        return counts


async def evaluate(
    backend: InferenceBackend,
    items: Sequence[SuiteItem],
    *,
    max_tokens: int = 512,
    batch_size: int = 16,
    current_time: str = DEFAULT_CURRENT_TIME,
    limit: int | None = None,
    show_progress: bool = True,
    max_steps: int | None = None,
    reading: OutputReading = DEFAULT_OUTPUT_READING,
) -> EvalRun:
    """Generate greedily for every item (``batch_size`` prompts per backend call) and score the outputs.

    Multi-turn items run as conversations (``batch_size`` at a time, each backend call one step of
    each); ``max_steps`` is the per-turn step limit (None: BFCL's, 20). ``reading``: how outputs are
    read (:mod:`evaluation.reading`; ``bfcl``, the default, as ``bfcl evaluate`` reads them).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    sampling = SamplingConfig(greedy=True, max_tokens=max_tokens)
    single = [(i, item) for i, item in enumerate(items) if isinstance(item, BfclItem)]
    multi = [(i, item) for i, item in enumerate(items) if isinstance(item, MultiTurnItem)]
    scored: dict[int, ItemResult | MultiTurnResult] = {}
    progress = Progress(
        TextColumn("[bold]BFCL[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
        transient=True,
    )
    with progress:
        if single:
            task = progress.add_task(f"{backend.model_id} single-turn", total=len(single))
            for start in range(0, len(single), batch_size):
                batch = single[start : start + batch_size]
                chats = [build_chat(item.tools(), item.messages(), current_time) for _, item in batch]
                generations = await backend.generate(chats, sampling)
                for (index, item), (generation, *_) in zip(batch, generations, strict=True):
                    scored[index] = score_output(
                        item, generation.text, reading, trace_opened=generation.trace_opened
                    )
                progress.advance(task, len(batch))
        if multi:
            task = progress.add_task(f"{backend.model_id} multi-turn", total=len(multi))
            position = {item.id: index for index, item in multi}

            def done(item: MultiTurnItem, transcript: Transcript) -> None:
                scored[position[item.id]] = score_conversation(item, transcript, reading)
                progress.advance(task)

            await run_conversations(
                backend,
                [item for _, item in multi],
                max_tokens=max_tokens,
                batch_size=batch_size,
                max_steps=max_steps,
                current_time=current_time,
                on_done=done,
                reading=reading,
            )
    results = [scored[index] for index in sorted(scored)]
    categories = list(dict.fromkeys(item.category for item in items))
    if multi and max_steps is None:
        from evaluation.bfcl_multi_turn import max_step_limit

        max_steps = max_step_limit()
    run = EvalRun(
        model_id=backend.model_id,
        suite=SUITE_NAME,
        suite_version=suite_version(),
        categories=categories,
        limit=limit,
        results=results,
        summary=summarise(results),
        wall_time_s=time.perf_counter() - started,
        max_steps=max_steps if multi else None,
    )
    log.info(
        "eval.done",
        model_id=run.model_id,
        items=len(results),
        correct=run.summary.correct,
        wall_time_s=round(run.wall_time_s, 2),
        **{k: round(v, 4) for k, v in run.summary.columns().items()},
    )
    return run


def write_results(results: Sequence[ItemResult | MultiTurnResult], path: str | Path) -> Path:
    """Per-item results as JSON lines (``.jsonl``) or parquet (``.parquet``), chosen by the suffix."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    rows = [result.to_record() for result in results]
    if target.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema(
            [
                ("id", pa.string()),
                ("category", pa.string()),
                ("correct", pa.bool_()),
                ("made_call", pa.bool_()),
                ("raw_output", pa.string()),
                ("decoded", pa.string()),
                ("parse_error", pa.string()),
                ("error_type", pa.string()),
                ("errors", pa.string()),
                ("steps", pa.int64()),
            ]
        )
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), target)
    elif target.suffix in (".jsonl", ".json"):
        with target.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        raise ValueError(f"per-item results go to a .jsonl or .parquet file, not {target.name!r}")
    return target
