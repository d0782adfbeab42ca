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

from collections.abc import Sequence
from typing import Any

from common.logs import get_logger
from evaluation.gate import GateDecision, PromoteSettings, PromotionLedger, decide, gate_figures
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

    @classmethod
    def from_settings(cls, settings: StageSettings, clients: StageClients) -> PromoteStage:
        return cls(settings.run_id, settings.promote, clients.event_log())

    async def start(self) -> None:
        """Rebuild the ledger from the run's promotions topic (nothing to read without a log)."""
        if self.log is None:
            return
        async for batch in self.log.replay(["promotions"]):
            for event in batch:
                self.ledger.add(event.event_id, event.payload)
        promoted = self.ledger.promoted
        logger.info(
            "promote.resumed",
            decided=len(self.ledger.decided),
            promoted=promoted.checkpoint_id if promoted else None,
        )

    async def handle(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        outputs: list[Event[Any]] = []
        for event in events:
            scored: CheckpointEvaluated = event.payload
            if self.settings.final_only and not scored.final:
                continue
            if event.event_id in self.ledger.decided:
                continue
            promoted = self.ledger.promoted
            decision = decide(
                gate_figures(scored, self.settings.gated()),
                promoted.figures if promoted else None,
                self.settings,
            )
            output = decision_event(event, decision, self.ledger, self.settings, self.producer)
            self.ledger.add(output.event_id, output.payload)
            outputs.append(output)
            logger.info(
                "promote.promoted" if decision.promote else "promote.refused",
                checkpoint=scored.checkpoint_id,
                round=scored.round,
                reason=decision.reason,
            )
        return outputs


class PromotedCheckpointWatcher(CheckpointWatcher):
    """The probe's checkpoint source when it follows the promoted policy (checkpoints + promotions)."""

    topics = ("checkpoints", "promotions")

    def __init__(self, log: EventLog | None, run_id: str, *, track_probes: bool = False):
        super().__init__(log, run_id, track_probes=track_probes)
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
