"""SIGKILL of every stage worker and of the trainer mid-round: the round's outcome does not change.

Two runs of round 1 on about 300 world seeds, each on its own embedded broker with the same run id
and the very same SampleAdded events: an undisturbed reference, and a run in which each of the six
stages (each in its own ``looptool worker`` process) and the trainer is SIGKILLed once, at a random
point of its own work, and started again. Judge, generator and verifier are the world's
simulations; the policy is the tiny world policy of the tests; the trainer is the real CPU GRPO
service, trained for a few steps. The kill points are drawn from ``LOOPTOOL_FAULT_SEED`` (printed
on failure; random when unset) as fractions of what the reference run's stage published.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from looptool.config import Settings
from schemas.events import Event, SampleAdded
from tests.faults.accounting import account, check_round, compare_runs, first_copies, seed_outcomes
from tests.faults.conftest import K
from tests.faults.harness import (
    OUTPUT_TOPIC,
    RUN_ID,
    STAGES,
    TOPIC_OF_TYPE,
    Kill,
    LoopRun,
    Trigger,
    hand_checkpoint,
)

DERIVED = (
    "SampleAdded",
    "CuratedSample",
    "RoundClosed",
    "ProbeResult",
    "Verdict",
    "LabelCorrected",
    "ExpansionCandidate",
    "VerificationResult",
    "DeadLetter",
)
# Where each service's progress shows, and the topic it reads (a fallback when it publishes little).
INPUT_TOPIC = {
    "probe": "curated",
    "judge": "probes",
    "relabel": "verdicts",
    "expand": "verdicts",
    "verify": "candidates",
    "curate": "verifications",
}


@dataclass
class RunResult:
    records: list[Event[Any]]
    kills: list[Kill] = field(default_factory=list)
    starts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


async def run_round_one(
    settings: Settings,
    seeds: Sequence[Event[SampleAdded]],
    workdir: Path,
    *,
    trainer: bool,
    triggers: Sequence[Trigger] = (),
    timeout_s: float = 400.0,
) -> RunResult:
    """Run every stage (one process each) and the trainer (or a hand checkpoint) until D_2 is closed."""
    started = time.monotonic()
    run = LoopRun(settings, workdir)
    try:
        await run.open(seeds)
        for stage in STAGES:
            run.start_stage(stage)
        if trainer:
            run.start("trainer", ["train"])
        else:
            assert settings.policy.model_path is not None
            await run.publish([hand_checkpoint(RUN_ID, settings.policy.model_path)])
        kills = await run.drive(lambda: run.watch.closed(2) is not None, triggers, timeout_s, "D_2")
        run.kill_all()  # the log is final: nothing more can be appended to it
        records = await run.records()
    finally:
        await run.close()
    return RunResult(records, kills, run.starts, time.monotonic() - started)


def kill_plan(reference: list[Event[Any]], rng: random.Random, *, trainer: bool) -> list[Trigger]:
    """One trigger per service: a random fraction of what it published in the reference run."""
    published = Counter(TOPIC_OF_TYPE[e.event_type] for e in first_copies(reference).values())
    triggers = []
    for stage in STAGES:
        topic = OUTPUT_TOPIC[stage] if stage != "curate" else INPUT_TOPIC[stage]
        if published[topic] < 4:  # too little output to land a kill inside it: watch its input
            topic = INPUT_TOPIC[stage]
        triggers.append(Trigger(stage, topic, max(1, round(rng.uniform(0.15, 0.65) * published[topic]))))
    if trainer:
        # After its first intermediate checkpoint of round 1 (of 16 steps): mid-training.
        triggers.append(Trigger("trainer", "checkpoints", 1))
    return triggers


def final_checkpoints(records: list[Event[Any]], round_: int) -> list[Event[Any]]:
    return [
        e
        for e in first_copies(records).values()
        if e.event_type == "CheckpointPublished" and e.payload.round == round_ and e.payload.final
    ]


def curated(records: list[Event[Any]], round_: int) -> set[tuple[str, str]]:
    """D_round as (sample id, content hash) pairs."""
    return {
        (e.payload.sample_id, e.payload.content_hash)
        for e in first_copies(records).values()
        if e.event_type == "CuratedSample" and e.payload.round == round_
    }


def attempt_of(checkpoint_id: str) -> str:
    return checkpoint_id.rsplit("-", 1)[1]


@pytest.mark.timeout(900)
async def test_sigkill_of_each_stage_and_the_trainer_changes_nothing(
    fault_settings: Callable[..., Settings], fault_seeds: list[Event[SampleAdded]], tmp_path: Path
) -> None:
    # From the OS: the global generator is seeded alike on every pytest run here.
    seed = int(os.environ.get("LOOPTOOL_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    reference = await run_round_one(
        fault_settings(tmp_path / "reference"), fault_seeds, tmp_path / "reference", trainer=True
    )
    plan = kill_plan(reference.records, random.Random(seed), trainer=True)
    disturbed = await run_round_one(
        fault_settings(tmp_path / "disturbed"),
        fault_seeds,
        tmp_path / "disturbed",
        trainer=True,
        triggers=plan,
    )
    context = f"LOOPTOOL_FAULT_SEED={seed}; kills: {disturbed.kills}"
    published = Counter(TOPIC_OF_TYPE[e.event_type] for e in first_copies(reference.records).values())
    triggers = {t.service: t for t in plan}
    print(
        f"\n{context.split(';')[0]}: reference {reference.seconds:.0f} s, disturbed {disturbed.seconds:.0f} s"
    )
    for kill in disturbed.kills:
        trigger, output = triggers[kill.service], OUTPUT_TOPIC.get(kill.service, "checkpoints")
        print(
            f"  SIGKILL {kill.service} at {kill.at_s:.0f} s ({trigger.topic} >= {trigger.threshold}): "
            f"{kill.output_at_kill} {output} then, {published[output]} in the reference"
        )

    # Every service was killed once, mid-round, and started again.
    assert sorted(k.service for k in disturbed.kills) == sorted([*STAGES, "trainer"]), context
    assert all(disturbed.starts[k.service] == 2 for k in disturbed.kills), context

    # Both runs: round 1 complete (every member probed, every mismatch judged, ...), D_2 equal to its
    # manifest (ids, content hashes, counts) with no sample twice.
    check_round(reference.records, 1, K)
    check_round(disturbed.records, 1, K)

    # The trainer: the killed attempt published intermediate checkpoints, never a final one; the
    # retrained round's final checkpoint is the only final one, and every probe used it.
    (ref_final,) = final_checkpoints(reference.records, 1)
    (final,) = final_checkpoints(disturbed.records, 1)
    checkpoints = [
        e for e in first_copies(disturbed.records).values() if e.event_type == "CheckpointPublished"
    ]
    killed = attempt_of(checkpoints[0].payload.new_checkpoint_id)  # the attempt published first
    assert attempt_of(final.payload.new_checkpoint_id) != killed, context
    assert not [
        e for e in checkpoints if attempt_of(e.payload.new_checkpoint_id) == killed and e.payload.final
    ]
    probes = [e for e in disturbed.records if e.event_type == "ProbeResult"]
    assert {p.checkpoint_id for p in probes} == {final.payload.new_checkpoint_id}

    # Nothing lost, nothing duplicated: each seed has one outcome, the same as in the reference.
    outcomes = seed_outcomes(disturbed.records)
    assert set(outcomes) == {e.payload.sample_id for e in fault_seeds}
    assert not [s for s, o in outcomes.items() if "lost" in o], context
    assert outcomes == seed_outcomes(reference.records), context
    counts = account(disturbed.records)
    assert counts.duplicates == {}, context

    # The same events, id by id and field by field (checkpoint ids differ by their attempt token).
    rename = {
        final.payload.new_checkpoint_id: ref_final.payload.new_checkpoint_id,
        final.event_id: ref_final.event_id,
    }
    problems = compare_runs(disturbed.records, reference.records, event_types=DERIVED, rename=rename)
    assert problems == [], f"{context}\n" + "\n".join(problems[:30])
    assert curated(disturbed.records, 2) == curated(reference.records, 2)
    closed = next(e for e in disturbed.records if e.event_type == "RoundClosed" and e.payload.round == 2)
    ref_closed = next(e for e in reference.records if e.event_type == "RoundClosed" and e.payload.round == 2)
    assert closed.event_id == ref_closed.event_id
    assert closed.payload.content_hash == ref_closed.payload.content_hash
    print(
        f"outcomes: {Counter(outcomes.values())}; events: {dict(counts.distinct)}; "
        f"redelivered copies: {counts.copies}; dead letters: {counts.dead_letters}"
    )
