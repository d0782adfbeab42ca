"""The embedded broker restarts mid-round and forgets everything: the pipeline must not go on quietly.

Tansu keeps the log in memory, so a restart loses every topic, every committed offset and every
consumer group; it then auto-creates a topic, empty, as soon as a client asks for it. What the
pipeline does then (stages in one ``looptool worker`` process, curate in another, the trainer in a
third, round 1 under way):

- curate and the trainer follow their topics from offset 0 and notice that the broker is another one
  (its cluster id changed; without that, at the first fetch that reports a log end below what they
  had read, confirmed after ``bus.kafka.LOSS_CONFIRM_S``): they fold nothing from the new log, exit
  non-zero (``BrokerRestarted``, a ``BrokerDataLost``) and say in one line that the broker lost the
  run's events;
- no round is ever closed on the new broker: the round-closing singleton is gone, and a curate
  started again would find no open round there (D_1's manifest is gone with the rest);
- the stage worker stops too (its producer checks the broker's identity every second); what it
  still held may reach the auto-created topics before it does, where nothing can use it.

``looptool broker`` archives the topics and restores them (``test_durable_restart.py``); this is
the broker started without an archive (``--memory-only``, the tests' own embedded broker).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from bus.broker import EmbeddedBroker
from bus.kafka import BrokerDataLost
from looptool.config import Settings
from schemas.events import Event, SampleAdded
from streams.config import LoopSettings
from tests.faults.harness import RUN_ID, LoopRun, hand_checkpoint

MEMBERS = 40


async def test_a_broker_that_restarts_empty_mid_round_stops_the_round_loudly(
    fault_settings: Callable[..., Settings], fault_seeds: list[Event[SampleAdded]], tmp_path: Path
) -> None:
    settings = fault_settings(
        tmp_path, loop=LoopSettings(rounds=2, target_size=MEMBERS, expansions_per_seed=2)
    )
    run = LoopRun(settings, tmp_path)
    try:
        await run.open(fault_seeds)
        stages = run.start("stages", ["worker", "--stages", "probe,judge,relabel,expand,verify"])
        curate = run.start("curate", ["worker", "--stages", "curate"])
        trainer = run.start("trainer", ["train"])  # round 1's checkpoint is the hand one: it waits
        assert settings.policy.model_path is not None
        await run.publish([hand_checkpoint(RUN_ID, settings.policy.model_path)])
        # Mid-round: some verdicts exist and D_2 is not closed (only D_1's RoundClosed). How much of
        # D_1 the probe has done by then depends on the machine's speed: all of it, on a quiet one.
        await run.wait_until(lambda: run.watch.distinct("verdicts") >= 4, 300, "the first verdicts")
        before = {topic: run.watch.distinct(topic) for topic in ("probes", "verdicts", "rounds")}
        assert before["rounds"] == 1, run.describe()

        port = run.broker.port
        await asyncio.to_thread(run.broker.stop)
        run.broker = EmbeddedBroker(port=port)  # same address, empty memory
        await asyncio.to_thread(run.broker.start)

        def exited() -> bool:
            return all(s.process is not None and s.process.poll() is not None for s in (curate, trainer))

        # (The harness's own wait would stop at its watcher's BrokerDataLost: wait by hand.)
        deadline = time.monotonic() + 120
        while not exited() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert exited(), f"curate or the trainer still runs on the empty broker: {run.describe()}"
        records = await run.records()
        stages_running = stages.process is not None and stages.process.poll() is None
    finally:
        await run.close()

    # The singletons fail, non-zero, saying why in one line.
    for service in (curate, trainer):
        assert service.process is not None and service.process.returncode not in (0, None)
        log = service.log_path.read_text(errors="replace")
        errors = [line for line in log.splitlines() if line.startswith("looptool: error:")]
        assert len(errors) == 1 and "the broker lost the run's events" in errors[0], service.tail()
    # So does any other follower of the run (here the test's own watcher).
    assert run._follower is not None and isinstance(run._follower.exception(), BrokerDataLost)
    # Nothing closes a round on the new broker: no manifest and no member of D_2 ever appear there.
    assert not [e for e in records if e.event_type == "RoundClosed"]
    assert not [e for e in records if e.event_type == "CuratedSample"]
    print(
        f"\nbefore the restart: {before}; on the new broker afterwards: {len(records)} events "
        f"({sorted({e.event_type for e in records})}); stage worker still running: {stages_running}"
    )
