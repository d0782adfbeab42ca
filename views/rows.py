"""The sample store's rows: table schemas, one row per event, and Arrow tables of them (no LanceDB).

Everything here is pure: it turns events into the rows of the store's tables (:mod:`views.store`) and
buffers them column by column for large appends (:class:`RowBuffer`). Kept apart from the store so
that a rebuild's worker processes (:mod:`views.rebuild_share`) build rows without importing LanceDB.
Rows are made from events in their flat form (:class:`schemas.flat.FlatEvent`: values and compact
JSON in the run's key order), which a replay reads straight from the Avro records; events held as
models are flattened first (:func:`schemas.flat.flatten`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from schemas.events import PAYLOAD_TYPES, Event
from schemas.flat import FlatEvent, json_string

LABEL_EVENT_TYPES = ("SampleAdded", "LabelCorrected")


@dataclass(frozen=True)
class TableSpec:
    """A per-event table: its schema, its key, the event types it takes and how to make a row."""

    name: str
    schema: pa.Schema
    key: str
    event_types: tuple[str, ...]
    row: Callable[[FlatEvent], dict[str, Any]]


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


def event_row(event: FlatEvent) -> dict[str, Any]:
    fields = event.fields
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "run_id": event.run_id,
        "produced_at": event.produced_at,
        "producer": event.producer,
        "parent_ids": event.parent_ids,
        "checkpoint_id": event.checkpoint_id,
        "sample_id": fields.get("sample_id") or fields.get("seed_sample_id"),
        "round": fields.get("round"),
        "payload_json": event.payload_json,
    }


def _probe_row(event: FlatEvent) -> dict[str, Any]:
    p = event.fields
    prediction = event.json["prediction"]
    return {
        "event_id": event.event_id,
        "sample_id": p["sample_id"],
        "round": p["round"],
        "checkpoint_id": event.checkpoint_id,
        "label_event_id": p["label_event_id"],
        "matched": p["matched"],
        "ppl": p["ppl"],
        "high_ppl": p["high_ppl"],
        "parse_error": p["parse_error"],
        "prediction_json": None if prediction == "null" else prediction,
        "diffs_json": event.json["diffs"],
    }


def _verdict_row(event: FlatEvent) -> dict[str, Any]:
    p = event.fields
    return {
        "event_id": event.event_id,
        "sample_id": p["sample_id"],
        "round": p["round"],
        "checkpoint_id": event.checkpoint_id,
        "probe_event_id": p["probe_event_id"],
        "verdict": p["verdict"],
        "decided_by": p["decided_by"],
        "label_position": p["label_position"],
        "error_analysis": p["error_analysis"],
        "correct_approach": p["correct_approach"],
        "judge_model": p["judge_model"],
        "attempts": p["attempts"],
    }


def _curated_row(event: FlatEvent) -> dict[str, Any]:
    p = event.fields
    return {
        "membership_id": f"{p['round']}:{p['sample_id']}",
        "round": p["round"],
        "sample_id": p["sample_id"],
        "source": p["source"],
        "label_json": event.json["label"],
        "label_event_id": p["label_event_id"],
        "content_hash": p["content_hash"],
        "event_id": event.event_id,
    }


def _round_row(event: FlatEvent) -> dict[str, Any]:
    p = event.fields
    return {
        "round": p["round"],
        "total": p["total"],
        "counts_json": event.json["counts"],
        "content_hash": p["content_hash"],
        "target_size": p["target_size"],
        "seed_new_fraction": p["seed_new_fraction"],
        "probed_checkpoint_id": p["probed_checkpoint_id"],
        "event_id": event.event_id,
    }


def _checkpoint_row(event: FlatEvent) -> dict[str, Any]:
    p = event.fields
    return {
        "checkpoint_id": p["new_checkpoint_id"],
        "parent_checkpoint_id": p["parent_checkpoint_id"],
        "round": p["round"],
        "step": p["step"],
        "final": p["final"],
        "uri": p["uri"],
        "backend": p["backend"],
        "metrics_json": event.json["metrics"],
        "wall_time_s": p["wall_time_s"],
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
TABLE_SCHEMAS: dict[str, pa.Schema] = {"events": EVENTS_SCHEMA, "samples": SAMPLES_SCHEMA} | {
    spec.name: spec.schema for spec in PER_EVENT_TABLES
}
TABLE_KEYS: dict[str, str] = {"events": "event_id", "samples": "sample_id"} | {
    spec.name: spec.key for spec in PER_EVENT_TABLES
}


def sample_row(added: FlatEvent, label_events: Sequence[FlatEvent]) -> dict[str, Any]:
    """A sample's row: its SampleAdded folded with every LabelCorrected, in event-id order."""
    original_label_json = added.json["label"]
    current_label_json, label_event_id, relabels = original_label_json, added.event_id, 0
    # The label history: a list of objects with fixed keys (in sorted order), each label as the run gave it
    history = [
        '{"event_id":'
        + json_string(added.event_id)
        + ',"label":'
        + original_label_json
        + ',"reason":"added","verdict_event_id":null}'
    ]
    for event in sorted(label_events, key=lambda e: e.event_id):
        if event.event_type != "LabelCorrected":
            continue
        current_label_json, label_event_id = event.json["new_label"], event.event_id
        relabels += 1
        verdict_event_id = event.fields["verdict_event_id"]
        history.append(
            '{"event_id":'
            + json_string(event.event_id)
            + ',"label":'
            + current_label_json
            + ',"reason":'
            + json_string(event.fields["reason"])
            + ',"verdict_event_id":'
            + ("null" if verdict_event_id is None else json_string(verdict_event_id))
            + "}"
        )
    p = added.fields
    return {
        "sample_id": p["sample_id"],
        "origin": p["origin"],
        "round_added": p["round"],
        "source_format": p["source_format"],
        "source_ref": p["source_ref"],
        "seed_sample_id": p["seed_sample_id"],
        "tools_json": added.json["tools"],
        "messages_json": added.json["messages"],
        "original_label_json": original_label_json,
        "current_label_json": current_label_json,
        "label_event_id": label_event_id,
        "label_history_json": "[" + ",".join(history) + "]",
        "relabel_count": relabels,
        "content_hash": p["content_hash"],
        "added_event_id": added.event_id,
    }


# Columns are built with the C library's allocator: a column grows by doubling, which glibc's
# realloc does in place for large blocks, while Arrow's default pool (mimalloc) copies the column and
# faults fresh pages each time; a first 50k-row flush of the events table (~70 MB of JSON) took 1.1 s
# with mimalloc and 0.14 s with the system pool. Later flushes favour mimalloc, which keeps its pages
# (2026-12-07, CPU time, busy cores: ~10.4 against ~12.7 µs an event from the second flush on, and
# ~11.7 against ~6.6 on the first): a replay of the benchmark's 100k events flushes twice, so the
# system pool stays; on runs of millions of events mimalloc would save ~2 µs of the ~38 an event costs.
_COLUMN_POOL = pa.system_memory_pool()


def columns_table(columns: Iterable[Sequence[Any]], schema: pa.Schema) -> pa.Table:
    """Columns (in the schema's order) as an Arrow table."""
    arrays = [
        pa.array(column, type=field.type, memory_pool=_COLUMN_POOL)
        for column, field in zip(columns, schema, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def rows_table(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows as an Arrow table, converted column by column (``from_pylist`` is ~10x slower)."""
    return columns_table(([row[name] for row in rows] for name in schema.names), schema)


def sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


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


class RowBuffer:
    """The rows of events not seen yet, buffered column-ready: the pure half of a bulk load.

    The first copy of an event id, and of a per-event table's key, wins (as in
    :meth:`views.store.SampleStore.apply`). A sample's row is made from its SampleAdded at once; the
    ids of samples that need every label event folded (added twice, or relabelled) are kept in
    :attr:`refold` for whoever writes the rows to fold them from the events table at the end.
    """

    def __init__(self) -> None:
        self.buffered = 0
        self.samples: set[str] = set()  # every sample whose row was made
        self.refold: set[str] = set()  # samples whose row needs every label event
        self._seen: set[str] = set()
        self._keys: dict[str, set[Any]] = {spec.name: set() for spec in PER_EVENT_TABLES}
        self._tables_for: dict[str, list[TableSpec]] = {}
        for spec in PER_EVENT_TABLES:
            for event_type in spec.event_types:
                self._tables_for.setdefault(event_type, []).append(spec)
        # Rows as tuples in their table's column order: take() turns them into columns in one zip.
        self._rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in TABLE_SCHEMAS}
        self._values = {name: operator.itemgetter(*schema.names) for name, schema in TABLE_SCHEMAS.items()}

    def add(self, events: Iterable[FlatEvent]) -> int:
        """Buffer the rows of the events not seen yet; returns how many were new."""
        rows, values, seen, new = self._rows, self._values, self._seen, 0
        event_rows, event_values = rows["events"], values["events"]
        for event in events:
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            new += 1
            event_rows.append(event_values(event_row(event)))
            for spec in self._tables_for.get(event.event_type, ()):
                row = spec.row(event)
                key, keys = row[spec.key], self._keys[spec.name]
                if key not in keys:
                    keys.add(key)
                    rows[spec.name].append(values[spec.name](row))
            if event.event_type == "SampleAdded":
                sample_id = event.fields["sample_id"]
                if sample_id in self.samples:
                    self.refold.add(sample_id)
                else:
                    self.samples.add(sample_id)
                    rows["samples"].append(values["samples"](sample_row(event, ())))
            elif event.event_type == "LabelCorrected":
                self.refold.add(event.fields["sample_id"])
        self.buffered += new
        return new

    def take(self) -> dict[str, pa.Table]:
        """The buffered rows as Arrow tables (only tables with rows), emptying the buffer."""
        tables: dict[str, pa.Table] = {}
        for name, rows in self._rows.items():
            if rows:
                columns = zip(*rows, strict=True)  # every table has several columns: rows are tuples
                tables[name] = columns_table(columns, TABLE_SCHEMAS[name])
                rows.clear()
        self.buffered = 0
        return tables
