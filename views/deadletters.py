"""Seeing what did not get in: dead letters listed, grouped by reason, and the ingest report rendered.

Every stage writes what it could not process to the run's ``deadletter`` topic, each record whole with
its reason (:class:`schemas.events.DeadLetter`). This module reads them back (``looptool
deadletters``), groups them by the reason's class (the ``category`` the stage gave, or, for events
written before that field existed, the reason with its place, names and numbers masked), and renders
the ingest report's top reasons with example places. Pure apart from :func:`load_dead_letters`.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bus.config import RunSettings
from schemas.events import DeadLetter, Event
from toolcall.formats import reason_of

TOP_REASONS = 10
EXAMPLES_SHOWN = 3


@dataclass(frozen=True)
class DeadLetterRow:
    """One dead letter, flattened for listing and JSON."""

    event_id: str
    produced_at: str
    stage: str
    category: str
    reason: str
    error_type: str
    source_ref: str | None
    raw: str  # the record as text (UTF-8), or base64 when it is not text
    raw_encoding: str  # "utf-8" or "base64"
    # Where an undecodable record sits on a topic (a consumer's dead letter has no source_ref).
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None

    @property
    def place(self) -> str:
        """Where the record came from: its event or file reference, else its topic, partition and offset."""
        if self.source_ref:
            return self.source_ref
        if self.source_topic is not None:
            return f"{self.source_topic}[{self.source_partition}]@{self.source_offset}"
        return ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"place": self.place}


def category_of(letter: DeadLetter) -> str:
    """The reason's class: the stage's own, else derived from the reason text (older events)."""
    if letter.category:
        return letter.category
    reason = letter.reason
    head, sep, rest = reason.partition(": ")
    if sep and (head.startswith(("line ", "element ", "row ", "split ")) or head in ("document", "file")):
        reason = rest  # drop the place: it is in source_ref
    return reason_of(reason)


def row_of(event: Event[DeadLetter]) -> DeadLetterRow:
    letter = event.payload
    try:
        raw, encoding = letter.raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        raw, encoding = base64.b64encode(letter.raw).decode("ascii"), "base64"
    return DeadLetterRow(
        event_id=event.event_id,
        produced_at=event.produced_at.isoformat(),
        stage=letter.stage,
        category=category_of(letter),
        reason=letter.reason,
        error_type=letter.error_type,
        source_ref=letter.source_ref,
        raw=raw,
        raw_encoding=encoding,
        source_topic=letter.source_topic,
        source_partition=letter.source_partition,
        source_offset=letter.source_offset,
    )


def select(
    rows: Iterable[DeadLetterRow],
    *,
    source: str | None = None,
    reason: str | None = None,
    stage: str | None = None,
) -> list[DeadLetterRow]:
    """Rows whose place contains ``source``, whose reason or class contains ``reason`` (case-blind)."""
    picked = []
    for row in rows:
        if stage is not None and row.stage != stage:
            continue
        if source is not None and source not in row.place:
            continue
        if reason is not None and reason.lower() not in f"{row.category}\n{row.reason}".lower():
            continue
        picked.append(row)
    return picked


def by_category(rows: Sequence[DeadLetterRow]) -> list[tuple[str, str, int, list[str]]]:
    """(stage, class, count, example places), most frequent first."""
    counts: Counter[tuple[str, str]] = Counter((row.stage, row.category) for row in rows)
    examples: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        places = examples.setdefault((row.stage, row.category), [])
        if len(places) < EXAMPLES_SHOWN and row.place:
            places.append(row.place)
    return [
        (stage, category, n, examples[(stage, category)]) for (stage, category), n in counts.most_common()
    ]


async def dead_letter_events(settings: RunSettings) -> list[Event[DeadLetter]]:
    """Every dead letter of the run, from its ``deadletter`` topic (first copy of each event)."""
    from bus.kafka import replay

    seen: set[str] = set()
    events: list[Event[DeadLetter]] = []
    async for batch in replay(settings.kafka, settings.run_id, ["deadletter"]):
        for delivered in batch:
            event = delivered.event
            if event.event_id in seen or not isinstance(event.payload, DeadLetter):
                continue
            seen.add(event.event_id)
            events.append(event)
    return events


async def load_dead_letters(settings: RunSettings) -> list[DeadLetterRow]:
    """Every dead letter of the run as rows (:func:`dead_letter_events`)."""
    return [row_of(event) for event in await dead_letter_events(settings)]


def dead_letter_table(rows: Sequence[DeadLetterRow], title: str = "Dead letters by reason") -> Table:
    """Counts by stage and reason class, with example places (``looptool stats`` and ``deadletters``)."""
    table = Table(title=title, title_justify="left")
    for header in ("stage", "reason", "count", "examples"):
        table.add_column(header, justify="right" if header == "count" else "left")
    for stage, category, count, places in by_category(rows):
        table.add_row(escape(stage), escape(category), str(count), escape(", ".join(places)))
    return table


def frame_dead_letter_table(frame: Any) -> Table:
    """The dead-letter table of ``looptool stats``, from its ``dead_letters`` frame."""
    rows = [
        DeadLetterRow(
            event_id=record["event_id"],
            produced_at="",
            stage=record["stage"],
            category=record["category"],
            reason=record["reason"],
            error_type=record["error_type"],
            source_ref=record["source_ref"],
            raw="",
            raw_encoding="utf-8",
        )
        for record in frame.to_dict("records")
    ]
    return dead_letter_table(rows)


def render_dead_letters(
    rows: Sequence[DeadLetterRow], console: Console, *, limit: int = 50, filtered: bool = False
) -> None:
    """The grouped counts, then the first ``limit`` dead letters one per line; none: one line saying so
    (``filtered``: none of those the filters ask for)."""
    if not rows:
        console.print("No dead letters match the filters." if filtered else "No dead letters.")
        return
    console.print(dead_letter_table(rows))
    listing = Table(title=f"Dead letters ({min(limit, len(rows))} of {len(rows)})", title_justify="left")
    for header in ("place", "stage", "reason"):
        listing.add_column(header)
    for row in rows[:limit]:
        listing.add_row(escape(row.place), escape(row.stage), escape(row.reason))
    console.print(listing)


def render_ingest_report(report: Any, console: Console) -> None:
    """The ingest counts, the top reasons records were dead-lettered with example places, and the
    warnings (what was kept but is not checked, or not kept)."""
    table = Table("", "count", title=f"ingest {report.path}")
    table.add_row("records", str(report.records))
    for fmt, count in sorted(report.by_format.items()):
        table.add_row(f"  format {fmt}", str(count))
    # Sent, not necessarily new: their ids are deterministic, so samples an earlier ingest already
    # sent are the same events, and every consumer keeps one copy.
    table.add_row("samples (SampleAdded) sent; already-sent ones count once", str(report.samples))
    table.add_row("duplicates skipped", str(report.duplicates))
    table.add_row("labels violating their tool schema", str(report.labels_violating_schema))
    table.add_row("dead-lettered records", str(report.dead_lettered))
    table.add_row("seeds that are eval-suite questions", str(report.overlapping_eval))
    console.print(table)
    if report.reasons:
        reasons = Table(title="Why records were dead-lettered (top reasons)", title_justify="left")
        for header in ("reason", "records", "e.g."):
            reasons.add_column(header, justify="right" if header == "records" else "left")
        for reason, count in report.reasons.most_common(TOP_REASONS):
            reasons.add_row(
                reason, str(count), ", ".join(report.reason_examples.get(reason, [])[:EXAMPLES_SHOWN])
            )
        if len(report.reasons) > TOP_REASONS:
            reasons.add_row(f"({len(report.reasons) - TOP_REASONS} more reasons)", "", "")
        console.print(reasons)
        console.print("[dim]`looptool deadletters --reason TEXT` lists them with their raw records[/]")
    if report.warnings:
        warnings = Table(title="Warnings (records kept)", title_justify="left")
        for header in ("warning", "records", "e.g."):
            warnings.add_column(header, justify="right" if header == "records" else "left")
        for warning, count in report.warnings.most_common(TOP_REASONS):
            warnings.add_row(
                warning, str(count), ", ".join(report.warning_examples.get(warning, [])[:EXAMPLES_SHOWN])
            )
        console.print(warnings)
    for example in report.overlap_examples:
        console.print(f"[yellow]eval overlap[/] {example}")
