"""The archived broker (``looptool broker``) SIGKILLed mid-seed and again mid-round: nothing is lost.

Two runs of round 1 with the real commands as child processes (``looptool broker`` with its archive,
``looptool seed`` for the world's seeds, ``curate --initial``, a stage worker and a curate worker),
round 1's checkpoint published by hand (the same event in both runs):

- an undisturbed reference;
- a run whose broker process is SIGKILLed (broker, archiver and Tansu die at once) twice: while
  ``looptool seed`` is publishing (it is frozen with SIGSTOP after its first acknowledged chunk, so the
  crash lands mid-way, and resumed once the broker is back), and mid-round once some verdicts exist.
  Each time ``looptool broker`` is started again on the same archive, every interrupted command must
  exit non-zero saying the broker restarted, what was acknowledged and what may be lost, and is then
  run again.

The disturbed run must close D_2 with the same members, manifest and derived events as the reference.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from looptool.config import Settings
from schemas.events import CheckpointPublished, Event
from streams.config import LoopSettings
from tests.broker_process import BrokerProcess
from tests.faults.accounting import account, check_round, compare_runs, first_copies, seed_outcomes
from tests.faults.harness import RUN_ID, LoopRun, hand_checkpoint, json_log_events
from tests.faults.test_kills import DERIVED, curated
from world.config import WorldSettings

MEMBERS = 40  # |D_1| and |D_2|
K = 2
STAGES = ["worker", "--stages", "probe,judge,relabel,expand,verify"]
CURATE = ["worker", "--stages", "curate"]
RESTARTED = 75  # looptool's exit code for "the broker restarted: run the command again"


@dataclass
class Outcome:
    records: list[Event[Any]]
    seconds: float
    notes: list[str] = field(default_factory=list)


def _settings(make: Callable[..., Settings], workdir: Path) -> Settings:
    return make(
        workdir,
        loop=LoopSettings(rounds=2, target_size=MEMBERS, expansions_per_seed=K),
        world=WorldSettings(seed=0, seed_dialogues=220, heldout_dialogues=0, noise_rate=0.3),
    )


def _restart_note(service_log: Path) -> str:
    """The one-line error the command printed when it stopped."""
    lines = [
        line for line in service_log.read_text(errors="replace").splitlines() if "looptool: error:" in line
    ]
    return lines[-1] if lines else ""


async def _run(
    settings: Settings, workdir: Path, checkpoint: Event[CheckpointPublished], *, disturb: bool
) -> Outcome:
    started = time.monotonic()
    broker = BrokerProcess(workdir / "archive", workdir / "logs")
    run = LoopRun(settings, workdir, broker=broker)
    notes: list[str] = []
    try:
        await run.start_broker()
        # --- seed ---------------------------------------------------------------------------------
        seed = run.start("seed", ["--log-level", "debug", "seed"])
        if disturb:
            assert seed.process is not None
            deadline = time.monotonic() + 120
            # Frozen right after its first acknowledged chunk: the crash lands in the middle.
            while not [e for e in json_log_events(seed.log_path) if e.get("event") == "seed.published"]:
                assert seed.process.poll() is None, seed.tail()
                assert time.monotonic() < deadline, seed.tail()
                await asyncio.sleep(0.01)
            seed.process.send_signal(signal.SIGSTOP)
            progress = [e for e in json_log_events(seed.log_path) if e.get("event") == "seed.published"][-1]
            assert progress["acknowledged"] < progress["total"], progress
            broker.kill()
            await asyncio.to_thread(broker.start)
            seed.process.send_signal(signal.SIGCONT)
            await run.finish("seed", 120)
            assert seed.process.returncode == RESTARTED, seed.tail()
            note = _restart_note(seed.log_path)
            assert "restarted" in note and "events acknowledged" in note and "may be lost" in note, note
            notes.append(f"seed, {progress['acknowledged']} of {progress['total']} acknowledged: {note}")
            seed = await run.run_command("seed-again", ["seed"])
        else:
            await run.finish("seed")
        assert seed.process is not None and seed.process.returncode == 0, seed.tail()
        opened = await run.run_command("open", ["curate", "--initial"])
        assert opened.process is not None and opened.process.returncode == 0, opened.tail()
        await run.publish([checkpoint])
        run.started = time.monotonic()
        run.rewatch()
        # --- round 1 ------------------------------------------------------------------------------
        stages = run.start("stages", STAGES)
        curate = run.start("curate", CURATE)
        if disturb:
            # Mid-round: the first probes and verdicts are out, D_2 is far from closed.
            await run.wait_until(lambda: run.watch.distinct("verdicts") >= 1, 300, "the first verdicts")
            before = {topic: run.watch.distinct(topic) for topic in ("probes", "verdicts", "verifications")}
            assert run.watch.closed(2) is None, run.describe()
            broker.kill()
            await asyncio.to_thread(broker.start)
            for service in (stages, curate):
                assert service.process is not None
                await run.finish(service.name, 120)
                assert service.process.returncode == RESTARTED, service.tail()
                note = _restart_note(service.log_path)
                assert "restarted" in note and "Run the same command again" in note, note
                notes.append(f"{service.name} (at {before}): {note}")
            run.rewatch()
            run.start("stages", STAGES)
            run.start("curate", CURATE)
        await run.wait_until(lambda: run.watch.closed(2) is not None, 600, "D_2")
        run.kill_all()
        records = await run.records()
    finally:
        await run.close()
    return Outcome(records, time.monotonic() - started, notes)


@pytest.mark.timeout(1500)
async def test_a_broker_crash_mid_seed_and_mid_round_changes_nothing_once_commands_run_again(
    fault_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    policy = _settings(fault_settings, tmp_path).policy.model_path
    assert policy is not None
    checkpoint = hand_checkpoint(RUN_ID, policy)
    reference = await _run(
        _settings(fault_settings, tmp_path / "reference"), tmp_path / "reference", checkpoint, disturb=False
    )
    disturbed = await _run(
        _settings(fault_settings, tmp_path / "disturbed"), tmp_path / "disturbed", checkpoint, disturb=True
    )
    print(f"\nreference {reference.seconds:.0f} s, disturbed {disturbed.seconds:.0f} s")
    for note in disturbed.notes:
        print("  " + note)

    check_round(reference.records, 1, K)
    check_round(disturbed.records, 1, K)
    # Every seed was published once (the same ids), and has the same outcome as in the reference.
    seeds = {e.event_id for e in first_copies(reference.records).values() if e.event_type == "SampleAdded"}
    assert seeds <= {e.event_id for e in disturbed.records if e.event_type == "SampleAdded"}
    outcomes = seed_outcomes(disturbed.records)
    assert not [s for s, o in outcomes.items() if "lost" in o]
    assert outcomes == seed_outcomes(reference.records)
    assert account(disturbed.records).duplicates == {}
    problems = compare_runs(disturbed.records, reference.records, event_types=DERIVED)
    assert problems == [], "\n".join(problems[:30])
    assert curated(disturbed.records, 2) == curated(reference.records, 2)
    closed = [e for e in first_copies(disturbed.records).values() if e.event_type == "RoundClosed"]
    ref_closed = [e for e in first_copies(reference.records).values() if e.event_type == "RoundClosed"]
    assert sorted((e.event_id, e.payload.content_hash) for e in closed) == sorted(
        (e.event_id, e.payload.content_hash) for e in ref_closed
    )
    print(f"events: {dict(Counter(e.event_type for e in first_copies(disturbed.records).values()))}")
