"""Rich tables and the Figure-2-style plot of BFCL scores: one evaluation, or one per checkpoint and round."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from evaluation.scoring import (
    SUMMARY_COLUMNS,
    SUMMARY_TITLES,
    BfclSummary,
    CategoryScore,
    summary_from_scores,
)


def _percent(value: float | None, partial: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.2f}{'*' if partial else ''}"


def summary_table(summary: BfclSummary, *, model: str, title: str | None = None) -> Table:
    """BFCL's summary columns for one model (percent), with the item count."""
    table = Table(title=title or "BFCL v4 single-turn (bfcl-eval AST checker)")
    table.add_column("Model")
    for name in SUMMARY_COLUMNS:
        table.add_column(SUMMARY_TITLES[name], justify="right")
    table.add_column("Items", justify="right")
    table.add_column("Correct", justify="right")
    table.add_row(
        model,
        *(_percent(summary.column(name), name in summary.partial) for name in SUMMARY_COLUMNS),
        str(summary.total),
        str(summary.correct),
    )
    if summary.partial:
        table.caption = "* computed from only some of the column's categories"
    return table


def category_table(summary: BfclSummary, *, title: str = "Per category") -> Table:
    table = Table(title=title)
    table.add_column("Category")
    table.add_column("Correct", justify="right")
    table.add_column("Items", justify="right")
    table.add_column("Accuracy", justify="right")
    for score in summary.categories.values():
        table.add_row(score.category, str(score.correct), str(score.total), _percent(score.accuracy))
    return table


def summary_of_payload(payload: Any) -> BfclSummary:
    """The summary of a CheckpointEvaluated payload (recomputed from its per-category counts)."""
    return summary_from_scores(
        {
            name: CategoryScore(name, int(payload.correct[name]), int(payload.total[name]))
            for name in payload.total
        }
    )


def rounds_table(evaluations: Sequence[Any], *, title: str = "BFCL by round") -> Table:
    """One row per CheckpointEvaluated payload, ordered by round and step."""
    table = Table(title=title)
    for column in ("Round", "Step", "Checkpoint"):
        table.add_column(column)
    for name in SUMMARY_COLUMNS:
        table.add_column(SUMMARY_TITLES[name], justify="right")
    table.add_column("Items", justify="right")
    table.add_column("Wall (s)", justify="right")
    for payload in sorted(evaluations, key=lambda p: (p.round, p.step, p.checkpoint_id)):
        summary = summary_of_payload(payload)
        table.add_row(
            str(payload.round),
            str(payload.step),
            payload.checkpoint_id + (" (final)" if payload.final else ""),
            *(_percent(summary.column(name), name in summary.partial) for name in SUMMARY_COLUMNS),
            str(summary.total),
            f"{payload.wall_time_s:.1f}",
        )
    return table


def by_round(evaluations: Sequence[Any]) -> dict[int, Mapping[str, float]]:
    """Per round, the summary columns of its latest evaluated checkpoint (final preferred)."""
    chosen: dict[int, Any] = {}
    for payload in sorted(evaluations, key=lambda p: (p.round, p.final, p.step)):
        chosen[payload.round] = payload
    return {round_: summary_of_payload(payload).columns() for round_, payload in sorted(chosen.items())}


def plot_by_round(evaluations: Sequence[Any], path: str | Path, *, title: str = "BFCL v4 by round") -> Path:
    """Figure-2-style line plot: each summary column (percent) against the round. Writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = by_round(evaluations)
    if not rounds:
        raise ValueError("no evaluation to plot")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(6, 4))
    xs = list(rounds)
    for name in SUMMARY_COLUMNS:
        ys = [100 * rounds[r][name] if name in rounds[r] else float("nan") for r in xs]
        if any(y == y for y in ys):  # at least one value that is not NaN
            axis.plot(xs, ys, marker="o", label=SUMMARY_TITLES[name])
    axis.set_xlabel("round")
    axis.set_ylabel("accuracy (%)")
    axis.set_xticks(xs)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(target, dpi=120)
    plt.close(figure)
    return target
