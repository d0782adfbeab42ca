"""The LanceDB sample store: live materialisation, redelivery, out-of-order labels, rebuild == live."""

from __future__ import annotations

import asyncio
import io
import json
import os

import pytest
from rich.console import Console

from bus.broker import free_port
from bus.kafka import EventProducer, ensure_topics, replay
from bus.topics import topic_name
from schemas.codec import EventCodec
from schemas.events import DeadLetter, LabelCorrected, derived_event_id
from schemas.interning import DEFINITION_TYPES
from tests.foundation.events_factory import LABEL, PREDICTION, event_of, one_of_each, sample_added
from views.replay import Cut, replay_to
from views.store import BulkLoad, EmptyRun, SampleStore, StoreBusy, materialise, rebuild, store_lock


def _corrections(added_events, every: int = 5):
    return [
        event_of(
            LabelCorrected(
                sample_id=added.payload.sample_id,
                round=1,
                verdict_event_id="v",
                old_label=LABEL,
                new_label=PREDICTION,
                reason="judge LABEL_WRONG",
            ),
            run_id=added.run_id,
            parent_ids=[added.event_id],
            event_id=derived_event_id([added.event_id], "relabel"),
        )
        for added in added_events[::every]
    ]


async def _publish_run(settings, n: int = 60):
    """n seeds, corrections (some sent before their sample), one of every event type, and garbage."""
    await ensure_topics(settings.kafka, settings.run_id)
    run = settings.run_id
    added = [event_of(sample_added(f"s_{i:03d}"), run) for i in range(n)]
    fixes = _corrections(added)
    # Definitions (tool sets, schemas) are the wire's dictionary, not part of the record the store holds.
    others = [
        event_of(p, run)
        for p in one_of_each()
        if p.EVENT_TYPE not in ("SampleAdded", "LabelCorrected", *DEFINITION_TYPES)
    ]
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all(fixes[:3])  # overtake their SampleAdded
        await producer.send_all(added)
        await producer.send_all(fixes[3:] + others)
        await producer.send_raw(topic_name(settings.run_id, "probes"), b"not an event", b"s_000")
    return added, fixes, others


async def test_live_store_materialises_labels_and_history(settings) -> None:
    added, fixes, others = await _publish_run(settings)
    store = SampleStore(settings.store.path)
    applied = await materialise(settings, store, stop_when_idle=True)
    # every valid event, plus the DeadLetter the consumer wrote for the garbage record
    assert applied == len(added) + len(fixes) + len(others) + 1
    counts = store.counts()
    assert counts["samples"] == len(added)
    assert (
        counts["probes"],
        counts["verdicts"],
        counts["curated"],
        counts["rounds"],
        counts["checkpoints"],
    ) == (
        1,
        1,
        1,
        1,
        1,
    )
    rows = {row["sample_id"]: row for row in store.rows("samples")}
    corrected = {fix.payload.sample_id: fix for fix in fixes}
    for sample_id, row in rows.items():
        history = json.loads(row["label_history_json"])
        if sample_id in corrected:
            assert json.loads(row["current_label_json"]) == PREDICTION.model_dump(mode="json")
            assert row["label_event_id"] == corrected[sample_id].event_id
            assert [h["reason"] for h in history] == ["added", "judge LABEL_WRONG"]
            assert row["relabel_count"] == 1
        else:
            assert json.loads(row["current_label_json"]) == LABEL.model_dump(mode="json")
            assert len(history) == 1 and row["relabel_count"] == 0
        assert json.loads(row["original_label_json"]) == LABEL.model_dump(mode="json")


async def test_garbage_record_is_dead_lettered_with_its_bytes(settings) -> None:
    await _publish_run(settings, n=5)
    await materialise(settings, SampleStore(settings.store.path), stop_when_idle=True)
    letters = [
        d.event.payload
        async for batch in replay(settings.kafka, settings.run_id, ["deadletter"])
        for d in batch
        if d.event.producer.stage == "store"
    ]
    assert len(letters) == 1
    letter: DeadLetter = letters[0]
    assert letter.raw == b"not an event" and letter.key == b"s_000"
    assert letter.source_topic == topic_name(settings.run_id, "probes")
    assert letter.reason.startswith("corrupt:") and letter.error_type == "CorruptEventError"


async def test_redelivered_events_do_not_duplicate_rows(settings) -> None:
    added, fixes, others = await _publish_run(settings, n=20)
    store = SampleStore(settings.store.path)
    await materialise(settings, store, stop_when_idle=True)
    before = store.snapshot()
    assert store.apply(added + fixes + others) == 0  # every event already known
    store.apply(list(reversed(fixes)) + added[:5])  # any order, any subset
    assert store.snapshot() == before


async def test_rebuild_from_topics_equals_the_live_store(settings, tmp_path) -> None:
    await _publish_run(settings)
    live = SampleStore(settings.store.path)
    await materialise(settings, live, stop_when_idle=True)
    stats = await rebuild(settings, tmp_path / "rebuilt")
    assert stats.undecodable == 1
    rebuilt = SampleStore(tmp_path / "rebuilt")
    assert rebuilt.snapshot() == live.snapshot()
    assert rebuilt.counts()["events"] > 60
    # Rebuilding in place drops what was there first.
    live.apply([event_of(sample_added("s_extra"), settings.run_id)])
    await rebuild(settings, settings.store.path)
    assert SampleStore(settings.store.path).snapshot() == rebuilt.snapshot()


async def test_second_materialiser_resumes_from_committed_offsets(settings) -> None:
    """A restarted store consumer continues where the group committed, missing nothing."""
    added, _, _ = await _publish_run(settings, n=10)
    store = SampleStore(settings.store.path)
    first = await materialise(settings, store, stop_when_idle=True)
    more = [event_of(sample_added(f"s_late_{i}"), settings.run_id) for i in range(7)]
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all(more)
    second = await materialise(settings, store, stop_when_idle=True)
    assert second == len(more)
    assert store.counts()["samples"] == len(added) + len(more)
    assert first > second


async def test_a_new_store_folder_starts_from_offset_zero(settings, tmp_path) -> None:
    """The consumer position belongs to the folder: a second, new folder gets every event, while the
    first folder, materialised again, resumes and gets none."""
    added, fixes, others = await _publish_run(settings, n=8)
    first = SampleStore(tmp_path / "first")
    applied = await materialise(settings, first, stop_when_idle=True)
    assert applied == len(added) + len(fixes) + len(others) + 1  # + the DeadLetter for the garbage record
    second = SampleStore(tmp_path / "second")
    # Everything again, plus the DeadLetter the first materialiser wrote (a new event on the topic).
    assert await materialise(settings, second, stop_when_idle=True) >= applied
    first_ids = {row["event_id"] for row in first.rows("events")}
    assert first_ids <= {row["event_id"] for row in second.rows("events")}
    assert second.rows("samples") == first.rows("samples")
    # The first folder resumes: only what was written since (the second materialiser's DeadLetter).
    assert await materialise(settings, SampleStore(tmp_path / "first"), stop_when_idle=True) <= 1
    assert first.consumer_id() != second.consumer_id()


def test_each_run_has_its_own_store_folder(settings) -> None:
    folder = settings.store.folder(settings.run_id)
    assert folder == settings.store.path / settings.run_id
    other = settings.store.model_copy(update={"per_run": False})
    assert other.folder(settings.run_id) == settings.store.path


def test_payload_json_is_the_ordered_json_of_the_payload() -> None:
    """The store's spliced payload JSON (tool lists' JSON cached) equals the dump's compact JSON in its
    own key order."""
    from schemas.flat import flat_payload
    from toolcall.canonical import compact_json

    payloads = [*one_of_each(), sample_added("s_no_tools").model_copy(update={"tools": []})]
    for payload in payloads:
        for _ in range(2):  # a miss, then a hit of the tool-list cache
            assert flat_payload(payload)[2] == compact_json(payload.model_dump(mode="json")), (
                payload.EVENT_TYPE
            )


def test_bulk_load_equals_applying_batches(tmp_path) -> None:
    """Redelivered copies, a correction before its sample, a sample added twice (by two events), one of
    every type: the bulk loader (rebuild, replay) and the live path give equal stores."""
    from views.store import BulkLoad

    run = "r"
    added = [event_of(sample_added(f"s_{i:03d}"), run) for i in range(30)]
    again = event_of(sample_added("s_007"), run)  # the same sample, another SampleAdded
    fixes = _corrections(added, every=4)
    others = [
        event_of(p, run) for p in one_of_each() if p.EVENT_TYPE not in ("SampleAdded", "ToolSetRegistered")
    ]
    log = [*fixes[:2], *added, added[3], again, *fixes[2:], *others, fixes[0]]
    live = SampleStore.reset(tmp_path / "live")
    for start in range(0, len(log), 7):
        live.apply(log[start : start + 7])
    bulk = BulkLoad(SampleStore.reset(tmp_path / "bulk"), flush_rows=10)
    for start in range(0, len(log), 7):
        bulk.add(log[start : start + 7])
    assert bulk.finish() == len({e.event_id for e in log})
    assert bulk.store.snapshot() == live.snapshot()
    assert json.loads(bulk.store.rows("samples")[7]["label_history_json"])[0]["event_id"] == min(
        added[7].event_id, again.event_id
    )


def test_numbers_json_cannot_hold_do_not_stop_the_store(tmp_path) -> None:
    """A perplexity of inf (a token of log-probability -inf) and a NaN training loss: the events table
    writes them as null (JSON has no such numbers), the probes table keeps the float."""
    import math

    from schemas.events import CheckpointPublished, ProbeResult

    probe = next(p for p in one_of_each() if isinstance(p, ProbeResult)).model_copy(update={"ppl": math.inf})
    checkpoint = next(p for p in one_of_each() if isinstance(p, CheckpointPublished)).model_copy(
        update={"metrics": {"loss": math.nan}}
    )
    events = [event_of(probe), event_of(checkpoint)]
    live = SampleStore.reset(tmp_path / "live")
    assert live.apply(events) == 2
    assert live.rows("probes")[0]["ppl"] == math.inf
    assert json.loads(live.rows("checkpoints")[0]["metrics_json"]) == {"loss": None}
    payloads = [json.loads(row["payload_json"]) for row in live.rows("events")]
    assert {"ppl": None}.items() <= next(p for p in payloads if "ppl" in p).items()
    bulk = BulkLoad(SampleStore.reset(tmp_path / "bulk"))
    bulk.add(events)
    bulk.finish()
    assert bulk.store.snapshot() == live.snapshot()


# --- rebuild swaps only on success (issue 19) ------------------------------------------------------


async def test_a_failed_rebuild_leaves_the_store_as_it_was(settings, tmp_path) -> None:
    await _publish_run(settings, n=12)
    store = SampleStore(settings.store.folder(settings.run_id))
    await materialise(settings, store, stop_when_idle=True)
    before = store.snapshot()
    folder = settings.store.folder(settings.run_id).absolute()

    def leftovers() -> list[str]:
        # Lock files stay beside their folders (an flock needs a file; removing it would race).
        return sorted(
            p.name for p in folder.parent.iterdir() if p.name != folder.name and p.suffix != ".lock"
        )

    # The broker cannot be reached (nothing listens there).
    dead = settings.kafka.model_copy(
        update={"bootstrap_servers": f"127.0.0.1:{free_port()}", "request_timeout_s": 2}
    )
    with pytest.raises(Exception):  # noqa: B017 - whichever connection error aiokafka raises
        await rebuild(settings.model_copy(update={"kafka": dead}))
    # A run with no events (a mistyped run id) is refused.
    typo = settings.model_copy(update={"run_id": settings.run_id + "-typo"})
    with pytest.raises(EmptyRun, match="has no events"):
        await rebuild(typo)
    # A crash in the middle of the replay.
    original_add = BulkLoad.add
    calls = 0

    def add_then_crash(self, events):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("killed mid-rebuild")
        return original_add(self, events)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BulkLoad, "add", add_then_crash)
        with pytest.raises(RuntimeError, match="mid-rebuild"):
            await rebuild(settings, batch_size=5)
    assert SampleStore(folder).snapshot() == before
    assert leftovers() == []
    # --allow-empty does replace it with an empty store.
    await rebuild(typo, folder, allow_empty=True)
    assert set(SampleStore(folder).counts().values()) == {0}
    assert leftovers() == []


def test_a_failed_background_append_is_raised_not_lost(tmp_path) -> None:
    """Appends are written in a thread while the next batch is read: a write that fails surfaces at the
    next append or at the end, never silently."""

    def disk_full(self, tables) -> None:
        raise OSError("disk full")

    load = BulkLoad(SampleStore.reset(tmp_path / "bulk"), flush_rows=5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BulkLoad, "_append", disk_full)
        load.add([event_of(sample_added(f"s_{i}")) for i in range(6)])  # one flush, written in the background
        with pytest.raises(OSError, match="disk full"):
            load.finish()
    load.close()
    bulk = BulkLoad(SampleStore.reset(tmp_path / "ok"), flush_rows=5)
    bulk.add([event_of(sample_added(f"s_{i}")) for i in range(12)])
    assert bulk.finish() == 12 and bulk.store.counts()["samples"] == 12
    bulk.close()


async def test_one_writer_per_store_folder(settings, tmp_path) -> None:
    await _publish_run(settings, n=30)
    folder = tmp_path / "store"
    # Two rebuilds at once: one refuses, the other rebuilds; no row twice.
    results = await asyncio.gather(
        rebuild(settings, folder), rebuild(settings, folder), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, StoreBusy)]
    assert len(refused) == 1 and "in use by another looptool" in str(refused[0]), results
    rows = SampleStore(folder).rows("events")
    assert len(rows) == len({row["event_id"] for row in rows}) > 30
    # A live materialiser holds the folder: a rebuild of it is refused, and so is a replay into it.
    with store_lock(folder):
        with pytest.raises(StoreBusy, match=f"pid {os.getpid()}"):
            await rebuild(settings, folder)
        with pytest.raises(StoreBusy):
            await replay_to(settings, Cut(), store_path=folder)
    await rebuild(settings, folder)  # released when the holder exits


# --- a rebuild in several worker processes (issue 20) ----------------------------------------------


async def test_a_rebuild_in_workers_equals_one_in_this_process(settings, tmp_path) -> None:
    """Each worker reads a share of the partitions; the store they build together is the store one
    process builds: redelivered copies, a sample added twice, corrections before their sample, a
    copy of events under other keys (other partitions, so other workers) and an undecodable record."""
    added, fixes, _ = await _publish_run(settings, n=40)
    again = event_of(sample_added("s_007"), settings.run_id)  # the same sample, another SampleAdded
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all([*added[:5], again, fixes[0]])  # redelivered as a producer retry does
        for k, event in enumerate(added[10:20]):  # the same bytes under other keys: other partitions
            value = producer.codec.encode(event)
            await producer.send_raw(topic_name(settings.run_id, "samples"), value, f"other-{k}".encode())
    progress: dict[int, list[int]] = {1: [], 3: []}
    alone = await rebuild(settings, tmp_path / "alone", workers=1, on_batch=progress[1].append)
    together = await rebuild(settings, tmp_path / "together", workers=3, on_batch=progress[3].append)
    assert (together.records, together.undecodable) == (alone.records, alone.undecodable)
    events = SampleStore(tmp_path / "alone").counts()["events"]
    assert sum(progress[1]) == sum(progress[3]) == events  # each event told once, copies never
    assert together.identity == alone.identity is not None
    assert SampleStore(tmp_path / "together").snapshot() == SampleStore(tmp_path / "alone").snapshot()
    history = json.loads(
        next(r for r in SampleStore(tmp_path / "together").rows("samples") if r["sample_id"] == "s_007")[
            "label_history_json"
        ]
    )
    assert history[0]["event_id"] == min(added[7].event_id, again.event_id)


def test_rows_from_several_workers_keep_the_first_row_per_key(tmp_path) -> None:
    """The rows two workers made from overlapping events, written through the rebuild's merge, equal
    the store one bulk load makes from all of them (the second copy of a key is dropped, a sample added
    by two events is folded again)."""
    from schemas.flat import flatten
    from views.rebuild_share import LoadedInWorkers, _FirstRows
    from views.rows import RowBuffer

    run = "r"
    added = [event_of(sample_added(f"s_{i:03d}"), run) for i in range(12)]
    again = event_of(sample_added("s_003"), run)
    fixes = _corrections(added, every=3)
    others = [
        event_of(p, run) for p in one_of_each() if p.EVENT_TYPE not in ("SampleAdded", "ToolSetRegistered")
    ]
    first_share = [*added[:8], *fixes[:2], *others]
    second_share = [*added[5:], again, *fixes[1:], *others]  # overlaps the first in events and keys
    alone = BulkLoad(SampleStore.reset(tmp_path / "alone"))
    alone.add(first_share + second_share)
    alone.finish()

    loaded = LoadedInWorkers()
    merge = _FirstRows(loaded)
    merged = BulkLoad(SampleStore.reset(tmp_path / "merged"))
    refold: set[str] = set()
    for share in (first_share, second_share):
        rows = RowBuffer()
        rows.add(map(flatten, share))
        merged.append({name: merge.new(name, table) for name, table in rows.take().items()})
        refold |= rows.refold
    merged.refold((refold | loaded.refold) & loaded.samples)
    assert loaded.applied == len({e.event_id for e in first_share + second_share})
    assert "s_003" in loaded.refold  # added by the first worker and, by another event, by the second
    assert merged.store.snapshot() == alone.store.snapshot()


def test_a_worker_that_stops_mid_message_is_reported_as_failed() -> None:
    import io
    import pickle
    import queue

    from views.rebuild_share import _relay

    whole = pickle.dumps(("rows", {}))
    for output, reason in (
        (whole, "exited without finishing"),  # its rows, then nothing: no "done"
        (whole + pickle.dumps(("rows", {}))[:-3], "output broke off"),  # killed while writing
    ):
        messages: queue.Queue = queue.Queue()
        _relay(1, io.BytesIO(output), messages)
        assert messages.get_nowait() == (1, "rows", {})
        index, kind, body = messages.get_nowait()
        assert (index, kind) == (1, "failed") and reason in body
        assert messages.empty()


async def test_a_failed_rebuild_in_workers_leaves_the_store_as_it_was(settings, tmp_path) -> None:
    from views.rebuild_share import WorkerFailed

    await _publish_run(settings, n=12)
    folder = settings.store.folder(settings.run_id)
    await rebuild(settings, folder)
    before = SampleStore(folder).snapshot()
    dead = settings.kafka.model_copy(
        update={"bootstrap_servers": f"127.0.0.1:{free_port()}", "request_timeout_s": 2}
    )
    with pytest.raises(WorkerFailed, match=r"rebuild worker \d of 2 failed"):
        await rebuild(settings.model_copy(update={"kafka": dead}), workers=2)
    with pytest.raises(ValueError, match="one codec per worker"):
        await rebuild(settings, workers=2, codec=EventCodec())
    assert SampleStore(folder).snapshot() == before
    assert sorted(p.name for p in folder.parent.iterdir() if p.suffix != ".lock") == [folder.name]


def test_workers_for_a_rebuild_grow_with_the_run_up_to_cores_and_partitions() -> None:
    from views.rebuild_share import EVENTS_PER_WORKER, workers_for

    assert workers_for(0, cores=8, partitions=12) == 1
    assert workers_for(EVENTS_PER_WORKER - 1, cores=8, partitions=12) == 1  # a worker's start would not pay
    assert workers_for(2 * EVENTS_PER_WORKER, cores=8, partitions=12) == 2
    assert workers_for(10_000_000, cores=2, partitions=12) == 2
    assert workers_for(10_000_000, cores=32, partitions=12) == 12
    assert workers_for(10_000_000, cores=32, partitions=1) == 1


async def test_a_default_rebuild_sizes_its_workers_from_the_run(settings, tmp_path, monkeypatch) -> None:
    """``store.rebuild_workers = 0`` (the default) asks the broker how many records the run holds and
    takes one worker per EVENTS_PER_WORKER of them, up to the usable cores and partitions."""
    import views.rebuild_share as rebuild_share

    await _publish_run(settings, n=30)
    alone = await rebuild(settings, tmp_path / "alone", workers=1)
    asked: list[tuple[int, int, int]] = []

    def sized(events: int, cores: int, partitions: int) -> int:
        asked.append((events, cores, partitions))
        return 2

    monkeypatch.setattr(rebuild_share, "workers_for", sized)
    assert settings.store.rebuild_workers == 0
    sized_run = await rebuild(settings, tmp_path / "sized")
    [(events, cores, partitions)] = asked
    # End offsets are an estimate (Tansu under-reports a partition whose last batch holds many records).
    assert 0 < events <= alone.records
    assert cores == len(os.sched_getaffinity(0)) and partitions == settings.kafka.partitions
    assert sized_run.records == alone.records
    assert SampleStore(tmp_path / "sized").snapshot() == SampleStore(tmp_path / "alone").snapshot()


# --- an interrupted replay keeps the store that was there ------------------------------------------


async def test_an_interrupted_replay_leaves_the_earlier_store_readable(settings, tmp_path) -> None:
    """``replay --store DIR`` builds beside DIR and swaps at the end: stopped mid-way (here by its
    progress hook), DIR still holds the earlier replay, which readers read; a build folder that was
    never finished (its process killed) is refused by readers instead of read as an empty run."""
    from views.analytics import load_stats
    from views.lineage import run_lineage
    from views.store import IncompleteStore, building_beside, open_for_reading

    added, _fixes, _others = await _publish_run(settings, n=30)
    folder = tmp_path / "replayed"
    await replay_to(settings, Cut(), store_path=folder)
    before = SampleStore(folder).snapshot()
    assert before["events"]

    def stop_after_one_batch(new: int) -> None:
        raise KeyboardInterrupt  # what Ctrl-C (and SIGTERM, in the CLI) raises mid-replay

    with pytest.raises(KeyboardInterrupt):
        await replay_to(settings, Cut(), store_path=folder, on_batch=stop_after_one_batch)
    assert SampleStore(folder).snapshot() == before
    assert load_stats(folder).events == len(before["events"])
    lineage = run_lineage(
        settings, added[0].payload.sample_id, console=Console(file=io.StringIO()), store_path=folder
    )
    assert lineage.added_event_id == added[0].event_id
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["replayed"]

    # A build whose process was killed before its cleanup ran: its folder is not a store to read.
    with building_beside(tmp_path / "other") as building:
        BulkLoad(SampleStore(building)).add(added[:3])
        for read in (open_for_reading, load_stats):
            with pytest.raises(IncompleteStore, match="has not finished or was interrupted"):
                read(building)
        with pytest.raises(IncompleteStore):
            run_lineage(settings, "s_000", console=Console(file=io.StringIO()), store_path=building)
    with pytest.raises(FileNotFoundError, match="no sample store"):
        open_for_reading(tmp_path / "missing")


# --- what killed rebuilds leave beside the store -------------------------------------------------


async def test_a_rebuild_removes_what_killed_builds_left_beside_the_store(settings, tmp_path) -> None:
    """A rebuild killed by SIGKILL leaves its build folder (and maybe the replaced store) beside the
    store; the next rebuild, holding the store's lock, removes them, and only them."""
    from views.store import BUILD_MARK

    await _publish_run(settings, n=6)
    folder = tmp_path / "store"
    await rebuild(settings, folder)
    stale = [tmp_path / ".store.rebuild-0123456789ab", tmp_path / ".store.old-abcdef012345"]
    for leftover in stale:
        (leftover / "events.lance").mkdir(parents=True)
        (leftover / BUILD_MARK).write_text("1\n")
    strangers = [
        tmp_path / ".store.rebuild-fedcba987654",  # holds something a store never does
        tmp_path / ".store.rebuild-notabuild",  # not a name a build is given
        tmp_path / ".storex.rebuild-0123456789ab",  # another store's build
    ]
    for stranger in strangers:
        stranger.mkdir()
        (stranger / "notes.txt").write_text("mine")
    (strangers[1] / "notes.txt").unlink()
    await rebuild(settings, folder)
    assert not any(leftover.exists() for leftover in stale)
    assert all(stranger.exists() for stranger in strangers)
    assert SampleStore(folder).counts()["samples"] == 6


def test_sigterm_stops_a_build_like_ctrl_c_and_its_folder_is_removed(tmp_path) -> None:
    """``rebuild`` and ``replay`` take SIGTERM as Ctrl-C (:func:`sigterm_as_interrupt`): a build killed
    so, in the middle of its event loop, removes its folder beside the store."""
    import signal
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from looptool.cli.common import sigterm_as_interrupt
        from views.store import SampleStore, building_beside, store_lock

        async def build() -> None:
            target = Path({str(tmp_path / "store")!r})
            with store_lock(target), building_beside(target) as building:
                SampleStore(building)
                print("building", flush=True)
                await asyncio.sleep(60)

        with sigterm_as_interrupt():
            try:
                asyncio.run(build())
            except KeyboardInterrupt:
                sys.exit(130)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "building"
        assert [p.name for p in tmp_path.iterdir() if ".rebuild-" in p.name]
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 130
    finally:
        child.kill()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == []


# --- JSON columns keep the run's key order ---------------------------------------------------------


async def test_json_columns_keep_the_runs_key_order_live_rebuilt_and_replayed(settings, tmp_path) -> None:
    """A tool's parameters and a call's arguments in an order sorting would change (start_date,
    end_date, base, symbols) come out of the store in that order, as the export writes them, whether
    the store is the live one, a rebuild or a replay (a relabelled sample's row is folded again from
    the events table, whose payloads keep the order too)."""
    from toolcall.canonical import compact_json
    from views.export import jsonl_record
    from views.replay import DatasetMember

    order = ["start_date", "end_date", "base", "symbols"]
    assert order != sorted(order)
    added, fixes, _others = await _publish_run(settings, n=6)
    live = SampleStore(settings.store.folder(settings.run_id))
    await materialise(settings, live, stop_when_idle=True)
    await rebuild(settings, tmp_path / "rebuilt")
    await replay_to(settings, Cut(), store_path=tmp_path / "replayed")
    relabelled = {fix.payload.sample_id for fix in fixes}
    for store in (live, SampleStore(tmp_path / "rebuilt"), SampleStore(tmp_path / "replayed")):
        rows = store.rows("samples")
        assert len(rows) == len(added) and relabelled & {row["sample_id"] for row in rows}
        for row, event in zip(rows, added, strict=True):
            p = event.payload
            exported = jsonl_record(
                DatasetMember(p.sample_id, 1, "SEED", p.tools, p.messages, p.label, event.event_id, "h", "e")
            )
            assert row["tools_json"] == compact_json(exported["tools"])
            assert row["messages_json"] == compact_json(exported["messages"])
            assert row["original_label_json"] == compact_json(exported["label"])
            current = PREDICTION if row["sample_id"] in relabelled else LABEL
            assert row["current_label_json"] == compact_json(current.model_dump(mode="json"))
            assert list(json.loads(row["tools_json"])[0]["parameters"]["properties"]) == order
            assert list(json.loads(row["current_label_json"])["calls"][0]["arguments"]) == order
            history = json.loads(row["label_history_json"])
            assert [list(step["label"]["calls"][0]["arguments"]) for step in history] == [order] * len(
                history
            )
        [curated] = store.rows("curated")
        assert list(json.loads(curated["label_json"])["calls"][0]["arguments"]) == order
    assert SampleStore(tmp_path / "rebuilt").snapshot() == live.snapshot()
