"""A rebuild in several processes: each worker replays a share of the partitions into Arrow tables.

Reading and decoding the events and making their rows is Python work, one core's worth per process;
writing the rows to LanceDB is not. So a parallel rebuild runs ``workers`` processes, each reading
one :class:`bus.kafka.Share` of every topic's partitions (its own consumer, codec and tool-set
definitions) and sending the rows it made, as Arrow tables, to the process that owns the store. That
process writes them and keeps the first row per key across workers, as one process would.

This module does not import LanceDB (a worker starts in about a second without it); the store's side
is the ``append`` callable the caller gives :func:`load_in_workers`.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import pyarrow as pa

from bus.config import KafkaSettings
from bus.kafka import BrokerRestarted, ReplayStats, Share, partition_ends, replay_flat
from common.logs import LogSettings, configure_logging, get_logger
from common.machine import usable_cores
from common.runtime import report_native_crashes, tune_gc
from views.rows import TABLE_KEYS, RowBuffer

log = get_logger(__name__)
# Messages in flight per worker: a worker that gets ahead of the writer waits (memory stays bounded).
_QUEUED_PER_WORKER = 2


# Below this many events per worker, a worker's start-up (about a second) and the hand-over of its rows
# cost what its share saves: with events read flat, 2 workers on 2 cores rebuilt 100k events 0.91x and
# 400k 1.39x as fast as one process (codec_replay; even at about 130k).
EVENTS_PER_WORKER = 100_000


def workers_for(events: int, cores: int, partitions: int) -> int:
    """How many workers a rebuild of ``events`` events pays for: one per ``EVENTS_PER_WORKER`` events,
    at most one per usable core and per partition of the busiest topic, at least one."""
    return max(1, min(events // EVENTS_PER_WORKER, cores, partitions))


async def auto_workers(kafka: KafkaSettings, run_id: str, topics: Sequence[str]) -> int:
    """:func:`workers_for` this run's topics (their end offsets) on this machine's usable cores."""
    ends = await partition_ends(kafka, run_id, topics)
    per_topic: dict[str, int] = {}
    for tp in ends:
        per_topic[tp.topic] = per_topic.get(tp.topic, 0) + 1
    return workers_for(sum(ends.values()), usable_cores(), max(per_topic.values(), default=1))


class WorkerFailed(RuntimeError):
    """A rebuild worker raised or died; the rebuild is abandoned (the store is left as it was)."""


@dataclass
class ShareDone:
    """What a worker reports once its share is read (its rows were sent before)."""

    stats: ReplayStats
    refold: set[str]  # samples relabelled or added twice, as the worker saw them


@dataclass
class LoadedInWorkers:
    """A parallel load's totals: records read, and the samples whose rows must be folded again."""

    stats: ReplayStats = field(default_factory=ReplayStats)
    refold: set[str] = field(default_factory=set)
    samples: set[str] = field(default_factory=set)
    applied: int = 0


@dataclass(frozen=True)
class ShareTask:
    """What a worker is told (pickled on its stdin): the run, the topics and its share."""

    kafka: KafkaSettings
    run_id: str
    topics: tuple[str, ...]
    share: Share
    batch_size: int
    flush_rows: int
    logging: LogSettings | None


def _work(task: ShareTask, out: IO[bytes]) -> None:
    """A worker's main: replay its share, pickling ``("rows", tables)`` messages and then
    ``("done", ShareDone)`` (or ``("failed", reason)``) to ``out``."""
    configure_logging(task.logging)
    tune_gc()  # as every command does: decoding is what a worker does (common/runtime.py)
    report_native_crashes()

    def send(kind: str, body: Any) -> None:
        pickle.dump((kind, body), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()  # blocks while the writer is behind: the pipe is the backpressure

    try:
        done = asyncio.run(_read_share(task, send))
    except BaseException as exc:  # reported, never lost: the parent abandons the rebuild
        send("failed", f"{type(exc).__name__}: {exc}")
        raise
    send("done", done)


async def _read_share(task: ShareTask, send: Callable[[str, Any], None]) -> ShareDone:
    rows = RowBuffer()
    stats = ReplayStats()
    async for batch in replay_flat(
        task.kafka, task.run_id, task.topics, batch_size=task.batch_size, stats=stats, share=task.share
    ):
        rows.add(batch)
        if rows.buffered >= task.flush_rows:
            send("rows", rows.take())
    if rows.buffered:
        send("rows", rows.take())
    return ShareDone(stats, rows.refold)


class _FirstRows:
    """Keeps, across workers, the first row per table key (each worker already did within its share)."""

    def __init__(self, loaded: LoadedInWorkers):
        self.loaded = loaded
        self._keys: dict[str, set[Any]] = {name: set() for name in TABLE_KEYS}

    def new(self, name: str, table: pa.Table) -> pa.Table:
        """The rows of ``table`` whose key no earlier table had (a worker's tables have distinct keys)."""
        seen = self._keys[name]
        keys = table.column(TABLE_KEYS[name]).to_pylist()
        if seen.isdisjoint(keys):  # the usual case: keys never cross shares
            seen.update(keys)
        else:
            mask, again = [], []
            for key in keys:
                mask.append(key not in seen)
                if key in seen:
                    again.append(key)
                seen.add(key)
            table = table.filter(pa.array(mask, type=pa.bool_()))
            if name == "samples":  # another SampleAdded of a sample: fold all of them at the end
                self.loaded.refold.update(again)
        if name == "events":
            self.loaded.applied += table.num_rows
        elif name == "samples":
            self.loaded.samples.update(keys)
        return table


async def load_in_workers(
    kafka: KafkaSettings,
    run_id: str,
    topics: Sequence[str],
    workers: int,
    append: Callable[[dict[str, pa.Table]], None],
    *,
    on_rows: Callable[[int], None] | None = None,
    batch_size: int = 5000,
    flush_rows: int = 50_000,
    logging: LogSettings | None = None,
) -> LoadedInWorkers:
    """Replay ``topics`` in ``workers`` processes (one share of the partitions each) and ``append``
    the rows they make, first row per key across workers; returns the totals and the samples to fold.
    ``on_rows`` is told how many new events each batch of rows brought (for progress).

    Raises :class:`WorkerFailed` when a worker raises or dies, and :class:`bus.kafka.BrokerRestarted`
    when the workers did not all read the same broker. Workers left running are stopped either way.
    """
    if workers < 1:
        raise ValueError(f"a rebuild needs at least one worker, not {workers}")
    # Fresh interpreters running this module (not multiprocessing, which would import the caller's
    # __main__ and everything it imports, LanceDB included), with this process's import path.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    messages: queue.Queue[tuple[int, str, Any]] = queue.Queue(maxsize=_QUEUED_PER_WORKER * workers)
    processes: list[subprocess.Popen[bytes]] = []
    readers: list[threading.Thread] = []
    loaded = LoadedInWorkers()
    first = _FirstRows(loaded)
    done: dict[int, ShareDone] = {}
    try:
        for index in range(workers):
            task = ShareTask(
                kafka, run_id, tuple(topics), Share(index, workers), batch_size, flush_rows, logging
            )
            process = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
            )
            processes.append(process)
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL))
            process.stdin.close()
            reader = threading.Thread(
                target=_relay,
                args=(index, process.stdout, messages),
                name=f"rebuild-share-{index}",
                daemon=True,
            )
            reader.start()
            readers.append(reader)
        while len(done) < workers:
            index, kind, body = await asyncio.to_thread(messages.get)
            if kind == "rows":
                fresh = {name: first.new(name, table) for name, table in body.items()}
                append(fresh)
                if on_rows is not None and "events" in fresh:
                    on_rows(fresh["events"].num_rows)
            elif kind == "done":
                done[index] = body
            else:
                code = await asyncio.to_thread(processes[index].wait)
                raise WorkerFailed(f"rebuild worker {index} of {workers} failed (exit code {code}): {body}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        for reader in readers:  # their pipes are closed now: each ends at once
            reader.join(timeout=10)
    identities = {share.stats.identity for share in done.values()}
    if len(identities) > 1:
        raise BrokerRestarted(
            f"the rebuild's workers read different brokers ({sorted(map(str, identities))}): the broker "
            "restarted during the rebuild. Run the same command again."
        )
    for share in done.values():
        loaded.stats.records += share.stats.records
        loaded.stats.undecodable += share.stats.undecodable
        loaded.refold |= share.refold
    loaded.stats.identity = identities.pop() if identities else None
    loaded.refold &= loaded.samples
    log.info("rebuild.workers_done", workers=workers, records=loaded.stats.records)
    return loaded


class _WithoutPandas(importlib.abc.MetaPathFinder):
    """Makes pandas unimportable in a worker: pyarrow imports it (over a second) on its first array
    only to ask whether the input is a pandas object, and a worker never has one."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ModuleNotFoundError(f"a rebuild worker does without {fullname}", name=fullname)


def _relay(index: int, pipe: IO[bytes], messages: queue.Queue[tuple[int, str, Any]]) -> None:
    """Hand a worker's messages over, in order; a worker that ends without ``done`` becomes ``failed``."""
    with pipe:
        while True:
            try:
                kind, body = pickle.load(pipe)
            except EOFError:
                messages.put((index, "failed", "it exited without finishing its share"))
                return
            except Exception as exc:  # a message cut short: the worker died while writing it
                messages.put((index, "failed", f"its output broke off ({type(exc).__name__}: {exc})"))
                return
            messages.put((index, kind, body))
            if kind != "rows":
                return


if __name__ == "__main__":  # a worker: its task on stdin, its messages on stdout
    sys.meta_path.insert(0, _WithoutPandas())
    # Through the module's own name, so what it pickles names views.rebuild_share, not __main__.
    from views.rebuild_share import _work as work

    # The messages get stdout's pipe to themselves: anything else printed goes to stderr.
    messages_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    work(pickle.load(sys.stdin.buffer), messages_out)
