"""Rich tables and the Figure-2-style plot of BFCL scores (one evaluation, or one per checkpoint and
round), and the promotion gate's decisions."""

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
    table = Table(title=title or "BFCL v4 (bfcl-eval AST and multi-turn checkers)")
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


def category_table(
    summary: BfclSummary, *, title: str = "Per category", steps: Mapping[str, int] | None = None
) -> Table:
    """Correct / items / accuracy per category; ``steps`` adds the model outputs each category took."""
    table = Table(title=title)
    table.add_column("Category")
    table.add_column("Correct", justify="right")
    table.add_column("Items", justify="right")
    table.add_column("Accuracy", justify="right")
    if steps is not None:
        table.add_column("Model outputs", justify="right")
    for score in summary.categories.values():
        cells = [score.category, str(score.correct), str(score.total), _percent(score.accuracy)]
        table.add_row(*cells, *([str(steps.get(score.category, 0))] if steps is not None else []))
    return table


def summary_of_payload(payload: Any) -> BfclSummary:
    """The summary of a CheckpointEvaluated payload (recomputed from its per-category counts)."""
    return summary_from_scores(
        {
            name: CategoryScore(name, int(payload.correct[name]), int(payload.total[name]))
            for name in payload.total
        }
    )


HELDOUT_TITLE = "Held-out ToolMatch"


def heldout_accuracy(payload: Any) -> float | None:
    """The held-out ToolMatch accuracy of a CheckpointEvaluated payload (None: no held-out set scored;
    version-1 events have none)."""
    total = getattr(payload, "heldout_total", None)
    return payload.heldout_correct / total if total else None


def rounds_table(evaluations: Sequence[Any], *, title: str = "BFCL by round") -> Table:
    """One row per CheckpointEvaluated payload, ordered by round and step."""
    table = Table(title=title)
    for column in ("Round", "Step", "Checkpoint"):
        table.add_column(column)
    # Held-out-only evaluations ([eval] bfcl = false) have no BFCL column to show.
    columns = SUMMARY_COLUMNS if any(p.categories for p in evaluations) else ()
    for name in columns:
        table.add_column(SUMMARY_TITLES[name], justify="right")
    with_heldout = any(heldout_accuracy(p) is not None for p in evaluations)
    if with_heldout:
        table.add_column(HELDOUT_TITLE, justify="right")
    table.add_column("Items", justify="right")
    table.add_column("Wall (s)", justify="right")
    for payload in sorted(evaluations, key=lambda p: (p.round, p.step, p.checkpoint_id)):
        summary = summary_of_payload(payload)
        table.add_row(
            str(payload.round),
            str(payload.step),
            payload.checkpoint_id + (" (final)" if payload.final else ""),
            *(_percent(summary.column(name), name in summary.partial) for name in columns),
            *([_percent(heldout_accuracy(payload))] if with_heldout else []),
            str(summary.total),
            f"{payload.wall_time_s:.1f}",
        )
    return table


def promotions_table(decisions: Sequence[Any], *, title: str = "Promotion gate") -> Table:
    """One row per PolicyPromoted / PromotionRefused payload, in order: both sets of figures and why."""
    table = Table(title=title)
    for column in ("Round", "Checkpoint", "Decision", "Figures (candidate vs promoted)", "Reason"):
        table.add_column(column)
    for payload in decisions:
        promoted = type(payload).__name__ == "PolicyPromoted"
        baseline = payload.previous_figures if promoted else payload.promoted_figures
        figures = ", ".join(
            f"{name} {_percent(value)}" + (f" vs {_percent(baseline[name])}" if name in baseline else "")
            for name, value in payload.figures.items()
        )
        table.add_row(
            str(payload.round),
            payload.checkpoint_id,
            "promoted" if promoted else "refused",
            figures or "–",
            payload.reason,
        )
    return table


def by_round(evaluations: Sequence[Any]) -> dict[int, Mapping[str, float]]:
    """Per round, the summary columns (and held-out ToolMatch accuracy, as ``heldout_toolmatch``) of
    its latest evaluated checkpoint (final preferred)."""
    chosen: dict[int, Any] = {}
    for payload in sorted(evaluations, key=lambda p: (p.round, p.final, p.step)):
        chosen[payload.round] = payload
    rows: dict[int, Mapping[str, float]] = {}
    for round_, payload in sorted(chosen.items()):
        heldout = heldout_accuracy(payload)
        rows[round_] = {
            **summary_of_payload(payload).columns(),
            **({"heldout_toolmatch": heldout} if heldout is not None else {}),
        }
    return rows


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
    titles = {**SUMMARY_TITLES, "heldout_toolmatch": HELDOUT_TITLE}
    for name in (*SUMMARY_COLUMNS, "heldout_toolmatch"):
        ys = [100 * rounds[r][name] if name in rounds[r] else float("nan") for r in xs]
        if any(y == y for y in ys):  # at least one value that is not NaN
            axis.plot(
                xs, ys, marker="o", label=titles[name], linestyle="--" if name == "heldout_toolmatch" else "-"
            )
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
