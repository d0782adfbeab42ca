"""Tables that never cut a figure: a table wider than the console is printed in parts.

rich fits a table that is too wide by shrinking its widest columns, and a figure (``17.5%``, a
header such as ``LABEL_WRONG``) is then cut to ``1…``. :class:`FitToWidth` measures each table
against the width it is given at render time (a terminal's, a live display's, a file's) and, where
it does not fit, splits its columns into parts that each fit, every part repeating the first column
so its rows can still be read. Figures (right-aligned columns) are never wrapped; text columns
(reasons, examples) may wrap at their spaces, as they would anyway.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.table import Column, Table


def _is_figure(column: Column) -> bool:
    return column.justify == "right"


def _with_columns(table: Table, columns: list[Column], title_suffix: str = "") -> Table:
    part = copy.copy(table)  # the same rows, box, styles and title; only the columns differ
    part.columns = [
        dataclasses.replace(column, _index=index, no_wrap=column.no_wrap or _is_figure(column))
        for index, column in enumerate(columns)
    ]
    if title_suffix and isinstance(table.title, str):
        part.title = table.title + title_suffix
    return part


def _needed_width(console: Console, options: ConsoleOptions, table: Table) -> int:
    """The width ``table`` needs with figures whole and text wrapped down to its longest word."""
    wide = options.update(width=100_000)
    measures = [table._measure_column(console, wide, column) for column in table.columns]
    columns = sum(
        m.maximum if _is_figure(c) else m.minimum for c, m in zip(table.columns, measures, strict=True)
    )
    return columns + table._extra_width


def split_to_width(table: Table, console: Console, options: ConsoleOptions) -> list[Table]:
    """``table`` itself when it fits ``options.max_width``; otherwise parts of its columns that fit,
    each starting with its first column (a column too wide on its own gets a part of its own)."""
    width = options.max_width
    if len(table.columns) <= 2 or _needed_width(console, options, table) <= width:
        return [_with_columns(table, table.columns)]
    key, rest = table.columns[0], table.columns[1:]
    groups: list[list[Column]] = [[]]
    for column in rest:
        trial = groups[-1] + [column]
        if groups[-1] and _needed_width(console, options, _with_columns(table, [key, *trial])) > width:
            groups.append([column])
        else:
            groups[-1] = trial
    count = len(groups)
    return [
        _with_columns(table, [key, *group], f" ({number} of {count})")
        for number, group in enumerate(groups, 1)
    ]


class FitToWidth:
    """Renders its renderables one after another, each table split to the width it is given."""

    def __init__(self, *renderables: RenderableType) -> None:
        self.renderables = renderables

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self._parts(console, options)

    def _parts(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        for renderable in self.renderables:
            if isinstance(renderable, Table):
                yield from split_to_width(renderable, console, options)
            else:
                yield renderable
