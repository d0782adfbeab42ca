"""The analytics as PNG charts (matplotlib, Agg): verdict mix, accuracy, curation, expansion."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from views.analytics.frames import PASSED, SOURCES, VERDICT_LABELS, StatsView

# --- plots --------------------------------------------------------------------------------------

_VERDICT_COLOURS = {
    "matched": "#4c9a2a",
    "PRED_WRONG": "#d1495b",
    "LABEL_WRONG": "#edae49",
    "BOTH_CORRECT": "#66a182",
    "BOTH_WRONG": "#8d6a9f",
    "UNPARSEABLE": "#9e9e9e",
    "NO_QUORUM": "#00798c",
}
_SOURCE_COLOURS = {
    "SEED": "#30638e",
    "ES": "#d1495b",
    "EE": "#edae49",
    "HPPL": "#8d6a9f",
    "SEED_NEW": "#66a182",
}
_FAILURE_COLOURS = ("#d1495b", "#edae49", "#30638e", "#8d6a9f", "#9e9e9e", "#00798c", "#a05195", "#ff7c43")


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} yet", ha="center", va="center", transform=ax.transAxes)


def _stacked(
    ax: Any, frame: pd.DataFrame, columns: Sequence[str], colours: dict[str, str], ylabel: str
) -> None:
    """Stacked bars per round (the frame's index), one segment per column, the legend beside the axes."""
    labels = [str(r) for r in frame.index]
    bottom = [0.0] * len(frame)
    for column in columns:
        values = [float(v) for v in frame[column].tolist()]
        if any(values):
            ax.bar(labels, values, bottom=bottom, label=column, color=colours.get(column))
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _axes_verdicts(ax: Any, stats: StatsView) -> None:
    mix = stats.verdict_mix("round")
    ax.set_title("Probe outcomes by round")
    if not len(mix) or not mix["probed"].sum():
        _empty(ax, "probes")
        return
    _stacked(ax, mix, ("matched", *VERDICT_LABELS), _VERDICT_COLOURS, "probes")


def _axes_accuracy(ax: Any, stats: StatsView) -> None:
    mix = stats.verdict_mix("checkpoint")
    ax.set_title("ToolMatch accuracy by checkpoint")
    if not len(mix):
        _empty(ax, "probes")
        return
    ax.plot(range(len(mix)), (100 * mix["accuracy"]).tolist(), marker="o", color="#30638e")
    ticks = [
        f"r{int(row['round'])} s{int(row['step'])}" if pd.notna(row["round"]) else str(checkpoint)[:12]
        for checkpoint, row in mix.iterrows()
    ]
    ax.set_xticks(range(len(mix)), ticks)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy %")
    ax.set_xlabel("checkpoint (round trained, step)")


def _axes_curation(ax: Any, stats: StatsView) -> None:
    curation = stats.curation()
    ax.set_title("D_j by source (Eq. 5)")
    if not len(curation):
        _empty(ax, "rounds")
        return
    _stacked(ax, curation, SOURCES, _SOURCE_COLOURS, "samples")


def _axes_expansion(ax: Any, stats: StatsView) -> None:
    outcomes = stats.expansion_outcomes()
    ax.set_title("Expansion candidates by outcome")
    if not len(outcomes):
        _empty(ax, "candidates")
        return
    table = outcomes.pivot_table(index="round", columns="outcome", values="candidates", fill_value=0)
    failures = sorted(c for c in table.columns if c != PASSED)
    colours = {PASSED: "#4c9a2a"}
    colours.update({f: _FAILURE_COLOURS[i % len(_FAILURE_COLOURS)] for i, f in enumerate(failures)})
    _stacked(ax, table, [c for c in (PASSED, *failures) if c in table.columns], colours, "candidates")


_PANELS: dict[str, Callable[[Any, StatsView], None]] = {
    "verdicts": _axes_verdicts,
    "accuracy": _axes_accuracy,
    "curation": _axes_curation,
    "expansion": _axes_expansion,
}


def plot_stats(stats: StatsView, out_dir: Path, *, title: str | None = None) -> list[Path]:
    """Write one PNG per chart and an ``overview.png`` with all four into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    metadata = {"Software": None}  # keep the files free of the library version
    for name, draw in _PANELS.items():
        figure, ax = plt.subplots(figsize=(6, 4))
        try:
            draw(ax, stats)
            figure.tight_layout()
            path = out_dir / f"{name}.png"
            figure.savefig(path, dpi=110, metadata=metadata)
            written.append(path)
        finally:
            plt.close(figure)
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    try:
        for ax, draw in zip(axes.flat, _PANELS.values(), strict=True):
            draw(ax, stats)
        if title:
            figure.suptitle(title)
        figure.tight_layout()
        path = out_dir / "overview.png"
        figure.savefig(path, dpi=110, metadata=metadata)
        written.append(path)
    finally:
        plt.close(figure)
    return written
