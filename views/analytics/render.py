"""The analytics as rich tables (``looptool stats``), and as plain text for reports."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from views.analytics.frames import SOURCES, VERDICT_LABELS, StatsView
from views.deadletters import frame_dead_letter_table
from views.fit import FitToWidth

NO_EVENTS = "No events yet: every table is empty."

# --- rendering ----------------------------------------------------------------------------------


def _pct(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{100 * float(value):.1f}%"


def _int(value: Any) -> str:
    return "0" if value is None or pd.isna(value) else str(int(value))


def render_rounds_table(stats: StatsView) -> Table:
    """The overview: per round the verdict mix, relabels, expansion pass rate and seed-new share."""
    mix, expansion, curation = stats.verdict_mix("round"), stats.expansion_summary(), stats.curation()
    table = Table(title="Rounds: probing, verdicts, relabels, expansion, curation", title_justify="left")
    for header in (
        "round",
        "D_j",
        "probed",
        "accuracy",
        *VERDICT_LABELS,
        "relabels",
        "candidates",
        "pass rate",
        "seed-new share",
    ):
        table.add_column(header, justify="left" if header == "round" else "right")
    rounds = sorted(set(mix.index) | set(expansion.index) | set(curation.index))
    for round_ in rounds:
        m = mix.loc[round_] if round_ in mix.index else None
        e = expansion.loc[round_] if round_ in expansion.index else None
        c = curation.loc[round_] if round_ in curation.index else None
        table.add_row(
            str(round_),
            _int(c["members"]) if c is not None else "0",
            _int(m["probed"]) if m is not None else "0",
            _pct(m["accuracy"]) if m is not None else "–",
            *[_int(m[label]) if m is not None else "0" for label in VERDICT_LABELS],
            _int(m["relabels"]) if m is not None else "0",
            _int(e["candidates"]) if e is not None else "0",
            _pct(e["pass_rate"]) if e is not None else "–",
            _pct(c["seed_new_share"]) if c is not None else "–",
        )
    return table


def render_checkpoint_table(stats: StatsView) -> Table:
    mix = stats.verdict_mix("checkpoint")
    table = Table(title="Verdict mix by checkpoint", title_justify="left")
    for header in ("checkpoint", "round", "step", "probed", "accuracy", *VERDICT_LABELS, "relabels"):
        table.add_column(header, justify="left" if header == "checkpoint" else "right")
    for checkpoint_id, row in mix.iterrows():
        table.add_row(
            str(checkpoint_id),
            _int(row["round"]) if pd.notna(row["round"]) else "?",
            _int(row["step"]) if pd.notna(row["step"]) else "?",
            _int(row["probed"]),
            _pct(row["accuracy"]),
            *[_int(row[label]) for label in VERDICT_LABELS],
            _int(row["relabels"]),
        )
    return table


def _by_round_table(
    title: str,
    first: str,
    long: pd.DataFrame,
    key: str,
    cell: Callable[[pd.Series], str],
    extra: tuple[str, Callable[[str], str]] | None = None,
) -> Table:
    """A table with one row per ``key`` value and one column per round (plus an optional last column)."""
    rounds = sorted(long["round"].unique()) if len(long) else []
    table = Table(title=title, title_justify="left")
    table.add_column(first)
    for round_ in rounds:
        table.add_column(f"round {round_}", justify="right")
    if extra is not None:
        table.add_column(extra[0])
    for name in sorted(long[key].unique()) if len(long) else []:
        cells = []
        for round_ in rounds:
            match = long[(long["round"] == round_) & (long[key] == name)]
            cells.append(cell(match.iloc[0]) if len(match) else "")
        if extra is not None:
            cells.append(extra[1](name))
        table.add_row(str(name), *cells)
    return table


def render_expansion_table(stats: StatsView) -> Table:
    """Candidates per round by outcome: passed, or the rule / LLM verdict that failed them."""
    return _by_round_table(
        "Expansion candidates by failing rule (count, share of the round's candidates)",
        "outcome",
        stats.expansion_outcomes(),
        "outcome",
        lambda row: f"{int(row['candidates'])} ({_pct(row['share'])})",
    )


def render_tool_table(stats: StatsView) -> Table:
    return _by_round_table(
        "ToolMatch accuracy by tool (accuracy, probes)",
        "tool",
        stats.accuracy_by_tool(),
        "tool",
        lambda row: f"{_pct(row['accuracy'])} ({int(row['probes'])})",
    )


def render_error_table(stats: StatsView) -> Table:
    errors = stats.error_types()
    totals = errors.groupby("error_type")[list(VERDICT_LABELS)].sum() if len(errors) else None

    def verdicts(name: str) -> str:  # how the judge ruled on this kind of error, all rounds together
        assert totals is not None
        row = totals.loc[name]
        return ", ".join(f"{label} {int(row[label])}" for label in VERDICT_LABELS if row[label])

    return _by_round_table(
        "Probe errors by type (mismatched probes, share of mismatches)",
        "error type",
        errors,
        "error_type",
        lambda row: f"{int(row['probes'])} ({_pct(row['share_of_mismatches'])})",
        ("verdicts (all rounds)", verdicts),
    )


def render_curation_table(stats: StatsView) -> Table:
    curation = stats.curation()
    table = Table(title="Curation (Eq. 5): D_j by source", title_justify="left")
    for header in ("round", "D_j", *SOURCES, "expansions", "seed-new share", "target", "closed"):
        table.add_column(header, justify="left" if header == "round" else "right")
    for round_, row in curation.iterrows():
        table.add_row(
            str(round_),
            _int(row["members"]),
            *[_int(row[source]) for source in SOURCES],
            _int(row["expansion_members"]),
            _pct(row["seed_new_share"]),
            _pct(row["seed_new_target"]),
            "yes" if row["closed"] else "no",
        )
    return table


def render_bfcl_table(stats: StatsView) -> Table:
    from evaluation.report import rounds_table

    title = "Checkpoint evaluations: BFCL v4, held-out ToolMatch (evaluate stage)"
    return rounds_table(stats.evaluations, title=title)


def render_promotions_table(stats: StatsView) -> Table:
    from evaluation.report import promotions_table

    return promotions_table(stats.promotions)


def render_judges_table(stats: StatsView) -> Table:
    """Per judge model: how often its vote was the verdict, and how often it flipped with the order."""
    frame = stats.judge_agreement()
    table = Table(title="Judges: agreement with the verdict, position flips", title_justify="left")
    for header in (
        "judge model",
        "verdicts",
        "votes counted",
        "agreement",
        "two-order",
        "flip rate",
        "unread",
        "truncated",
    ):
        table.add_column(header, justify="left" if header == "judge model" else "right")
    for model, row in frame.iterrows():
        table.add_row(
            str(model),
            _int(row["verdicts"]),
            _int(row["counted"]),
            _pct(row["agreement"]),
            _int(row["two_order"]),
            _pct(row["flip_rate"]),
            _int(row["unparseable"]),
            _int(row["truncated"]),
        )
    return table


def render_truncation_table(stats: StatsView) -> Table:
    """Per stage: answers dead-lettered as truncated (cut off by the token budget, also on the retry)."""
    frame = stats.truncations()
    table = Table(title="Truncated answers (dead-lettered)", title_justify="left")
    table.add_column("stage")
    table.add_column("truncated", justify="right")
    for stage, row in frame.iterrows():
        table.add_row(str(stage), _int(row["truncated"]))
    return table


def _none_yet(table: Table) -> RenderableType:
    """``table``, or when it has no rows one line, its title and "none yet": a header row alone,
    squeezed to the width of its headers, reads as a broken table."""
    if table.row_count > 0:
        return table
    return Text(f"{table.title}: none yet", style="dim")


def render_stats(stats: StatsView) -> FitToWidth:
    """Every stats table, for printing or a live display (BFCL and promotions when the run has them),
    each split into parts where the console is too narrow for it; an empty table is one line, and a
    run with no events one line in all (:data:`NO_EVENTS`)."""
    if stats.events == 0:
        return FitToWidth(Text(NO_EVENTS))
    return FitToWidth(
        _none_yet(render_rounds_table(stats)),
        _none_yet(render_checkpoint_table(stats)),
        _none_yet(render_curation_table(stats)),
        _none_yet(render_expansion_table(stats)),
        _none_yet(render_tool_table(stats)),
        _none_yet(render_error_table(stats)),
        _none_yet(frame_dead_letter_table(stats.dead_letters)),
        *([render_bfcl_table(stats)] if stats.evaluations else []),
        *([render_promotions_table(stats)] if stats.promotions else []),
        *([render_judges_table(stats)] if len(stats.judge_agreement()) else []),
        *([render_truncation_table(stats)] if len(stats.truncations()) else []),
    )


def tables_text(stats: StatsView, *, width: int = 160, tables: Sequence[str] | None = None) -> str:
    """The tables as plain text (for a README or a report); ``tables`` picks some by name:
    rounds, checkpoints, curation, expansion, tools, errors, deadletters, bfcl, promotions, judges,
    truncations (the last four by default only when the run has them)."""
    renderers = {
        "rounds": render_rounds_table,
        "checkpoints": render_checkpoint_table,
        "curation": render_curation_table,
        "expansion": render_expansion_table,
        "tools": render_tool_table,
        "errors": render_error_table,
        "deadletters": lambda stats: frame_dead_letter_table(stats.dead_letters),
        "bfcl": render_bfcl_table,
        "promotions": render_promotions_table,
        "judges": render_judges_table,
        "truncations": render_truncation_table,
    }
    if tables is None:
        tables = [
            name
            for name in renderers
            if (name != "bfcl" or stats.evaluations)
            and (name != "promotions" or stats.promotions)
            and (name != "judges" or len(stats.judge_agreement()))
            and (name != "truncations" or len(stats.truncations()))
        ]
    unknown = sorted(set(tables or ()) - set(renderers))
    if unknown:
        raise ValueError(f"unknown tables {unknown}; known: {', '.join(renderers)}")
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    if stats.events == 0:
        console.print(NO_EVENTS)
        return console.export_text()
    for name in tables or renderers:
        console.print(FitToWidth(_none_yet(renderers[name](stats))))
    return console.export_text()
