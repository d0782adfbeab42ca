"""Materialise D_j from the curated topic: CuratedSample events → checked training rows.

Each CuratedSample is already one training sample (T, c_t, a*_t) of Section 4.1: ingest expands every
multi-turn dialogue into one sample per assistant step (:func:`toolcall.formats.record_to_samples`),
and expansions arrive as single steps. A row adds the policy chat (:func:`toolcall.prompts.build_chat`,
with the run's ``current_time``) and the reward's ground truth; the same rows feed the CPU GRPO
backend and the verl parquet writer.

The round's RoundClosed manifest is the contract: the members read back must be exactly ``total``
samples whose sorted content hashes hash to the manifest's ``content_hash``, and every member's own
hash must match its content. Anything else is an error naming what differs; nothing is trained on a
dataset that does not match its manifest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from bus.config import RunSettings
from bus.kafka import replay
from common.logs import get_logger
from schemas.events import CuratedSample, Event, RoundClosed
from toolcall.canonical import content_hash
from toolcall.prompts import DEFAULT_CURRENT_TIME, build_chat
from toolcall.reward import ground_truth_json
from toolcall.types import Sample
from trainer.base import RoundDataset, TrainingRow

log = get_logger(__name__)


class RoundDataError(ValueError):
    """A round's members do not match its manifest (or contradict each other)."""


class RoundIncomplete(RoundDataError):
    """Fewer members are readable than the manifest lists (they may still be in flight)."""


def training_row(member: CuratedSample, current_time: str = DEFAULT_CURRENT_TIME) -> TrainingRow:
    """The row of a member of D_j; its own conversation time, when it has one, wins over ``current_time``."""
    sample = Sample(tools=member.tools, messages=member.messages, label=member.label)
    return sample_row(
        member.sample_id, sample, source=member.source, current_time=member.conversation_time or current_time
    )


def sample_row(
    sample_id: str, sample: Sample, *, source: str = "SEED", current_time: str = DEFAULT_CURRENT_TIME
) -> TrainingRow:
    """The training row of a (T, c_t, a*_t) sample."""
    return TrainingRow(
        sample_id=sample_id,
        source=source,
        tools=tuple(sample.tools),
        messages=tuple(sample.messages),
        label=sample.label,
        chat=build_chat(sample.tools, sample.messages, current_time),
        ground_truth=ground_truth_json(sample.tools, sample.label),
    )


def round_dataset(
    manifest: Event[RoundClosed],
    members: Iterable[Event[Any]],
    current_time: str = DEFAULT_CURRENT_TIME,
) -> RoundDataset:
    """Check ``members`` (any events; those of other rounds are ignored) against ``manifest``.

    Redelivered copies of a member (same sample, same content) count once; two different contents
    for one sample in one round are an error. Rows are ordered by sample id.
    """
    expected = manifest.payload
    chosen: dict[str, CuratedSample] = {}
    for event in members:
        payload = event.payload
        if not isinstance(payload, CuratedSample) or payload.round != expected.round:
            continue
        actual_hash = Sample(
            tools=payload.tools, messages=payload.messages, label=payload.label
        ).content_hash()
        if actual_hash != payload.content_hash:
            raise RoundDataError(
                f"round {expected.round}: member {payload.sample_id} (event {event.event_id}) claims "
                f"content hash {payload.content_hash} but its content hashes to {actual_hash}"
            )
        known = chosen.get(payload.sample_id)
        if known is not None and known.content_hash != payload.content_hash:
            raise RoundDataError(
                f"round {expected.round}: sample {payload.sample_id} appears with two different contents "
                f"({known.content_hash} and {payload.content_hash})"
            )
        chosen.setdefault(payload.sample_id, payload)
    if len(chosen) < expected.total:
        raise RoundIncomplete(
            f"round {expected.round}: {len(chosen)} members readable, the manifest lists {expected.total}"
        )
    if len(chosen) > expected.total:
        raise RoundDataError(
            f"round {expected.round}: {len(chosen)} members found, the manifest lists only {expected.total}"
        )
    digest = content_hash(sorted(member.content_hash for member in chosen.values()))
    if digest != expected.content_hash:
        raise RoundDataError(
            f"round {expected.round}: the members hash to {digest}, the manifest says {expected.content_hash}"
        )
    counts: dict[str, int] = {}
    for member in chosen.values():
        counts[member.source] = counts.get(member.source, 0) + 1
    if expected.counts and counts != expected.counts:
        raise RoundDataError(
            f"round {expected.round}: sources {counts} differ from the manifest's {expected.counts}"
        )
    rows = tuple(training_row(chosen[sample_id], current_time) for sample_id in sorted(chosen))
    return RoundDataset(
        round=expected.round, rows=rows, content_hash=digest, manifest_event_id=manifest.event_id
    )


async def load_round_dataset(
    settings: RunSettings,
    manifest: Event[RoundClosed],
    *,
    current_time: str = DEFAULT_CURRENT_TIME,
    wait_s: float = 30.0,
    poll_s: float = 1.0,
    identity: str | None = None,
) -> RoundDataset:
    """Read round j's members from the curated topic and check them against its manifest.

    Members and manifest travel on different topics, so a member can become readable a moment
    after the manifest: an incomplete round is read again until ``wait_s`` has passed. ``identity``:
    the broker the manifest came from (a broker that restarted since raises ``BrokerRestarted``).
    """
    deadline = time.monotonic() + wait_s
    while True:
        members: list[Event[Any]] = []
        wanted = manifest.payload.round
        async for batch in replay(settings.kafka, settings.run_id, ["curated"], identity=identity):
            # Only this round's members are kept: holding every round's (round_dataset ignores
            # them) grew the trainer by ~6 KB per member ever curated, round after round.
            members.extend(
                d.event
                for d in batch
                if not isinstance(d.event.payload, CuratedSample) or d.event.payload.round == wanted
            )
        try:
            dataset = round_dataset(manifest, members, current_time)
        except RoundIncomplete as error:
            if time.monotonic() >= deadline:
                raise
            log.info("train.round_incomplete_waiting", round=manifest.payload.round, reason=str(error))
            await asyncio.sleep(poll_s)
            continue
        log.info(
            "train.round_loaded",
            round=dataset.round,
            rows=len(dataset),
            content_hash=dataset.content_hash,
            counts=manifest.payload.counts,
        )
        return dataset
