"""The judge and the generator against an HTTP endpoint that fails: they pause, retry, lose nothing.

``looptool worker --stages judge`` (then ``--stages expand``) runs as its own process with a
``[judge]`` (``[generator]``) endpoint: a small timeout, one retry per request, and a circuit
breaker that opens after two failed requests. The endpoint (:class:`FlakyJudgeEndpoint`) answers
HTTP 500s, then garbage bodies, then holds requests past the client's timeout, then refuses
connections (the generator sees 500s and refusals); in each mode the test waits for a request to
reach it (a refused one cannot) and for the stage to pause after it. While it fails, the stage
publishes nothing, acknowledges nothing and takes no input beyond its first batch. Then the
endpoint recovers and every input must get exactly one output.

The judge's inputs are probe mismatches only an LLM can decide (the model answered in words where
the label calls a tool, both valid); the generator's are the judge's verdicts (all error seeds).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from bus.kafka import client_options
from bus.topics import partitions_for, spec_of, topic_name
from bus.worker import stage_group_id
from looptool.config import Settings
from looptool.preflight import PROBE_MESSAGE
from looptool.supervisor import Service
from schemas.events import Event, SampleAdded
from streams.config import LoopSettings
from streams.expand import ExpandStage
from streams.judge import JudgeStage
from streams.probe import probe_result
from tests.faults.accounting import account, first_copies
from tests.faults.endpoint import FlakyJudgeEndpoint, serve_flaky
from tests.faults.harness import RUN_ID, TOPIC_OF_TYPE, LoopRun, hand_checkpoint, json_log_events

MEMBERS = 60
K = 2
ENDPOINT = {"timeout_s": 1.0, "max_retries": 1, "max_concurrency": 2}
BREAKER = {"breaker_threshold": 2, "breaker_cooldown_s": 1.0}
# What one stuck batch may hold: the first batch of JudgeStage and of ExpandStage (× k prompts each).
JUDGE_BATCH_PROMPTS = JudgeStage.first_batch_size or JudgeStage.batch_size
EXPAND_BATCH_PROMPTS = (ExpandStage.first_batch_size or ExpandStage.batch_size) * K


async def committed(settings: Settings, group: str, topic: str) -> int:
    """Sum of the offsets ``group`` committed on ``topic``: the records it acknowledged as done."""
    full = topic_name(settings.run_id, topic)
    consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **client_options(settings.kafka))
    await consumer.start()
    try:
        offsets = [
            await consumer.committed(TopicPartition(full, partition))
            for partition in range(partitions_for(spec_of(topic), settings.kafka))
        ]
    finally:
        await consumer.stop()
    return sum(offset or 0 for offset in offsets)


def logged(service: Service, name: str) -> list[dict[str, Any]]:
    return [record for record in json_log_events(service.log_path) if record.get("event") == name]


async def fail_through(
    run: LoopRun,
    endpoint: FlakyJudgeEndpoint,
    service: Service,
    modes: Sequence[str],
    *,
    stage: str,
    source: str,
    output: str,
    batch_prompts: int,
) -> list[str]:
    """Fail the endpoint in each mode until ``service`` paused on it; check it held back meanwhile.

    Returns the prompts the endpoint received during the outage.
    """
    first_prompt = len(endpoint.prompts)
    outputs_before = run.watch.distinct(output)
    for mode in modes:
        await endpoint.set_mode(mode)
        if mode != "down":  # a refused connection never reaches the endpoint's counters
            requests = endpoint.requests
            await run.wait_until(lambda r=requests: endpoint.requests > r, 90, f"a {stage} request ({mode})")
        paused = len(logged(service, "stage.paused"))
        await run.wait_until(
            lambda p=paused: len(logged(service, "stage.paused")) > p, 90, f"{stage} to pause ({mode})"
        )
        # Backpressure: nothing published, nothing acknowledged, no input taken beyond one batch.
        assert run.watch.distinct(output) == outputs_before and run.watch.distinct("deadletter") == 0
        assert (
            await committed(run.settings, stage_group_id(RUN_ID, stage, run.broker.cluster_id), source) == 0
        )
        # The worker's preflight asks its one-token question too; it is not a stage's input.
        outage = [prompt for prompt in endpoint.prompts[first_prompt:] if prompt != PROBE_MESSAGE]
        assert len(set(outage)) <= batch_prompts, f"{stage} moved on past its first batch"
    return [prompt for prompt in endpoint.prompts[first_prompt:] if prompt != PROBE_MESSAGE]


async def recover(
    run: LoopRun, endpoint: FlakyJudgeEndpoint, *, stage: str, source: str, output: str, expected: int
) -> None:
    """Let the endpoint answer again; wait until every input is answered and acknowledged."""
    await endpoint.set_mode("ok")
    await run.wait_until(lambda: run.watch.distinct(output) >= expected, 150, f"every {stage} output")
    records = sum(TOPIC_OF_TYPE[e.event_type] == source for e in run.watch.records)
    group = stage_group_id(RUN_ID, stage, run.broker.cluster_id)
    for _ in range(120):  # faust commits every few seconds
        if await committed(run.settings, group, source) == records:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the {stage} group did not acknowledge all {records} records of {source}")


def check_backoff(service: Service) -> dict[str, Any]:
    """Bounded retries per request, exponential pauses of the stage, a breaker that opened and closed."""
    records = json_log_events(service.log_path)
    retries = [r for r in records if r.get("event") == "openai.retry"]
    assert retries and all(r["attempt"] <= ENDPOINT["max_retries"] for r in retries)
    pauses = [r["retry_in_s"] for r in records if r.get("event") == "stage.paused"]
    assert pauses == [min(0.5 * 2**i, 30.0) for i in range(len(pauses))]
    states = [r["state"] for r in records if r.get("event") == "openai.circuit"]
    assert "opened" in states and states[-1] == "closed"
    return {"retries": len(retries), "pauses": pauses, "circuit": states}


@pytest.mark.timeout(420)
async def test_judge_and_generator_endpoint_failures_pause_the_stage_and_lose_nothing(
    fault_settings: Callable[..., Settings], fault_seeds: list[Event[SampleAdded]], tmp_path: Path
) -> None:
    base = fault_settings(tmp_path, loop=LoopSettings(rounds=2, target_size=MEMBERS, expansions_per_seed=K))
    async with serve_flaky(FlakyJudgeEndpoint(mode="500", hold_s=30.0)) as endpoint:
        config = {"base_url": endpoint.base_url, "model": "flaky", **ENDPOINT, **BREAKER}
        run = LoopRun(base, tmp_path, extra_config={"judge": config, "generator": config})
        try:
            await run.open(fault_seeds)
            await run.wait_until(lambda: run.watch.distinct("curated") >= MEMBERS, 60, "D_1")
            checkpoint = hand_checkpoint(RUN_ID, tmp_path)
            members = [e for e in run.watch.first().values() if e.event_type == "CuratedSample"]
            probes = [
                probe_result(m, checkpoint, "Sorry, no tool fits that.", [-0.5] * 6, high_ppl_threshold=None)
                for m in members
            ]
            probes = [p for p in probes if not p.payload.matched]
            assert len(probes) > JUDGE_BATCH_PROMPTS  # inputs beyond one batch: moving on would show
            await run.publish(probes)

            judge = run.start_stage("judge")
            judge_outage = await fail_through(
                run,
                endpoint,
                judge,
                ("500", "garbage", "timeout", "down"),
                stage="judge",
                source="probes",
                output="verdicts",
                batch_prompts=JUDGE_BATCH_PROMPTS,
            )
            judge_requests = endpoint.requests
            await recover(
                run, endpoint, stage="judge", source="probes", output="verdicts", expected=len(probes)
            )

            # The generator: its inputs (the verdicts) are all there before it starts, and it fails.
            await endpoint.set_mode("500")
            expand = run.start_stage("expand")
            expand_outage = await fail_through(
                run,
                endpoint,
                expand,
                ("500", "down"),
                stage="expand",
                source="verdicts",
                output="candidates",
                batch_prompts=EXPAND_BATCH_PROMPTS,
            )
            await recover(
                run,
                endpoint,
                stage="expand",
                source="verdicts",
                output="candidates",
                expected=K * len(probes),
            )
            run.kill_all()
            records = await run.records()
        finally:
            await run.close()

    # Nothing lost, nothing twice: one verdict per probe, k candidates per verdict, no dead letter.
    events = list(first_copies(records).values())
    verdicts = [e for e in events if e.event_type == "Verdict"]
    assert Counter(v.payload.probe_event_id for v in verdicts) == {p.event_id: 1 for p in probes}
    assert all(v.payload.decided_by == "judge" and v.payload.judge_model == "flaky" for v in verdicts)
    candidates = Counter(e.payload.verdict_event_id for e in events if e.event_type == "ExpansionCandidate")
    assert candidates == {v.event_id: K for v in verdicts}
    counts = account(records)
    assert counts.dead_letters == 0 and counts.duplicates == {}

    judged, expanded = check_backoff(judge), check_backoff(expand)
    print(
        f"\njudge: {len(probes)} probes; outage: {judge_requests} requests on {len(set(judge_outage))} "
        f"distinct prompts; {judged}\nexpand: {len(verdicts)} verdicts; outage: {len(expand_outage)} "
        f"requests on {len(set(expand_outage))} distinct prompts; {expanded}\n"
        f"verdicts {len(verdicts)}, candidates {sum(candidates.values())}, copies {counts.copies}"
    )
