"""The fold of analytics: events in, light per-event rows out, from a store, a replay or any events.

:class:`StatsCollector` keeps one row per counted event in plain lists (cheap to fold while the
pipeline runs); :meth:`StatsCollector.stats` hands them to :class:`~views.analytics.frames.RunStats`.
Counting rules: every event counts once (by id; the first copy in the log); a probe, candidate or
verification counts once per sample and round (per candidate), as curation counts them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from bus.config import RunSettings
from common.logs import get_logger
from schemas.events import (
    CheckpointEvaluated,
    CheckpointPublished,
    CuratedSample,
    DeadLetter,
    Event,
    ExpansionCandidate,
    LabelCorrected,
    PolicyPromoted,
    ProbeResult,
    PromotionRefused,
    RoundClosed,
    SampleAdded,
    Verdict,
    VerificationResult,
)
from views.analytics.frames import NO_CALL, PASSED, RunStats
from views.analytics.judges import VOTE_COLUMNS, vote_rows
from views.deadletters import category_of
from views.store import ALL_TOPIC_NAMES, SampleStore, event_from_row, open_for_reading

log = get_logger(__name__)


DEAD_LETTER_COLUMNS = ("event_id", "stage", "error_type", "reason", "source_ref", "category")
_COLUMNS: dict[str, tuple[str, ...]] = {
    "probes": (
        "event_id",
        "sample_id",
        "round",
        "checkpoint_id",
        "matched",
        "unparseable",
        "ppl",
        "high_ppl",
        "error_types",
        "tools",
    ),
    "verdicts": (
        "event_id",
        "sample_id",
        "round",
        "checkpoint_id",
        "probe_event_id",
        "verdict",
        "decided_by",
        "judge_model",
        "attempts",
    ),
    "relabels": ("event_id", "sample_id", "round", "checkpoint_id", "verdict_event_id", "revert", "reason"),
    "candidates": (
        "candidate_id",
        "event_id",
        "seed_sample_id",
        "round",
        "checkpoint_id",
        "verdict_event_id",
        "index",
        "parsed",
        "focus",
    ),
    "verifications": (
        "candidate_id",
        "event_id",
        "seed_sample_id",
        "round",
        "passed",
        "failed_tier",
        "failing_rule",
        "rule_codes",
        "llm_verdict",
    ),
    "added": ("event_id", "sample_id", "origin", "round", "source_format", "seed_sample_id", "candidate_id"),
    "samples": (
        "sample_id",
        "event_id",
        "origin",
        "round",
        "source_format",
        "seed_sample_id",
        "candidate_id",
    ),
    "curated": ("round", "sample_id", "source", "event_id"),
    "rounds": (
        "round",
        "total",
        "target_size",
        "seed_new_fraction",
        "content_hash",
        "probed_checkpoint_id",
        "event_id",
    ),
    "checkpoints": ("checkpoint_id", "round", "step", "final", "produced_at", "event_id"),
    "dead_letters": DEAD_LETTER_COLUMNS,
    "votes": VOTE_COLUMNS,
}


def failing_rule(result: VerificationResult) -> str:
    """The rule that failed a candidate: its first rule violation, or the LLM tier's verdict."""
    if result.passed:
        return PASSED
    if result.failed_tier == "rules":
        return "rule:" + (result.rule_violations[0].code if result.rule_violations else "unknown")
    return "llm:" + (result.llm_verdict or "INCORRECT")


def probe_tools(probe: ProbeResult) -> list[str]:
    """The tools a probed label calls (``(no call)`` for a text answer): the keys of accuracy by tool."""
    return sorted({c.name for c in probe.label.calls}) or [NO_CALL]


def dead_letter_row(event_id: str, letter: DeadLetter) -> dict[str, Any]:
    """A DeadLetter as a row of the ``dead_letters`` table (and of the dead-letter summary)."""
    return {
        "event_id": event_id,
        "stage": letter.stage,
        "error_type": letter.error_type,
        "reason": letter.reason,
        "source_ref": letter.source_ref,
        "category": category_of(letter),
    }


class StatsCollector:
    """Folds events into per-event rows (pure, incremental: the follow mode adds batches as they come)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._keys: set[tuple[str, Any]] = set()
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in _COLUMNS if name != "samples"}
        self._origins: dict[str, dict[str, Any]] = {}
        self.events = 0
        # BFCL evaluations and promotion-gate decisions, kept as payloads (evaluation.report renders them)
        self.evaluations: list[CheckpointEvaluated] = []
        self.promotions: list[PolicyPromoted | PromotionRefused] = []

    def _first(self, table: str, key: Any) -> bool:
        if (table, key) in self._keys:
            return False
        self._keys.add((table, key))
        return True

    def add_all(self, events: Iterable[Event[Any]]) -> int:
        return sum(self.add(event) for event in events)

    def add(self, event: Event[Any]) -> bool:
        """Fold one event; False for a copy of one already folded."""
        if event.event_id in self._seen:
            return False
        self._seen.add(event.event_id)
        self.events += 1
        p = event.payload
        if isinstance(p, ProbeResult):
            if self._first("probes", (p.round, p.sample_id)):
                self.rows["probes"].append(
                    {
                        "event_id": event.event_id,
                        "sample_id": p.sample_id,
                        "round": p.round,
                        "checkpoint_id": event.checkpoint_id,
                        "matched": p.matched,
                        "unparseable": p.prediction is None,
                        "ppl": p.ppl,
                        "high_ppl": p.high_ppl,
                        "error_types": sorted({d.kind for d in p.diffs}) if not p.matched else [],
                        "tools": probe_tools(p),
                    }
                )
        elif isinstance(p, Verdict):
            if self._first("verdicts", p.probe_event_id):
                self.rows["verdicts"].append(
                    {
                        "event_id": event.event_id,
                        "sample_id": p.sample_id,
                        "round": p.round,
                        "checkpoint_id": event.checkpoint_id,
                        "probe_event_id": p.probe_event_id,
                        "verdict": p.verdict,
                        "decided_by": p.decided_by,
                        "judge_model": p.judge_model,
                        "attempts": p.attempts,
                    }
                )
                self.rows["votes"].extend(vote_rows(event.event_id, p))
        elif isinstance(p, LabelCorrected):
            self.rows["relabels"].append(
                {
                    "event_id": event.event_id,
                    "sample_id": p.sample_id,
                    "round": p.round,
                    "checkpoint_id": event.checkpoint_id,
                    "verdict_event_id": p.verdict_event_id,
                    "revert": p.reverts_event_id is not None,
                    "reason": p.reason,
                }
            )
        elif isinstance(p, ExpansionCandidate):
            if self._first("candidates", p.candidate_id):
                self.rows["candidates"].append(
                    {
                        "candidate_id": p.candidate_id,
                        "event_id": event.event_id,
                        "seed_sample_id": p.seed_sample_id,
                        "round": p.round,
                        "checkpoint_id": event.checkpoint_id,
                        "verdict_event_id": p.verdict_event_id,
                        "index": p.index,
                        "parsed": p.parse_error is None and p.label is not None,
                        "focus": p.scenario.focus,
                    }
                )
        elif isinstance(p, VerificationResult):
            if self._first("verifications", p.candidate_id):
                self.rows["verifications"].append(
                    {
                        "candidate_id": p.candidate_id,
                        "event_id": event.event_id,
                        "seed_sample_id": p.seed_sample_id,
                        "round": p.round,
                        "passed": p.passed,
                        "failed_tier": p.failed_tier,
                        "failing_rule": failing_rule(p),
                        "rule_codes": [v.code for v in p.rule_violations],
                        "llm_verdict": p.llm_verdict,
                    }
                )
        elif isinstance(p, SampleAdded):
            row = {
                "event_id": event.event_id,
                "sample_id": p.sample_id,
                "origin": p.origin,
                "round": p.round,
                "source_format": p.source_format,
                "seed_sample_id": p.seed_sample_id,
                "candidate_id": p.metadata.get("candidate_id"),
            }
            self.rows["added"].append(row)
            # Sample ids are content hashes, so an expansion can add a sample again: its origin is
            # the SampleAdded with the smallest id (the store's rule), whatever order they came in.
            known = self._origins.get(p.sample_id)
            if known is None or event.event_id < known["event_id"]:
                self._origins[p.sample_id] = row
        elif isinstance(p, CuratedSample):
            if self._first("curated", (p.round, p.sample_id)):
                self.rows["curated"].append(
                    {
                        "round": p.round,
                        "sample_id": p.sample_id,
                        "source": p.source,
                        "event_id": event.event_id,
                    }
                )
        elif isinstance(p, RoundClosed):
            if self._first("rounds", p.round):
                self.rows["rounds"].append(
                    {
                        "round": p.round,
                        "total": p.total,
                        "target_size": p.target_size,
                        "seed_new_fraction": p.seed_new_fraction,
                        "content_hash": p.content_hash,
                        "probed_checkpoint_id": p.probed_checkpoint_id,
                        "event_id": event.event_id,
                    }
                )
        elif isinstance(p, CheckpointPublished):
            if self._first("checkpoints", p.new_checkpoint_id):
                self.rows["checkpoints"].append(
                    {
                        "checkpoint_id": p.new_checkpoint_id,
                        "round": p.round,
                        "step": p.step,
                        "final": p.final,
                        "produced_at": event.produced_at,
                        "event_id": event.event_id,
                    }
                )
        elif isinstance(p, CheckpointEvaluated):
            self.evaluations.append(p)
        elif isinstance(p, PolicyPromoted | PromotionRefused):
            if self._first("promotions", p.evaluation_event_id):
                self.promotions.append(p)
        elif isinstance(p, DeadLetter):
            self.rows["dead_letters"].append(dead_letter_row(event.event_id, p))
        return True

    def stats(self) -> RunStats:
        rows = {**self.rows, "samples": sorted(self._origins.values(), key=lambda row: row["sample_id"])}
        frames = {name: pd.DataFrame(data, columns=list(_COLUMNS[name])) for name, data in rows.items()}
        return RunStats(
            events=self.events, evaluations=list(self.evaluations), promotions=list(self.promotions), **frames
        )


# --- loading ------------------------------------------------------------------------------------

EventSource = SampleStore | Path | str | Iterable[Event[Any]]


def events_from_store(store: SampleStore, batch_rows: int = 2000) -> Iterator[Event[Any]]:
    """Every event of a store's ``events`` table, in event-id order."""
    table = store.table("events").to_arrow().sort_by("event_id")
    for batch in table.to_batches(max_chunksize=batch_rows):
        for row in batch.to_pylist():
            yield event_from_row(row)


def _events(source: EventSource) -> Iterable[Event[Any]]:
    if isinstance(source, SampleStore):
        return events_from_store(source)
    if isinstance(source, str | Path):
        return events_from_store(open_for_reading(Path(source)))
    return source


def load_stats(source: EventSource) -> RunStats:
    """RunStats from a store (object or path) or from events."""
    collector = StatsCollector()
    collector.add_all(_events(source))
    return collector.stats()


async def stats_from_topics(settings: RunSettings, cut: Any = None) -> RunStats:
    """RunStats from a replay of the run's topics (up to ``cut``, a :class:`views.replay.Cut`)."""
    from views.replay import Cut, ReplayResult, events_within, load_boundary

    boundary = await load_boundary(settings, cut or Cut())
    collector = StatsCollector()
    read = ReplayResult(cut or Cut(), boundary)
    async for batch in events_within(settings, boundary, ALL_TOPIC_NAMES, result=read):
        collector.add_all(batch)
    return dataclasses.replace(collector.stats(), undecodable=read.undecodable)
