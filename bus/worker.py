"""Run stages as faust-streaming agents: one faust app (= one consumer group) per stage.

``looptool worker --stages probe,judge`` runs any subset of stages in one process; on a real Kafka
cluster each stage scales out by starting more workers for it (more members of that stage's group).
Each agent reads raw bytes, decodes them with the Avro codec (undecodable records are dead-lettered),
batches with ``take_events(n, within=t)`` so models see full batches, runs the stage, and waits for
the broker to acknowledge the outputs before the inputs are acknowledged (at-least-once). When a
dependency is down (:class:`~streams.stage.TransientError`) it retries the same batch with backoff
and consumes nothing new meanwhile: faust's flow control then pauses fetching, so no work piles up
in memory and nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import tempfile
from collections.abc import AsyncIterator, Sequence
from typing import Any

import faust
from aiokafka.structs import ConsumerRecord

from bus.config import KafkaSettings, RunSettings
from bus.kafka import BrokerDataLost, EventProducer, client_options, dead_letter_for, group_id_for
from bus.topics import topic_name
from common.logs import get_logger
from schemas.codec import EventDecodeError, default_codec
from schemas.events import Event
from streams.stage import Stage, TransientError

log = get_logger(__name__)


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


class StageRunner:
    """One stage as one faust app with one agent over the stage's input topics."""

    def __init__(self, stage: Stage, settings: RunSettings, producer: EventProducer, concurrency: int = 1):
        self.stage = stage
        self.settings = settings
        self.producer = producer
        self.processed = 0
        self.published = 0
        self.retries = 0
        self._actors: set[asyncio.Task[Any]] = set()
        # faust keeps per-app state on disk; ours is in memory, so a throwaway folder (not the cwd).
        self._datadir = tempfile.TemporaryDirectory(prefix=f"looptool-faust-{stage.name}-")
        self.app = faust.App(
            stage_group_id(settings.run_id, stage.name, producer.identity),
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
            async for batch in stream.take_events(self.stage.batch_size, within=self.stage.batch_within_s):
                events = [event for event in [await self._decode(item.message) for item in batch] if event]
                await self._process_until_done(events)
        except BrokerDataLost as error:
            # Not a crash of the stage: the worker stops for it (run_stages), with one line, not faust's
            # traceback of a crashed agent. The batch was not acknowledged; it is redone on the next start.
            log.warning("stage.broker_lost", stage=self.stage.name, error=str(error))
            await asyncio.Event().wait()  # until the worker cancels it

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
        self._datadir.cleanup()

    async def _decode(self, message: Any) -> Event[Any] | None:
        try:
            return default_codec().decode(message.value)
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

    async def _process_until_done(self, events: Sequence[Event[Any]]) -> None:
        delay = 0.5
        while True:
            try:
                outputs = await self.stage.process(events)
                break
            except TransientError as error:
                # Hold the batch (unacknowledged) and retry; faust stops fetching meanwhile.
                self.retries += 1
                log.warning("stage.paused", stage=self.stage.name, error=str(error), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        if outputs:
            await self.producer.send_all(outputs)
        self.processed += len(events)
        self.published += len(outputs)


@contextlib.asynccontextmanager
async def started_stages(
    settings: RunSettings, stages: Sequence[Stage], concurrency: int = 1
) -> AsyncIterator[list[StageRunner]]:
    """Every stage started on one shared producer (one faust app each); stopped in order on exit."""
    async with EventProducer(settings.kafka) as producer:
        runners = [StageRunner(stage, settings, producer, concurrency) for stage in stages]
        for stage in stages:
            await stage.start()
        try:
            await asyncio.gather(*(runner.app.start() for runner in runners))
            yield runners
        finally:
            # Agents are cancelled mid-batch on purpose; faust would log each as a crash.
            logging.getLogger("faust.agents.actor").setLevel(logging.CRITICAL)
            for runner in runners:
                await runner.stop()
            for stage in stages:
                await stage.close()


async def run_stages(
    settings: RunSettings, stages: Sequence[Stage], stop: asyncio.Event, concurrency: int = 1
) -> list[StageRunner]:
    """Start every stage, run until ``stop`` is set, then stop them in order."""
    logging.getLogger("faust").setLevel(logging.WARNING)
    async with started_stages(settings, stages, concurrency) as runners:
        log.info("worker.ready", stages=[s.name for s in stages], run_id=settings.run_id)
        producer = runners[0].producer if runners else None
        # faust reconnects to a restarted broker by itself (and starts over from offset 0 in its new,
        # empty groups); the worker must stop instead: raises BrokerRestarted within about a second.
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if producer is not None and not stop.is_set():
                await producer.check_broker(force=True)
    return runners
