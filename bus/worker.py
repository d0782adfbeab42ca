"""Run stages as faust-streaming agents: one faust app (= one consumer group) per stage.

``looptool worker --stages probe,judge`` runs any subset of stages in one process; on a real Kafka
cluster each stage scales out by starting more workers for it (more members of that stage's group).
Each agent reads raw bytes, decodes them with the Avro codec (undecodable records are dead-lettered),
batches them (:func:`take_adaptive`: sizes and waits learnt from how long the stage takes,
:mod:`bus.batching`), runs the stage, and waits for the broker to acknowledge the outputs before the
inputs are acknowledged (at-least-once). When a dependency is down
(:class:`~streams.stage.TransientError`) it retries the same batch with backoff and consumes nothing
new meanwhile: faust's flow control then pauses fetching, so no work piles up in memory and nothing
is lost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import faust
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as faust_aiokafka

from bus.batching import AdaptiveBatching
from bus.config import KafkaSettings, RunSettings
from bus.kafka import (
    BrokerDataLost,
    DefinitionReader,
    EventProducer,
    client_options,
    dead_letter_for,
    group_id_for,
    placed,
)
from bus.topics import topic_name
from common.logs import get_logger
from schemas.codec import EventDecodeError, IncompatibleSchemaError, default_codec
from schemas.events import Event
from streams.stage import Stage, TransientError

log = get_logger(__name__)
# A stage that does not bound its batches grows them up to this many times its own batch size.
MAX_GROWTH = 16
MAX_BATCH = 1024


def faust_broker_options(kafka: KafkaSettings) -> dict[str, Any]:
    """faust App settings for the configured cluster: servers, TLS/SASL credentials, timeouts."""
    options = client_options(kafka)  # validates bootstrap servers and security settings
    servers = ";".join(f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(","))  # type: ignore[union-attr]
    settings: dict[str, Any] = {
        "broker": servers,
        "broker_rebalance_timeout": kafka.rebalance_timeout_s,
        "broker_session_timeout": kafka.session_timeout_s,
        "broker_heartbeat_interval": kafka.heartbeat_interval_s,
        "broker_request_timeout": max(kafka.request_timeout_s, kafka.session_timeout_s + 1),
        "topic_partitions": kafka.partitions,
        "topic_replication_factor": kafka.replication_factor,
    }
    context: ssl.SSLContext | None = options.get("ssl_context")
    if kafka.security_protocol.startswith("SASL"):
        settings["broker_credentials"] = faust.SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            mechanism=options["sasl_mechanism"],
            ssl_context=context,
        )
    elif context is not None:
        settings["broker_credentials"] = faust.SSLCredentials(context)
    return settings


def stage_group_id(run_id: str, stage: str, identity: str | None) -> str:
    """The consumer group (faust app id) of a stage on the broker with cluster id ``identity``."""
    return group_id_for(f"looptool-{run_id}-{stage}", identity)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer, with the fetch wait from our settings (faust fixes it at 1500 ms)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # read by AIOKafkaConsumer.start()
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class _StageApp(faust.App):
    """A faust app whose consumer's fetches wait at most ``fetch_max_wait_ms`` on the broker: each
    hop between stages costs about that on the embedded broker, which answers waiting fetches late."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any):
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


class StageRunner:
    """One stage as one faust app with one agent over the stage's input topics."""

    def __init__(self, stage: Stage, settings: RunSettings, producer: EventProducer, concurrency: int = 1):
        self.stage = stage
        self.settings = settings
        self.producer = producer
        self.broker_lost: BrokerDataLost | None = None  # what stopped the agent, for the worker to raise
        # A batch's outputs (or a record's dead letter) that could not be published: the batch stays
        # unacknowledged and the worker stops with this error (a crashed faust agent moved on).
        self.halted: Exception | None = None  # what stopped the agent with its batch unacknowledged
        self.processed = 0
        self.published = 0
        self.retries = 0
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=10_000)  # the latest ones
        max_size = stage.max_batch_size or min(
            MAX_BATCH, max(stage.batch_size, stage.batch_size * MAX_GROWTH)
        )
        self.batching = AdaptiveBatching(
            min_size=stage.batch_size,
            max_size=max_size,
            max_wait_s=stage.batch_within_s,
            size=min(max_size, max(stage.batch_size, stage.first_batch_size or 0)),
        )
        self.definitions = DefinitionReader(settings.kafka, settings.run_id, default_codec())
        self._actors: set[asyncio.Task[Any]] = set()
        # faust keeps per-app state on disk; ours is in memory, so a throwaway folder (not the cwd).
        self._datadir = tempfile.TemporaryDirectory(prefix=f"looptool-faust-{stage.name}-")
        self.app = _StageApp(
            stage_group_id(settings.run_id, stage.name, producer.identity),
            fetch_max_wait_ms=settings.kafka.fetch_max_wait_ms,
            value_serializer="raw",
            key_serializer="raw",
            web_enabled=False,
            autodiscover=False,
            datadir=self._datadir.name,
            store="memory://",
            consumer_auto_offset_reset="earliest",
            topic_allow_declare=False,  # the catalog creates topics (ensure_topics)
            topic_disable_leader=True,  # no leader topic: we use no leader-only features, nothing creates it
            broker_max_poll_interval=settings.kafka.max_poll_interval_s,
            # Stopping never waits for unacknowledged messages (a batch interrupted mid-way): they are
            # not committed, so the next member gets them again. Waiting hung a worker whose broker
            # had restarted (faust's wait_empty on a batch that can no longer finish).
            stream_wait_empty=False,
            **faust_broker_options(settings.kafka),
        )
        source = self.app.topic(
            *[topic_name(settings.run_id, name) for name in stage.input_topics],
            value_type=bytes,
            key_type=bytes,
        )
        self.app.agent(source, name=f"{stage.name}-agent", concurrency=concurrency)(self._agent)

    async def _agent(self, stream: Any) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._actors.add(task)
        try:
            async for batch in take_adaptive(stream, self.batching):
                started = time.perf_counter()
                events = [event for event in [await self._decode(item.message) for item in batch] if event]
                process_s = await self._process_until_done(events)
                self.batch_sizes.append(len(batch))
                self.batching.observe(len(batch), process_s, time.perf_counter() - started)
        except BrokerDataLost as error:
            # Not a crash of the stage: the worker stops for it (run_stages), with one line, not faust's
            # traceback of a crashed agent. The batch was not acknowledged; it is redone on the next start.
            log.warning("stage.broker_lost", stage=self.stage.name, error=str(error))
            self.broker_lost = error
            await asyncio.Event().wait()  # until the worker cancels it
        except KafkaError as error:
            # Publishing failed (a message over the broker's limit, a topic gone): stop with the batch
            # unacknowledged, so a fixed worker redoes it; a crashed agent would let it be committed.
            log.error("stage.publish_failed", stage=self.stage.name, error=repr(error))
            self.halted = error
            await asyncio.Event().wait()  # until the worker cancels it
        except IncompatibleSchemaError as error:
            # A newer release wrote an event this one cannot resolve (rolling upgrade): dead-lettering it
            # would commit past it, so the newer release's workers would never see it. Stop instead.
            log.error("stage.newer_release_required", stage=self.stage.name, error=str(error))
            self.halted = error
            await asyncio.Event().wait()

    async def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the agent even mid-batch (a probe may be waiting for a checkpoint that never comes).

        An interrupted batch was not acknowledged, so it is redelivered to the next worker.
        """
        for task in list(self._actors):
            task.cancel()
        for task in list(self._actors):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._actors.clear()
        try:
            await asyncio.wait_for(self.app.stop(), timeout_s)
        except TimeoutError:
            log.warning("worker.stop_timeout", stage=self.stage.name, timeout_s=timeout_s)
        await self.definitions.close()
        self._datadir.cleanup()

    async def _decode(self, message: Any) -> Event[Any] | None:
        try:
            event = await self.definitions.decode(message.value)
            return placed(event, self.settings.run_id, message.topic)  # type: ignore[no-any-return]
        except IncompatibleSchemaError:
            raise  # readable by another release's workers: not this one's to dead-letter
        except EventDecodeError as error:
            record = ConsumerRecord(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                timestamp=message.timestamp,
                timestamp_type=0,
                key=message.key,
                value=message.value,
                checksum=None,
                serialized_key_size=-1,
                serialized_value_size=-1,
                headers=(),
            )
            letter = dead_letter_for(record, error, run_id=self.settings.run_id, producer=self.stage.producer)
            await self.producer.send_all([letter])
            log.warning("record.dead_lettered", stage=self.stage.name, topic=message.topic, reason=str(error))
            return None

    async def _process_until_done(self, events: Sequence[Event[Any]]) -> float:
        """Process, retrying while a dependency is down, and publish; returns the seconds in ``process``."""
        delay = 0.5
        while True:
            started = time.perf_counter()
            try:
                outputs = await self.stage.process(events)
                process_s = time.perf_counter() - started
                break
            except TransientError as error:
                # Hold the batch (unacknowledged) and retry; faust stops fetching meanwhile.
                self.retries += 1
                pause = max(delay, error.retry_after_s or 0.0)  # no sooner than the endpoint asked
                log.warning("stage.paused", stage=self.stage.name, error=str(error), retry_in_s=pause)
                await asyncio.sleep(pause)
                delay = min(delay * 2, 30.0)
        if outputs:
            await self.producer.send_all(outputs)
        self.processed += len(events)
        self.published += len(outputs)
        return process_s


async def take_adaptive(stream: Any, batching: AdaptiveBatching) -> AsyncIterator[list[Any]]:
    """Batches of a faust stream's events, as ``Stream.take_events`` makes them, but sized and timed by
    ``batching``: a batch is yielded when it holds ``batching.size`` events, when the input has paused
    for ``batching.linger_s``, or ``batching.max_wait_s`` after its first event. Its events are
    acknowledged once the consumer of the batch is done with it (at-least-once)."""
    buffer: list[Any] = []
    full, arrived, consumed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    consuming: asyncio.Future[None] | None = None
    loop = asyncio.get_running_loop()

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming
        if consuming is not None:  # the batch is being handed over: wait for it to be taken
            try:
                await consuming
            finally:
                consuming = None
        event = stream.current_event
        if event is None:
            raise RuntimeError("the stream's current event is None")
        buffer.append(event)
        arrived.set()
        if len(buffer) >= batching.size:
            full.set()
            consumed.clear()
            await stream.wait(consumed)  # never more than the size: the next value waits here
        return value

    acks = stream.enable_acks
    stream.enable_acks = False  # acknowledged here, once the batch is processed
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(arrived, timeout=1.0)  # ``arrived`` is also set when full
            if not buffer:
                arrived.clear()
                continue
            first = loop.time()
            while not full.is_set():
                arrived.clear()
                left = batching.max_wait_s - (loop.time() - first)
                if left <= 0:
                    break
                await stream.wait_for_stopped(arrived, timeout=min(batching.linger_s, left))
                if not arrived.is_set():
                    break  # the input paused for longer than the linger
            consuming = loop.create_future()
            batch = list(buffer)
            try:
                yield batch
                # Resumed: the consumer is done with the batch. Only then are its events acknowledged;
                # a consumer that stopped mid-batch (SIGTERM cancels the agent, which closes this
                # generator at the yield) leaves them unacknowledged, so the next start redoes them.
                for event in batch:
                    await stream.ack(event)
            finally:
                buffer.clear()
                if not consuming.done():
                    consuming.set_result(None)
                arrived.clear()
                full.clear()
                consumed.set()
    finally:
        stream.enable_acks = acks
        stream._processors.remove(add_to_buffer)


@contextlib.asynccontextmanager
async def started_stages(
    settings: RunSettings, stages: Sequence[Stage], concurrency: int = 1
) -> AsyncIterator[list[StageRunner]]:
    """Every stage started on one shared producer (one faust app each); stopped in order on exit."""
    # No linger: each batch's outputs are awaited at once (a batch's sends coalesce anyway).
    async with EventProducer(settings.kafka, linger_ms=0) as producer:
        runners = [StageRunner(stage, settings, producer, concurrency) for stage in stages]
        for stage in stages:
            await stage.start()
        try:
            await asyncio.gather(*(runner.app.start() for runner in runners))
            yield runners
        finally:
            # Agents are cancelled mid-batch on purpose; faust would log each as a crash.
            logging.getLogger("faust.agents.actor").setLevel(logging.CRITICAL)
            # Stopping never raises: an error here would replace the one that stopped the worker (a
            # broker restart, exit 75, would end as a faust commit failing on a consumer already gone).
            for runner in runners:
                try:
                    await runner.stop()
                except Exception as error:
                    log.warning("worker.stop_failed", stage=runner.stage.name, error=repr(error))
            for stage, runner in zip(stages, runners, strict=True):
                try:
                    await stage.close()
                except BrokerDataLost as error:  # its follower saw the restart first
                    runner.broker_lost = runner.broker_lost or error
                except Exception as error:
                    log.warning("stage.close_failed", stage=stage.name, error=repr(error))


async def run_stages(
    settings: RunSettings, stages: Sequence[Stage], stop: asyncio.Event, concurrency: int = 1
) -> list[StageRunner]:
    """Start every stage, run until ``stop`` is set, then stop them in order."""
    logging.getLogger("faust").setLevel(logging.WARNING)
    runners: list[StageRunner] = []
    try:
        async with started_stages(settings, stages, concurrency) as runners:
            log.info("worker.ready", stages=[s.name for s in stages], run_id=settings.run_id)
            await _watch_broker(runners, stop, settings.kafka)
    except Exception as error:
        # A broker that restarted is the cause, whatever failed after it (stopping, the producer's
        # exit while the broker was still restoring): the worker says so and exits 75.
        lost = next((runner.broker_lost for runner in runners if runner.broker_lost), None)
        if lost is not None and not isinstance(error, BrokerDataLost):
            raise lost from error
        raise
    return runners


async def _watch_broker(runners: Sequence[StageRunner], stop: asyncio.Event, kafka: KafkaSettings) -> None:
    """Until ``stop``: raise once the broker restarted (a stage's follower or the producer saw it).

    faust reconnects to a restarted broker by itself (and starts over from offset 0 in its new, empty
    groups); the worker must stop instead, within about a second. A broker that cannot be reached is
    asked again (it may be restoring its archive) until it has been unreachable for
    ``kafka.unreachable_grace_s``.
    """
    producer = runners[0].producer if runners else None
    unreachable_since: float | None = None
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        lost = next((runner.broker_lost for runner in runners if runner.broker_lost), None)
        if lost is not None:
            raise lost
        failed = next((runner.halted for runner in runners if runner.halted), None)
        if failed is not None:
            raise failed
        if producer is None or stop.is_set():
            continue
        try:
            await producer.check_broker(force=True)
            unreachable_since = None
        except KafkaError as error:
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > kafka.unreachable_grace_s:
                raise
            log.warning("worker.broker_unreachable", error=repr(error))
