"""``looptool broker``: the embedded Tansu broker made durable by an archive on disk.

Tansu keeps topics in memory only, and no durable Kafka-compatible broker can be installed here. So
the broker process runs three things around Tansu:

- an **archiver**, a plain consumer of every partition of every topic, which appends what it reads to
  the archive (:mod:`bus.archive`: Avro object container files per topic-partition segment), fsyncs,
  and then commits the archived offsets to the consumer group :data:`bus.broker.ARCHIVE_GROUP`.
  Those offsets are what a crash cannot lose; producers wait for them before they report success
  (:meth:`bus.kafka.EventProducer.wait_archived`). The archive lag (:class:`LagStats`) is measured
  on every record and reported;
- a **restore** on start: the archived topics are created again with their partition counts and every
  partition is produced back in offset order, each batch checked to land at its archived offset, so
  the restored log has the same records at the same offsets (followers compare what they read);
- a **gate**: Tansu listens on a private port and advertises the public one, where a TCP relay
  (``splice(2)``) forwards connections to it. Until the restore is complete the relay admits only
  the restore's and the archiver's own clients (by the client id in their first request), so a
  client that was still running when the broker crashed cannot write into a half-restored partition.

Every start takes a new cluster id (``looptool-archived-<ULID>``): clients that connected to an
earlier start notice the restart and stop, saying what may be lost (:class:`bus.kafka.BrokerRestarted`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from bus.archive import Archive, ArchivedRecord, ArchiveError
from bus.broker import ARCHIVE_GROUP, BrokerError, EmbeddedBroker, check_port_free, free_port, new_cluster_id
from common.logs import get_logger

log = get_logger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


# --- the gate -------------------------------------------------------------------------------------


class Gate:
    """A TCP relay from ``host:port`` to the broker; admits only named clients until :meth:`open`.

    Each connection is relayed by two threads that move bytes with ``splice(2)`` through a pipe, in
    the kernel and outside the GIL, so the relay costs little next to the broker and the archiver.
    """

    def __init__(self, host: str, port: int, upstream_port: int):
        self.host = host
        self.port = port
        self.upstream_port = upstream_port
        self.admitted: set[str] = set()
        self.refused = 0
        self._open = False
        self._closed = False
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    async def start(self) -> None:
        check_port_free(self.host, self.port)
        try:
            self._listener = socket.create_server((self.host, self.port), backlog=128)
        except OSError as error:
            raise BrokerError(f"port {self.port} on {self.host} is busy ({error.strerror})") from None
        self._spawn(self._accept_loop)

    def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        """Stop listening and end every relayed connection (their threads then end by themselves)."""
        self._closed = True
        with self._lock:
            ends = [s for s in (self._listener, *self._sockets) if s is not None]
            threads = list(self._threads)
        for end in ends:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept() or splice()
        await asyncio.to_thread(_join_all, threads, 5.0)
        if self._listener is not None:
            self._listener.close()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=self._run, args=(target, *args), daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _run(self, target: Callable[..., None], *args: object) -> None:
        try:
            target(*args)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
        if self._closed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        sock.close()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closed:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._spawn(self._serve, connection)

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        upstream: socket.socket | None = None
        try:
            head = b""
            if not self._open:
                client.settimeout(10)
                head, client_id = _first_request_client_id(client)
                client.settimeout(None)
                if not self._open and client_id not in self.admitted:
                    self.refused += 1
                    return
            upstream = socket.create_connection((self.host, self.upstream_port))
            self._track(upstream)
            for end in (client, upstream):
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream.sendall(head)
            answers = threading.Thread(target=_splice, args=(upstream, client), daemon=True)
            answers.start()
            _splice(client, upstream)
            answers.join(30)  # the broker ends its side once ours ended; never close under a splice
            if answers.is_alive():
                for end in (client, upstream):
                    with contextlib.suppress(OSError):
                        end.shutdown(socket.SHUT_RDWR)
                answers.join()
        except OSError:
            pass
        finally:
            for end in (client, upstream):
                if end is not None:
                    self._forget(end)


def _first_request_client_id(sock: socket.socket) -> tuple[bytes, str | None]:
    """Read a Kafka request's header up to its client id (size, api key, version, correlation id, id)."""
    head = _receive_exactly(sock, 14)
    length = int.from_bytes(head[12:14], "big", signed=True)
    raw = _receive_exactly(sock, length) if length > 0 else b""
    return head + raw, raw.decode("utf-8", "replace") if length >= 0 else None


def _receive_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed before its first request")
        data += chunk
    return data


def _splice(source: socket.socket, target: socket.socket) -> None:
    """Move bytes from ``source`` to ``target`` until ``source`` ends, then end ``target``'s writing."""
    read_end, write_end = os.pipe()
    try:
        while True:
            moved = os.splice(source.fileno(), write_end, 1 << 20)
            if moved == 0:
                break
            while moved:
                moved -= os.splice(read_end, target.fileno(), moved)
    except OSError:
        pass
    finally:
        os.close(read_end)
        os.close(write_end)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _join_all(threads: list[threading.Thread], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


# --- restore --------------------------------------------------------------------------------------


@dataclass
class RestoreReport:
    topics: int = 0
    partitions: int = 0
    records: int = 0
    seconds: float = 0.0


async def restore(archive: Archive, bootstrap: str, client_id: str) -> RestoreReport:
    """Create the archived topics on the broker and produce every partition back, in offset order.

    Each batch must land at the offset it was archived at: the restored log is the archived one.
    """
    started = time.monotonic()
    report = RestoreReport(topics=len(archive.topics()))
    if not report.topics:
        return report
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [
                    NewTopic(
                        name, num_partitions=count, replication_factor=1, topic_configs={"retention.ms": "-1"}
                    )
                    for name, count in sorted(archive.topics().items())
                ]
            )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=0,
        max_batch_size=1024 * 1024,
        max_request_size=MAX_MESSAGE_BYTES,
    )
    await producer.start()
    try:
        partitions = [(t, p) for t, count in sorted(archive.topics().items()) for p in range(count)]
        limit = asyncio.Semaphore(8)

        async def one(topic: str, partition: int) -> int:
            async with limit:
                return await _restore_partition(producer, archive, topic, partition)

        counts = await asyncio.gather(*(one(t, p) for t, p in partitions))
    finally:
        await producer.stop()
    report.partitions = len(partitions)
    report.records = sum(counts)
    report.seconds = time.monotonic() - started
    return report


async def _restore_partition(producer: AIOKafkaProducer, archive: Archive, topic: str, partition: int) -> int:
    pending: list[tuple[asyncio.Future[object], int]] = []
    batch = producer.create_batch()
    base = 0
    count = 0

    async def send(batch_: object, first: int) -> None:
        pending.append((await producer.send_batch(batch_, topic, partition=partition), first))  # type: ignore[arg-type]
        while len(pending) > 16:
            await _check_landed(*pending.pop(0), topic, partition)

    for record in archive.partition(topic, partition).records():
        if _append(batch, record) is None:
            if batch.record_count() == 0:
                raise ArchiveError(f"{topic}[{partition}] offset {record.offset} is too large to restore")
            await send(batch, base)
            batch, base = producer.create_batch(), record.offset
            if _append(batch, record) is None:
                raise ArchiveError(f"{topic}[{partition}] offset {record.offset} is too large to restore")
        count += 1
    if batch.record_count():
        await send(batch, base)
    for future, first in pending:
        await _check_landed(future, first, topic, partition)
    return count


def _append(batch: object, record: ArchivedRecord) -> object:
    return batch.append(  # type: ignore[attr-defined]
        key=record.key, value=record.value, timestamp=record.timestamp, headers=list(record.headers)
    )


async def _check_landed(future: asyncio.Future[object], first: int, topic: str, partition: int) -> None:
    metadata = await future
    if metadata.offset != first:  # type: ignore[attr-defined]
        raise ArchiveError(
            f"{topic}[{partition}]: a restored batch landed at offset {metadata.offset} instead of "  # type: ignore[attr-defined]
            f"{first}; the broker was not empty, or another client wrote during the restore"
        )


# --- the archiver ---------------------------------------------------------------------------------


@dataclass
class LagStats:
    """Archive lag: from when a record can have been acknowledged to the fsync that holds it.

    That is its time stamp (when its producer made it), or, if later, one fetch cycle before the
    archiver's previous fetch: a record that fetch did not bring was appended after that, so this
    bounds the time from acknowledgement to disk from above without counting a client's own delays (a
    producer that retried its batch into a restarted broker, seconds after making it). The producer's
    view (acknowledgement to the archive's committed offset) is measured by
    ``benchmarks/durable_broker.py``.
    """

    records: int = 0
    max_ms: float = 0.0
    _recent: list[float] = field(default_factory=list)

    def add(self, lags_ms: list[float]) -> None:
        self.records += len(lags_ms)
        if lags_ms:
            self.max_ms = max(self.max_ms, max(lags_ms))
            self._recent.extend(lags_ms)
            del self._recent[:-20000]

    def percentile(self, q: float) -> float:
        if not self._recent:
            return 0.0
        ordered = sorted(self._recent)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, float]:
        return {
            "records": self.records,
            "p50_ms": round(self.percentile(0.5), 1),
            "p99_ms": round(self.percentile(0.99), 1),
            "max_ms": round(self.max_ms, 1),
        }


class Archiver:
    """Follows every partition of every topic on the broker into the archive."""

    def __init__(
        self,
        archive: Archive,
        bootstrap: str,
        client_id: str,
        ends: dict[tuple[str, int], int],
        *,
        poll_ms: int = 50,
        refresh_s: float = 0.1,
    ):
        self.archive = archive
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.positions = {TopicPartition(t, p): end for (t, p), end in ends.items()}
        self.poll_ms = poll_ms
        self.refresh_s = refresh_s
        self.lag = LagStats()
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event, drain_timeout_s: float = 10.0) -> None:
        """Archive until ``stop``, then until caught up (at most ``drain_timeout_s`` more)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=self.client_id,
            group_id=ARCHIVE_GROUP,
            enable_auto_commit=False,
            auto_offset_reset="none",  # an archive ahead of the broker is an error, never a reset
            fetch_max_wait_ms=self.poll_ms,
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        await consumer.start()
        try:
            await self._refresh(consumer)
            if self.positions:  # what the restore put back is archived already
                await consumer.commit(dict(self.positions))
            self.ready.set()
            refreshed = time.monotonic()
            drain_deadline: float | None = None
            reported = time.monotonic()
            previous_fetch_ms = 0.0
            while True:
                if stop.is_set() and drain_deadline is None:
                    drain_deadline = time.monotonic() + drain_timeout_s
                if time.monotonic() - refreshed >= self.refresh_s:
                    await self._refresh(consumer)
                    refreshed = time.monotonic()
                if not self.positions:
                    if drain_deadline is not None:
                        break
                    await asyncio.sleep(self.poll_ms / 1000)
                    continue
                # The fetcher reads ahead in the background: a record the previous call did not hand
                # over may have been appended up to one fetch (wait + poll) before that call began.
                fetching_since = time.time() * 1000 - 2 * self.poll_ms
                fetched = await consumer.getmany(timeout_ms=self.poll_ms, max_records=20000)
                if fetched:
                    await self._archive(consumer, fetched, not_before_ms=previous_fetch_ms)
                previous_fetch_ms = fetching_since
                if drain_deadline is not None and (
                    time.monotonic() >= drain_deadline or await self._caught_up(consumer)
                ):
                    break
                if time.monotonic() - reported >= 30:
                    log.info("archive.lag", **self.lag.summary())
                    reported = time.monotonic()
        finally:
            await consumer.stop()
            log.info("archive.stopped", archived=self.archive.records(), lag=self.lag.summary())

    async def _refresh(self, consumer: AIOKafkaConsumer) -> None:
        """Pick up topics and partitions created since the last look (each archived from offset 0)."""
        cluster = await consumer._client.fetch_all_metadata()
        changed = False
        for topic in sorted(cluster.topics(exclude_internal_topics=True)):
            if topic.startswith("__"):
                continue
            partitions = cluster.partitions_for_topic(topic) or set()
            if partitions and self.archive.ensure_topic(topic, max(partitions) + 1):
                log.info("archive.topic", topic=topic, partitions=max(partitions) + 1)
            for partition in partitions:
                tp = TopicPartition(topic, partition)
                if tp not in self.positions:
                    self.positions[tp] = 0
                    changed = True
        if changed or set(consumer.assignment()) != set(self.positions):
            consumer.assign(list(self.positions))
            for tp, position in self.positions.items():
                consumer.seek(tp, position)

    async def _archive(
        self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list[object]], *, not_before_ms: float
    ) -> None:
        written: dict[TopicPartition, int] = {}
        created: list[int] = []
        for tp, records in fetched.items():
            fresh = [r for r in records if r.offset >= self.positions[tp]]  # type: ignore[attr-defined]
            if not fresh:
                continue
            self.archive.partition(tp.topic, tp.partition).append(
                [
                    ArchivedRecord(
                        r.offset,  # type: ignore[attr-defined]
                        r.timestamp,  # type: ignore[attr-defined]
                        r.key,  # type: ignore[attr-defined]
                        r.value,  # type: ignore[attr-defined]
                        tuple(r.headers or ()),  # type: ignore[attr-defined]
                    )
                    for r in fresh
                ]
            )
            written[tp] = fresh[-1].offset + 1  # type: ignore[attr-defined]
            created.extend(r.timestamp for r in fresh)  # type: ignore[attr-defined]
        if not written:
            return
        await asyncio.to_thread(self._sync, list(written))
        now_ms = time.time() * 1000
        self.lag.add([now_ms - max(stamp, not_before_ms) for stamp in created])
        self.positions.update(written)
        await consumer.commit(written)

    def _sync(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.archive.partition(tp.topic, tp.partition).sync()

    async def _caught_up(self, consumer: AIOKafkaConsumer) -> bool:
        for tp in self.positions:
            end = consumer.highwater(tp)
            if end is None or self.positions[tp] < end:
                return False
        return True


# --- the durable broker ---------------------------------------------------------------------------


class DurableBroker:
    """Tansu behind a gate, restored from and archived to ``archive_folder``."""

    def __init__(self, archive_folder: Path, host: str = "127.0.0.1", port: int | None = None):
        self.archive = Archive(archive_folder)
        self.host = host
        self.port = port or free_port(host)
        self.cluster_id = new_cluster_id(archived=True)
        self.tansu = EmbeddedBroker(
            host, free_port(host), advertised_port=self.port, cluster_id=self.cluster_id
        )
        self.gate = Gate(host, self.port, 0)
        self.restored = RestoreReport()
        self.archiver: Archiver | None = None
        self._token = secrets.token_hex(8)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    async def serve(
        self, stop: asyncio.Event, on_ready: Callable[[DurableBroker], None] | None = None
    ) -> None:
        """Lock and load the archive, start Tansu and the gate, restore, archive until ``stop``."""
        self.archive.lock()
        archiving: asyncio.Task[None] | None = None
        try:
            ends = self.archive.load()
            await self.gate.start()  # the public port first: busy means another broker is there
            await asyncio.to_thread(self.tansu.start)
            assert self.tansu.port is not None
            self.gate.upstream_port = self.tansu.port
            restore_id, archiver_id = f"looptool-restore-{self._token}", f"looptool-archiver-{self._token}"
            self.gate.admitted |= {restore_id, archiver_id}
            self.restored = await restore(self.archive, self.bootstrap_servers, restore_id)
            self.archiver = Archiver(self.archive, self.bootstrap_servers, archiver_id, ends)
            archiving = asyncio.create_task(self.archiver.run(stop))
            ready = asyncio.create_task(self.archiver.ready.wait())
            await asyncio.wait([archiving, ready], return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if archiving.done():
                archiving.result()
            self.gate.open()
            log.info(
                "broker.durable_ready",
                bootstrap_servers=self.bootstrap_servers,
                cluster_id=self.cluster_id,
                archive=str(self.archive.folder),
                restored_records=self.restored.records,
                restore_s=round(self.restored.seconds, 2),
            )
            if on_ready is not None:
                on_ready(self)
            while not archiving.done():
                if not self.tansu.running:
                    raise BrokerError(f"Tansu exited on its own; its output:\n{self.tansu.output_tail()}")
                await asyncio.wait([archiving], timeout=0.5)
            archiving.result()
        finally:
            if archiving is not None and not archiving.done():
                archiving.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await archiving
            await self.gate.close()
            await asyncio.to_thread(self.tansu.stop)
            self.archive.close()
