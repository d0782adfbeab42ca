"""relabel: act on verdicts (Section 4.3). LABEL_WRONG replaces the label with the model's call.

BOTH_WRONG samples leave the next round and BOTH_CORRECT ones are kept only when their perplexity
is high; both are curation decisions (:mod:`streams.curate`) that need no event of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.events import Event, LabelCorrected, Verdict, derived_event_id, make_event
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


class RelabelStage(Stage):
    name = "relabel"
    input_topics = ("verdicts",)
    input_types = ("Verdict",)
    batch_size = 64

    async def handle(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        return [c for c in (correction_for(v, self.producer) for v in events) if c is not None]
