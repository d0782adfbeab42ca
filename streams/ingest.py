"""Ingest: seed sources -> SampleAdded events (and DeadLetter events for what cannot be read).

Sources are files, folders and saved datasets (:mod:`streams.sources`); each record is in any
supported format (:mod:`toolcall.formats`), detected per record unless one is forced. A valid record
becomes one SampleAdded per learnable step; an invalid one becomes a DeadLetter with its place
(file and line, array element or dataset row), the reason, the reason's class and the raw record, and
ingest goes on: a record lands whole or is dead-lettered whole. Whatever fails on one record (a
format error, a lone surrogate, nesting too deep to serialise, an event that does not encode, the
limits of :class:`~streams.config.IngestSettings`) is that record's dead letter, never the end of
the file. A record over the byte limit is dead-lettered with a prefix, its size and a sha256 of the
whole. Event ids are deterministic (run, source and place, content), so ingesting the same source
again adds nothing a consumer keeps (they deduplicate by event id). Samples repeated across the
sources are sent once. The :class:`IngestReport` counts records, samples, dead letters by reason
(with example places) and conversion warnings (what was kept
but is not checked, or not kept), and :meth:`IngestReport.summary` is the ``--json`` object.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.logs import get_logger
from evaluation.decontam import Decontaminator
from schemas.codec import EventCodec, default_codec
from schemas.events import (
    DEAD_LETTER_OVERHEAD,
    DeadLetter,
    Event,
    Producer,
    SampleAdded,
    dead_letter_raw,
    make_event,
    root_event_id,
)
from streams.config import IngestSettings
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

    def nothing_landed(self) -> str | None:
        """Why the ingest failed as a whole (no record read, or none landed), or None when some landed."""
        if self.records == 0:
            return f"no records in {self.path}: nothing was ingested"
        if self.samples == 0 and self.duplicates == 0:
            top = "; ".join(f"{reason} ({count})" for reason, count in self.reasons.most_common(3))
            return (
                f"nothing landed from {self.path}: {self.records} records read, 0 samples landed, "
                f"{self.dead_lettered} dead-lettered" + (f": {top}" if top else "")
            )
        return None

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
    return _sample_id_of(sample.content_hash())


def _sample_id_of(content_hash: str) -> str:
    return "s_" + content_hash[:24]


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
    digest = sample.content_hash()
    return make_event(
        SampleAdded(
            sample_id=_sample_id_of(digest),
            tools=sample.tools,
            messages=sample.messages,
            label=sample.label,
            origin=origin,  # type: ignore[arg-type]
            round=round_,
            source_format=source_format,
            source_ref=source_ref,
            seed_sample_id=seed_sample_id,
            content_hash=digest,
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
    if isinstance(error, UnicodeEncodeError) and "surrogate" in error.reason:
        half = error.object[error.start : error.end].encode("utf-8", "backslashreplace").decode()
        return f"text holds a lone surrogate ({half}, half of a character): not valid Unicode"
    text = str(error).splitlines()[0][:500] if str(error) else type(error).__name__
    return _utf8(text)


def _utf8(text: str) -> str:
    """Text that encodes as UTF-8: a lone surrogate (from a JSON escape or a file name) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _error_class(error: Exception) -> str:
    if isinstance(error, RecordError):
        return error.reason
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(error, UnicodeEncodeError):
        return "text is not valid Unicode (a lone surrogate)"
    if isinstance(error, json.JSONDecodeError):
        return "invalid JSON"
    if isinstance(error, RecursionError) or "serialization depth" in str(error):
        return "nested too deeply"
    return reason_of(f"{type(error).__name__}: {_first_line(error)}")


def _dead_letter(
    source: SourceRecord, error: Exception, run_id: str, limits: IngestSettings
) -> Event[DeadLetter]:
    """The record's dead letter: the whole raw record, or past the limits a prefix, its size and hash."""
    keep_whole = min(limits.max_record_bytes, limits.max_event_bytes - DEAD_LETTER_OVERHEAD)
    raw, note = dead_letter_raw(source.raw, limit=keep_whole, prefix=limits.dead_letter_prefix_bytes)
    reason = f"{_utf8(source.location)}: {_first_line(error)}{note}"
    digest = hashlib.sha256(source.raw).hexdigest()
    return make_event(
        DeadLetter(
            stage=STAGE.stage,
            reason=reason,
            error_type=type(error).__name__,
            source_ref=_utf8(source.ref),
            raw=raw,
            category=_utf8(_error_class(error)),
        ),
        run_id=run_id,
        producer=STAGE,
        event_id=root_event_id(STAGE.stage, run_id, "dead-letter", _utf8(source.ref), digest),
    )


def source_records(
    paths: Sequence[Path], answers: Path | None = None, max_record_bytes: int | None = None
) -> Iterator[SourceRecord]:
    """Every record of the sources, in order (folders walked, BFCL answers and docs joined)."""
    extra = load_answers(answers) if answers is not None else None
    files = expand(list(paths))
    multiple = len(files) > 1
    for path in files:
        label = None
        if multiple and len(paths) == 1 and Path(paths[0]).is_dir():
            label = str(path.relative_to(paths[0]))
        yield from iter_records(path, extra, label, max_record_bytes)


@dataclass(frozen=True)
class _Built:
    sample: Sample
    event: Event[SampleAdded]
    encoded: bytes | None  # None: a sample already sent (a duplicate), neither encoded nor sent again


def _build(
    source: SourceRecord,
    run_id: str,
    fmt: str,
    limits: IngestSettings,
    codec: EventCodec,
    seen: set[str],
) -> tuple[str, list[str], list[_Built]]:
    """One record's events, encoded and within the limits, or an exception saying why not.

    Samples already sent (their ids in ``seen``, or earlier in this record) are duplicates: they are
    neither encoded nor counted against the byte limits, since they are not sent again.
    """
    if len(source.raw) > limits.max_record_bytes:
        raise RecordError(
            f"record of {len(source.raw)} bytes is over ingest.max_record_bytes ({limits.max_record_bytes})",
            "record over ingest.max_record_bytes",
        )
    if source.error is not None:
        raise source.error
    conversion = convert_record(source.value, fmt, source.context)
    if len(conversion.samples) > limits.max_samples_per_record:
        raise RecordError(
            f"record expands into {len(conversion.samples)} samples, over "
            f"ingest.max_samples_per_record ({limits.max_samples_per_record})",
            "record over ingest.max_samples_per_record",
        )
    built: list[_Built] = []
    in_record: set[str] = set()
    total = 0
    ref = _utf8(source.ref)
    for index, sample in enumerate(conversion.samples):
        canonical_json(sample.model_dump())  # NaN/Infinity: JSON has neither, the codec refuses them
        event = sample_added(
            sample,
            run_id=run_id,
            origin="seed",
            round_=0,
            source_format=conversion.format,
            source_ref=ref,
            metadata={"warnings": conversion.warnings} if conversion.warnings else None,
        )
        sample_id = event.payload.sample_id
        event = event.model_copy(update={"event_id": root_event_id(STAGE.stage, run_id, ref, sample_id)})
        if sample_id in seen or sample_id in in_record:
            built.append(_Built(sample, event, None))
            continue
        in_record.add(sample_id)
        encoded = codec.encode(event)
        if len(encoded) > limits.max_event_bytes:
            raise RecordError(
                f"sample {index} encodes to {len(encoded)} bytes, over ingest.max_event_bytes "
                f"({limits.max_event_bytes})",
                "event over ingest.max_event_bytes",
            )
        total += len(encoded)
        if total > limits.max_record_event_bytes:
            raise RecordError(
                f"the record's first {index + 1} of {len(conversion.samples)} samples encode to {total} "
                f"bytes, over ingest.max_record_event_bytes ({limits.max_record_event_bytes})",
                "record over ingest.max_record_event_bytes",
            )
        built.append(_Built(sample, event, encoded))
    return conversion.format, conversion.warnings, built


def encoded_records(
    paths: Path | Sequence[Path],
    run_id: str,
    fmt: str,
    report: IngestReport,
    decontaminator: Decontaminator | None = None,
    answers: Path | None = None,
    on_record: Any = None,
    limits: IngestSettings | None = None,
    codec: EventCodec | None = None,
) -> Iterator[tuple[Event[SampleAdded] | Event[DeadLetter], bytes]]:
    """Read the sources into events with their encoded bytes (what is sent); fills ``report``.

    Each record lands whole (its SampleAdded events, every one encoded within the limits) or becomes
    one DeadLetter: any failure of a record is caught here, so one record never ends the file.
    With a ``decontaminator``, seeds that are questions of the evaluation suite are counted (and the
    first few named) in the report; they are still ingested, and curate keeps them out of every round.
    """
    fmt = resolve_format(fmt)
    limits = limits or IngestSettings()
    codec = codec or default_codec()
    sources = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    seen: set[str] = set()
    for source in source_records(sources, answers, limits.max_record_bytes):
        report.records += 1
        if on_record is not None:
            on_record()
        try:
            source_format, warnings, built = _build(source, run_id, fmt, limits, codec, seen)
        except Exception as error:  # whatever one record raises is its dead letter
            letter = _dead_letter(source, error, run_id, limits)
            report.dead_letter(letter.payload.category or "unknown", letter.payload.source_ref or "")
            yield letter, codec.encode(letter)
            continue
        report.by_format[source_format] += 1
        if warnings:
            report.warn(warnings, source.ref)
        for item in built:
            if item.encoded is None:
                report.duplicates += 1
                continue
            seen.add(item.event.payload.sample_id)
            if validate_action(item.sample.label, item.sample.tools):
                report.labels_violating_schema += 1
            overlap = decontaminator.overlaps(item.sample) if decontaminator is not None else None
            if overlap is not None:
                report.overlapping_eval += 1
                if len(report.overlap_examples) < 10:
                    report.overlap_examples.append(f"{source.ref}: {overlap}")
            report.samples += 1
            yield item.event, item.encoded


def read_records(
    paths: Path | Sequence[Path],
    run_id: str,
    fmt: str,
    report: IngestReport,
    decontaminator: Decontaminator | None = None,
    answers: Path | None = None,
    on_record: Any = None,
    limits: IngestSettings | None = None,
) -> Iterator[Event[SampleAdded] | Event[DeadLetter]]:
    """Read the sources into events (:func:`encoded_records` without the bytes); fills ``report``."""
    for event, _ in encoded_records(paths, run_id, fmt, report, decontaminator, answers, on_record, limits):
        yield event
