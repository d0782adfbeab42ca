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
once at the end). The rows themselves are made in :mod:`views.rows`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import glob
import os
import re
import secrets
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("LANCE_LOG", "error")  # lance logs table creation at WARN on stderr

import lancedb
import pyarrow as pa

from bus.kafka import EventProducer, GroupConsumer, ReplayStats, replay_flat
from bus.topics import RECORD_TOPICS
from common.locks import LockHeld, holding, take_lock
from common.logs import get_logger
from schemas.codec import EventCodec
from schemas.events import Event, Producer
from schemas.flat import FlatEvent, FlatReader, flatten
from views.config import StoreRunSettings
from views.rebuild_share import auto_workers, load_in_workers
from views.rows import (
    ALL_TABLES,
    EVENTS_SCHEMA,
    LABEL_EVENT_TYPES,
    PER_EVENT_TABLES,
    SAMPLES_SCHEMA,
    RowBuffer,
    event_from_row,
    event_row,
    rows_table,
    sample_row,
    sql_list,
)

log = get_logger(__name__)
STAGE = Producer(stage="store", version="1")
# The folder's identity: the live materialiser's consumer position belongs to the folder, not the run.
STORE_ID_FILE = ".store-id"
# In a store being built beside its target (rebuild, replay): removed just before the swap, so a
# folder that still holds it is a build that never finished and readers refuse it.
BUILD_MARK = ".store-building"
_STORE_FILES = (STORE_ID_FILE, BUILD_MARK)  # what a store folder holds besides its tables


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
        unique: dict[str, FlatEvent] = {}
        for event in events:  # keep the first copy of a redelivered event, as every consumer does
            if event.event_id not in unique:
                unique[event.event_id] = flatten(event)
        label_events: dict[str, list[FlatEvent]] = {}
        for event in unique.values():
            if event.event_type in LABEL_EVENT_TYPES:
                label_events.setdefault(event.fields["sample_id"], []).append(event)
        # Read before inserting: what the store already holds wins over a redelivered copy.
        stored = self._stored_label_events(sorted(label_events))
        rows = rows_table([event_row(e) for e in unique.values()], EVENTS_SCHEMA)
        result = self._tables["events"].merge_insert("event_id").when_not_matched_insert_all().execute(rows)
        for spec in PER_EVENT_TABLES:
            matching = [spec.row(e) for e in unique.values() if e.event_type in spec.event_types]
            if matching:
                self._tables[spec.name].merge_insert(spec.key).when_not_matched_insert_all().execute(
                    rows_table(matching, spec.schema)
                )
        if label_events:
            self._refresh_samples(label_events, stored)
        return int(result.num_inserted_rows)

    def _stored_label_events(self, sample_ids: list[str], chunk: int = 1000) -> dict[str, list[FlatEvent]]:
        """Label events the store already holds for these samples (usually none: they are new)."""
        events_table = self._tables["events"]
        found: dict[str, list[FlatEvent]] = {}
        for start in range(0, len(sample_ids), chunk):
            where = (
                f"event_type IN ({sql_list(LABEL_EVENT_TYPES)}) "
                f"AND sample_id IN ({sql_list(sample_ids[start : start + chunk])})"
            )
            # Cheap existence check first; parse full rows only when some exist.
            if events_table.search().where(where).select(["event_id"]).limit(None).to_arrow().num_rows == 0:
                continue
            rows = events_table.search().where(where).select(list(EVENTS_SCHEMA.names)).limit(None).to_arrow()
            for row in rows.to_pylist():
                found.setdefault(row["sample_id"], []).append(flatten(event_from_row(row)))
        return found

    def _refresh_samples(
        self, in_batch: dict[str, list[FlatEvent]], stored: dict[str, list[FlatEvent]]
    ) -> None:
        """Recompute the rows of samples with label events in the batch, from stored + new events."""
        rows = []
        for sample_id, batch_events in in_batch.items():
            known = stored.get(sample_id, [])
            known_ids = {event.event_id for event in known}
            events = known + [event for event in batch_events if event.event_id not in known_ids]
            added = [e for e in events if e.event_type == "SampleAdded"]
            if added:  # a correction that overtook its SampleAdded waits for it
                rows.append(sample_row(min(added, key=lambda e: e.event_id), events))
        if rows:
            (
                self._tables["samples"]
                .merge_insert("sample_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(rows_table(rows, SAMPLES_SCHEMA))
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
    buffered column by column (:class:`views.rows.RowBuffer`) and appended as Arrow tables of
    ``flush_rows`` rows. A sample's row is written from its SampleAdded at once; a sample relabelled or
    added twice is folded again from the events table at :meth:`finish` (the columnar fold: one query
    for all of them).
    """

    def __init__(self, store: SampleStore, flush_rows: int = 50_000):
        self.store = store
        self.flush_rows = flush_rows
        self.applied = 0
        self.rows = RowBuffer()
        # One append in flight, in a thread of its own: LanceDB writes without the GIL, so the next
        # batch is read and decoded meanwhile. A second append waits for the first (memory stays
        # bounded by two batches of rows).
        self._pending: concurrent.futures.Future[None] | None = None

    def add(self, events: Iterable[FlatEvent | Event[Any]]) -> int:
        """Buffer (and flush when enough) the events not seen yet; returns how many were new. Events
        held as models are flattened (a replay reads them flat)."""
        new = self.rows.add(e if type(e) is FlatEvent else flatten(e) for e in events)  # type: ignore[arg-type]
        self.applied += new
        if self.rows.buffered >= self.flush_rows:
            self.flush()
        return new

    def flush(self) -> None:
        self.append(self.rows.take())

    def append(self, tables: dict[str, pa.Table]) -> None:
        """Append Arrow tables of rows (by table name) to the store as they are (in the background:
        :meth:`wait` for them)."""
        self.wait()
        pending: concurrent.futures.Future[None] = concurrent.futures.Future()

        def write() -> None:
            try:
                self._append(tables)
            except BaseException as exc:  # handed to whoever waits for it
                pending.set_exception(exc)
            else:
                pending.set_result(None)

        threading.Thread(target=write, name="store-append", daemon=True).start()
        self._pending = pending

    def _append(self, tables: dict[str, pa.Table]) -> None:
        for name, table in tables.items():
            self.store.table(name).add(table)

    def wait(self) -> None:
        """Until the appends made so far are written; raises what writing them raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Wait for the append in flight (without raising its error: the load is abandoned)."""
        with contextlib.suppress(Exception):
            self.wait()

    def finish(self, chunk: int = 1000) -> int:
        """Write what is buffered and fold the samples that need it; returns the events applied."""
        self.flush()
        self.refold(self.rows.refold & self.rows.samples, chunk)
        return self.applied

    def refold(self, sample_ids: Iterable[str], chunk: int = 1000) -> None:
        """Rewrite the rows of these samples from every label event the store holds for them (once
        every append is written)."""
        self.wait()
        refold = sorted(sample_ids)
        samples = self.store.table("samples")
        for start in range(0, len(refold), chunk):
            ids = refold[start : start + chunk]
            stored = self.store._stored_label_events(ids)
            rows = []
            for sample_id in ids:
                events = stored.get(sample_id, [])
                added = [e for e in events if e.event_type == "SampleAdded"]
                rows.append(sample_row(min(added, key=lambda e: e.event_id), events))
            samples.delete(f"sample_id IN ({sql_list(ids)})")
            samples.add(rows_table(rows, SAMPLES_SCHEMA))


class IncompleteStore(RuntimeError):
    """A folder holding a store whose build (rebuild, replay) never finished: not a store to read."""


def open_for_reading(path: Path) -> SampleStore:
    """The store at ``path`` for a reader (``stats --store``, ``lineage --store``).

    Refuses a folder that holds no store (opening one would create empty tables there and read them as
    a run with no events) and a build that never finished (:data:`BUILD_MARK`).
    """
    folder = Path(path)
    if (folder / BUILD_MARK).exists():
        raise IncompleteStore(
            f"{folder} is a sample store whose build (rebuild or replay) has not finished or was "
            "interrupted: run the rebuild or replay again (`looptool rebuild`, or `looptool replay "
            "--store FOLDER`) and read its target folder"
        )
    if not (folder / "events.lance").exists():
        raise FileNotFoundError(f"no sample store at {folder} (expected {folder / 'events.lance'})")
    return SampleStore(folder)


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
    try:
        fd = take_lock(lock_path_for(path))
    except LockHeld as held:
        raise StoreBusy(
            f"the sample store {path} is in use by another looptool store, rebuild or replay "
            f"(pid {held.holder}); stop it first"
        ) from None
    with holding(fd):
        yield


def check_store_folder(folder: Path) -> None:
    """Refuse a folder holding anything but LanceDB tables (``*.lance``): it is not a store to replace."""
    if not folder.exists():
        return
    strangers = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    strangers = [
        name
        for name in strangers
        if not ((folder / name).is_dir() and name.endswith(".lance")) and name not in _STORE_FILES
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
    workers: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> ReplayStats:
    """Rebuild the store from offset 0 of every topic of the run, and swap it in only on success.

    The new store is built in a folder beside the old one (in large Arrow appends, :class:`BulkLoad`);
    the old one is replaced only once the replay has finished, so an unreachable broker, a crash or a
    run with no events (refused unless ``allow_empty``: a mistyped run id reads nothing) leaves the
    store as it was. ``workers`` (default ``store.rebuild_workers``; 0: as many as the run's size and
    the machine's cores pay for, :func:`views.rebuild_share.workers_for`): processes that read and
    decode the topics (flat, without models: :mod:`schemas.flat`), each a share of the partitions
    (:mod:`views.rebuild_share`); with one, this
    process reads them itself (with ``codec`` if given). ``on_batch`` is told how many new events each
    batch brought (for progress).
    """
    if workers is None:
        workers = settings.store.rebuild_workers
    if workers == 0:  # as many as the run's size and this machine's cores pay for
        workers = (
            1 if codec is not None else await auto_workers(settings.kafka, settings.run_id, ALL_TOPIC_NAMES)
        )
    if workers > 1 and codec is not None:
        raise ValueError("a rebuild in several workers decodes with one codec per worker; give no codec")
    target = Path(path or settings.store.folder(settings.run_id)).absolute()
    with store_lock(target), building_beside(target) as building:
        store = SampleStore(building)
        load = BulkLoad(store)
        try:
            if workers == 1:
                stats = ReplayStats()
                async for batch in replay_flat(
                    settings.kafka,
                    settings.run_id,
                    ALL_TOPIC_NAMES,
                    FlatReader(codec) if codec is not None else None,
                    batch_size=batch_size,
                    stats=stats,
                ):
                    new = load.add(batch)
                    if on_batch is not None:
                        on_batch(new)
            else:
                loaded = await load_in_workers(
                    settings.kafka,
                    settings.run_id,
                    ALL_TOPIC_NAMES,
                    workers,
                    load.append,
                    on_rows=on_batch,
                    batch_size=batch_size,
                    flush_rows=load.flush_rows,
                    logging=getattr(settings, "log", None),
                )
                stats = loaded.stats
            if stats.records == 0 and not allow_empty:
                raise EmptyRun(
                    f"run {settings.run_id!r} has no events on {settings.kafka.bootstrap_servers} (a "
                    f"mistyped run id, or a broker that lost them?); {target} is left as it was "
                    "(--allow-empty rebuilds an empty store)"
                )
            if workers == 1:
                load.finish()
            else:
                load.refold(loaded.refold)
        finally:
            load.close()  # no append may still be writing into the folder when it is swapped or removed
        del store, load  # LanceDB's handles on the folder go before it is moved
    log.info(
        "store.rebuilt",
        path=str(target),
        records=stats.records,
        undecodable=stats.undecodable,
        workers=workers,
    )
    return stats


@contextlib.contextmanager
def building_beside(target: Path) -> Iterator[Path]:
    """A new folder beside ``target`` to build a store in, put at ``target`` when the block ends
    without an error and removed when it raises (rebuild and ``replay --store``).

    The caller holds ``target``'s :func:`store_lock`. Until the swap the folder holds
    :data:`BUILD_MARK`, so a build that is killed before its ``finally`` runs is still refused by
    readers; ``target`` itself is never touched before the build is complete.
    """
    target = Path(target).absolute()
    check_store_folder(target)
    remove_stale_builds(target)
    building = target.with_name(f".{target.name}.rebuild-{secrets.token_hex(6)}")
    building.mkdir(parents=True)
    try:
        (building / BUILD_MARK).write_text(f"{os.getpid()}\n", encoding="utf-8")
        yield building
        (building / BUILD_MARK).unlink()
        _swap_in(building, target)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)


# A build folder (.NAME.rebuild-*) or a replaced store (.NAME.old-*) beside the store NAME.
_BUILD_FOLDER = re.compile(r"\.(?P<name>.+)\.(?P<kind>rebuild|old)-[0-9a-f]{12}")


def remove_stale_builds(target: Path) -> list[Path]:
    """Remove what killed rebuilds and replays of ``target`` left beside it; returns what was removed.

    The caller holds ``target``'s :func:`store_lock`, so no build of ``target`` is running and every
    ``.NAME.rebuild-*`` folder is a dead one. Only folders named exactly as :func:`building_beside` and
    :func:`_swap_in` name them, and holding nothing but store tables and marks, are removed. A
    replaced store (``.NAME.old-*``) is kept while ``target`` is missing: a kill between the two
    renames of a swap left the only store there.
    """
    target = Path(target).absolute()
    removed: list[Path] = []
    for sibling in sorted(target.parent.glob(f".{glob.escape(target.name)}.*-*")):
        match = _BUILD_FOLDER.fullmatch(sibling.name)
        if match is None or match["name"] != target.name or sibling.is_symlink() or not sibling.is_dir():
            continue
        if match["kind"] == "old" and not target.exists():
            log.warning("store.replaced_store_kept", path=str(sibling), missing=str(target))
            continue
        try:
            check_store_folder(sibling)
        except ValueError:  # something else lives there: not ours to remove
            log.warning("store.stale_build_kept", path=str(sibling))
            continue
        shutil.rmtree(sibling, ignore_errors=True)
        removed.append(sibling)
        log.info("store.stale_build_removed", path=str(sibling))
    return removed


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
