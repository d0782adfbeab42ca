"""promote: the promotion gate as a stage, and the checkpoint source of consumers that follow it.

:class:`PromoteStage` reads CheckpointEvaluated events (the evaluations topic has one partition, so
decisions are taken in evaluation order) and emits one PolicyPromoted or PromotionRefused per decided
checkpoint, by :func:`evaluation.gate.decide` against the policy promoted so far. Its memory of that
policy is rebuilt on start from the promotions topic (each PolicyPromoted carries the figures it was
promoted with), so a restarted gate continues where it stopped, and an evaluation decided before is
not decided again. Decision ids derive from the evaluation event and the gate's configuration.

:class:`PromotedCheckpointWatcher` is the probe's checkpoint source in ``probe_checkpoints =
"promoted"`` mode: round j's dataset is probed with the policy promoted once round j's final
checkpoint was decided (that checkpoint when it was promoted, the earlier promoted one when it was
refused). :func:`evaluation.gate.promoted_parent` gives the trainer the same answer for
``start_from = "promoted"``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from common.logs import get_logger
from evaluation.gate import GateDecision, PromoteSettings, PromotionLedger, decide, gate_figures, with_bases
from schemas.events import (
    CheckpointEvaluated,
    CheckpointPublished,
    Event,
    PolicyPromoted,
    Producer,
    PromotionRefused,
    derived_event_id,
    make_event,
)
from streams.probe import CheckpointWatcher, ProbeMode
from streams.registry import EventLog, StageClients, StageSettings, register
from streams.stage import Stage

logger = get_logger(__name__)


def decision_event(
    evaluation: Event[CheckpointEvaluated],
    decision: GateDecision,
    ledger: PromotionLedger,
    settings: PromoteSettings,
    producer: Producer,
) -> Event[PolicyPromoted] | Event[PromotionRefused]:
    """The gate's event for ``decision`` on ``evaluation`` (pure; deterministic id)."""
    scored = evaluation.payload
    promoted = ledger.promoted
    common: dict[str, Any] = {
        "checkpoint_id": scored.checkpoint_id,
        "round": scored.round,
        "step": scored.step,
        "final": scored.final,
        "uri": scored.uri,
        "evaluation_event_id": evaluation.event_id,
        "figures": decision.figures,
        "counts": decision.counts,
        "deltas": decision.deltas,
        "tolerance": settings.tolerance,
        "tolerances": dict(settings.tolerances),
        "reason": decision.reason,
    }
    payload: PolicyPromoted | PromotionRefused
    if decision.promote:
        payload = PolicyPromoted(
            previous_checkpoint_id=promoted.checkpoint_id if promoted else None,
            previous_evaluation_event_id=promoted.evaluation_event_id if promoted else None,
            previous_figures=decision.baseline_figures,
            previous_counts=decision.baseline_counts,
            **common,
        )
    else:
        payload = PromotionRefused(
            promoted_checkpoint_id=promoted.checkpoint_id if promoted else None,
            promoted_evaluation_event_id=promoted.evaluation_event_id if promoted else None,
            promoted_figures=decision.baseline_figures,
            promoted_counts=decision.baseline_counts,
            regressions=decision.regressions,
            missing=decision.missing,
            incomparable=decision.incomparable,
            **common,
        )
    return make_event(
        payload,
        run_id=evaluation.run_id,
        producer=producer,
        event_id=derived_event_id([evaluation.event_id], PromoteStage.name, settings.key()),
        parent_ids=[evaluation.event_id],
        checkpoint_id=scored.checkpoint_id,
    )


@register(in_loop=False)
class PromoteStage(Stage):
    """The promotion gate: a checkpoint becomes the policy only if its evaluation holds."""

    name = "promote"
    input_topics = ("evaluations",)
    input_types = ("CheckpointEvaluated",)
    batch_size = 16

    def __init__(self, run_id: str, settings: PromoteSettings | None = None, log: EventLog | None = None):
        super().__init__(run_id)
        self.settings = settings or PromoteSettings()
        self.log = log
        self.ledger = PromotionLedger()
        # Evaluations seen, by event id: what the promoted policy's figures were measured on (a
        # PolicyPromoted records the figures, not the held-out file, suite version or reading).
        self.evaluations: dict[str, CheckpointEvaluated] = {}

    @classmethod
    def from_settings(cls, settings: StageSettings, clients: StageClients) -> PromoteStage:
        return cls(settings.run_id, settings.promote, clients.event_log())

    async def start(self) -> None:
        """Rebuild the ledger from the run's promotions topic (nothing to read without a log)."""
        await self._catch_up()
        promoted = self.ledger.promoted
        logger.info(
            "promote.resumed",
            decided=len(self.ledger.decided),
            promoted=promoted.checkpoint_id if promoted else None,
        )

    async def _catch_up(self) -> None:
        """Fold in the decisions on the promotions topic this gate has not seen (another worker's:
        a standby taking over after the active gate stopped). Both topics are small (one event per
        evaluated checkpoint), and a decision is folded once, so reading them again is cheap."""
        if self.log is None:
            return
        async for batch in self.log.replay(["evaluations", "promotions"]):
            for event in batch:
                if isinstance(event.payload, CheckpointEvaluated):
                    self.evaluations.setdefault(event.event_id, event.payload)
                else:
                    self.ledger.add(event.event_id, event.payload)

    async def handle(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        await self._catch_up()  # a standby's memory was the topic's when it started
        # Decided on a copy, kept only once the whole batch is: when one evaluation of a batch fails
        # (and the stage decides the batch again one by one), the others must not count as decided
        # already, or their decisions would never be published.
        ledger = copy.deepcopy(self.ledger)
        evaluations = dict(self.evaluations)
        outputs: list[Event[Any]] = []
        for event in events:
            scored: CheckpointEvaluated = event.payload
            evaluations.setdefault(event.event_id, scored)
            if self.settings.final_only and not scored.final:
                continue
            if event.event_id in ledger.decided:
                continue
            decision = self._decide(scored, ledger, evaluations)
            output = decision_event(event, decision, ledger, self.settings, self.producer)
            ledger.add(output.event_id, output.payload)
            outputs.append(output)
            logger.info(
                "promote.promoted" if decision.promote else "promote.refused",
                checkpoint=scored.checkpoint_id,
                round=scored.round,
                reason=decision.reason,
            )
        self.ledger, self.evaluations = ledger, evaluations
        return outputs

    def _decide(
        self,
        scored: CheckpointEvaluated,
        ledger: PromotionLedger,
        evaluations: dict[str, CheckpointEvaluated],
    ) -> GateDecision:
        figures = gate_figures(scored, self.settings.gated())
        promoted = ledger.promoted
        if promoted is None:
            return decide(figures, None, self.settings)
        baseline = with_bases(promoted.figures, evaluations.get(promoted.evaluation_event_id))
        if scored.checkpoint_id == promoted.checkpoint_id:
            # The promoted policy evaluated again (other items, another reading, a new suite
            # version): its figures there become the baseline, so later checkpoints, measured the
            # same way, can be compared at all.
            decision = decide(figures, None, self.settings)
            if decision.promote:
                return GateDecision(
                    True,
                    "the promoted policy evaluated again: these figures are the baseline from now on",
                    decision.figures,
                    decision.counts,
                    baseline_figures={n: f.value for n, f in baseline.items()},
                    baseline_counts={n: f.items for n, f in baseline.items()},
                )
            return decision
        return decide(figures, baseline, self.settings)


class PromotedCheckpointWatcher(CheckpointWatcher):
    """The probe's checkpoint source when it follows the promoted policy (checkpoints + promotions)."""

    topics = ("checkpoints", "promotions")

    def __init__(self, log: EventLog | None, run_id: str):
        super().__init__(log, run_id)
        self.ledger = PromotionLedger()

    async def publish(self, event: Event[Any]) -> None:
        if isinstance(event.payload, PolicyPromoted | PromotionRefused):
            async with self._changed:
                self.ledger.add(event.event_id, event.payload)
                self._changed.notify_all()
            return
        await super().publish(event)

    def _published(self, checkpoint_id: str) -> Event[CheckpointPublished] | None:
        return next(
            (
                e
                for known in self.by_round.values()
                for e in known
                if e.payload.new_checkpoint_id == checkpoint_id
            ),
            None,
        )

    def current(self, round_: int, mode: ProbeMode) -> Event[CheckpointPublished] | None:
        if mode != "promoted":
            return super().current(round_, mode)
        if not self.ledger.decided_round(round_):
            return None  # round j's final checkpoint is not decided yet
        promoted = self.ledger.after_round(round_)
        if promoted is None:  # nothing ever promoted (the gate refused every checkpoint so far)
            logger.warning("probe.nothing_promoted", round=round_, fallback="the round's final checkpoint")
            return super().current(round_, "final")
        return self._published(promoted.checkpoint_id)
