"""Ingest: a JSONL seed file -> SampleAdded events (and DeadLetter events for what cannot be read).

Each line is one record in any supported format (see :mod:`toolcall.formats`). A valid record
becomes one SampleAdded per learnable step; an invalid one becomes a DeadLetter with the file, line
number, reason and the raw line, and ingest goes on. Samples repeated within the file are sent once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bus.kafka import EventProducer, ensure_topics
from common.logs import get_logger
from evaluation.decontam import Decontaminator
from looptool.config import Settings
from schemas.events import DeadLetter, Event, Producer, SampleAdded, make_event
from toolcall.canonical import canonical_json
from toolcall.formats import RecordError, detect_format, record_to_samples
from toolcall.rules import validate_action
from toolcall.types import Sample

log = get_logger(__name__)
STAGE = Producer(stage="ingest", version="1")


@dataclass
class IngestReport:
    path: str
    lines: int = 0
    records: int = 0
    samples: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    labels_violating_schema: int = 0
    # Seeds that are questions of the evaluation suite (ingested; curate keeps them out of training).
    overlapping_eval: int = 0
    overlap_examples: list[str] = field(default_factory=list)
    by_format: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)


def sample_id_for(sample: Sample) -> str:
    """Samples are identified by their content (tools, context and label at creation)."""
    return "s_" + sample.content_hash()[:24]


def sample_added(
    sample: Sample,
    *,
    run_id: str,
    origin: str,
    round_: int,
    source_format: str,
    source_ref: str | None = None,
    seed_sample_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    parent_ids: list[str] | None = None,
    checkpoint_id: str | None = None,
    producer: Producer = STAGE,
    event_id: str | None = None,
) -> Event[SampleAdded]:
    """The SampleAdded event for a sample (shared by ingest, seed construction and verification)."""
    return make_event(
        SampleAdded(
            sample_id=sample_id_for(sample),
            tools=sample.tools,
            messages=sample.messages,
            label=sample.label,
            origin=origin,  # type: ignore[arg-type]
            round=round_,
            source_format=source_format,
            source_ref=source_ref,
            seed_sample_id=seed_sample_id,
            content_hash=sample.content_hash(),
            metadata=metadata or {},
        ),
        run_id=run_id,
        producer=producer,
        parent_ids=parent_ids,
        checkpoint_id=checkpoint_id,
        event_id=event_id,
    )


def _first_line_reason(error: Exception) -> str:
    return str(error).splitlines()[0][:500] if str(error) else type(error).__name__


def read_records(
    path: Path, run_id: str, fmt: str, report: IngestReport, decontaminator: Decontaminator | None = None
) -> Iterator[Event[SampleAdded] | Event[DeadLetter]]:
    """Parse the file line by line into events; fills ``report`` as it goes.

    With a ``decontaminator``, seeds that are questions of the evaluation suite are counted (and the
    first few named) in the report; they are still ingested, and curate keeps them out of every round.
    """
    seen: set[str] = set()
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            report.lines += 1
            if not raw.strip():
                continue
            report.records += 1
            ref = f"{path.name}:{number}"
            try:
                record = json.loads(raw)
                record_format = detect_format(record) if fmt == "auto" and isinstance(record, dict) else fmt
                samples = record_to_samples(record, record_format)
                for sample in samples:  # NaN/Infinity: JSON has neither, the codec refuses them
                    canonical_json(sample.model_dump())
            except (UnicodeDecodeError, RecordError, RecursionError, ValueError) as error:
                reason = f"line {number}: {_first_line_reason(error)}"
                report.dead_lettered += 1
                report.reasons[type(error).__name__] += 1
                yield make_event(
                    DeadLetter(
                        stage=STAGE.stage,
                        reason=reason,
                        error_type=type(error).__name__,
                        source_ref=ref,
                        raw=raw.rstrip(b"\n"),
                    ),
                    run_id=run_id,
                    producer=STAGE,
                )
                continue
            report.by_format[record_format] += 1
            for sample in samples:
                event = sample_added(
                    sample,
                    run_id=run_id,
                    origin="seed",
                    round_=0,
                    source_format=record_format,
                    source_ref=ref,
                )
                if event.payload.sample_id in seen:
                    report.duplicates += 1
                    continue
                seen.add(event.payload.sample_id)
                if validate_action(sample.label, sample.tools):
                    report.labels_violating_schema += 1
                overlap = decontaminator.overlaps(sample) if decontaminator is not None else None
                if overlap is not None:
                    report.overlapping_eval += 1
                    if len(report.overlap_examples) < 10:
                        report.overlap_examples.append(f"{ref}: {overlap}")
                report.samples += 1
                yield event


async def ingest_file(
    path: Path, settings: Settings, fmt: str = "auto", show_progress: bool = True
) -> IngestReport:
    """Ingest one JSONL file into the run's topics; returns what happened."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"seed file not found: {path}")
    report = IngestReport(path=str(path))
    total_lines = sum(1 for _ in path.open("rb"))
    await ensure_topics(settings.kafka, settings.run_id)
    progress = Progress(
        TextColumn("[bold]ingest[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
        transient=True,
    )
    async with EventProducer(settings.kafka) as producer:
        pending = []
        with progress:
            task = progress.add_task(path.name, total=total_lines)
            decontaminator = Decontaminator.from_suite() if settings.eval.decontaminate else None
            for event in read_records(path, settings.run_id, fmt, report, decontaminator):
                pending.append(await producer.send(event))
                progress.update(task, completed=report.lines)
            progress.update(task, completed=total_lines)
        for future in pending:
            await future
    log.info(
        "ingest.done",
        path=str(path),
        samples=report.samples,
        dead_lettered=report.dead_lettered,
        duplicates=report.duplicates,
        overlapping_eval=report.overlapping_eval,
    )
    return report
