"""Ingest: seed sources -> SampleAdded events (and DeadLetter events for what cannot be read).

Sources are files, folders and saved datasets (:mod:`streams.sources`); each record is in any
supported format (:mod:`toolcall.formats`), detected per record unless one is forced. A valid record
becomes one SampleAdded per learnable step; an invalid one becomes a DeadLetter with its place
(file and line, array element or dataset row), the reason, the reason's class and the raw record, and
ingest goes on. Samples repeated across the sources are sent once. The :class:`IngestReport` counts
records, samples, dead letters by reason (with example places) and conversion warnings (what was kept
but is not checked, or not kept), and :meth:`IngestReport.summary` is the ``--json`` object.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.logs import get_logger
from evaluation.decontam import Decontaminator
from schemas.events import DeadLetter, Event, Producer, SampleAdded, make_event
from streams.sources import SourceRecord, expand, iter_records, load_answers
from toolcall.canonical import canonical_json
from toolcall.formats import RecordError, convert_record, reason_of, resolve_format
from toolcall.rules import validate_action
from toolcall.types import Sample

log = get_logger(__name__)
STAGE = Producer(stage="ingest", version="2")
EXAMPLES_PER_REASON = 5


@dataclass
class IngestReport:
    path: str
    records: int = 0
    samples: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    labels_violating_schema: int = 0
    # Seeds that are questions of the evaluation suite (ingested; curate keeps them out of training).
    overlapping_eval: int = 0
    overlap_examples: list[str] = field(default_factory=list)
    by_format: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)  # dead letters by reason class
    reason_examples: dict[str, list[str]] = field(default_factory=dict)  # reason class -> places
    warnings: Counter[str] = field(default_factory=Counter)  # records by conversion warning class
    warning_examples: dict[str, list[str]] = field(default_factory=dict)

    def dead_letter(self, reason: str, ref: str) -> None:
        self.dead_lettered += 1
        self.reasons[reason] += 1
        examples = self.reason_examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append(ref)

    def warn(self, warnings: Sequence[str], ref: str) -> None:
        for warning in sorted({reason_of(w) for w in warnings}):
            self.warnings[warning] += 1
            examples = self.warning_examples.setdefault(warning, [])
            if len(examples) < EXAMPLES_PER_REASON:
                examples.append(ref)

    def summary(self) -> dict[str, Any]:
        """What ``looptool ingest --json`` prints: one JSON object."""
        return {
            "records": self.records,
            "samples": self.samples,
            "dead_letters": self.dead_lettered,
            "duplicates": self.duplicates,
            "reasons": dict(self.reasons.most_common()),
            "reason_examples": {reason: self.reason_examples[reason] for reason in self.reasons},
            "warnings": dict(self.warnings.most_common()),
            "formats": dict(sorted(self.by_format.items())),
            "labels_violating_schema": self.labels_violating_schema,
            "overlapping_eval": self.overlapping_eval,
        }


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
            conversation_time=sample.conversation_time,
        ),
        run_id=run_id,
        producer=producer,
        parent_ids=parent_ids,
        checkpoint_id=checkpoint_id,
        event_id=event_id,
    )


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:500] if str(error) else type(error).__name__


def _error_class(error: Exception) -> str:
    if isinstance(error, RecordError):
        return error.reason
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(error, json.JSONDecodeError):
        return "invalid JSON"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return reason_of(f"{type(error).__name__}: {_first_line(error)}")


def _dead_letter(source: SourceRecord, error: Exception, run_id: str) -> Event[DeadLetter]:
    return make_event(
        DeadLetter(
            stage=STAGE.stage,
            reason=f"{source.location}: {_first_line(error)}",
            error_type=type(error).__name__,
            source_ref=source.ref,
            raw=source.raw,
            category=_error_class(error),
        ),
        run_id=run_id,
        producer=STAGE,
    )


def source_records(paths: Sequence[Path], answers: Path | None = None) -> Iterator[SourceRecord]:
    """Every record of the sources, in order (folders walked, BFCL answers and docs joined)."""
    extra = load_answers(answers) if answers is not None else None
    files = expand(list(paths))
    multiple = len(files) > 1
    for path in files:
        label = None
        if multiple and len(paths) == 1 and Path(paths[0]).is_dir():
            label = str(path.relative_to(paths[0]))
        yield from iter_records(path, extra, label)


def read_records(
    paths: Path | Sequence[Path],
    run_id: str,
    fmt: str,
    report: IngestReport,
    decontaminator: Decontaminator | None = None,
    answers: Path | None = None,
    on_record: Any = None,
) -> Iterator[Event[SampleAdded] | Event[DeadLetter]]:
    """Read the sources into events; fills ``report`` as it goes.

    With a ``decontaminator``, seeds that are questions of the evaluation suite are counted (and the
    first few named) in the report; they are still ingested, and curate keeps them out of every round.
    """
    fmt = resolve_format(fmt)
    sources = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    seen: set[str] = set()
    for source in source_records(sources, answers):
        report.records += 1
        if on_record is not None:
            on_record()
        try:
            if source.error is not None:
                raise source.error
            conversion = convert_record(source.value, fmt, source.context)
            for sample in conversion.samples:  # NaN/Infinity: JSON has neither, the codec refuses them
                canonical_json(sample.model_dump())
        except (UnicodeDecodeError, RecordError, RecursionError, ValueError, OSError) as error:
            report.dead_letter(_error_class(error), source.ref)
            yield _dead_letter(source, error, run_id)
            continue
        report.by_format[conversion.format] += 1
        if conversion.warnings:
            report.warn(conversion.warnings, source.ref)
        for sample in conversion.samples:
            event = sample_added(
                sample,
                run_id=run_id,
                origin="seed",
                round_=0,
                source_format=conversion.format,
                source_ref=source.ref,
                metadata={"warnings": conversion.warnings} if conversion.warnings else None,
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
                    report.overlap_examples.append(f"{source.ref}: {overlap}")
            report.samples += 1
            yield event
