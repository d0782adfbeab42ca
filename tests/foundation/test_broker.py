"""The embedded broker: readiness, topic layout, and no orphan process whatever happens to us."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bus.broker import EmbeddedBroker
from bus.config import KafkaSettings
from bus.kafka import KafkaSetupError, ensure_topics
from bus.topics import TOPICS, TopicError, all_topics, topic_name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie counts as gone: it no longer serves anything.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_start_stop_leaves_no_process() -> None:
    broker = EmbeddedBroker()
    broker.start()
    pid = broker.pid
    assert pid is not None and _alive(pid)
    broker.stop()
    broker.stop()  # idempotent
    assert not _alive(pid)


@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_broker_dies_with_the_process_that_started_it(kill: signal.Signals) -> None:
    """Even a SIGKILLed parent (a test run killed mid-way) leaves no orphan broker."""
    script = (
        "import time, sys\n"
        "from bus.broker import EmbeddedBroker\n"
        "b = EmbeddedBroker(); b.start(); print('PID', b.pid, flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    line = next(line for line in parent.stdout if line.startswith("PID "))
    broker_pid = int(line.split()[1])
    assert _alive(broker_pid)
    parent.send_signal(kill)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(broker_pid)


async def test_topics_are_created_idempotently_with_the_catalog_layout(settings) -> None:
    created = await ensure_topics(settings.kafka, settings.run_id)
    assert created == all_topics(settings.run_id)
    assert await ensure_topics(settings.kafka, settings.run_id) == created
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(created)}
    finally:
        await admin.close()
    for spec in TOPICS:
        expected = settings.kafka.partitions if spec.per_sample else 1
        assert described[topic_name(settings.run_id, spec.name)] == expected


async def test_existing_topic_with_other_partitions_fails_loudly(settings) -> None:
    await ensure_topics(settings.kafka, settings.run_id)
    other = KafkaSettings(bootstrap_servers=settings.kafka.bootstrap_servers, partitions=2)
    with pytest.raises(KafkaSetupError, match="partitions"):
        await ensure_topics(other, settings.run_id)


async def test_an_existing_topic_that_expires_events_is_refused(settings) -> None:
    """A run's topics created first by someone else (an administrator, the cluster's auto-creation)
    with a finite retention would delete the run's record, and a lagging stage or store would skip
    what expired without a word (their groups reset to the earliest offset)."""
    samples = topic_name(settings.run_id, "samples")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(samples, settings.kafka.partitions, 1, topic_configs={"retention.ms": "604800000"})]
        )
    finally:
        await admin.close()
    with pytest.raises(
        KafkaSetupError, match=rf"topic {samples} has retention.ms=604800000: .* set it to -1"
    ):
        await ensure_topics(settings.kafka, settings.run_id)
    expiring = settings.kafka.model_copy(update={"topic_retention_ms": 604800000})
    assert samples in await ensure_topics(expiring, settings.run_id)  # accepted when asked for


@pytest.mark.parametrize("bad", ["", "a.b", "../etc", "x" * 101, "sp ace", "é"])
def test_topic_names_reject_invalid_run_ids(bad: str) -> None:
    with pytest.raises(TopicError):
        topic_name(bad, "samples")


def test_unknown_topic_is_rejected() -> None:
    with pytest.raises(TopicError, match="unknown topic"):
        topic_name("run", "nope")
