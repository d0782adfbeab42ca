"""Two workers of one stage in one consumer group share its partitions: nothing lost, nothing twice.

``looptool worker --stages relabel`` runs twice, as two processes, on a run whose topics have 4
partitions. Once the second has joined (the group is Stable with two members; the time that takes is
the rebalance time, reported), 80 LABEL_WRONG verdicts spread over the 4 partitions are published.
Every verdict must get exactly one LabelCorrected, written once: no input lost, no output repeated.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from bus.kafka import EventProducer, client_options, ensure_topics, replay
from bus.worker import stage_group_id
from looptool.config import Settings, write_config
from looptool.supervisor import Service
from schemas.events import Event, LabelCorrected, Verdict
from tests.foundation.events_factory import event_of, one_of_each

VERDICTS = 80
PARTITIONS = 4


def label_wrong_verdicts(run_id: str) -> list[Event[Verdict]]:
    template = next(p for p in one_of_each() if isinstance(p, Verdict))
    return [
        event_of(template.model_copy(update={"sample_id": f"s_{n:03d}", "probe_event_id": f"p{n}"}), run_id)
        for n in range(VERDICTS)
    ]


async def group_members(settings: Settings, group: str) -> tuple[str, int]:
    """(state, members) of a consumer group, as the broker describes it."""
    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
        [described] = response.groups
        return described[2], len(described[5])
    finally:
        await admin.close()


async def wait_for_group(settings: Settings, group: str, members: int, timeout_s: float) -> float:
    """Seconds until ``group`` is Stable with ``members`` members."""
    started = time.monotonic()
    while await group_members(settings, group) != ("Stable", members):
        assert time.monotonic() - started < timeout_s, f"group {group} never held {members} stable members"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def corrections(settings: Settings) -> list[Event[Any]]:
    found: list[Event[Any]] = []
    async for batch in replay(settings.kafka, settings.run_id, ["labels"]):
        found.extend(d.event for d in batch if isinstance(d.event.payload, LabelCorrected))
    return found


@pytest.mark.timeout(300)
async def test_two_workers_of_one_stage_share_partitions_without_loss_or_repeats(
    settings: Settings, tmp_path: Path, record_property: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run = settings
    assert run.kafka.partitions == PARTITIONS
    config = tmp_path / "looptool.toml"
    write_config(run, config)
    await ensure_topics(run.kafka, run.run_id)
    async with EventProducer(run.kafka) as producer:  # the group's name carries the broker's start
        group = stage_group_id(run.run_id, "relabel", producer.identity)
    workers = [
        Service(f"relabel-{n}", ["worker", "--stages", "relabel"], config, tmp_path / f"relabel-{n}.log")
        for n in (1, 2)
    ]
    try:
        workers[0].start()
        await wait_for_group(run, group, 1, timeout_s=90)
        workers[1].start()
        rebalance_s = await wait_for_group(run, group, 2, timeout_s=90)
        inputs = label_wrong_verdicts(run.run_id)
        async with EventProducer(run.kafka) as producer:
            await producer.send_all(inputs)
        deadline = time.monotonic() + 120
        while len({e.event_id for e in await corrections(run)}) < VERDICTS:
            for worker in workers:
                worker.check()
            assert time.monotonic() < deadline, f"only {len(await corrections(run))} corrections"
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # anything written twice would be on the topic by now
        state = await group_members(run, group)
        written = await corrections(run)
    finally:
        for worker in workers:
            worker.stop()
    by_input = {event.parent_ids[0] for event in written}
    assert by_input == {verdict.event_id for verdict in inputs}  # none lost
    assert len(written) == len({event.event_id for event in written}) == VERDICTS  # none written twice
    assert state == ("Stable", 2)  # both members held partitions while the work was done
    record_property("rebalance_s", round(rebalance_s, 2))
    with capsys.disabled():
        print(f"\n[consumer group] second worker joined and the group was stable after {rebalance_s:.1f} s")
