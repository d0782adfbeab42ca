"""Run a policy on BFCL items through our inference backends and score every output.

Each item's prompt is the policy's own (:func:`toolcall.prompts.build_chat`: the paper's Figure 7
instruction with the tools in ``<tools></tools>``, BFCL's Python hint appended to each description as
BFCL does for every model); decoding is greedy. Outputs are scored by :mod:`evaluation.scoring`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from common.logs import get_logger
from evaluation.scoring import BfclSummary, ItemResult, score_output, summarise
from evaluation.suite import SUITE_NAME, BfclItem, suite_version
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
    results: list[ItemResult]
    summary: BfclSummary
    wall_time_s: float


async def evaluate(
    backend: InferenceBackend,
    items: Sequence[BfclItem],
    *,
    max_tokens: int = 512,
    batch_size: int = 16,
    current_time: str = DEFAULT_CURRENT_TIME,
    limit: int | None = None,
    show_progress: bool = True,
) -> EvalRun:
    """Generate greedily for every item (``batch_size`` prompts per backend call) and score the outputs."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    sampling = SamplingConfig(greedy=True, max_tokens=max_tokens)
    results: list[ItemResult] = []
    progress = Progress(
        TextColumn("[bold]BFCL[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
        transient=True,
    )
    with progress:
        task = progress.add_task(backend.model_id, total=len(items))
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            chats = [build_chat(item.tools(), item.messages(), current_time) for item in batch]
            generations = await backend.generate(chats, sampling)
            for item, (generation, *_) in zip(batch, generations, strict=True):
                results.append(score_output(item, generation.text))
            progress.advance(task, len(batch))
    categories = list(dict.fromkeys(item.category for item in items))
    run = EvalRun(
        model_id=backend.model_id,
        suite=SUITE_NAME,
        suite_version=suite_version(),
        categories=categories,
        limit=limit,
        results=results,
        summary=summarise(results),
        wall_time_s=time.perf_counter() - started,
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


def write_results(results: Sequence[ItemResult], path: str | Path) -> Path:
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
