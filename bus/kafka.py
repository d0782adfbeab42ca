"""Kafka adapters: topic admin, an event producer, a dead-lettering group consumer, and replay.

Delivery is at-least-once everywhere: producers are not idempotent (Tansu rejects that, and a real
cluster gains nothing from it here), consumers commit after processing, and every consumer
deduplicates by event id. Records that cannot be decoded go to the run's dead-letter topic with the
reason and their raw bytes; the consumer moves on, so a poison message never blocks a partition.

Tool sets travel once per run (:mod:`schemas.interning`): the producer writes a set's
ToolSetRegistered to the run's ``toolsets`` topic, and waits for the broker to acknowledge it, before
the first event it sends that refers to the set; a reader that meets a set it does not know reads the
``toolsets`` topic on from where it last stopped (:class:`DefinitionReader`) and decodes again.

Every client notices a broker restart: the cluster id it saw on connecting must still be the one
the broker reports (the embedded broker takes a new one on every start). Producers check it at least
every ``check_interval_s`` and always before they report success, followers before they hand over
what they fetched; both then raise :class:`BrokerRestarted`, saying what was acknowledged or read and
what may be lost. On an archived broker (``looptool broker``) a producer also waits, before it
reports success, until the archive holds everything it had acknowledged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, OffsetOutOfRangeError, TopicAlreadyExistsError
from aiokafka.protocol.metadata import MetadataRequest

from bus.broker import ARCHIVE_GROUP, ARCHIVED_CLUSTER_ID_PREFIX, CLUSTER_ID_PREFIX
from bus.config import KafkaSettings, RunSettings
from bus.topics import (
    DEFINITION_TOPICS,
    TOPICS,
    TopicError,
    check_partition_overrides,
    partitions_for,
    topic_for_event,
    topic_name,
)
from common.logs import get_logger
from schemas.codec import (
    EventCodec,
    EventDecodeError,
    IncompatibleSchemaError,
    UnknownSchemaError,
    UnresolvedReferenceError,
    default_codec,
)
from schemas.events import DeadLetter, Event, Producer, dead_letter_raw, make_event, root_event_id
from schemas.flat import FlatEvent, FlatReader
from schemas.interning import TOOLSET_REF, Reference, definition_event_id

log = get_logger(__name__)


class KafkaSetupError(RuntimeError):
    """Topics exist with a layout that contradicts the catalog, or the cluster cannot be reached."""


class BrokerDataLost(RuntimeError):
    """A followed topic vanished, or its log went back before what was already read from it.

    The broker lost the run's events (an in-memory broker such as Tansu restarted, a topic was
    deleted): the events a follower waits for can never come, so it fails instead of waiting forever.
    """


class BrokerRestarted(BrokerDataLost):
    """The broker restarted while this process used it (it reports another cluster id).

    Whatever it acknowledged after its archive's last write (at most about a second's worth on an
    archived broker, everything on a memory-only one) is gone, and the consumer groups with it: the
    process stops, saying what it had sent or read, and is started again.
    """


class PartitionsAdded(BrokerDataLost):
    """A followed topic has more partitions than when the follower started (an administrator added
    some mid-run). Producers write part of every later key's events to the new partitions, which the
    follower does not read, and a key's events no longer sit in one ordered partition: the fold it
    feeds would wait for ever or misorder a sample's events. A run's partition count is fixed for its
    life (``ensure_topics`` refuses the topics on the next start), so the follower stops."""


class BrokerNotDurable(RuntimeError):
    """An archived broker acknowledged events that its archive did not confirm in time."""


# How often a producer asks the broker whether it is still the one it connected to.
IDENTITY_CHECK_INTERVAL_S = 0.5
# How long a producer waits, before it reports success, for the broker's archive to hold its events.
ARCHIVE_CONFIRM_TIMEOUT_S = 10.0


async def broker_identity(client: AIOKafkaClient, timeout_s: float = 30.0) -> str | None:
    """The cluster id the broker reports (None if it reports none); retried until ``timeout_s``.

    Asked over a fresh metadata request, so a broker that restarted answers with its new id.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            node = client.get_random_node()
            if node is None:
                await client.force_metadata_update()
                node = client.get_random_node()
            if node is not None:
                response = await client.send(node, MetadataRequest([]))
                return getattr(response, "cluster_id", None) or None
        except KafkaError:
            if time.monotonic() >= deadline:
                raise
        else:
            if time.monotonic() >= deadline:
                raise KafkaSetupError("the broker reports no brokers in its metadata")
        await asyncio.sleep(0.25)


def group_id_for(group_id: str, identity: str | None) -> str:
    """The name of consumer group ``group_id`` on the broker with cluster id ``identity``.

    An embedded broker's groups are per start: it loses them when it restarts, and a client of the
    old broker still running (a worker busy decoding when it crashed) rejoins the new one and
    commits there the offsets it had reached, although what it made of those inputs may be lost.
    Workers started again would then skip that work. With the broker's cluster id (new on every
    start) in the name, their groups start afresh from offset 0 and redo it; outputs have
    deterministic ids, so nothing is duplicated. On any other cluster the name is ``group_id``.
    """
    if identity and identity.startswith(CLUSTER_ID_PREFIX):
        return f"{group_id}-{identity}"
    return group_id


def is_archived(identity: str | None) -> bool:
    """Whether a broker with this cluster id archives what it acknowledges (``looptool broker``)."""
    return bool(identity) and identity.startswith(ARCHIVED_CLUSTER_ID_PREFIX)  # type: ignore[union-attr]


def _restart_note(bootstrap: str | None, before: str | None, after: str | None) -> str:
    kept = (
        "it restored its archive, which lacks what it acknowledged in about its last second"
        if is_archived(after)
        else "it keeps no archive, so the broker lost the run's events"
    )
    return f"the Kafka broker at {bootstrap} restarted (cluster {before} -> {after}); {kept}"


# How often an idle follower asks the broker whether the topics it follows still hold what it read.
LOSS_CHECK_INTERVAL_S = 5.0
# How long a follower holds back what it fetched after a log seemed to go back below what it had read,
# before it asks the broker to confirm (a real cluster's new leader may briefly report a lower end).
LOSS_CONFIRM_S = 1.0


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection options shared by every aiokafka client (bootstrap, TLS, SASL)."""
    if not kafka.bootstrap_servers:
        raise KafkaSetupError("kafka.bootstrap_servers is not set (and no embedded broker was started)")
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": int(kafka.request_timeout_s * 1000),
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
        if kafka.ssl_certfile:
            context.load_cert_chain(
                str(kafka.ssl_certfile), str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None
            )
        options["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL"):
        password = kafka.resolved_sasl_password()
        if not (kafka.sasl_mechanism and kafka.sasl_username and password):
            raise KafkaSetupError(
                "SASL needs kafka.sasl_mechanism, sasl_username and sasl_password (or sasl_password_file)"
            )
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = password
    return options


async def ensure_topics(kafka: KafkaSettings, run_id: str) -> list[str]:
    """Create the run's topics if missing (idempotent); fail if one exists with other partitions."""
    options = client_options(kafka)
    options.pop("client_id")
    admin = AIOKafkaAdminClient(client_id=f"{kafka.client_id}-admin", **options)
    await admin.start()
    try:
        check_partition_overrides(kafka)
        wanted = {topic_name(run_id, spec.name): partitions_for(spec, kafka) for spec in TOPICS}
        compacted = {topic_name(run_id, spec.name) for spec in TOPICS if spec.definitions}
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            new_topics = [
                NewTopic(
                    name,
                    num_partitions=wanted[name],
                    replication_factor=kafka.replication_factor,
                    # Event sourcing: a topic is the record; a cluster's default retention would lose it.
                    # Definitions are keyed by digest: compaction keeps one copy of each.
                    topic_configs={"retention.ms": str(kafka.topic_retention_ms)}
                    | ({"cleanup.policy": "compact"} if name in compacted else {}),
                )
                for name in missing
            ]
            # Another process may create them between our list and create: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new_topics)
        described = await admin.describe_topics(list(wanted))
        for topic in described:
            name, count = topic["topic"], len(topic.get("partitions", []))
            if count != wanted[name]:
                raise KafkaSetupError(
                    f"topic {name} has {count} partitions, the catalog wants {wanted[name]}"
                )
        if kafka.topic_retention_ms == -1:
            await _refuse_expiring_topics(admin, sorted(set(wanted) - compacted))
        log.info("topics.ready", run_id=run_id, created=len(missing), total=len(wanted))
        return list(wanted)
    finally:
        await admin.close()


async def _refuse_expiring_topics(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Refuse topics that existed with a finite ``retention.ms``/``retention.bytes`` (an administrator's,
    or the cluster's defaults where something created them first): they would delete the run's record,
    and a lagging consumer group would skip what expired without a word (it resets to the earliest).

    A principal not allowed to describe configs is told in the log, not refused."""
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    except KafkaError as error:
        log.warning("topics.retention_unchecked", error=repr(error))
        return
    for response in responses:
        for error_code, _message, _kind, name, entries, *_ in response.resources:
            configs = {entry[0]: entry[1] for entry in entries} if error_code == 0 else {}
            if "delete" not in (configs.get("cleanup.policy") or "delete"):
                continue
            for key in ("retention.ms", "retention.bytes"):
                value = configs.get(key)
                if value is not None and int(value) >= 0:
                    raise KafkaSetupError(
                        f"topic {name} has {key}={value}: the broker would delete the run's events, which "
                        f"are its record; set it to -1 (kafka-configs --alter --entity-type topics "
                        f"--entity-name {name} --add-config {key}=-1), or set kafka.topic_retention_ms "
                        "to accept that events expire"
                    )


class EventProducer:
    """Sends events to the topic their type belongs to, keyed by their partition key.

    An event that refers to a tool set this producer has not yet written to the event's run is
    preceded by the set's definition, acknowledged by the broker before the event is sent.

    Counts what the broker acknowledged, notices a broker restart (:class:`BrokerRestarted`) and, on
    an archived broker, does not report success before the archive holds every acknowledged event.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        codec: EventCodec | None = None,
        linger_ms: int = 5,
        *,
        check_interval_s: float = IDENTITY_CHECK_INTERVAL_S,
    ):
        self.codec = codec or default_codec()
        self.kafka = kafka
        self._producer = AIOKafkaProducer(
            **client_options(kafka),
            acks="all",
            enable_idempotence=False,  # Tansu rejects idempotent producers; consumers dedupe by id
            linger_ms=linger_ms,
            max_request_size=8 * 1024 * 1024,
        )
        self._defined: set[tuple[str, bytes]] = set()  # (run, digest) acknowledged on the run's topic
        self._defining: dict[tuple[str, bytes], asyncio.Future[Any]] = {}
        self.definitions_sent = 0
        self.check_interval_s = check_interval_s
        self.identity: str | None = None
        self.acknowledged = 0
        self.confirmed = 0  # acknowledged events the broker's archive holds
        self._unconfirmed: dict[TopicPartition, collections.deque[int]] = {}
        self._checked_at = 0.0
        self._restarted: BrokerRestarted | None = None
        self._archive_reader: AIOKafkaConsumer | None = None
        self._definition_partitions: set[TopicPartition] = set()  # toolsets: records, not events

    async def __aenter__(self) -> EventProducer:
        await self._producer.start()
        try:
            self.identity = await broker_identity(self._producer.client, self.kafka.request_timeout_s)
        except BaseException:
            await self._producer.stop()
            raise
        self._checked_at = time.monotonic()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            if exc_type is None:  # success is reported only for what the broker still holds
                await self._producer.flush()
                await self.check_broker(force=True)
                await self.wait_archived()
        finally:
            await self._producer.stop()
            if self._archive_reader is not None:
                await stop_consumer(self._archive_reader)

    async def send(self, event: Event[Any]) -> asyncio.Future[Any]:
        """Queue one event; the returned future resolves when the broker acknowledged it.

        A caller that encoded the event with :attr:`codec` already (ingest, to check its size) pays
        nothing twice: the codec keeps the bytes of the events it encoded until they are sent."""
        await self.check_broker()
        value = self.codec.encode(event)
        missing = self._undefined(event, self.codec.references)
        if missing:
            await asyncio.gather(*(self._define(event, reference) for reference in missing))
        return await self._send_encoded(event, value)

    async def _send_encoded(self, event: Event[Any], value: bytes) -> asyncio.Future[Any]:
        future = await self._producer.send(
            topic_for_event(event.run_id, event.event_type), value=value, key=event.key.encode("utf-8")
        )
        future.add_done_callback(self._on_acknowledged)
        return future  # type: ignore[no-any-return]

    def _undefined(self, event: Event[Any], references: Sequence[Reference]) -> list[Reference]:
        """The references this producer has not written to the event's run's toolsets topic yet.

        Per producer, not per process: a process may talk to several brokers (a test's reference run
        and its disturbed run, a broker started again), and a set on one broker's log is not on
        another's. Writing a set again costs one compacted record with the set's fixed id."""
        return [ref for ref in references if (event.run_id, ref.digest) not in self._defined]

    async def _define(self, event: Event[Any], reference: Reference) -> None:
        """Write the definition ``event`` refers to (once per run and process) and await its ack."""
        key = (event.run_id, reference.digest)
        pending = self._defining.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._send_definition(event, reference))
            self._defining[key] = pending
        try:
            await asyncio.shield(pending)
        finally:
            if pending.done():
                self._defining.pop(key, None)
        self._defined.add(key)
        if reference.kind == TOOLSET_REF:
            self.codec.toolsets.mark_on_log(event.run_id, reference.digest)

    async def _send_definition(self, event: Event[Any], reference: Reference) -> None:
        payload = self.codec.definition(reference)
        definition = make_event(
            payload,
            run_id=event.run_id,
            producer=event.producer,
            event_id=definition_event_id(reference.digest),  # one id per set: copies deduplicate
        )
        delivered = await self._producer.send(
            topic_for_event(event.run_id, definition.event_type),
            value=self.codec.encode(definition),
            key=definition.key.encode("utf-8"),
        )
        # Archived like any other record (an event is no use without its set), but not counted as an event.
        delivered.add_done_callback(functools.partial(self._on_acknowledged, definition=True))
        await delivered
        self.definitions_sent += 1

    def forget_definitions(self) -> None:
        """Write every definition again before its next use (the broker lost the run's topics)."""
        self._defined.clear()
        self.codec.toolsets.forget_logs()

    async def send_all(self, events: Iterable[Event[Any]]) -> int:
        """Send events and wait until every one is acknowledged. The definitions the batch needs go
        first, all at once (one round trip to the broker, not one per tool set)."""
        await self.check_broker()
        encoded: list[tuple[Event[Any], bytes]] = []
        missing: dict[tuple[str, bytes], tuple[Event[Any], Reference]] = {}
        for event in events:
            encoded.append((event, self.codec.encode(event)))
            for reference in self._undefined(event, self.codec.references):
                missing.setdefault((event.run_id, reference.digest), (event, reference))
        if missing:
            await asyncio.gather(*(self._define(event, reference) for event, reference in missing.values()))
        futures = [await self._send_encoded(event, value) for event, value in encoded]
        if futures:
            await asyncio.gather(*futures)
        await self.check_broker()
        return len(futures)

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Send bytes as they are, acknowledged (``looptool redrive`` sends dead-lettered events back
        byte for byte; tests inject corrupt records). Counted and archived like any other send: success
        is reported only once the archive holds them, and a restart says they may be lost."""
        await self.check_broker()
        delivered = await self._producer.send(topic, value=value, key=key)
        delivered.add_done_callback(self._on_acknowledged)
        await delivered

    async def flush(self) -> None:
        await self._producer.flush()

    def _on_acknowledged(self, future: asyncio.Future[Any], *, definition: bool = False) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        metadata = future.result()
        if definition:
            self._definition_partitions.add(metadata.topic_partition)
        else:
            self.acknowledged += 1
        if is_archived(self.identity):  # without an archive nothing ever confirms them: keep no offsets
            offsets = self._unconfirmed.setdefault(metadata.topic_partition, collections.deque())
            offsets.append(metadata.offset)

    @property
    def unconfirmed(self) -> int:
        """Acknowledged events the broker's archive has not confirmed (all of them without an archive)."""
        if not is_archived(self.identity):
            return self.acknowledged
        return sum(
            len(offsets) for tp, offsets in self._unconfirmed.items() if tp not in self._definition_partitions
        )

    async def check_broker(self, *, force: bool = False) -> None:
        """Raise :class:`BrokerRestarted` if the broker is no longer the one this producer connected to.

        Asks at most every ``check_interval_s`` unless ``force``; a broker that cannot be reached is
        asked again until ``kafka.request_timeout_s`` has passed, then its error is raised. On an
        archived broker it also learns which acknowledged events the archive holds.
        """
        if self._restarted is not None:
            raise self._restarted
        if not force and time.monotonic() - self._checked_at < self.check_interval_s:
            return
        self._checked_at = time.monotonic()
        # Read before the identity is confirmed, applied after: an answer from a restarted broker's
        # archive (which numbers its own new records from where the old archive ended) never counts.
        archived_up_to = await self._archive_positions()
        identity = await broker_identity(self._producer.client, self.kafka.request_timeout_s)
        if identity != self.identity:
            self._restarted = BrokerRestarted(
                _restart_note(self.kafka.bootstrap_servers, self.identity, identity)
                + f". This command had {self.acknowledged} events acknowledged: "
                + (
                    f"{self.confirmed} of them were in the archive, the other {self.unconfirmed} may be lost"
                    if is_archived(self.identity)
                    else f"all {self.acknowledged} are lost with the rest of the log"
                )
                + ". Run the same command again to complete it."
            )
            raise self._restarted
        self._confirm(archived_up_to)

    async def wait_archived(self, timeout_s: float = ARCHIVE_CONFIRM_TIMEOUT_S) -> None:
        """On an archived broker, wait until its archive holds every event acknowledged so far."""
        deadline = time.monotonic() + timeout_s
        while self._unconfirmed and is_archived(self.identity):
            await self.check_broker(force=True)
            if not self._unconfirmed:
                break
            if time.monotonic() >= deadline:
                raise BrokerNotDurable(
                    f"the archive of the Kafka broker at {self.kafka.bootstrap_servers} has not confirmed "
                    f"{self.unconfirmed} of the {self.acknowledged} events it acknowledged after "
                    f"{timeout_s:.0f} s (is its archiver stuck, or its disk full?); they would be lost if "
                    "it stopped now"
                )
            await asyncio.sleep(0.05)

    async def _archive_positions(self) -> dict[TopicPartition, int]:
        """The archive's committed end of each partition this producer has unconfirmed events on."""
        if not (is_archived(self.identity) and self._unconfirmed):
            return {}
        if self._archive_reader is None:
            self._archive_reader = AIOKafkaConsumer(
                **{**client_options(self.kafka), "client_id": f"{self.kafka.client_id}-archive-check"},
                group_id=ARCHIVE_GROUP,
                enable_auto_commit=False,
            )
            await self._archive_reader.start()
        partitions = list(self._unconfirmed)
        try:
            ends = await asyncio.gather(*(self._archive_reader.committed(tp) for tp in partitions))
        except (KafkaError, AttributeError) as error:
            # The reader lost its broker (aiokafka drops its group coordinator then): nothing is
            # confirmed by this check; the next one asks with a new reader, and the identity check
            # that follows says whether the broker restarted.
            log.info("producer.archive_check_failed", error=repr(error))
            reader, self._archive_reader = self._archive_reader, None
            with contextlib.suppress(Exception):
                await stop_consumer(reader)
            return {}
        return {tp: end for tp, end in zip(partitions, ends, strict=True) if end is not None}

    def _confirm(self, archived_up_to: dict[TopicPartition, int]) -> None:
        for tp, end in archived_up_to.items():
            offsets = self._unconfirmed.get(tp)
            while offsets and offsets[0] < end:
                offsets.popleft()
                self.confirmed += tp not in self._definition_partitions
            if offsets is not None and not offsets:
                del self._unconfirmed[tp]


class DefinitionReader:
    """Reads a run's definitions (the ``toolsets`` topic) into a codec's catalog, on from where it stopped.

    A reader calls :meth:`catch_up` when an event refers to a tool set its process does not know. The
    producer of that event had the set's definition acknowledged before it sent the event, so the
    definition lies below the topic's end by the time the event can be read.
    """

    def __init__(self, kafka: KafkaSettings, run_id: str, codec: EventCodec | None = None):
        self.kafka = kafka
        self.run_id = run_id
        self.codec = codec or default_codec()
        self.read = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []

    async def catch_up(self, timeout_s: float = 30.0) -> int:
        """Read every definition written so far that this reader has not read; returns how many."""
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **client_options(self.kafka),
                enable_auto_commit=False,
                max_partition_fetch_bytes=8 * 1024 * 1024,
                fetch_max_wait_ms=self.kafka.fetch_max_wait_ms,
                auto_offset_reset="earliest",
            )
            await consumer.start()
            self._consumer = consumer
            for name in DEFINITION_TOPICS:
                full = topic_name(self.run_id, name)
                for partition in sorted(await _partitions(consumer, full)):
                    self._partitions.append(TopicPartition(full, partition))
            if self._partitions:
                consumer.assign(self._partitions)
                await consumer.seek_to_beginning(*self._partitions)
        consumer = self._consumer
        if not self._partitions:
            return 0
        before = self.read
        deadline = time.monotonic() + timeout_s
        remaining = set(self._partitions)
        end: dict[TopicPartition, int] = {}
        empty_polls = 0
        while remaining and time.monotonic() < deadline:
            fetched = await consumer.getmany(*remaining, timeout_ms=200, max_records=5000)
            for records in fetched.values():
                for record in records:
                    try:
                        self.codec.decode(record.value or b"")  # a definition enters the catalog
                    except EventDecodeError as error:
                        log.warning("definition.undecodable", offset=record.offset, reason=str(error))
                    self.read += 1
            empty_polls = 0 if fetched else empty_polls + 1
            for tp in list(remaining):
                if tp not in end and consumer.highwater(tp) is not None:
                    end[tp] = consumer.highwater(tp)  # type: ignore[assignment]
                if (tp in end and await consumer.position(tp) >= end[tp]) or (
                    tp not in end and empty_polls >= 3
                ):
                    remaining.discard(tp)
        return self.read - before

    async def decode(self, data: bytes, decode: Callable[[bytes], Any] | None = None) -> Any:
        """``codec.decode`` (or ``decode``, which reads with the codec's catalog), reading the
        definitions on once when the event refers to an unknown set or was written with a schema this
        release does not know (a newer release's)."""
        read = decode or self.codec.decode
        try:
            return read(data)
        except UnresolvedReferenceError:
            await self.catch_up()
        except UnknownSchemaError as error:
            if error.fingerprint is None or isinstance(error, IncompatibleSchemaError):
                raise
            await self.catch_up()
        return read(data)

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


class MisplacedEventError(EventDecodeError):
    """An event that is not this topic's fact: another run's (a producer given the wrong run id, a
    topic copied between runs) or another topic's type (a ProbeResult on ``verdicts``). No stage
    acts on it and no fold counts it; the stage or follower that meets it dead-letters it."""

    reason = "misplaced"


def placed(event: Any, run_id: str, topic: str) -> Any:
    """``event`` (an Event or a flat event) read from ``topic``, or MisplacedEventError when it belongs
    to another run or on another topic."""
    if event.run_id != run_id:
        raise MisplacedEventError(
            f"an event of run {str(event.run_id)[:80]!r} on run {run_id!r}'s topic {topic}"
        )
    try:
        home = topic_for_event(run_id, event.event_type)
    except TopicError:
        home = None
    if home != topic:
        raise MisplacedEventError(f"a {event.event_type} on {topic}, which does not carry that type")
    return event


def dead_letter_for(
    record: ConsumerRecord[bytes, bytes], error: Exception, *, run_id: str, producer: Producer
) -> Event[DeadLetter]:
    reason = getattr(error, "reason", type(error).__name__)
    whole = record.value or b""
    raw, note = dead_letter_raw(whole)
    # The same record read again (a restarted worker re-reads what it had not acknowledged) gets the
    # same dead letter, not one more: the id comes from where the record sits and what it holds.
    event_id = root_event_id(
        producer.stage,
        "undecodable",
        record.topic,
        str(record.partition),
        str(record.offset),
        hashlib.blake2b(whole, digest_size=16).hexdigest(),
    )
    return make_event(
        DeadLetter(
            stage=producer.stage,
            reason=f"{reason}: {error}{note}",
            error_type=type(error).__name__,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            key=record.key,
            raw=raw,
        ),
        run_id=run_id,
        producer=producer,
        event_id=event_id,
    )


@dataclass(frozen=True)
class Delivered:
    """A decoded event with where it came from."""

    event: Event[Any]
    topic: str
    partition: int
    offset: int


class GroupConsumer:
    """A consumer-group member over some of a run's topics, yielding decoded batches.

    Undecodable records are dead-lettered and skipped. Offsets are committed only when the caller
    asks (:meth:`commit`), after it has processed a batch: a crash before that redelivers the batch.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        run_id: str,
        topics: Sequence[str],
        group_id: str,
        producer: EventProducer,
        stage: Producer,
        codec: EventCodec | None = None,
    ):
        self.run_id = run_id
        self.stage = stage
        self.codec = codec or default_codec()
        self.producer = producer
        self.dead_lettered = 0
        self.definitions = DefinitionReader(kafka, run_id, self.codec)
        self.delivered = 0
        self._kafka = kafka
        self._topics = [topic_name(run_id, name) for name in topics]
        self._group_id = group_id
        self._identity: str | None = producer.identity
        self._identity_checked = 0.0
        self._consumer = self._make_consumer()

    def _make_consumer(self) -> AIOKafkaConsumer:
        kafka = self._kafka
        return AIOKafkaConsumer(
            *self._topics,
            **client_options(kafka),
            group_id=group_id_for(self._group_id, self._identity),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            rebalance_timeout_ms=int(kafka.rebalance_timeout_s * 1000),
            session_timeout_ms=int(kafka.session_timeout_s * 1000),
            heartbeat_interval_ms=int(kafka.heartbeat_interval_s * 1000),
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        )

    async def __aenter__(self) -> GroupConsumer:
        if self._identity is None:  # the group's name depends on the broker (group_id_for): ask it
            client = AIOKafkaClient(**client_options(self._kafka))
            try:
                await client.bootstrap()
                self._identity = await broker_identity(client, self._kafka.request_timeout_s)
            finally:
                await client.close()
            if self._identity is not None:
                await self._consumer.stop()  # never started: made before the broker was known
                self._consumer = self._make_consumer()
        await self._consumer.start()
        self._identity_checked = time.monotonic()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop_consumer(self._consumer)
        await self.definitions.close()

    async def batches(self, timeout_ms: int = 500, max_records: int = 2000) -> AsyncIterator[list[Delivered]]:
        """Yield batches forever (an empty batch when nothing arrived within ``timeout_ms``)."""
        while True:
            fetched = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
            if fetched or time.monotonic() - self._identity_checked >= 1.0:  # nothing from a restarted one
                await _check_identity(self._consumer, self._kafka, self._identity, self.delivered)
                self._identity_checked = time.monotonic()
            batch: list[Delivered] = []
            for records in fetched.values():
                for record in records:
                    delivered = await self._decode_or_dead_letter(record)
                    if delivered is not None:
                        batch.append(delivered)
            self.delivered += len(batch)
            yield batch

    async def _decode_or_dead_letter(self, record: ConsumerRecord[bytes, bytes]) -> Delivered | None:
        try:
            event = await self.definitions.decode(record.value or b"")
        except IncompatibleSchemaError:
            raise  # another release's workers read it: committing past it here would lose it
        except EventDecodeError as error:
            self.dead_lettered += 1
            log.warning(
                "record.dead_lettered",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                reason=str(error),
            )
            await (
                await self.producer.send(
                    dead_letter_for(record, error, run_id=self.run_id, producer=self.stage)
                )
            )
            return None
        return Delivered(event, record.topic, record.partition, record.offset)

    async def commit(self) -> None:
        await self._consumer.commit()

    async def caught_up(self) -> bool:
        """True once partitions are assigned and every one has been read up to its high watermark."""
        assignment = self._consumer.assignment()
        if not assignment:
            return False
        for tp in assignment:
            highwater = self._consumer.highwater(tp)  # from fetch responses; see replay()
            if highwater is None or await self._consumer.position(tp) < highwater:
                return False
        return True


@dataclass
class ReplayStats:
    records: int = 0
    undecodable: int = 0
    identity: str | None = None  # the broker read from (its cluster id), once the replay has started


@dataclass(frozen=True)
class Share:
    """Share ``index`` of ``count``: partitions whose number is ``index`` modulo ``count``, of every topic.

    Worker processes that each replay one share read every partition once between them. A redelivered
    copy of an event has the event's key, so it lands in the same partition, and so in the same share.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"share {self.index} of {self.count} does not exist")

    def holds(self, partition: int) -> bool:
        return partition % self.count == self.index


async def replay(
    kafka: KafkaSettings,
    run_id: str,
    topics: Sequence[str],
    codec: EventCodec | None = None,
    batch_size: int = 5000,
    stats: ReplayStats | None = None,
    *,
    identity: str | None = None,
    share: Share | None = None,
) -> AsyncIterator[list[Delivered]]:
    """Read ``topics`` from offset 0 up to their ends at call time, in batches, without a group.

    Undecodable records are counted in ``stats`` and skipped (the live consumer already
    dead-lettered them). ``identity``: the broker (cluster id) the caller already reads from; a
    replay of any other raises :class:`BrokerRestarted`. The broker's identity is checked again once
    the replay has read everything, so a broker that restarted during it is never taken as whole.
    ``share``: read only that share of the partitions (a worker of a parallel rebuild).
    """
    reading = _read_from_start(
        kafka, run_id, topics, codec, batch_size, stats, follow=False, identity=identity, share=share
    )
    async with contextlib.aclosing(reading):  # closed with this generator, as follow's
        async for batch in reading:
            yield batch


async def replay_flat(
    kafka: KafkaSettings,
    run_id: str,
    topics: Sequence[str],
    reader: FlatReader | None = None,
    batch_size: int = 5000,
    stats: ReplayStats | None = None,
    *,
    share: Share | None = None,
) -> AsyncIterator[list[FlatEvent]]:
    """:func:`replay`, each event read in its flat form (:mod:`schemas.flat`: what the sample store's
    rows are made of), without models."""
    reader = reader or FlatReader()
    reading = _read_from_start(
        kafka,
        run_id,
        topics,
        reader.codec,
        batch_size,
        stats,
        follow=False,
        share=share,
        decode=reader.decode,
    )
    async with contextlib.aclosing(reading):  # closed with this generator, as follow's
        async for batch in reading:
            yield [delivered.event for delivered in batch]  # type: ignore[misc]


async def partition_ends(
    kafka: KafkaSettings, run_id: str, topics: Sequence[str]
) -> dict[TopicPartition, int]:
    """Each partition's end offset (how many records it was written), for sizing work up front.

    An estimate: Tansu under-reports an end whose last batch holds many records (see
    :func:`_read_from_start`, which ends a replay at the high watermarks of its fetches instead).
    """
    consumer = await _start_patiently(
        lambda: AIOKafkaConsumer(**client_options(kafka), enable_auto_commit=False), kafka
    )
    try:
        partitions = await _run_partitions(consumer, run_id, topics)
        return dict(await consumer.end_offsets(partitions)) if partitions else {}
    finally:
        await stop_consumer(consumer)


async def follow(
    kafka: KafkaSettings,
    run_id: str,
    topics: Sequence[str],
    codec: EventCodec | None = None,
    batch_size: int = 5000,
    idle_timeout_ms: int = 500,
    *,
    undecodable: list[tuple[ConsumerRecord[bytes, bytes], EventDecodeError]] | None = None,
) -> AsyncIterator[list[Delivered]]:
    """Read ``topics`` from offset 0 and keep following them forever, without a consumer group.

    For every reader that must see all partitions: singleton folds (curate) and broadcast state
    every worker needs (checkpoints). Yields an empty list once it has read every partition up to its
    end, and whenever nothing arrived for ``idle_timeout_ms``, so callers can notice they are caught
    up. Raises :class:`BrokerDataLost`
    when a followed topic disappears or its log restarts below what was read (checked while idle).
    """
    # Closed with this generator: left to the garbage collector, the reader's consumer was stopped by
    # a task that asyncio.run cancels on its way out (stats --follow stopped by Ctrl-C warned of an
    # unclosed connection).
    reading = _read_from_start(
        kafka,
        run_id,
        topics,
        codec,
        batch_size,
        None,
        follow=True,
        idle_timeout_ms=idle_timeout_ms,
        undecodable=undecodable,
    )
    async with contextlib.aclosing(reading):
        async for batch in reading:
            yield batch


FOLLOWER = Producer(stage="follow", version="1")  # who dead-letters what a followed log cannot decode


class KafkaEventLog:
    """A run's topics on Kafka as the services read and write them (``streams.registry.EventLog``)."""

    def __init__(self, kafka: KafkaSettings, run_id: str):
        self.kafka = kafka
        self.run_id = run_id

    async def follow(self, topics: Sequence[str]) -> AsyncIterator[list[Event[Any]]]:
        """Every event of ``topics``, followed. A record that does not decode is dead-lettered (by
        :data:`FOLLOWER`, with the deterministic id of :func:`dead_letter_for`: every follower of the
        topic writes the same one): on a topic no consumer group reads, such as ``samples`` (read
        by the curator's fold), it was once only counted."""
        undecodable: list[tuple[ConsumerRecord[bytes, bytes], EventDecodeError]] = []
        async for batch in follow(self.kafka, self.run_id, topics, undecodable=undecodable):
            if undecodable:
                letters = [
                    dead_letter_for(record, error, run_id=self.run_id, producer=FOLLOWER)
                    for record, error in undecodable
                ]
                undecodable.clear()
                async with EventProducer(self.kafka) as producer:  # rare: a producer only then
                    await producer.send_all(letters)
            yield [delivered.event for delivered in batch]

    async def replay(self, topics: Sequence[str]) -> AsyncIterator[list[Event[Any]]]:
        async for batch in replay(self.kafka, self.run_id, topics):
            yield [delivered.event for delivered in batch]

    def publisher(self) -> EventProducer:
        return EventProducer(self.kafka)


def run_log(settings: RunSettings) -> KafkaEventLog:
    """The configured run's log."""
    return KafkaEventLog(settings.kafka, settings.run_id)


async def _read_from_start(
    kafka: KafkaSettings,
    run_id: str,
    topics: Sequence[str],
    codec: EventCodec | None,
    batch_size: int,
    stats: ReplayStats | None,
    *,
    follow: bool,
    idle_timeout_ms: int = 200,
    identity: str | None = None,
    share: Share | None = None,
    decode: Callable[[bytes], Any] | None = None,
    undecodable: list[tuple[ConsumerRecord[bytes, bytes], EventDecodeError]] | None = None,
) -> AsyncIterator[list[Delivered]]:
    """``decode``: reads each record (default: the codec's decode; one that reads with its catalog).
    ``undecodable``: where to put each record that does not decode, with why (besides its count)."""
    codec = codec or default_codec()
    read = decode or codec.decode
    stats = stats if stats is not None else ReplayStats()
    definitions = DefinitionReader(kafka, run_id, codec)
    consumer = await _start_patiently(
        lambda: AIOKafkaConsumer(
            **client_options(kafka),
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            auto_offset_reset="none",  # a position past a log's end is data loss, never a silent reset
        ),
        kafka,
    )
    try:
        found = await broker_identity(consumer._client, kafka.request_timeout_s)
        if identity is not None and found != identity:
            raise BrokerRestarted(
                f"{_restart_note(kafka.bootstrap_servers, identity, found)}. Nothing was read from the "
                "new broker. Run the same command again."
            )
        identity = stats.identity = found
        identity_checked = time.monotonic()
        every_partition = await _run_partitions(consumer, run_id, topics)
        partitions = [tp for tp in every_partition if share is None or share.holds(tp.partition)]
        # Partitions per topic at the start: a follower notices partitions added later.
        started = collections.Counter(tp.topic for tp in every_partition)
        if not partitions:
            await _check_identity(consumer, kafka, identity, stats.records)
            return
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        # A replay ends at each partition's high watermark as reported by the first fetch response.
        # (ListOffsets is not used: Tansu under-reports it when the last batch holds many records.)
        end: dict[TopicPartition, int] = {}
        # follow: what was read and handed over, per partition: the next offset and the last record's value.
        read_up_to: dict[TopicPartition, int] = {}
        last_read: dict[TopicPartition, bytes] = {}
        checked = time.monotonic()
        suspected: str | None = None
        # follow: after a log seemed to go back below what was read, what is fetched is held (with its
        # positions) until the broker confirms the loss or shows the same log again.
        held: list[Delivered] = []
        held_up_to: dict[TopicPartition, tuple[int, bytes]] = {}
        regressed_since: float | None = None
        went_back = False
        remaining = set(partitions)
        while remaining:
            try:
                fetched = await consumer.getmany(
                    *(partitions if follow else remaining), timeout_ms=idle_timeout_ms, max_records=batch_size
                )
            except OffsetOutOfRangeError as error:
                await _check_identity(consumer, kafka, identity, stats.records)
                raise BrokerDataLost(
                    f"{error}: the broker no longer holds the offsets already read (an in-memory broker "
                    "restarted, or retention removed them); the run cannot go on from this broker"
                ) from error
            # Nothing fetched from a restarted broker is handed over: asked after every fetch that
            # brought records, and every second while idle.
            if fetched or time.monotonic() - identity_checked >= 1.0:
                await _check_identity(consumer, kafka, identity, stats.records)
                identity_checked = time.monotonic()
            if follow and regressed_since is None and _ends_below_read(consumer, read_up_to):
                regressed_since = time.monotonic()
            batch: list[Delivered] = []
            if not follow:
                for tp in remaining:
                    if tp not in end and consumer.highwater(tp) is not None:
                        end[tp] = consumer.highwater(tp)
            for tp, records in fetched.items():
                for record in records:
                    if not follow and record.offset >= end.get(tp, record.offset + 1):
                        continue
                    stats.records += 1
                    if follow and record.offset < read_up_to.get(tp, 0):  # never, on one log
                        went_back = True
                        regressed_since = regressed_since or time.monotonic()
                    if regressed_since is None:
                        read_up_to[tp] = record.offset + 1
                        last_read[tp] = record.value or b""
                    else:
                        held_up_to[tp] = (record.offset + 1, record.value or b"")
                    try:
                        try:
                            event = read(record.value or b"")
                        except (UnresolvedReferenceError, UnknownSchemaError):
                            # a tool set (or a newer release's schema) defined after this reader started
                            event = await definitions.decode(record.value or b"", read)
                        placed(event, run_id, record.topic)
                    except EventDecodeError as error:
                        stats.undecodable += 1
                        if undecodable is not None:
                            undecodable.append((record, error))
                        continue
                    batch.append(Delivered(event, record.topic, record.partition, record.offset))
            if not follow:
                for tp in list(remaining):
                    if tp in end and await consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
            if regressed_since is not None:
                # A log that ends below what was read from it is another log: nothing fetched from it
                # may reach the caller (a fold would mix two runs' events) until the broker says whether
                # it is. Checked against what was handed over before the suspicion, never what is held.
                held.extend(batch)
                if time.monotonic() - regressed_since < LOSS_CONFIRM_S:
                    continue
                lost = await _lost(consumer, partitions, read_up_to)
                if lost is None and not went_back:  # the end is back up: is it still the same log?
                    try:
                        lost = await _other_log(kafka, read_up_to, last_read)
                    except KafkaError:  # the broker cannot be asked now: keep holding, ask again later
                        regressed_since = time.monotonic()
                        continue
                if lost or went_back:
                    await _check_identity(consumer, kafka, identity, stats.records)
                    raise BrokerDataLost(lost or "a followed log went back below offsets already read")
                await _check_identity(consumer, kafka, identity, stats.records)  # before any is let go
                for tp, (offset, value) in held_up_to.items():
                    read_up_to[tp], last_read[tp] = offset, value
                batch, held, held_up_to, regressed_since = held, [], {}, None
            if follow and not batch and time.monotonic() - checked >= LOSS_CHECK_INTERVAL_S:
                checked = time.monotonic()
                lost = await _lost(consumer, partitions, read_up_to)
                # Two checks in a row must agree: a topic can be missing from one metadata answer
                # while a real cluster elects leaders.
                if lost and suspected:
                    raise BrokerDataLost(lost)
                suspected = lost
                if lost is None and (added := _added_partitions(consumer, started)):
                    raise PartitionsAdded(added)
            if not follow and not remaining:  # read to the end: of the broker it started on?
                await _check_identity(consumer, kafka, identity, stats.records)
            if batch or follow:
                yield batch
            if follow and batch and regressed_since is None and await _caught_up(consumer, partitions):
                yield []  # caught up: say so now rather than after an idle timeout
    finally:
        await stop_consumer(consumer)
        await definitions.close()


async def _start_patiently(make: Callable[[], AIOKafkaConsumer], kafka: KafkaSettings) -> AIOKafkaConsumer:
    """A started consumer, tried again while the broker cannot be reached (a restart takes a moment)."""
    deadline = time.monotonic() + kafka.request_timeout_s
    while True:
        consumer = make()
        try:
            await consumer.start()
            return consumer
        except KafkaError:
            await consumer.stop()
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.25)


async def _check_identity(
    consumer: AIOKafkaConsumer, kafka: KafkaSettings, identity: str | None, records: int
) -> None:
    """Raise :class:`BrokerRestarted` if the broker is not the one the reader connected to."""
    now = await broker_identity(consumer._client, kafka.request_timeout_s)
    if now != identity:
        raise BrokerRestarted(
            f"{_restart_note(kafka.bootstrap_servers, identity, now)}. {records} records had been read "
            "from it; the events of its last moments may be missing now, so nothing more is read "
            "from it. Run the same command again."
        )


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer; a fetch it was retrying against a vanished broker must not look like our cancel.

    aiokafka's fetcher sleeps its retry backoff outside its own cancellation guard, so stopping the
    consumer then raises CancelledError out of ``stop()`` and would replace the error being raised.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


async def _caught_up(consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]) -> bool:
    """Whether every partition has been read up to the end its last fetch response reported."""
    for tp in partitions:
        end = consumer.highwater(tp)
        if end is None or await consumer.position(tp) < end:
            return False
    return True


def _ends_below_read(consumer: AIOKafkaConsumer, read_up_to: dict[TopicPartition, int]) -> bool:
    """Whether a fetch response reported a log end below what this follower already read from it."""
    for tp, read in read_up_to.items():
        end = consumer.highwater(tp)
        if end is not None and end < read:
            return True
    return False


async def _other_log(
    kafka: KafkaSettings, read_up_to: dict[TopicPartition, int], last_read: dict[TopicPartition, bytes]
) -> str | None:
    """Whether a log now holds another record where this follower read its last one.

    A lost log that has grown back past what was read looks whole by its offsets alone; its records
    are not the ones that were read. Only a record read back and found different counts as evidence.
    """
    checked = {tp: offset - 1 for tp, offset in read_up_to.items() if offset > 0 and tp in last_read}
    if not checked:
        return None
    consumer = AIOKafkaConsumer(**client_options(kafka), enable_auto_commit=False, auto_offset_reset="none")
    try:
        await consumer.start()  # raises KafkaConnectionError while the broker is down
    except BaseException:
        await consumer.stop()
        raise
    try:
        consumer.assign(list(checked))
        for tp, offset in checked.items():
            consumer.seek(tp, offset)
        pending = set(checked)
        deadline = time.monotonic() + 5.0
        while pending and time.monotonic() < deadline:
            try:
                fetched = await consumer.getmany(*pending, timeout_ms=500, max_records=len(pending))
            except OffsetOutOfRangeError as error:
                return f"{error}: the broker no longer holds the offsets already read"
            for tp, records in fetched.items():
                record = next((r for r in records if r.offset == checked[tp]), None)
                if record is None:
                    continue
                pending.discard(tp)
                if (record.value or b"") != last_read[tp]:
                    return (
                        f"{tp.topic}[{tp.partition}] holds another record at offset {checked[tp]} than the "
                        "one read there: the broker lost the run's events (an in-memory broker "
                        "restarted?) and the topic was created again; the run cannot go on from this broker"
                    )
        return None
    finally:
        await stop_consumer(consumer)


async def _lost(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], read_up_to: dict[TopicPartition, int]
) -> str | None:
    """Why the broker no longer holds what this follower read, or None when it does.

    Only positive evidence counts: when the broker cannot be reached the metadata refresh fails and
    nothing is concluded, so an outage alone is not a loss (the follower resumes when it is back).
    """
    if not await consumer._client.force_metadata_update():
        return None
    for tp in partitions:
        if tp.partition not in (consumer.partitions_for_topic(tp.topic) or set()):
            return (
                f"{tp.topic}[{tp.partition}] no longer exists on the broker after {read_up_to.get(tp, 0)} "
                "records were read from it: the broker lost the run's events (an in-memory broker "
                "restarted?); the run cannot go on from this broker"
            )
        # A broker that auto-creates topics (Tansu) answers for a lost topic with an empty one: its
        # end (high watermark) is then below what was read, or the consumer was reset below it.
        read, end = read_up_to.get(tp, 0), consumer.highwater(tp)
        position = await consumer.position(tp)
        if position < read or (end is not None and end < read):
            return (
                f"{tp.topic}[{tp.partition}] now ends at offset {end} (position {position}), below the "
                f"{read} records already read from it: the broker lost the run's events (an "
                "in-memory broker restarted?); the run cannot go on from this broker"
            )
    return None


def _added_partitions(consumer: AIOKafkaConsumer, started: Mapping[str, int]) -> str | None:
    """Which followed topic now has more partitions than the ``started`` counts (read from the
    metadata :func:`_lost` just refreshed), or None."""
    for topic, count in started.items():
        now = len(consumer.partitions_for_topic(topic) or ())
        if now > count:
            return (
                f"{topic} has {now} partitions now, {count} when this follower started: partitions "
                "were added mid-run. A run's partition count is fixed for its life, since a key's "
                "events must stay in one partition; start a new run id with the count in "
                "kafka.partitions / kafka.topic_partitions"
            )
    return None


async def _run_partitions(
    consumer: AIOKafkaConsumer, run_id: str, topics: Sequence[str]
) -> list[TopicPartition]:
    """Every partition of the run's ``topics``, topic by topic in order."""
    return [
        TopicPartition(full, partition)
        for full in (topic_name(run_id, name) for name in topics)
        for partition in sorted(consumer.partitions_for_topic(full) or await _partitions(consumer, full))
    ]


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """Partitions of ``topic`` after a metadata refresh (empty if the topic does not exist)."""
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()
