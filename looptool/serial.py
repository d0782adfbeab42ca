"""The paper's Algorithm 1, strictly serial, in one process: the same stages, curation and trainer.

Each round waits for the previous phase to finish, as the paper runs it: curate D_j, train on it,
probe every member with the round's final checkpoint, judge the mismatches, relabel, expand, verify,
then curate D_{j+1}. The stage objects are the ones the streaming worker runs (their ``process``
called directly, no Kafka), so the events, ids and decisions are the same; the events can also be
published, so ``looptool stats``/``replay`` work on a serial run.

Used by the efficacy benchmark (its arms) and as the serial baseline of the streaming benchmark.
Arms:

- ``loop``: the full loop (JGLV, EDDE, high-PPL, seed-new schedule);
- ``no_jglv``: every mismatch is treated as PRED_WRONG (no judge, labels never corrected), the rest
  as in ``loop`` (the paper's "w/o JGLV" ablation);
- ``static``: every round trains on seeds only, never probed or curated by the loop (the paper's
  "w/o iterations"): D_j is a fresh subset of D_seed of the same size;
- ``no_edde``: no error-driven expansion (the paper's "Remove EDDE"): error seeds are not expanded,
  so D_{j+1} is ES, then HPPL, then seeds;
- ``no_hppl``: high-perplexity samples are replaced by as many correctly answered samples drawn at
  random (``CurationPolicy.hppl_selection = "random"``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bus.kafka import EventProducer
from common.logs import get_logger
from looptool.config import Settings
from schemas.events import (
    CheckpointPublished,
    CuratedSample,
    Event,
    Producer,
    derived_event_id,
    make_event,
)
from streams.curate import (
    CurationPolicy,
    Ledger,
    compose_round,
    initial_round_events,
    next_round_events,
    round_events,
)
from streams.judge import JudgeStage
from streams.stage import Stage
from trainer.base import TrainerBackend
from trainer.dataset import round_dataset

log = get_logger(__name__)
Arm = Literal["loop", "static", "no_jglv", "no_edde", "no_hppl"]
ARMS: tuple[str, ...] = ("loop", "static", "no_jglv", "no_edde", "no_hppl")
PRODUCER = Producer(stage="serial", version="1")


@dataclass
class SerialRound:
    round: int
    members: list[CuratedSample]
    checkpoint_path: Path
    train_s: float
    loop_s: float = 0.0  # probe, judge, relabel, expand, verify and curate
    metrics: dict[str, float] = field(default_factory=dict)


class _NoJudge:
    model_name = ""

    async def ask(self, cases: Sequence[Any], attempt: int = 1) -> list[str]:
        raise AssertionError("the ablation never asks a judge")


class AblationJudge(JudgeStage):
    """``no_jglv``: every mismatch is a PRED_WRONG (no judge call, no relabel ever follows)."""

    def __init__(self, run_id: str):
        super().__init__(run_id, _NoJudge())

    async def handle(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        return [
            self._verdict(
                probe, "PRED_WRONG", "ablation", analysis="ablation: every mismatch is a model error"
            )
            for probe in events
        ]


class SerialLoop:
    """Runs the rounds of one arm; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        policy: CurationPolicy,
        *,
        stages: dict[str, Stage],
        trainer: TrainerBackend,
        work_dir: Path,
        arm: Arm = "loop",
        warm_start: Any = None,
        producer: EventProducer | None = None,
    ):
        """``stages`` maps probe/judge/relabel/expand/verify to stage objects; ``warm_start`` is
        called as ``warm_start(dataset, init_model, out_dir) -> Path`` before round 1's training."""
        self.settings = settings
        self.policy = policy
        self.stages = stages
        self.trainer = trainer
        self.work_dir = work_dir
        self.arm = arm
        self.warm_start = warm_start
        self.producer = producer
        self.ledger = Ledger()
        self.events: list[Event[Any]] = []
        if arm == "no_jglv":
            self.stages = {**stages, "judge": AblationJudge(settings.run_id)}
        elif arm == "no_edde":  # no candidate is ever made, so none is awaited before curation
            self.policy = dataclasses.replace(policy, expansions_per_seed=0)
        elif arm == "no_hppl":
            self.policy = dataclasses.replace(policy, hppl_selection="random")

    async def _emit(self, events: Sequence[Event[Any]]) -> None:
        for event in events:
            self.ledger.add(event)
        self.events.extend(events)
        if self.producer is not None and events:
            await self.producer.send_all(events)

    def _next_dataset(self, round_: int) -> list[Event[Any]]:
        if round_ == 1:
            return initial_round_events(self.ledger, self.policy, self.settings.run_id)
        if self.arm == "static":
            fresh = self.ledger.fresh_seeds()
            members = compose_round(round_, None, fresh, self.policy, self.settings.run_id)
            short = self.policy.target_size - len(members)
            if short > 0:  # D_seed is used up: static training reuses it, as further epochs would
                unused = {item.sample_id for item in fresh}
                seen = [
                    self.ledger.pool_sample(sample_id)
                    for sample_id, added in sorted(self.ledger.samples.items())
                    if added.payload.origin == "seed" and sample_id not in unused
                ]
                policy = dataclasses.replace(self.policy, target_size=short)
                members += compose_round(round_, None, seen, policy, self.settings.run_id)
            previous = self.ledger.closed.get(round_ - 1)
            return round_events(round_, members, self.policy, self.settings.run_id, previous)
        events = next_round_events(self.ledger, self.policy, self.settings.run_id)
        if not events:
            raise RuntimeError(f"round {round_ - 1} is not complete: {self.ledger.status(round_ - 1)}")
        return events

    async def run(self, seeds: Sequence[Event[Any]], initial_model: Path, rounds: int) -> list[SerialRound]:
        await self._emit(list(seeds))
        model = initial_model
        results = []
        for round_ in range(1, rounds + 1):
            started = time.monotonic()
            curated = self._next_dataset(round_)
            await self._emit(curated)
            manifest = curated[-1]
            dataset = round_dataset(manifest, curated, self.settings.loop.current_time)
            out_dir = self.work_dir / f"round-{round_:03d}"
            init = model
            if round_ == 1 and self.warm_start is not None:
                init = await asyncio.to_thread(self.warm_start, dataset, model, out_dir / "sft")
            info = await asyncio.to_thread(
                self.trainer.train_round, dataset, init_model=init, out_dir=out_dir
            )
            model = info.path
            trained = time.monotonic()
            checkpoint = make_event(
                CheckpointPublished(
                    new_checkpoint_id=f"{self.settings.run_id}-r{round_}-s{info.step}",
                    round=round_,
                    step=info.step,
                    final=True,
                    uri=str(Path(info.path).resolve()),
                    backend=self.trainer.name,
                    metrics={k: float(v) for k, v in info.metrics.items()},
                    wall_time_s=info.wall_time_s,
                ),
                run_id=self.settings.run_id,
                producer=PRODUCER,
                event_id=derived_event_id([manifest.event_id], "train"),
                parent_ids=[manifest.event_id],
                checkpoint_id=f"{self.settings.run_id}-r{round_}-s{info.step}",
            )
            await self._emit([checkpoint])
            if self.arm != "static" and round_ < rounds:
                await self._probe_and_evolve(round_, curated[:-1], checkpoint)
            results.append(
                SerialRound(
                    round=round_,
                    members=[e.payload for e in curated[:-1]],
                    checkpoint_path=Path(info.path),
                    train_s=trained - started,
                    loop_s=time.monotonic() - trained,
                    metrics=dict(info.metrics),
                )
            )
            log.info("serial.round_done", arm=self.arm, round=round_, train_s=round(trained - started, 1))
        return results

    async def _probe_and_evolve(
        self, round_: int, members: Sequence[Event[Any]], checkpoint: Event[CheckpointPublished]
    ) -> None:
        """GCP, JGLV, relabel, EDDE and verification of round j, one phase after the other."""
        probe = self.stages["probe"]
        await probe.watcher.publish(checkpoint)  # type: ignore[attr-defined]
        probes = await probe.process(members)
        await self._emit(probes)
        verdicts = await self.stages["judge"].process(probes)
        await self._emit(verdicts)
        if self.arm != "no_jglv":
            await self._emit(await self.stages["relabel"].process(verdicts))
        if self.arm != "no_edde":
            candidates = await self.stages["expand"].process(verdicts)
            await self._emit(candidates)
            await self._emit(await self.stages["verify"].process(candidates))
        status = self.ledger.status(round_, self.policy.expansions_per_seed)
        if not status.complete:
            raise RuntimeError(f"round {round_} did not complete in the serial loop: {status}")
