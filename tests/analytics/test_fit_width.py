"""Tables read in a narrow terminal: a table too wide is split into parts, no figure is cut."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from tests.analytics.test_judge_stats import verdict, vote
from views.analytics import load_stats, render_stats
from views.fit import FitToWidth

FIGURES = [
    f"{value:.1f}%" for value in (12.5, 33.3, 71.4, 100.0, 0.0, 45.6, 99.9, 8.2, 66.7, 50.0, 25.0, 17.5)
]


def rendered(renderable: object, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def wide_table() -> Table:
    table = Table(title="wide")
    table.add_column("round")
    for index in range(len(FIGURES)):
        table.add_column(f"column {index}", justify="right")
    table.add_row("1", *FIGURES)
    table.add_row("2", *reversed(FIGURES))
    return table


def test_a_table_too_wide_is_split_and_keeps_every_figure_and_its_row_key() -> None:
    text = rendered(FitToWidth(wide_table()), 80)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert all(figure in text for figure in FIGURES)
    assert all(f"column {index}" in text for index in range(len(FIGURES)))
    parts = text.count("wide (")
    assert parts >= 2 and f"wide (1 of {parts})" in text
    assert text.count("│ 2 ") == parts  # the key column repeats in every part


def test_a_table_that_fits_is_printed_as_it_is() -> None:
    assert rendered(FitToWidth(wide_table()), 240) == rendered(wide_table(), 240)


def test_stats_in_an_80_column_terminal_cut_no_figure() -> None:
    stats = load_stats(
        [
            verdict(kind, [vote("judge-model", kind)], index)
            for index, kind in enumerate(("PRED_WRONG", "LABEL_WRONG"))
        ]
    )
    text = rendered(render_stats(stats), 80)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert "LABEL_WRONG" in text and "seed-new share" in text and "judge-model" in text
