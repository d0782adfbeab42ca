"""revert-relabel: undo a label correction, as one more event (nothing is ever deleted).

A relabel (LabelCorrected from a LABEL_WRONG verdict) can be wrong: a judge can be fooled, by a
sample written to fool it or on the merits. The operator reverts it by its event id; the revert is
a LabelCorrected that restores the replaced label, with ``reverts_event_id`` naming the correction
and the operator's note in its reason. Consumers need no special case: the curator's ledger and the
store take the label event with the greatest id as current, and the revert's id sorts after the
sample's current label event.

Rules (checked on the run's ``labels`` topic):

- the id must name a LabelCorrected of the run, and not a revert (reverting a revert is refused:
  it would re-apply a judge decision an operator rejected; a new verdict can do that);
- reverting twice does nothing new: the revert's id is derived from the correction, and an
  existing revert of it is reported instead of sending another;
- the correction's label must still be the sample's current label: if a later label event changed
  it, that one is reverted first (newest first, like an undo stack).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bus.kafka import EventProducer, replay
from common.logs import get_logger
from looptool.config import Settings
from schemas.events import Event, LabelCorrected, Producer
from streams.relabel import REVERT_STAGE, revert_correction

log = get_logger(__name__)
PRODUCER = Producer(stage=REVERT_STAGE, version="1")


class RevertError(ValueError):
    """The id names nothing revertible; the message says why and what to do."""


@dataclass(frozen=True)
class RevertPlan:
    """What reverting ``target`` means now: a new revert event, or the one that already exists."""

    target: Event[LabelCorrected]
    revert: Event[LabelCorrected] | None = None  # to send
    existing: Event[LabelCorrected] | None = None  # already in the log: nothing to send

    @property
    def event(self) -> Event[LabelCorrected]:
        """The revert, new or existing."""
        event = self.revert or self.existing
        assert event is not None
        return event


def _corrections(events: Iterable[Event[Any]]) -> dict[str, Event[LabelCorrected]]:
    found: dict[str, Event[LabelCorrected]] = {}
    for event in events:
        if isinstance(event.payload, LabelCorrected):
            found.setdefault(event.event_id, event)  # the first copy in the log is the event
    return found


def plan_revert(label_events: Iterable[Event[Any]], target_id: str, note: str) -> RevertPlan:
    """Decide what reverting ``target_id`` means, from the run's label events (pure)."""
    corrections = _corrections(label_events)
    target = corrections.get(target_id.strip())
    if target is None:
        shown = ", ".join(sorted(corrections, reverse=True)[:5]) or "none"
        raise RevertError(
            f"no LabelCorrected event with id {target_id!r} in this run (latest: {shown}); "
            "`looptool lineage SAMPLE_ID` lists a sample's label events"
        )
    t = target.payload
    if t.reverts_event_id is not None:
        raise RevertError(
            f"{target_id} is a revert (of {t.reverts_event_id}); a revert is not reverted: the operator's "
            "decision stands until a new verdict corrects the label again"
        )
    for event in corrections.values():
        if event.payload.reverts_event_id == target.event_id:
            return RevertPlan(target=target, existing=event)
    same_sample = [e for e in corrections.values() if e.payload.sample_id == t.sample_id]
    current = max(same_sample, key=lambda e: e.event_id)
    if current.event_id != target.event_id and current.payload.new_label != t.new_label:
        raise RevertError(
            f"the label of sample {t.sample_id} changed after {target_id}: the current label comes from "
            f"{current.event_id} ({current.payload.reason[:120]!r}); revert that one first"
        )
    if not note.strip():
        raise RevertError("give a note saying why the correction is reverted (it is kept for audit)")
    return RevertPlan(target=target, revert=revert_correction(target, current.event_id, note, PRODUCER))


async def load_label_events(settings: Settings) -> list[Event[Any]]:
    """Every event on the run's ``labels`` topic, in log order per partition."""
    events: list[Event[Any]] = []
    async for batch in replay(settings.kafka, settings.run_id, ["labels"]):
        events.extend(delivered.event for delivered in batch)
    return events


async def revert_relabel(
    settings: Settings, target_id: str, note: str, *, dry_run: bool = False
) -> RevertPlan:
    """``looptool revert-relabel EVENT_ID --note ...``: plan the revert and publish it (once)."""
    plan = plan_revert(await load_label_events(settings), target_id, note)
    if plan.revert is not None and not dry_run:
        async with EventProducer(settings.kafka) as producer:
            await producer.send_all([plan.revert])
        log.info(
            "relabel.reverted",
            run_id=settings.run_id,
            correction=plan.target.event_id,
            revert=plan.revert.event_id,
            sample_id=plan.target.payload.sample_id,
        )
    return plan
