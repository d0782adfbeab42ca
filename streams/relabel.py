"""relabel: act on verdicts (Section 4.3). LABEL_WRONG replaces the label with the model's call.

BOTH_WRONG samples leave the next round and BOTH_CORRECT ones are kept only when their perplexity
is high; both are curation decisions (:mod:`streams.curate`) that need no event of their own.

Every relabel is one LabelCorrected event that names its verdict (which carries the judge's raw
answer), so it can be audited; :func:`revert_correction` builds the event that undoes one
(``looptool revert-relabel``, see :mod:`looptool.revert`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.events import Event, LabelCorrected, Verdict, derived_event_id, make_event
from streams.registry import StageClients, StageSettings, register
from streams.stage import Stage


def correction_for(verdict: Event[Verdict], producer: Any) -> Event[LabelCorrected] | None:
    """The LabelCorrected a verdict calls for, if any (pure)."""
    v = verdict.payload
    if v.verdict != "LABEL_WRONG" or v.prediction is None:
        return None
    return make_event(
        LabelCorrected(
            sample_id=v.sample_id,
            round=v.round,
            verdict_event_id=verdict.event_id,
            old_label=v.label,
            new_label=v.prediction,
            reason=f"LABEL_WRONG ({v.decided_by}): {v.error_analysis}".strip(),
        ),
        run_id=verdict.run_id,
        producer=producer,
        event_id=derived_event_id([verdict.event_id], "relabel"),
        parent_ids=[verdict.event_id],
        checkpoint_id=verdict.checkpoint_id,
    )


REVERT_STAGE = "revert-relabel"


def revert_correction(
    correction: Event[LabelCorrected], current_label_event_id: str, note: str, producer: Any
) -> Event[LabelCorrected]:
    """The LabelCorrected that restores the label ``correction`` replaced (pure).

    Its id is derived from the correction and the sample's current label event, so building it
    twice gives the same event, and it sorts after the current label event: every consumer that
    takes the label event with the greatest id as current (the curator's ledger, the store) sees
    the restored label. ``verdict_event_id`` stays empty (a revert answers no verdict); the link is
    ``reverts_event_id`` and the lineage.
    """
    c = correction.payload
    if c.reverts_event_id is not None:
        raise ValueError(f"{correction.event_id} is itself a revert (of {c.reverts_event_id}); not reverted")
    if not note.strip():
        raise ValueError("a revert needs a note saying why (it is kept in the event for audit)")
    parents = list(dict.fromkeys([correction.event_id, current_label_event_id]))
    verdict = f", verdict {c.verdict_event_id}" if c.verdict_event_id else ""
    return make_event(
        LabelCorrected(
            sample_id=c.sample_id,
            round=c.round,
            verdict_event_id=None,
            old_label=c.new_label,
            new_label=c.old_label,
            reason=f"revert of {correction.event_id}{verdict} by operator: {note.strip()}",
            reverts_event_id=correction.event_id,
        ),
        run_id=correction.run_id,
        producer=producer,
        event_id=derived_event_id(parents, REVERT_STAGE),
        parent_ids=parents,
        checkpoint_id=correction.checkpoint_id,
    )


@register()
class RelabelStage(Stage):
    """LABEL_WRONG verdicts become label corrections (the model's call is the new label)."""

    name = "relabel"
    input_topics = ("verdicts",)
    input_types = ("Verdict",)
    batch_size = 64

    @classmethod
    def from_settings(cls, settings: StageSettings, clients: StageClients) -> RelabelStage:
        return cls(settings.run_id)

    async def handle(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        return [c for c in (correction_for(v, self.producer) for v in events) if c is not None]
