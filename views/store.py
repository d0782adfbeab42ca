"""The sample store: a LanceDB materialised view of a run's topics.

Tables: ``events`` (every event, the lineage graph), ``samples`` (current label and label history),
``probes``, ``verdicts``, ``curated`` (membership per round), ``rounds`` and ``checkpoints``.

Applying events is idempotent and order-independent: each event is inserted once by its id, the
per-event tables are insert-if-absent by key, and a sample's row is recomputed from all of its label
events (sorted by event id, which puts every event after its parents). So redelivery never duplicates
rows, and a store rebuilt by replaying the topics equals the live one.

Two ways in: :meth:`SampleStore.apply` (the live materialiser: merges each batch into what the store
holds) and :class:`BulkLoad` (rebuild and replay into an empty store: appends Arrow tables of tens of
thousands of rows, deduplicates in memory, and folds the samples of relabelled or re-added samples
once at the end). Rows are built column by column; the JSON of a tool list is made once per distinct
list (lists are shared between events since tool sets are interned, :mod:`schemas.interning`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import json.encoder
import operator
import os
import secrets
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("LANCE_LOG", "error")  # lance logs table creation at WARN on stderr

import lancedb
import pyarrow as pa

from bus.kafka import EventProducer, GroupConsumer, ReplayStats, replay
from bus.topics import RECORD_TOPICS
from common.logs import get_logger
from schemas.codec import EventCodec
from schemas.events import (
    PAYLOAD_TYPES,
    CheckpointPublished,
    CuratedSample,
    Event,
    LabelCorrected,
    ProbeResult,
    Producer,
    RoundClosed,
    SampleAdded,
    Verdict,
)
from toolcall.canonical import canonical_json
from toolcall.specs import ToolSpec, tools_json
from views.config import StoreRunSettings

log = get_logger(__name__)
STAGE = Producer(stage="store", version="1")
# The folder's identity: the live materialiser's consumer position belongs to the folder, not the run.
STORE_ID_FILE = ".store-id"
LABEL_EVENT_TYPES = ("SampleAdded", "LabelCorrected")


_c_encoder = getattr(json.encoder, "c_make_encoder", None)
# toolcall.canonical.canonical_json's options (sorted keys, compact, no NaN), with the C encoder built
# once instead of per call.
_canonical_c = (
    _c_encoder(None, None, json.encoder.encode_basestring, None, ":", ",", True, False, False)
    if _c_encoder is not None
    else None
)


def _json(value: Any) -> str:
    if _canonical_c is None or isinstance(value, str):
        return canonical_json(value)
    return "".join(_canonical_c(value, 0))


_json_string = json.encoder.encode_basestring  # canonical_json of a str (non-ASCII kept, as it keeps it)


_WITHOUT_TOOLS = {"tools"}


def _payload_json(payload: Any) -> str:
    """``canonical_json(payload.model_dump(mode="json"))``, with a tool list's JSON spliced in from the
    cache: keys are sorted, so the payload's other keys fall before and after ``"tools"``."""
    return _payload_json_and_dump(payload)[0]


def _payload_json_and_dump(payload: Any) -> tuple[str, dict[str, Any]]:
    """:func:`_payload_json`, and the payload's dump (without its tools when they were spliced in), so
    a sample's row reuses the dumps of its label and messages instead of dumping them again."""
    tools = payload.__dict__.get("tools")
    if not tools or type(tools) is not list or type(tools[0]) is not ToolSpec:
        dumped = payload.model_dump(mode="json")
        return _json(dumped), dumped
    rest = payload.model_dump(mode="json", exclude=_WITHOUT_TOOLS)
    before = {key: value for key, value in rest.items() if key < "tools"}
    after = {key: value for key, value in rest.items() if key > "tools"}
    head = _json(before)[:-1] + ("," if before else "")
    tail = ("," if after else "") + _json(after)[1:]
    return head + '"tools":' + tools_json(tools) + tail, rest


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json") if model is not None else None


@dataclass(frozen=True)
class TableSpec:
    """A per-event table: its schema, its key, the event types it takes and how to make a row."""

    name: str
    schema: pa.Schema
    key: str
    event_types: tuple[str, ...]
    row: Callable[[Event[Any]], dict[str, Any]]


_TIMESTAMP = pa.timestamp("us", tz="UTC")

EVENTS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("schema_version", pa.int32()),
        ("run_id", pa.string()),
        ("produced_at", _TIMESTAMP),
        ("producer", pa.string()),
        ("parent_ids", pa.list_(pa.string())),
        ("checkpoint_id", pa.string()),
        ("sample_id", pa.string()),
        ("round", pa.int32()),
        ("payload_json", pa.string()),
    ]
)

SAMPLES_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("origin", pa.string()),
        ("round_added", pa.int32()),
        ("source_format", pa.string()),
        ("source_ref", pa.string()),
        ("seed_sample_id", pa.string()),
        ("tools_json", pa.string()),
        ("messages_json", pa.string()),
        ("original_label_json", pa.string()),
        ("current_label_json", pa.string()),
        ("label_event_id", pa.string()),
        ("label_history_json", pa.string()),
        ("relabel_count", pa.int32()),
        ("content_hash", pa.string()),
        ("added_event_id", pa.string()),
    ]
)


def _subject_sample_id(event: Event[Any]) -> str | None:
    payload = event.payload
    return getattr(payload, "sample_id", None) or getattr(payload, "seed_sample_id", None)


def _event_row(event: Event[Any], payload_json: str | None = None) -> dict[str, Any]:
    payload = event.payload
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "run_id": event.run_id,
        "produced_at": event.produced_at,
        "producer": f"{event.producer.stage}@{event.producer.version}",
        "parent_ids": list(event.parent_ids),
        "checkpoint_id": event.checkpoint_id,
        "sample_id": _subject_sample_id(event),
        "round": getattr(payload, "round", None),
        "payload_json": _payload_json(payload) if payload_json is None else payload_json,
    }


def _probe_row(event: Event[ProbeResult]) -> dict[str, Any]:
    p = event.payload
    return {
        "event_id": event.event_id,
        "sample_id": p.sample_id,
        "round": p.round,
        "checkpoint_id": event.checkpoint_id,
        "label_event_id": p.label_event_id,
        "matched": p.matched,
        "ppl": p.ppl,
        "high_ppl": p.high_ppl,
        "parse_error": p.parse_error,
        "prediction_json": _json(_dump(p.prediction)) if p.prediction is not None else None,
        "diffs_json": _json([d.model_dump(mode="json") for d in p.diffs]),
    }


def _verdict_row(event: Event[Verdict]) -> dict[str, Any]:
    p = event.payload
    return {
        "event_id": event.event_id,
        "sample_id": p.sample_id,
        "round": p.round,
        "checkpoint_id": event.checkpoint_id,
        "probe_event_id": p.probe_event_id,
        "verdict": p.verdict,
        "decided_by": p.decided_by,
        "label_position": p.label_position,
        "error_analysis": p.error_analysis,
        "correct_approach": p.correct_approach,
        "judge_model": p.judge_model,
        "attempts": p.attempts,
    }


def _curated_row(event: Event[CuratedSample]) -> dict[str, Any]:
    p = event.payload
    return {
        "membership_id": f"{p.round}:{p.sample_id}",
        "round": p.round,
        "sample_id": p.sample_id,
        "source": p.source,
        "label_json": _json(_dump(p.label)),
        "label_event_id": p.label_event_id,
        "content_hash": p.content_hash,
        "event_id": event.event_id,
    }


def _round_row(event: Event[RoundClosed]) -> dict[str, Any]:
    p = event.payload
    return {
        "round": p.round,
        "total": p.total,
        "counts_json": _json(p.counts),
        "content_hash": p.content_hash,
        "target_size": p.target_size,
        "seed_new_fraction": p.seed_new_fraction,
        "probed_checkpoint_id": p.probed_checkpoint_id,
        "event_id": event.event_id,
    }


def _checkpoint_row(event: Event[CheckpointPublished]) -> dict[str, Any]:
    p = event.payload
    return {
        "checkpoint_id": p.new_checkpoint_id,
        "parent_checkpoint_id": p.parent_checkpoint_id,
        "round": p.round,
        "step": p.step,
        "final": p.final,
        "uri": p.uri,
        "backend": p.backend,
        "metrics_json": _json(p.metrics),
        "wall_time_s": p.wall_time_s,
        "event_id": event.event_id,
    }


PER_EVENT_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "probes",
        pa.schema(
            [
                ("event_id", pa.string()),
                ("sample_id", pa.string()),
                ("round", pa.int32()),
                ("checkpoint_id", pa.string()),
                ("label_event_id", pa.string()),
                ("matched", pa.bool_()),
                ("ppl", pa.float64()),
                ("high_ppl", pa.bool_()),
                ("parse_error", pa.string()),
                ("prediction_json", pa.string()),
                ("diffs_json", pa.string()),
            ]
        ),
        "event_id",
        ("ProbeResult",),
        _probe_row,
    ),
    TableSpec(
        "verdicts",
        pa.schema(
            [
                ("event_id", pa.string()),
                ("sample_id", pa.string()),
                ("round", pa.int32()),
                ("checkpoint_id", pa.string()),
                ("probe_event_id", pa.string()),
                ("verdict", pa.string()),
                ("decided_by", pa.string()),
                ("label_position", pa.int32()),
                ("error_analysis", pa.string()),
                ("correct_approach", pa.string()),
                ("judge_model", pa.string()),
                ("attempts", pa.int32()),
            ]
        ),
        "event_id",
        ("Verdict",),
        _verdict_row,
    ),
    TableSpec(
        "curated",
        pa.schema(
            [
                ("membership_id", pa.string()),
                ("round", pa.int32()),
                ("sample_id", pa.string()),
                ("source", pa.string()),
                ("label_json", pa.string()),
                ("label_event_id", pa.string()),
                ("content_hash", pa.string()),
                ("event_id", pa.string()),
            ]
        ),
        "membership_id",
        ("CuratedSample",),
        _curated_row,
    ),
    TableSpec(
        "rounds",
        pa.schema(
            [
                ("round", pa.int32()),
                ("total", pa.int32()),
                ("counts_json", pa.string()),
                ("content_hash", pa.string()),
                ("target_size", pa.int32()),
                ("seed_new_fraction", pa.float64()),
                ("probed_checkpoint_id", pa.string()),
                ("event_id", pa.string()),
            ]
        ),
        "round",
        ("RoundClosed",),
        _round_row,
    ),
    TableSpec(
        "checkpoints",
        pa.schema(
            [
                ("checkpoint_id", pa.string()),
                ("parent_checkpoint_id", pa.string()),
                ("round", pa.int32()),
                ("step", pa.int32()),
                ("final", pa.bool_()),
                ("uri", pa.string()),
                ("backend", pa.string()),
                ("metrics_json", pa.string()),
                ("wall_time_s", pa.float64()),
                ("event_id", pa.string()),
            ]
        ),
        "checkpoint_id",
        ("CheckpointPublished",),
        _checkpoint_row,
    ),
)

ALL_TABLES = ("events", "samples", *(spec.name for spec in PER_EVENT_TABLES))


def _sample_row(
    added: Event[SampleAdded], label_events: Sequence[Event[Any]], dumped: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A sample's row: its SampleAdded folded with every LabelCorrected, in event-id order.

    ``dumped``: the SampleAdded payload's dump, when the caller has it (its label and messages)."""
    p = added.payload
    if dumped is None:
        label_dump, messages_dump = _dump(p.label), [m.model_dump(mode="json") for m in p.messages]
    else:
        label_dump, messages_dump = dumped["label"], dumped["messages"]
    original_label_json = _json(label_dump)
    if not label_events:  # added, never relabelled: the row's JSON is composed from the label's
        return _sample_fields(
            p,
            original_label_json,
            original_label_json,
            added.event_id,
            # _json(history) of the one entry below, whose keys are in sorted order already
            '[{"event_id":'
            + _json_string(added.event_id)
            + ',"label":'
            + original_label_json
            + ',"reason":"added","verdict_event_id":null}]',
            0,
            _json(messages_dump),
            added.event_id,
        )
    current, current_event_id = p.label, added.event_id
    history: list[dict[str, Any]] = [
        {"event_id": added.event_id, "label": label_dump, "reason": "added", "verdict_event_id": None}
    ]
    relabels = 0
    for event in sorted(label_events, key=lambda e: e.event_id):
        if not isinstance(event.payload, LabelCorrected):
            continue
        current, current_event_id = event.payload.new_label, event.event_id
        relabels += 1
        history.append(
            {
                "event_id": event.event_id,
                "label": _dump(event.payload.new_label),
                "reason": event.payload.reason,
                "verdict_event_id": event.payload.verdict_event_id,
            }
        )
    return _sample_fields(
        p,
        original_label_json,
        _json(_dump(current)),
        current_event_id,
        _json(history),
        relabels,
        _json(messages_dump),
        added.event_id,
    )


def _sample_fields(
    p: SampleAdded,
    original_label_json: str,
    current_label_json: str,
    label_event_id: str,
    label_history_json: str,
    relabel_count: int,
    messages_json: str,
    added_event_id: str,
) -> dict[str, Any]:
    return {
        "sample_id": p.sample_id,
        "origin": p.origin,
        "round_added": p.round,
        "source_format": p.source_format,
        "source_ref": p.source_ref,
        "seed_sample_id": p.seed_sample_id,
        "tools_json": tools_json(p.tools),
        "messages_json": messages_json,
        "original_label_json": original_label_json,
        "current_label_json": current_label_json,
        "label_event_id": label_event_id,
        "label_history_json": label_history_json,
        "relabel_count": relabel_count,
        "content_hash": p.content_hash,
        "added_event_id": added_event_id,
    }


# Columns are built with the C library's allocator: a column grows by doubling, which glibc's
# realloc does in place for large blocks, while Arrow's default pool (mimalloc) copies the column and
# faults fresh pages each time; a first 50k-row flush of the events table (~70 MB of JSON) took 1.1 s
# with mimalloc and 0.14 s with the system pool.
_COLUMN_POOL = pa.system_memory_pool()


def _table(columns: Iterable[Sequence[Any]], schema: pa.Schema) -> pa.Table:
    """Columns (in the schema's order) as an Arrow table."""
    arrays = [
        pa.array(column, type=field.type, memory_pool=_COLUMN_POOL)
        for column, field in zip(columns, schema, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _arrow(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows as an Arrow table, converted column by column (``from_pylist`` is ~10x slower)."""
    return _table(([row[name] for row in rows] for name in schema.names), schema)


def _quote_list(values: Iterable[str]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


class SampleStore:
    """Open (creating if needed) the LanceDB store at ``path`` and apply events to it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.db = lancedb.connect(str(self.path))
        self._tables = {
            "events": self.db.create_table("events", schema=EVENTS_SCHEMA, exist_ok=True),
            "samples": self.db.create_table("samples", schema=SAMPLES_SCHEMA, exist_ok=True),
        }
        for spec in PER_EVENT_TABLES:
            self._tables[spec.name] = self.db.create_table(spec.name, schema=spec.schema, exist_ok=True)

    @classmethod
    def reset(cls, path: Path) -> SampleStore:
        """Drop every table at ``path`` and open an empty store there.

        Refuses a folder holding anything but LanceDB tables (``*.lance``): a mistyped ``--path``
        must not wipe unrelated files.
        """
        folder = Path(path)
        check_store_folder(folder)
        if folder.exists():
            shutil.rmtree(folder)
        return cls(folder)

    def table(self, name: str) -> Any:
        return self._tables[name]

    def consumer_id(self) -> str:
        """This folder's identity, for the live materialiser's consumer group.

        A store that holds no event yet (a new or emptied folder) gets a new identity, so its
        materialiser starts from offset 0 whatever another folder's materialiser committed; a store
        that holds events keeps its identity and resumes where its group left off.
        """
        marker = self.path / STORE_ID_FILE
        if marker.is_file() and self._tables["events"].count_rows() > 0:
            known = marker.read_text(encoding="utf-8").strip()
            if known:
                return known
        identity = uuid.uuid4().hex[:16]
        marker.write_text(identity + "\n", encoding="utf-8")
        return identity

    def apply(self, events: Sequence[Event[Any]]) -> int:
        """Apply a batch; returns how many events were new to the store. Idempotent."""
        if not events:
            return 0
        unique: dict[str, Event[Any]] = {}
        for event in events:  # keep the first copy of a redelivered event, as every consumer does
            unique.setdefault(event.event_id, event)
        label_events: dict[str, list[Event[Any]]] = {}
        for event in unique.values():
            if event.event_type in LABEL_EVENT_TYPES:
                label_events.setdefault(event.payload.sample_id, []).append(event)
        # Read before inserting: what the store already holds wins over a redelivered copy.
        stored = self._stored_label_events(sorted(label_events))
        rows = _arrow([_event_row(e) for e in unique.values()], EVENTS_SCHEMA)
        result = self._tables["events"].merge_insert("event_id").when_not_matched_insert_all().execute(rows)
        for spec in PER_EVENT_TABLES:
            matching = [spec.row(e) for e in unique.values() if e.event_type in spec.event_types]
            if matching:
                self._tables[spec.name].merge_insert(spec.key).when_not_matched_insert_all().execute(
                    _arrow(matching, spec.schema)
                )
        if label_events:
            self._refresh_samples(label_events, stored)
        return int(result.num_inserted_rows)

    def _stored_label_events(self, sample_ids: list[str], chunk: int = 1000) -> dict[str, list[Event[Any]]]:
        """Label events the store already holds for these samples (usually none: they are new)."""
        events_table = self._tables["events"]
        found: dict[str, list[Event[Any]]] = {}
        for start in range(0, len(sample_ids), chunk):
            where = (
                f"event_type IN ({_quote_list(LABEL_EVENT_TYPES)}) "
                f"AND sample_id IN ({_quote_list(sample_ids[start : start + chunk])})"
            )
            # Cheap existence check first; parse full rows only when some exist.
            if events_table.search().where(where).select(["event_id"]).limit(None).to_arrow().num_rows == 0:
                continue
            rows = events_table.search().where(where).select(list(EVENTS_SCHEMA.names)).limit(None).to_arrow()
            for row in rows.to_pylist():
                found.setdefault(row["sample_id"], []).append(event_from_row(row))
        return found

    def _refresh_samples(
        self, in_batch: dict[str, list[Event[Any]]], stored: dict[str, list[Event[Any]]]
    ) -> None:
        """Recompute the rows of samples with label events in the batch, from stored + new events."""
        rows = []
        for sample_id, batch_events in in_batch.items():
            known = stored.get(sample_id, [])
            known_ids = {event.event_id for event in known}
            events = known + [event for event in batch_events if event.event_id not in known_ids]
            added = [e for e in events if e.event_type == "SampleAdded"]
            if added:  # a correction that overtook its SampleAdded waits for it
                rows.append(_sample_row(min(added, key=lambda e: e.event_id), events))
        if rows:
            (
                self._tables["samples"]
                .merge_insert("sample_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(_arrow(rows, SAMPLES_SCHEMA))
            )

    def rows(self, name: str, sort_by: str | None = None) -> list[dict[str, Any]]:
        """Every row of a table as dicts, sorted by its key (for comparisons and small reads)."""
        data = self._tables[name].to_arrow().to_pylist()
        key = sort_by or self._key(name)
        return sorted(data, key=lambda row: str(row[key]))

    def _key(self, name: str) -> str:
        if name == "events":
            return "event_id"
        if name == "samples":
            return "sample_id"
        return next(spec.key for spec in PER_EVENT_TABLES if spec.name == name)

    def counts(self) -> dict[str, int]:
        return {name: self._tables[name].count_rows() for name in ALL_TABLES}

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every table's rows, sorted: two stores are equal iff their snapshots are."""
        return {name: self.rows(name) for name in ALL_TABLES}


def event_from_row(row: dict[str, Any]) -> Event[Any]:
    """Rebuild an event from its ``events`` table row."""
    stage, _, version = row["producer"].partition("@")
    payload_cls = PAYLOAD_TYPES[row["event_type"]]
    return Event[payload_cls].model_validate(  # type: ignore[valid-type]
        {
            "event_id": row["event_id"],
            "event_type": row["event_type"],
            "schema_version": row["schema_version"],
            "run_id": row["run_id"],
            "produced_at": row["produced_at"],
            "producer": {"stage": stage, "version": version},
            "parent_ids": row["parent_ids"],
            "checkpoint_id": row["checkpoint_id"],
            "payload": payload_cls.model_validate_json(row["payload_json"]),
        }
    )


ALL_TOPIC_NAMES = RECORD_TOPICS  # every topic that records the run (not the definitions)


async def materialise(
    settings: StoreRunSettings,
    store: SampleStore,
    *,
    stop_when_idle: bool = False,
    idle_batches: int = 3,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Run the live materialiser over every topic of the run, into ``store``.

    Its consumer group is ``<run>.store.<folder id>`` (:meth:`SampleStore.consumer_id`): a new or
    empty folder starts from offset 0, a store that holds events resumes. Commits offsets only after
    a batch is applied. With ``stop_when_idle`` it returns once it has seen ``idle_batches`` empty polls
    in a row with no lag (used by the demo and tests).
    """
    applied = 0
    idle = 0
    async with (
        EventProducer(settings.kafka) as producer,
        GroupConsumer(
            settings.kafka,
            settings.run_id,
            ALL_TOPIC_NAMES,
            group_id=f"{settings.run_id}.store.{store.consumer_id()}",
            producer=producer,
            stage=STAGE,
        ) as consumer,
    ):
        async for batch in consumer.batches():
            if batch:
                store.apply([d.event for d in batch])
                await consumer.commit()
                applied += len(batch)
                idle = 0
                if on_batch:
                    on_batch(len(batch))
            elif stop_when_idle:
                idle += 1
                if idle >= idle_batches and await consumer.caught_up():
                    break
    return applied


class BulkLoad:
    """Loads events into an empty store in large appends: rebuild and replay.

    Equal to :meth:`SampleStore.apply` on the same events in the same order (the first copy of an
    event id, and of a per-event table's key, wins), but nothing is read back per batch: rows are
    buffered column by column and appended as Arrow tables of ``flush_rows`` rows. A sample's row is
    written from its SampleAdded at once; a sample relabelled or added twice is folded again from the
    events table at :meth:`finish` (the columnar fold: one query for all of them).
    """

    def __init__(self, store: SampleStore, flush_rows: int = 50_000):
        self.store = store
        self.flush_rows = flush_rows
        self.applied = 0
        self._seen: set[str] = set()
        self._keys: dict[str, set[Any]] = {spec.name: set() for spec in PER_EVENT_TABLES}
        self._tables_for: dict[str, list[TableSpec]] = {}
        for spec in PER_EVENT_TABLES:
            for event_type in spec.event_types:
                self._tables_for.setdefault(event_type, []).append(spec)
        self._schemas = {"events": EVENTS_SCHEMA, "samples": SAMPLES_SCHEMA} | {
            spec.name: spec.schema for spec in PER_EVENT_TABLES
        }
        # Rows as tuples in their table's column order: a flush turns them into columns in one zip.
        self._rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in self._schemas}
        self._values = {name: operator.itemgetter(*schema.names) for name, schema in self._schemas.items()}
        self._buffered = 0
        self._samples: set[str] = set()
        self._refold: set[str] = set()  # samples whose row needs every label event

    def add(self, events: Iterable[Event[Any]]) -> int:
        """Buffer (and flush when enough) the events not seen yet; returns how many were new."""
        rows, values, seen, new = self._rows, self._values, self._seen, 0
        event_rows, event_values = rows["events"], values["events"]
        for event in events:
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            new += 1
            payload_json, dumped = _payload_json_and_dump(event.payload)
            event_rows.append(event_values(_event_row(event, payload_json)))
            for spec in self._tables_for.get(event.event_type, ()):
                row = spec.row(event)
                key, keys = row[spec.key], self._keys[spec.name]
                if key not in keys:
                    keys.add(key)
                    rows[spec.name].append(values[spec.name](row))
            if event.event_type == "SampleAdded":
                sample_id = event.payload.sample_id
                if sample_id in self._samples:
                    self._refold.add(sample_id)
                else:
                    self._samples.add(sample_id)
                    rows["samples"].append(values["samples"](_sample_row(event, (), dumped)))
            elif event.event_type == "LabelCorrected":
                self._refold.add(event.payload.sample_id)
        self.applied += new
        self._buffered += new
        if self._buffered >= self.flush_rows:
            self.flush()
        return new

    def flush(self) -> None:
        for name, rows in self._rows.items():
            if rows:
                schema = self._schemas[name]
                columns = zip(*rows, strict=True)  # every table has several columns: rows are tuples
                self.store.table(name).add(_table(columns, schema))
                rows.clear()
        self._buffered = 0

    def finish(self, chunk: int = 1000) -> int:
        """Write what is buffered and fold the samples that need it; returns the events applied."""
        self.flush()
        refold = sorted(self._refold & self._samples)
        samples = self.store.table("samples")
        for start in range(0, len(refold), chunk):
            ids = refold[start : start + chunk]
            stored = self.store._stored_label_events(ids)
            rows = []
            for sample_id in ids:
                events = stored.get(sample_id, [])
                added = [e for e in events if e.event_type == "SampleAdded"]
                rows.append(_sample_row(min(added, key=lambda e: e.event_id), events))
            samples.delete(f"sample_id IN ({_quote_list(ids)})")
            samples.add(_arrow(rows, SAMPLES_SCHEMA))
        return self.applied


class StoreBusy(RuntimeError):
    """Another process holds the store folder (a live ``store`` or a ``rebuild``)."""


class EmptyRun(RuntimeError):
    """A rebuild found no events for the run: it leaves the store as it was."""


def lock_path_for(path: Path) -> Path:
    """The lock file of a store folder: beside it, since a rebuild swaps the folder itself."""
    path = Path(path).absolute()
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def store_lock(path: Path) -> Iterator[None]:
    """Hold the store folder's lock for the block: one ``store``/``rebuild``/``replay --store`` at a time.

    Two writers on one folder would each insert rows the other has not committed yet (two concurrent
    rebuilds duplicated every row), and a rebuild swapping the folder would pull it from under a live
    materialiser. The lock is an ``flock`` on a file beside the folder, released by the OS when the
    holder exits however it exits; the file keeps the holder's pid for the message.
    """
    lock = lock_path_for(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise StoreBusy(
                f"the sample store {path} is in use by another looptool store, rebuild or replay "
                f"(pid {holder}); stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)


def check_store_folder(folder: Path) -> None:
    """Refuse a folder holding anything but LanceDB tables (``*.lance``): it is not a store to replace."""
    if not folder.exists():
        return
    strangers = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    strangers = [
        name
        for name in strangers
        if not ((folder / name).is_dir() and name.endswith(".lance")) and name != STORE_ID_FILE
    ]
    if strangers or not folder.is_dir():
        raise ValueError(
            f"{folder} is not a sample store (it holds {strangers[:5] or 'a file'}); "
            "give an empty or new folder, or a store's folder"
        )


async def rebuild(
    settings: StoreRunSettings,
    path: Path | None = None,
    batch_size: int = 5000,
    codec: EventCodec | None = None,
    *,
    allow_empty: bool = False,
) -> ReplayStats:
    """Rebuild the store from offset 0 of every topic of the run, and swap it in only on success.

    The new store is built in a folder beside the old one (in large Arrow appends, :class:`BulkLoad`);
    the old one is replaced only once the replay has finished, so an unreachable broker, a crash or a
    run with no events (refused unless ``allow_empty``: a mistyped run id reads nothing) leaves the
    store as it was.
    """
    target = Path(path or settings.store.folder(settings.run_id)).absolute()
    with store_lock(target):
        check_store_folder(target)
        building = target.with_name(f".{target.name}.rebuild-{secrets.token_hex(6)}")
        try:
            store = SampleStore(building)
            stats = ReplayStats()
            load = BulkLoad(store)
            async for batch in replay(
                settings.kafka,
                settings.run_id,
                ALL_TOPIC_NAMES,
                codec=codec,
                batch_size=batch_size,
                stats=stats,
            ):
                load.add(d.event for d in batch)
            if stats.records == 0 and not allow_empty:
                raise EmptyRun(
                    f"run {settings.run_id!r} has no events on {settings.kafka.bootstrap_servers} (a "
                    f"mistyped run id, or a broker that lost them?); {target} is left as it was "
                    "(--allow-empty rebuilds an empty store)"
                )
            load.finish()
            del store, load
            _swap_in(building, target)
        finally:
            if building.exists():
                shutil.rmtree(building, ignore_errors=True)
    log.info("store.rebuilt", path=str(target), records=stats.records, undecodable=stats.undecodable)
    return stats


def _swap_in(built: Path, target: Path) -> None:
    """Put ``built`` at ``target``; the old store there is removed only once the new one is in place."""
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(6)}") if target.exists() else None
    if old is not None:
        os.replace(target, old)
    try:
        os.replace(built, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
