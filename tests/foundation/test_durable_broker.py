"""The archived embedded broker (``looptool broker``): what it acknowledged survives a crash.

The archive (Avro container files per topic-partition segment) round-trips every record and cuts a
torn last block; a SIGKILLed broker started again holds every record that producers reported as
sent, at the same partitions and offsets, and every topic with its partition count; clients of the
old broker stop with :class:`BrokerRestarted`, saying what was acknowledged and what may be lost;
while the archive is restored, only the broker's own clients get through its gate.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient

import bus.archive
from bus.archive import Archive, ArchivedRecord, ArchiveError
from bus.broker import EmbeddedBroker, free_port
from bus.durable import Gate
from bus.kafka import BrokerRestarted, EventProducer, ensure_topics, follow, replay
from bus.topics import TOPICS, partitions_for, topic_name
from looptool.config import Settings, load_settings
from looptool.supervisor import BrokerProcess
from schemas.codec import default_codec
from tests.foundation.events_factory import event_of, sample_added

RUN = "durable"


def _records(start: int, count: int, tag: str) -> list[ArchivedRecord]:
    return [
        ArchivedRecord(
            offset,
            1_700_000_000_000 + offset,
            f"k{offset}".encode() if offset % 3 else None,
            f"{tag}-{offset}".encode() * (1 + offset % 5),
            (("trace", f"{offset}".encode()),) if offset % 2 else (),
        )
        for offset in range(start, start + count)
    ]


def test_the_archive_round_trips_records_and_cuts_a_torn_last_block(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive", segment_bytes=1024)
    archive.lock()
    archive.ensure_topic("run.samples", 2)
    archive.ensure_topic("run.empty", 3)
    written = _records(0, 40, "a") + _records(40, 25, "b")
    log = archive.partition("run.samples", 1)
    log.append(written[:40])
    log.sync()
    log.append(written[40:])
    log.sync()
    archive.close()
    assert len(log.segments()) > 1  # rolled over at 1 KiB

    again = Archive(tmp_path / "archive", segment_bytes=1024)
    again.lock()
    assert again.load() == {
        ("run.empty", 0): 0,
        ("run.empty", 1): 0,
        ("run.empty", 2): 0,
        ("run.samples", 0): 0,
        ("run.samples", 1): len(written),
    }
    assert again.topics() == {"run.samples": 2, "run.empty": 3}
    assert list(again.partition("run.samples", 1).records()) == written
    again.close()

    # A crash in the middle of a write: the torn block is cut, what came before stays.
    last = log.segments()[-1]
    last.write_bytes(last.read_bytes()[:-7])
    repaired = Archive(tmp_path / "archive", segment_bytes=1024)
    repaired.lock()
    ends = repaired.load()
    kept = ends[("run.samples", 1)]
    assert kept < len(written)
    survivors = list(repaired.partition("run.samples", 1).records())
    assert survivors == written[:kept]
    # ... and archiving goes on from there.
    repaired.partition("run.samples", 1).append(written[kept:])
    repaired.partition("run.samples", 1).sync()
    assert list(repaired.partition("run.samples", 1).records()) == written
    repaired.close()


def test_every_folder_the_archive_creates_is_fsynced_into_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new file's fsync does not make its folder's entry durable (POSIX): a partition folder whose
    entry in its topic folder was never fsynced can vanish at a power loss with the segments in it,
    although the archive had reported them archived."""
    synced: list[tuple[Path, set[str]]] = []  # each fsynced folder with the entries it held then
    fsync_folder = bus.archive._fsync_folder

    def recording(folder: Path) -> None:
        synced.append((folder, {p.name for p in folder.iterdir()}))
        fsync_folder(folder)

    monkeypatch.setattr(bus.archive, "_fsync_folder", recording)
    root = tmp_path / "archive"
    archive = Archive(root)
    archive.lock()
    archive.ensure_topic("run.samples", 2)
    for partition in (0, 1):
        archive.partition("run.samples", partition).append(_records(0, 3, "a"))
        archive.partition("run.samples", partition).sync()
    archive.close()
    created = {
        root,
        root / "topics",
        root / "topics" / "run.samples",
        *(root / "topics" / "run.samples").glob("[01]"),
    }
    assert len(created) == 5
    for folder in created:
        assert any(parent == folder.parent and folder.name in entries for parent, entries in synced), folder


def test_an_archived_topic_without_its_manifest_is_refused_not_skipped(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    archive.lock()
    archive.ensure_topic("run.samples", 1)
    archive.partition("run.samples", 0).append(_records(0, 10, "a"))
    archive.close()
    (tmp_path / "archive" / "topics" / "run.samples" / "topic.json").unlink()  # an operator's clean-up
    (tmp_path / "archive" / "topics" / "run.half").mkdir()  # a crash right after a topic's mkdir
    (tmp_path / "archive" / "topics" / "notes.txt").write_text("mine")
    again = Archive(tmp_path / "archive")
    again.lock()
    # Skipped, the broker would start without the 10 records and archive the topic again from offset
    # 0 into the same segment, which no later start could restore.
    with pytest.raises(ArchiveError, match=r"run.samples holds 1 segments but no topic.json"):
        again.load()
    again.close()
    (tmp_path / "archive" / "topics" / "run.samples" / "topic.json").write_text('{"partitions": 1}')
    restored = Archive(tmp_path / "archive")
    restored.lock()
    assert restored.load() == {("run.samples", 0): 10}
    assert list(restored.partition("run.samples", 0).records()) == _records(0, 10, "a")
    restored.close()


def test_an_archive_is_one_brokers_and_never_a_stray_folder(tmp_path: Path) -> None:
    first = Archive(tmp_path / "archive")
    first.lock()
    with pytest.raises(ArchiveError, match="in use by another broker"):
        Archive(tmp_path / "archive").lock()
    first.close()
    Archive(tmp_path / "archive").lock()  # released
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    with pytest.raises(ArchiveError, match="not a broker archive"):
        Archive(home).lock()
    assert (home / "notes.txt").read_text() == "mine"


async def _log_of(settings: Settings) -> dict[tuple[str, int, int], str]:
    """(topic, partition, offset) -> event id of every record of the run."""
    found: dict[tuple[str, int, int], str] = {}
    async for batch in replay(settings.kafka, settings.run_id, [spec.name for spec in TOPICS]):
        for delivered in batch:
            found[(delivered.topic, delivered.partition, delivered.offset)] = delivered.event.event_id
    return found


async def _partition_counts(settings: Settings) -> dict[str, int]:
    client = AIOKafkaClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
        return {topic: len(cluster.partitions_for_topic(topic) or ()) for topic in cluster.topics()}
    finally:
        await client.close()


async def test_a_crashed_broker_restarts_with_everything_producers_reported_sent(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "archive", tmp_path / "logs")
    try:
        settings = load_settings(None, run_id=RUN, kafka={"bootstrap_servers": broker.start()})
        await ensure_topics(settings.kafka, settings.run_id)
        reported = []
        for round_ in range(5):  # five producers, each reporting success as it exits
            events = [event_of(sample_added(f"s_{round_}_{i}"), run_id=RUN) for i in range(200)]
            async with EventProducer(settings.kafka) as producer:
                await producer.send_all(events)
            assert producer.confirmed == producer.acknowledged == len(events)  # in the archive
            reported += events
        before = await _log_of(settings)
        counts = await _partition_counts(settings)
        broker.kill()  # no chance to flush anything
        broker.start()
        after = await _log_of(settings)
        assert await _partition_counts(settings) == counts
        assert f"restored {len(before)} events of {len(TOPICS)} topics" in broker.output()
    finally:
        broker.stop()
    assert after == before  # the same records at the same partitions and offsets
    assert {event.event_id for event in reported} <= set(after.values())
    assert counts == {topic_name(RUN, spec.name): partitions_for(spec, settings.kafka) for spec in TOPICS}


async def test_records_sent_as_they_are_are_archived_before_success_is_reported(tmp_path: Path) -> None:
    """``looptool redrive`` sends dead-lettered events back byte for byte (``send_raw``): they are
    acknowledged events like any other, so the producer waits for the archive before it reports them
    sent, and counts them in what a restart may have lost."""
    broker = BrokerProcess(tmp_path / "archive", tmp_path / "logs")
    codec = default_codec()
    events = [event_of(sample_added(f"s_{i}"), run_id=RUN) for i in range(30)]
    try:
        settings = load_settings(None, run_id=RUN, kafka={"bootstrap_servers": broker.start()})
        await ensure_topics(settings.kafka, settings.run_id)
        async with EventProducer(settings.kafka) as producer:
            for event in events:
                await producer.send_raw(topic_name(RUN, "samples"), codec.encode(event), event.key.encode())
        archived = await _log_of(settings)
    finally:
        broker.stop()
    assert producer.acknowledged == producer.confirmed == len(events)
    assert {event.event_id for event in events} <= set(archived.values())


async def test_a_producer_and_a_follower_stop_when_the_broker_restarts(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "archive", tmp_path / "logs")
    try:
        settings = load_settings(None, run_id=RUN, kafka={"bootstrap_servers": broker.start()})
        await ensure_topics(settings.kafka, settings.run_id)
        first = [event_of(sample_added(f"s_a_{i}"), run_id=RUN) for i in range(50)]
        producer = EventProducer(settings.kafka)
        await producer.__aenter__()
        await producer.send_all(first)
        read: list[str] = []

        async def follower() -> None:
            async for batch in follow(settings.kafka, settings.run_id, ["samples"], idle_timeout_ms=100):
                read.extend(d.event.event_id for d in batch)

        following = asyncio.create_task(follower())
        async with asyncio.timeout(30):
            while len(read) < len(first):
                await asyncio.sleep(0.05)
        broker.kill()
        broker.start()
        with pytest.raises(BrokerRestarted) as raised:
            await producer.send_all([event_of(sample_added(f"s_b_{i}"), run_id=RUN) for i in range(10)])
        with pytest.raises(BrokerRestarted):
            await producer.__aexit__(None, None, None)  # and it never reports success
        done, _ = await asyncio.wait([following], timeout=30)
        assert done, "the follower went on reading from the restarted broker"
        followed = following.exception()
    finally:
        broker.stop()
    message = str(raised.value)
    assert "restarted" in message and "restored its archive" in message
    assert "This command had 50 events acknowledged:" in message and "may be lost" in message
    assert "Run the same command again" in message
    assert isinstance(followed, BrokerRestarted) and "50 records had been read" in str(followed)
    assert len(read) == len(first)  # nothing from the new broker was handed over


async def test_while_restoring_the_gate_admits_only_the_brokers_own_clients() -> None:
    port = free_port()
    tansu = EmbeddedBroker(port=free_port(), advertised_port=port)
    tansu.start()
    gate = Gate("127.0.0.1", port, tansu.port or 0)
    await gate.start()
    gate.admitted.add("looptool-restore-x")

    async def answers(client_id: str) -> bool:
        client = AIOKafkaClient(bootstrap_servers=f"127.0.0.1:{port}", client_id=client_id)
        try:
            await client.bootstrap()
            return True
        except Exception:
            return False
        finally:
            await client.close()

    try:
        assert await answers("looptool-restore-x")
        assert not await answers("looptool")  # a client of the old broker, still running
        assert gate.refused >= 1
        gate.open()
        assert await answers("looptool")
    finally:
        await gate.close()
        tansu.stop()


async def test_a_memory_only_restart_says_the_events_are_lost(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "archive", tmp_path / "logs", memory_only=True)
    try:
        settings = load_settings(None, run_id=RUN, kafka={"bootstrap_servers": broker.start()})
        await ensure_topics(settings.kafka, settings.run_id)
        async with EventProducer(settings.kafka) as producer:
            await producer.send_all([event_of(sample_added(f"s_{i}"), run_id=RUN) for i in range(20)])
        assert producer.confirmed == 0  # no archive to confirm anything
        producer = EventProducer(settings.kafka)
        await producer.__aenter__()
        await producer.send_all([event_of(sample_added("s_x"), run_id=RUN)])
        broker.kill()
        broker.start()
        with pytest.raises(BrokerRestarted, match="the broker lost the run's events") as raised:
            await producer.__aexit__(None, None, None)
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers)
        await consumer.start()
        topics = await consumer.topics()
        await consumer.stop()
    finally:
        broker.stop()
    assert "all 1 are lost" in str(raised.value)
    assert not [topic for topic in topics if topic.startswith(RUN)]
    assert Counter(broker.output().count("broker ready") for _ in range(1)) == Counter({1: 1})


async def test_a_producer_without_an_archive_keeps_no_offset_per_event(settings: Settings) -> None:
    """On real Kafka (or `broker --memory-only`) nothing ever confirms acknowledged offsets, yet the
    producer kept one per event for its whole life (40 B an event for a long-lived worker's producer)."""
    await ensure_topics(settings.kafka, settings.run_id)
    events = [event_of(sample_added(f"s_{i}"), run_id=settings.run_id) for i in range(300)]
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all(events)
        assert producer.acknowledged == 300
        assert producer._unconfirmed == {}
        assert producer.unconfirmed == 300  # what a restart would lose: all of them, as it says


@pytest.mark.parametrize(
    "manifest", ["", "{", '{"parts": 1}', '{"partitions": "1"}', '{"partitions": 0}', "[1]"]
)
def test_a_corrupt_topic_manifest_is_one_error_naming_it(tmp_path: Path, manifest: str) -> None:
    """An emptied or edited ``topic.json`` stopped the broker's start with a JSONDecodeError or
    KeyError traceback; it is an ArchiveError naming the file and what to restore."""
    archive = Archive(tmp_path / "archive")
    archive.lock()
    archive.ensure_topic("run.samples", 1)
    archive.partition("run.samples", 0).append(_records(0, 3, "a"))
    archive.close()
    path = tmp_path / "archive" / "topics" / "run.samples" / "topic.json"
    path.write_text(manifest, encoding="utf-8")
    again = Archive(tmp_path / "archive")
    again.lock()
    with pytest.raises(ArchiveError, match=r"run\.samples/topic\.json"):
        again.load()
    again.close()


def test_segments_of_a_partition_the_manifest_does_not_count_stop_the_start(tmp_path: Path) -> None:
    """A ``topic.json`` that counts fewer partitions than the topic's folders hold (put back from an
    older copy, or edited down) started the broker without the other partitions' records, silently;
    it is an ArchiveError naming the file and the count to restore."""
    archive = Archive(tmp_path / "archive")
    archive.lock()
    archive.ensure_topic("run.samples", 3)
    for partition in range(3):
        archive.partition("run.samples", partition).append(_records(0, 2, f"p{partition}"))
    archive.close()
    path = tmp_path / "archive" / "topics" / "run.samples" / "topic.json"
    path.write_text('{"partitions": 2}\n', encoding="utf-8")
    again = Archive(tmp_path / "archive")
    again.lock()
    with pytest.raises(
        ArchiveError, match=r'run\.samples/topic\.json gives 2 .*partition 2.*"partitions": 3'
    ):
        again.load()
    again.close()
    # An empty partition folder beyond the count (no segment was ever written there) is no loss.
    path.write_text('{"partitions": 3}\n', encoding="utf-8")
    (tmp_path / "archive" / "topics" / "run.samples" / "3").mkdir()
    third = Archive(tmp_path / "archive")
    third.lock()
    assert sorted(third.load().values()) == [2, 2, 2]
    third.close()
