"""A realistic multi-round LoopTool run, produced in-process by the real stage logic.

Seeds come from the synthetic world (with label noise); each round a simulated policy answers the
probe (right more often as rounds go on, sometimes unparseable), and the real judge, relabel,
expand and verify stages process the results with the world's simulated judge, generator and
verifier; the Ledger closes the next round by Eq. 5. Events are created in causal order, so their
``produced_at`` stamps order them as a live run would.

The run comes in phases: phase 0 is the seeds and D_1; phase j is round j's checkpoint and work
and D_{j+1}. Publishing phase by phase lets a test snapshot the live store as of each round.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from common.seeding import seeded_rng
from schemas.events import (
    CheckpointPublished,
    CuratedSample,
    Event,
    Producer,
    RoundClosed,
    Scenario,
    make_event,
)
from streams.curate import CurationPolicy, Ledger, initial_round_events, next_round_events
from streams.expand import ExpandStage
from streams.ingest import sample_added
from streams.judge import JudgeStage
from streams.probe import probe_result
from streams.relabel import RelabelStage
from streams.roles import JudgeCase
from streams.verify import VerifyStage
from toolcall.parsing import render_action
from toolcall.prompts import DEFAULT_SCENARIOS
from world import World, WorldSample
from world.noise import DEFAULT_NOISE_MIX, add_noise
from world.simulation import SimulatedWorldGenerator, SimulatedWorldJudge, SimulatedWorldVerifier

TRAINER = Producer(stage="trainer", version="sim")


class FlakyJudge(SimulatedWorldJudge):
    """The world judge, but some cases (fixed by their id) always get an answer no parser can read."""

    async def ask(self, cases: Sequence[JudgeCase], attempt: int = 1) -> list[str]:
        answers = await super().ask(cases, attempt)
        return [
            "hmm, hard to say" if seeded_rng(case.case_id, "flaky").random() < 0.08 else answer
            for case, answer in zip(cases, answers, strict=True)
        ]


@dataclass
class SimulatedRun:
    run_id: str
    policy: CurationPolicy
    phases: list[list[Event[Any]]] = field(default_factory=list)

    @property
    def events(self) -> list[Event[Any]]:
        return [event for phase in self.phases for event in phase]

    def of_type(self, event_type: str) -> list[Event[Any]]:
        return [event for event in self.events if event.event_type == event_type]

    def round_closed(self, round_: int) -> Event[RoundClosed]:
        return next(e for e in self.of_type("RoundClosed") if e.payload.round == round_)

    def members(self, round_: int) -> list[Event[CuratedSample]]:
        return [e for e in self.of_type("CuratedSample") if e.payload.round == round_]


def policy_output(world: World, member: Event[CuratedSample], accuracy: float) -> tuple[str, list[float]]:
    """What the simulated policy answers for a member: the truth with probability ``accuracy``."""
    p = member.payload
    rng = seeded_rng(member.event_id, "simulated-policy")
    truth = world.truth(p.tools, p.messages)
    draw = rng.random()
    if draw < 0.05:
        text = '<tool_call>\n{"name": "' + (p.tools[0].name if p.tools else "x") + '", "arguments": {'
    elif draw < 0.05 + accuracy:
        text = render_action(truth)
    else:
        noisy = add_noise(truth, p.tools, DEFAULT_NOISE_MIX, rng) if truth.calls else None
        text = render_action(noisy[0]) if noisy else "I am not able to help with that."
    tokens = 6 + rng.randrange(18)
    logprobs = [math.log(rng.uniform(0.25, 0.98)) for _ in range(tokens)]
    return text, logprobs


async def simulate_run(
    run_id: str,
    world: World,
    seeds: Sequence[WorldSample],
    *,
    rounds: int = 3,
    target_size: int = 40,
    k: int = 2,
    accuracy: Sequence[float] = (0.45, 0.6, 0.75, 0.85),
) -> SimulatedRun:
    policy = CurationPolicy(target_size=target_size, max_round=rounds, expansions_per_seed=k)
    run = SimulatedRun(run_id, policy)
    ledger = Ledger()
    seen: set[str] = set()
    seed_events = []
    for index, item in enumerate(seeds):
        event = sample_added(
            item.sample,
            run_id=run_id,
            origin="seed",
            round_=0,
            source_format="world",
            source_ref=f"world:{index}",
            metadata={"noise": item.noise} if item.noise else {},
        )
        if event.payload.sample_id not in seen:
            seen.add(event.payload.sample_id)
            seed_events.append(event)
    for event in seed_events:
        ledger.add(event)
    opening = initial_round_events(ledger, policy, run_id)
    for event in opening:
        ledger.add(event)
    run.phases.append([*seed_events, *opening])

    scenarios = [Scenario(**s) for s in DEFAULT_SCENARIOS]
    judge = JudgeStage(run_id, FlakyJudge(world, error_rate=0.1))
    relabel = RelabelStage(run_id)
    expand = ExpandStage(run_id, SimulatedWorldGenerator(world, defect_rate=0.25), scenarios, k=k)
    verify = VerifyStage(run_id, SimulatedWorldVerifier(world, error_rate=0.05))
    previous_checkpoint: str | None = None
    for round_ in range(1, rounds + 1):
        await asyncio.sleep(0.002)  # keep phases apart on the clock even on a coarse one
        checkpoint = make_event(
            CheckpointPublished(
                new_checkpoint_id=f"{run_id}-ckpt-{round_}",
                parent_checkpoint_id=previous_checkpoint,
                round=round_,
                step=10 * round_,
                final=True,
                uri=f"sim://{run_id}/ckpt-{round_}",
                backend="simulation",
                metrics={"critic/score/mean": accuracy[min(round_ - 1, len(accuracy) - 1)]},
            ),
            run_id=run_id,
            producer=TRAINER,
        )
        previous_checkpoint = checkpoint.payload.new_checkpoint_id
        rate = accuracy[min(round_ - 1, len(accuracy) - 1)]
        probes = [
            probe_result(m, checkpoint, *policy_output(world, m, rate), high_ppl_threshold=None)
            for m in sorted(ledger.members[round_].values(), key=lambda e: e.payload.sample_id)
        ]
        judged = await judge.process(probes)
        verdicts = [e for e in judged if e.event_type == "Verdict"]
        corrections = await relabel.process(verdicts)
        candidates = await expand.process(verdicts)
        verified = await verify.process(candidates)
        phase = [checkpoint, *probes, *judged, *corrections, *candidates, *verified]
        for event in phase:
            ledger.add(event)
        if round_ < rounds:
            closing = next_round_events(ledger, policy, run_id)
            if not closing:
                raise AssertionError(f"round {round_} did not complete: {ledger.status(round_, k)}")
            for event in closing:
                ledger.add(event)
            phase += closing
        run.phases.append(phase)
    return run
