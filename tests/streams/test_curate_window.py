"""The live curator's ledger (``Ledger(keep_events=False)``): it decides as a ledger that keeps
everything, and keeps only what its next decisions read, however many rounds the run goes on."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bus.topics import topic_for_event
from schemas.events import Event, RoundClosed
from streams.curate import CurateService, CurationPolicy, Ledger, next_round_events
from tests.streams.test_curate_logic import POLICY, RUN, RoundScript, held_by
from world import World
from world.simulated_run import SimulatedRun, simulate_run


@pytest.fixture(scope="module")
def long_run() -> SimulatedRun:
    """Seven rounds of the real stage logic (the judge, relabel, expand and verify stages, with
    unparseable answers and dead letters), each D_j of 30."""

    async def simulate() -> SimulatedRun:
        world = World(0)
        seeds = await world.samples(220, noise_rate=0.4, seed="curate-window")
        return await simulate_run("curate-window", world, seeds, rounds=7, target_size=30, k=2)

    return asyncio.run(simulate())


def by_curator(phase: Sequence[Event[Any]]) -> list[Event[Any]]:
    return [e for e in phase if e.producer.stage == "curate"]


class ScriptedLog:
    """The run's log as the live curator follows it: each round's work, then a caught-up poll (the
    curator decides and publishes), then the curator's own events coming back from the topics."""

    def __init__(self, run: SimulatedRun, stop: asyncio.Event):
        self.run_id = run.run_id
        self.phases = run.phases
        self.stop = stop
        self.sent: list[list[Event[Any]]] = []  # what the curator published, per poll
        self.logged: list[list[Event[Any]]] = []  # what the log holds from the curator there

    async def follow(self, topics: Any) -> AsyncIterator[list[Event[Any]]]:
        yield list(self.phases[0])  # the seeds and D_1 (`looptool curate --initial`)
        for phase in self.phases[1:]:
            work = [e for e in phase if e.producer.stage != "curate"]
            for start in range(0, len(work), 40):
                yield work[start : start + 40]
            sent = len(self.sent)
            yield []  # caught up: the curator decides
            if len(self.sent) == sent:
                self.sent.append([])
            self.logged.append(by_curator(phase))
            yield by_curator(phase)  # its events, read back (copies of what it folded)
        self.stop.set()
        yield []

    @asynccontextmanager
    async def publisher(self) -> AsyncIterator[Any]:
        log = self

        class Sink:
            async def send_all(self, events: list[Event[Any]]) -> None:
                log.sent.append(list(events))

        yield Sink()


def same_events(a: Sequence[Event[Any]], b: Sequence[Event[Any]]) -> bool:
    return [(e.event_id, e.payload) for e in a] == [(e.event_id, e.payload) for e in b]


def test_the_live_curator_re_emits_every_round_of_a_long_run_and_keeps_only_the_latest(
    long_run: SimulatedRun,
) -> None:
    """The curator service folds a seven-round run as it comes and composes D_2 ... D_7 itself: each
    equals the log's (ids and payloads). What it keeps after round 7: no event but the rounds'
    manifests, and the chains and members of the latest closed round only (the earlier rounds'
    members as ids). A ledger keeping every event held each round's chain, members and samples whole."""
    stop = asyncio.Event()
    log = ScriptedLog(long_run, stop)
    service = CurateService(log, long_run.policy)  # type: ignore[arg-type]
    asyncio.run(asyncio.wait_for(service.run(stop), 60))

    assert service.emitted_rounds == [2, 3, 4, 5, 6, 7]
    assert len(log.sent) == len(log.logged) == 7
    for sent, logged in zip(log.sent, log.logged, strict=True):
        assert same_events(sent, logged)

    ledger = service.ledger
    latest = max(ledger.closed)
    assert latest == 7
    held = held_by(ledger)
    events = [obj for obj in held if isinstance(obj, Event)]
    assert all(isinstance(e.payload, RoundClosed) for e in events), {type(e.payload).__name__ for e in events}
    assert set(ledger.member_events) == {latest} and len(ledger.member_events[latest]) == 30
    chains = [
        *ledger.probes.values(),
        *ledger.verdicts.values(),
        *ledger.corrections.values(),
        *(c for by_index in ledger.candidates.values() for c in by_index.values()),
        *ledger.verifications.values(),
        *ledger.expansions.values(),
    ]
    assert chains and {record.round for record in chains} == {latest}
    assert len(ledger.probes) <= 30 and len(ledger.verdicts) <= 30
    assert {round_ for round_, _ in ledger._tallies} <= {latest}
    assert sorted(ledger._members_before) == [1, 2, 3, 4, 5, 6]


def interleaved(events: Sequence[Event[Any]], seed: int) -> list[Event[Any]]:
    """The log as a restarted curator may read it: each topic in order, the topics interleaved at
    random, and some events twice (redeliveries)."""
    rng = random.Random(seed)
    topics: dict[str, list[Event[Any]]] = {}
    for event in events:
        topics.setdefault(topic_for_event(RUN, event.event_type), []).append(event)
    queues = [list(q) for q in topics.values()]
    out: list[Event[Any]] = []
    while queues:
        queue = rng.choice(queues)
        take = queue[: rng.randint(1, 60)]
        del queue[: len(take)]
        out.extend(take)
        out.extend(e for e in take if rng.random() < 0.05)
        queues = [q for q in queues if q]
    return out


@pytest.mark.parametrize("seed", range(3))
def test_a_restarted_live_curator_decides_as_a_full_ledger_whatever_order_the_topics_come_in(
    long_run: SimulatedRun, seed: int
) -> None:
    """A restart folds the whole log, the topics interleaved in any order: rounds are forgotten as
    their successors' manifests arrive, before those rounds' own work may have been read. The next
    round, the pool of fresh seeds and the deferred samples equal a full ledger's, folded in log order."""
    policy = dataclasses.replace(long_run.policy, max_round=None)
    full = Ledger()
    for event in long_run.events:
        full.add(event)
    live = Ledger(keep_events=False)
    for event in interleaved(long_run.events, seed):
        live.add(event)
    assert live.forgotten_before == max(live.closed) == 7
    expected = next_round_events(full, policy, long_run.run_id)
    assert expected and same_events(next_round_events(live, policy, long_run.run_id), expected)
    assert live.fresh_seeds() == full.fresh_seeds()
    assert live.deferred() == full.deferred()
    assert not live.samples and not live.members  # the whole events are not kept


def test_a_sample_deferred_in_a_forgotten_round_comes_back_to_the_pool() -> None:
    """A sample the judge panel deferred in round 1 (no quorum) that D_2 did not draw is still in the
    pool once round 1 is forgotten, also after late copies of round 1's events; round 1's status is
    no longer asked of the live ledger (it raises)."""
    script = RoundScript(seeds=60)
    kinds = script.play()
    events = []
    for event in script.events:
        if event.event_type == "Verdict" and event.payload.sample_id in kinds["BOTH_WRONG"]:
            payload = event.payload.model_copy(update={"verdict": "NO_QUORUM", "deferred": True})
            event = event.model_copy(update={"payload": payload})
        events.append(event)
    full, live = Ledger(), Ledger(keep_events=False)
    for ledger in (full, live):
        for event in [*script.seeds, *script.round1, *events]:
            ledger.add(event)
    policy = CurationPolicy(target_size=30, max_round=3, expansions_per_seed=2, fill="none")
    round2 = next_round_events(full, policy, RUN)
    assert same_events(next_round_events(live, policy, RUN), round2)
    drawn = {e.payload.sample_id for e in round2[:-1]}
    left_out = set(kinds["BOTH_WRONG"]) - drawn
    assert left_out  # a deferred sample D_2 did not draw
    for ledger in (full, live):
        for event in round2:
            ledger.add(event)
    assert live.forgotten_before == 2
    with pytest.raises(ValueError, match="forgotten"):
        live.status(1, POLICY.expansions_per_seed)
    for late in (False, True):
        if late:  # copies of round 1's work arrive again, in another order
            for event in random.Random(1).sample(events, len(events)):
                live.add(event)
        assert live.deferred() == full.deferred() >= left_out
        assert live.fresh_seeds() == full.fresh_seeds()
        assert left_out <= {sample.sample_id for sample in live.fresh_seeds()}
