"""Verdict analytics: what each round's probing, judging, relabelling, expansion and curation did.

One fold (:class:`StatsCollector`) turns events into light per-event rows, from the sample store's
``events`` table, a replay of the topics, or any list of events; :class:`RunStats` derives the
pandas DataFrames from those rows:

- :meth:`RunStats.verdict_mix` per round or per checkpoint: probes, matches, accuracy, the verdict
  mix (PRED_WRONG / LABEL_WRONG / BOTH_CORRECT / BOTH_WRONG / UNPARSEABLE), mismatches not (yet)
  judged, relabels and reverts;
- :meth:`RunStats.expansion_summary` and :meth:`RunStats.expansion_outcomes`: EDDE candidates per
  round, the pass rate, and every failure by the rule (or LLM tier) that failed it;
- :meth:`RunStats.accuracy_by_tool` and :meth:`RunStats.error_types` (from ToolMatch diffs, with
  the judge's verdicts on each kind of error);
- :meth:`RunStats.curation`: D_j's sources (Eq. 5) and its seed-new share against the schedule.

For notebooks the same frames come from one call each (``verdicts_frame(store_path)`` and so on).
``render_*`` build rich tables, :func:`plot_stats` writes PNG charts (matplotlib, Agg), and
:func:`run_stats` is ``looptool stats`` (with ``--follow``, live while the pipeline runs).
Counting rules: every event counts once (by id; the first copy in the log); a probe, candidate or
verification counts once per sample and round (per candidate), as curation counts them.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from looptool.config import Settings
from looptool.logs import get_logger
from schemas.events import (
    CheckpointPublished,
    CuratedSample,
    DeadLetter,
    Event,
    ExpansionCandidate,
    LabelCorrected,
    ProbeResult,
    RoundClosed,
    SampleAdded,
    Verdict,
    VerificationResult,
)
from streams.deadletters import category_of, frame_dead_letter_table
from streams.store import ALL_TOPIC_NAMES, SampleStore, event_from_row

log = get_logger(__name__)

VERDICT_LABELS: tuple[str, ...] = ("PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG", "UNPARSEABLE")
SOURCES: tuple[str, ...] = ("SEED", "ES", "EE", "HPPL", "SEED_NEW")
NO_CALL = "(no call)"
PASSED = "passed"
UNVERIFIED = "unverified"

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
    "dead_letters": ("event_id", "stage", "error_type", "reason", "source_ref", "category"),
}


def failing_rule(result: VerificationResult) -> str:
    """The rule that failed a candidate: its first rule violation, or the LLM tier's verdict."""
    if result.passed:
        return PASSED
    if result.failed_tier == "rules":
        return "rule:" + (result.rule_violations[0].code if result.rule_violations else "unknown")
    return "llm:" + (result.llm_verdict or "INCORRECT")


class StatsCollector:
    """Folds events into per-event rows (pure, incremental: the follow mode adds batches as they come)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._keys: set[tuple[str, Any]] = set()
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in _COLUMNS if name != "samples"}
        self._origins: dict[str, dict[str, Any]] = {}
        self.events = 0

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
                        "tools": sorted({c.name for c in p.label.calls}) or [NO_CALL],
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
        elif isinstance(p, DeadLetter):
            self.rows["dead_letters"].append(
                {
                    "event_id": event.event_id,
                    "stage": p.stage,
                    "error_type": p.error_type,
                    "reason": p.reason,
                    "source_ref": p.source_ref,
                    "category": category_of(p),
                }
            )
        return True

    def stats(self) -> RunStats:
        rows = {**self.rows, "samples": sorted(self._origins.values(), key=lambda row: row["sample_id"])}
        frames = {name: pd.DataFrame(data, columns=list(_COLUMNS[name])) for name, data in rows.items()}
        return RunStats(events=self.events, **frames)


def _count_by(frame: pd.DataFrame, keys: list[str], name: str) -> pd.Series:
    return frame.groupby(keys).size().rename(name) if len(frame) else pd.Series(name=name, dtype="int64")


@dataclass
class RunStats:
    """The run's per-event rows as DataFrames, and the aggregate views derived from them."""

    events: int
    probes: pd.DataFrame
    verdicts: pd.DataFrame
    relabels: pd.DataFrame
    candidates: pd.DataFrame
    verifications: pd.DataFrame
    added: pd.DataFrame  # every SampleAdded
    samples: pd.DataFrame  # one row per sample: its origin
    curated: pd.DataFrame
    rounds: pd.DataFrame
    checkpoints: pd.DataFrame
    dead_letters: pd.DataFrame

    # --- verdicts -------------------------------------------------------------------------------

    def verdict_mix(self, by: Literal["round", "checkpoint"] = "round") -> pd.DataFrame:
        """Per round (or checkpoint): probes, matches, accuracy, each verdict, unjudged, relabels."""
        if by not in ("round", "checkpoint"):
            raise ValueError(f"by must be 'round' or 'checkpoint', not {by!r}")
        key = "round" if by == "round" else "checkpoint_id"
        probes = self.probes.assign(checkpoint_id=self.probes["checkpoint_id"].fillna("(none)"))
        verdicts = self.verdicts.assign(checkpoint_id=self.verdicts["checkpoint_id"].fillna("(none)"))
        relabels = self.relabels.assign(checkpoint_id=self.relabels["checkpoint_id"].fillna("(none)"))
        parts = [
            _count_by(probes, [key], "probed"),
            probes.groupby(key)["matched"].sum().astype("int64").rename("matched")
            if len(probes)
            else pd.Series(name="matched", dtype="int64"),
        ]
        if by == "round":
            parts.insert(0, _count_by(self.curated, ["round"], "members"))
        frame = pd.concat(parts, axis=1)
        verdict_counts = (
            verdicts.groupby([key, "verdict"]).size().unstack(fill_value=0)
            if len(verdicts)
            else pd.DataFrame()
        )
        frame = frame.join(verdict_counts.reindex(columns=list(VERDICT_LABELS), fill_value=0), how="outer")
        frame = frame.join(
            _count_by(relabels[~relabels["revert"].astype(bool)], [key], "relabels"), how="outer"
        )
        frame = frame.join(
            _count_by(relabels[relabels["revert"].astype(bool)], [key], "reverts"), how="outer"
        )
        frame = frame.fillna(0).astype("int64")
        frame.index.name = key
        frame["mismatched"] = frame["probed"] - frame["matched"]
        frame["unjudged"] = frame["mismatched"] - frame[list(VERDICT_LABELS)].sum(axis=1)
        frame["accuracy"] = (frame["matched"] / frame["probed"]).where(frame["probed"] > 0)
        columns = [
            "probed",
            "matched",
            "accuracy",
            "mismatched",
            *VERDICT_LABELS,
            "unjudged",
            "relabels",
            "reverts",
        ]
        if by == "round":
            columns.insert(0, "members")
        else:
            info = self.checkpoints.set_index("checkpoint_id")[["round", "step"]]
            frame = frame.join(info, how="left")
            columns = ["round", "step", *columns]
            frame = frame.sort_values(["round", "step"], na_position="last", kind="stable")
        return frame[columns].sort_index() if by == "round" else frame[columns]

    # --- expansion ------------------------------------------------------------------------------

    def _candidate_outcomes(self) -> pd.DataFrame:
        verified = self.verifications[["candidate_id", "round", "passed", "failing_rule"]]
        merged = self.candidates[["candidate_id", "round", "parsed"]].merge(
            verified, on="candidate_id", how="outer", suffixes=("", "_verification")
        )
        merged["round"] = merged["round"].fillna(merged["round_verification"]).astype("int64")
        merged["outcome"] = merged["failing_rule"].fillna(UNVERIFIED)
        return merged

    def expansion_outcomes(self) -> pd.DataFrame:
        """Long form: per round and outcome (``passed``, ``rule:<code>``, ``llm:<verdict>``,
        ``unverified``) the number of candidates and their share of the round's candidates."""
        merged = self._candidate_outcomes()
        if not len(merged):
            return pd.DataFrame(columns=["round", "outcome", "candidates", "share"])
        counts = merged.groupby(["round", "outcome"]).size().rename("candidates").reset_index()
        totals = counts.groupby("round")["candidates"].transform("sum")
        counts["share"] = counts["candidates"] / totals
        return counts.sort_values(
            ["round", "candidates", "outcome"], ascending=[True, False, True]
        ).reset_index(drop=True)

    def expansion_summary(self) -> pd.DataFrame:
        """Per round: error seeds, candidates, parsed, verified, passed, pass rate, expansions added
        (SampleAdded events) and how many of those are new samples (not a recreation of one)."""
        seeds = self.verdicts[self.verdicts["verdict"].isin(["PRED_WRONG", "LABEL_WRONG"])]
        merged = self._candidate_outcomes()
        added = self.added[self.added["origin"] == "expansion"]
        new = self.samples[self.samples["origin"] == "expansion"]
        frame = pd.concat(
            [
                _count_by(seeds, ["round"], "error_seeds"),
                _count_by(merged, ["round"], "candidates"),
                _count_by(merged[merged["parsed"].fillna(False).astype(bool)], ["round"], "parsed"),
                _count_by(merged[merged["outcome"] != UNVERIFIED], ["round"], "verified"),
                _count_by(merged[merged["outcome"] == PASSED], ["round"], "passed"),
                _count_by(added, ["round"], "added"),
                _count_by(new, ["round"], "new_samples"),
            ],
            axis=1,
        )
        frame = frame.fillna(0).astype("int64")
        frame.index.name = "round"
        frame["pass_rate"] = (frame["passed"] / frame["verified"]).where(frame["verified"] > 0)
        columns = [
            "error_seeds",
            "candidates",
            "parsed",
            "verified",
            "passed",
            "pass_rate",
            "added",
            "new_samples",
        ]
        return frame.reindex(columns=columns).sort_index()

    # --- accuracy -------------------------------------------------------------------------------

    def accuracy_by_tool(self) -> pd.DataFrame:
        """Per round and tool the label calls (``(no call)`` for text answers): probes, matched, accuracy."""
        if not len(self.probes):
            return pd.DataFrame(columns=["round", "tool", "probes", "matched", "accuracy"])
        exploded = (
            self.probes[["round", "tools", "matched"]].explode("tools").rename(columns={"tools": "tool"})
        )
        frame = (
            exploded.groupby(["round", "tool"])
            .agg(probes=("matched", "size"), matched=("matched", "sum"))
            .reset_index()
        )
        frame["matched"] = frame["matched"].astype("int64")
        frame["accuracy"] = frame["matched"] / frame["probes"]
        return frame.sort_values(["round", "tool"]).reset_index(drop=True)

    def error_types(self) -> pd.DataFrame:
        """Per round and ToolMatch error type: mismatched probes showing it, their share of the
        round's probes and mismatches, and how the judge ruled on them."""
        columns = ["round", "error_type", "probes", "share_of_probes", "share_of_mismatches", *VERDICT_LABELS]
        mismatched = self.probes[~self.probes["matched"].astype(bool)]
        if not len(mismatched):
            return pd.DataFrame(columns=columns)
        exploded = mismatched[["event_id", "round", "error_types"]].explode("error_types")
        exploded = exploded.rename(columns={"error_types": "error_type"}).dropna(subset=["error_type"])
        frame = exploded.groupby(["round", "error_type"]).size().rename("probes").reset_index()
        per_round = self.probes.groupby("round").size()
        mismatches_per_round = mismatched.groupby("round").size()
        frame["share_of_probes"] = frame["probes"] / frame["round"].map(per_round)
        frame["share_of_mismatches"] = frame["probes"] / frame["round"].map(mismatches_per_round)
        judged = exploded.merge(
            self.verdicts[["probe_event_id", "verdict"]], left_on="event_id", right_on="probe_event_id"
        )
        if len(judged):
            split = judged.groupby(["round", "error_type", "verdict"]).size().unstack(fill_value=0)
            frame = frame.merge(split.reset_index(), on=["round", "error_type"], how="left")
        for label in VERDICT_LABELS:
            frame[label] = frame[label].fillna(0).astype("int64") if label in frame else 0
        return (
            frame[columns]
            .sort_values(["round", "probes", "error_type"], ascending=[True, False, True])
            .reset_index(drop=True)
        )

    # --- curation -------------------------------------------------------------------------------

    def curation(self) -> pd.DataFrame:
        """Per round: D_j's members by source (Eq. 5), expansions among them, the seed-new share
        (SEED and SEED_NEW members over all) beside the manifest's target, and whether it closed."""
        columns = [
            "members",
            *SOURCES,
            "expansion_members",
            "seed_new_share",
            "seed_new_target",
            "closed",
            "content_hash",
        ]
        if not len(self.curated) and not len(self.rounds):
            return pd.DataFrame(columns=columns).rename_axis("round")
        by_source = (
            self.curated.groupby(["round", "source"]).size().unstack(fill_value=0)
            if len(self.curated)
            else pd.DataFrame()
        )
        frame = by_source.reindex(columns=list(SOURCES), fill_value=0)
        origins = self.curated.merge(self.samples[["sample_id", "origin"]], on="sample_id", how="left")
        frame = frame.join(
            _count_by(origins[origins["origin"] == "expansion"], ["round"], "expansion_members"), how="outer"
        )
        manifest = self.rounds.set_index("round")[["seed_new_fraction", "content_hash"]]
        frame = frame.join(manifest, how="outer")
        counts = [*SOURCES, "expansion_members"]
        frame[counts] = frame[counts].fillna(0).astype("int64")
        frame["members"] = frame[list(SOURCES)].sum(axis=1)
        frame["seed_new_share"] = ((frame["SEED"] + frame["SEED_NEW"]) / frame["members"]).where(
            frame["members"] > 0
        )
        frame["seed_new_target"] = frame["seed_new_fraction"]
        frame["closed"] = frame["content_hash"].notna()
        frame.index.name = "round"
        return frame[columns].sort_index()


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
        path = Path(source)
        if not (path / "events.lance").exists():
            raise FileNotFoundError(f"no sample store at {path} (expected {path / 'events.lance'})")
        return events_from_store(SampleStore(path))
    return source


def load_stats(source: EventSource) -> RunStats:
    """RunStats from a store (object or path) or from events."""
    collector = StatsCollector()
    collector.add_all(_events(source))
    return collector.stats()


async def stats_from_topics(settings: Settings, cut: Any = None) -> RunStats:
    """RunStats from a replay of the run's topics (up to ``cut``, a :class:`streams.replay.Cut`)."""
    from streams.replay import Cut, events_within, load_boundary

    boundary = await load_boundary(settings, cut or Cut())
    collector = StatsCollector()
    async for batch in events_within(settings, boundary, ALL_TOPIC_NAMES):
        collector.add_all(batch)
    return collector.stats()


def verdicts_frame(source: EventSource) -> pd.DataFrame:
    """One row per verdict (round, checkpoint, sample, verdict, who decided it)."""
    return load_stats(source).verdicts


def verdict_mix_frame(source: EventSource, by: Literal["round", "checkpoint"] = "round") -> pd.DataFrame:
    return load_stats(source).verdict_mix(by)


def relabels_frame(source: EventSource) -> pd.DataFrame:
    return load_stats(source).relabels


def expansion_frame(source: EventSource) -> pd.DataFrame:
    return load_stats(source).expansion_summary()


def expansion_outcomes_frame(source: EventSource) -> pd.DataFrame:
    return load_stats(source).expansion_outcomes()


def accuracy_by_tool_frame(source: EventSource) -> pd.DataFrame:
    return load_stats(source).accuracy_by_tool()


def error_types_frame(source: EventSource) -> pd.DataFrame:
    return load_stats(source).error_types()


def curation_frame(source: EventSource) -> pd.DataFrame:
    return load_stats(source).curation()


# --- rendering ----------------------------------------------------------------------------------


def _pct(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{100 * float(value):.1f}%"


def _int(value: Any) -> str:
    return "0" if value is None or pd.isna(value) else str(int(value))


def render_rounds_table(stats: RunStats) -> Table:
    """The overview: per round the verdict mix, relabels, expansion pass rate and seed-new share."""
    mix, expansion, curation = stats.verdict_mix("round"), stats.expansion_summary(), stats.curation()
    table = Table(title="Rounds: probing, verdicts, relabels, expansion, curation", title_justify="left")
    for header in (
        "round",
        "D_j",
        "probed",
        "accuracy",
        "PRED_WRONG",
        "LABEL_WRONG",
        "BOTH_CORRECT",
        "BOTH_WRONG",
        "UNPARSEABLE",
        "relabels",
        "candidates",
        "pass rate",
        "seed-new share",
    ):
        table.add_column(header, justify="left" if header == "round" else "right")
    rounds = sorted(set(mix.index) | set(expansion.index) | set(curation.index))
    for round_ in rounds:
        m = mix.loc[round_] if round_ in mix.index else None
        e = expansion.loc[round_] if round_ in expansion.index else None
        c = curation.loc[round_] if round_ in curation.index else None
        table.add_row(
            str(round_),
            _int(c["members"]) if c is not None else "0",
            _int(m["probed"]) if m is not None else "0",
            _pct(m["accuracy"]) if m is not None else "–",
            *[_int(m[label]) if m is not None else "0" for label in VERDICT_LABELS],
            _int(m["relabels"]) if m is not None else "0",
            _int(e["candidates"]) if e is not None else "0",
            _pct(e["pass_rate"]) if e is not None else "–",
            _pct(c["seed_new_share"]) if c is not None else "–",
        )
    return table


def render_checkpoint_table(stats: RunStats) -> Table:
    mix = stats.verdict_mix("checkpoint")
    table = Table(title="Verdict mix by checkpoint", title_justify="left")
    for header in ("checkpoint", "round", "step", "probed", "accuracy", *VERDICT_LABELS, "relabels"):
        table.add_column(header, justify="left" if header == "checkpoint" else "right")
    for checkpoint_id, row in mix.iterrows():
        table.add_row(
            str(checkpoint_id),
            _int(row["round"]) if pd.notna(row["round"]) else "?",
            _int(row["step"]) if pd.notna(row["step"]) else "?",
            _int(row["probed"]),
            _pct(row["accuracy"]),
            *[_int(row[label]) for label in VERDICT_LABELS],
            _int(row["relabels"]),
        )
    return table


def _by_round_table(
    title: str,
    first: str,
    long: pd.DataFrame,
    key: str,
    cell: Callable[[pd.Series], str],
    extra: tuple[str, Callable[[str], str]] | None = None,
) -> Table:
    """A table with one row per ``key`` value and one column per round (plus an optional last column)."""
    rounds = sorted(long["round"].unique()) if len(long) else []
    table = Table(title=title, title_justify="left")
    table.add_column(first)
    for round_ in rounds:
        table.add_column(f"round {round_}", justify="right")
    if extra is not None:
        table.add_column(extra[0])
    for name in sorted(long[key].unique()) if len(long) else []:
        cells = []
        for round_ in rounds:
            match = long[(long["round"] == round_) & (long[key] == name)]
            cells.append(cell(match.iloc[0]) if len(match) else "")
        if extra is not None:
            cells.append(extra[1](name))
        table.add_row(str(name), *cells)
    return table


def render_expansion_table(stats: RunStats) -> Table:
    """Candidates per round by outcome: passed, or the rule / LLM verdict that failed them."""
    return _by_round_table(
        "Expansion candidates by failing rule (count, share of the round's candidates)",
        "outcome",
        stats.expansion_outcomes(),
        "outcome",
        lambda row: f"{int(row['candidates'])} ({_pct(row['share'])})",
    )


def render_tool_table(stats: RunStats) -> Table:
    return _by_round_table(
        "ToolMatch accuracy by tool (accuracy, probes)",
        "tool",
        stats.accuracy_by_tool(),
        "tool",
        lambda row: f"{_pct(row['accuracy'])} ({int(row['probes'])})",
    )


def render_error_table(stats: RunStats) -> Table:
    errors = stats.error_types()
    totals = errors.groupby("error_type")[list(VERDICT_LABELS)].sum() if len(errors) else None

    def verdicts(name: str) -> str:  # how the judge ruled on this kind of error, all rounds together
        assert totals is not None
        row = totals.loc[name]
        return ", ".join(f"{label} {int(row[label])}" for label in VERDICT_LABELS if row[label])

    return _by_round_table(
        "Probe errors by type (mismatched probes, share of mismatches)",
        "error type",
        errors,
        "error_type",
        lambda row: f"{int(row['probes'])} ({_pct(row['share_of_mismatches'])})",
        ("verdicts (all rounds)", verdicts),
    )


def render_curation_table(stats: RunStats) -> Table:
    curation = stats.curation()
    table = Table(title="Curation (Eq. 5): D_j by source", title_justify="left")
    for header in ("round", "D_j", *SOURCES, "expansions", "seed-new share", "target", "closed"):
        table.add_column(header, justify="left" if header == "round" else "right")
    for round_, row in curation.iterrows():
        table.add_row(
            str(round_),
            _int(row["members"]),
            *[_int(row[source]) for source in SOURCES],
            _int(row["expansion_members"]),
            _pct(row["seed_new_share"]),
            _pct(row["seed_new_target"]),
            "yes" if row["closed"] else "no",
        )
    return table


def render_stats(stats: RunStats) -> Group:
    """Every stats table, for printing or a live display."""
    return Group(
        render_rounds_table(stats),
        render_checkpoint_table(stats),
        render_curation_table(stats),
        render_expansion_table(stats),
        render_tool_table(stats),
        render_error_table(stats),
        frame_dead_letter_table(stats.dead_letters),
    )


def tables_text(stats: RunStats, *, width: int = 160, tables: Sequence[str] | None = None) -> str:
    """The tables as plain text (for a README or a report); ``tables`` picks some by name:
    rounds, checkpoints, curation, expansion, tools, errors, deadletters."""
    renderers = {
        "rounds": render_rounds_table,
        "checkpoints": render_checkpoint_table,
        "curation": render_curation_table,
        "expansion": render_expansion_table,
        "tools": render_tool_table,
        "errors": render_error_table,
        "deadletters": lambda stats: frame_dead_letter_table(stats.dead_letters),
    }
    unknown = sorted(set(tables or ()) - set(renderers))
    if unknown:
        raise ValueError(f"unknown tables {unknown}; known: {', '.join(renderers)}")
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    for name in tables or renderers:
        console.print(renderers[name](stats))
    return console.export_text()


# --- plots --------------------------------------------------------------------------------------

_VERDICT_COLOURS = {
    "matched": "#4c9a2a",
    "PRED_WRONG": "#d1495b",
    "LABEL_WRONG": "#edae49",
    "BOTH_CORRECT": "#66a182",
    "BOTH_WRONG": "#8d6a9f",
    "UNPARSEABLE": "#9e9e9e",
}
_SOURCE_COLOURS = {
    "SEED": "#30638e",
    "ES": "#d1495b",
    "EE": "#edae49",
    "HPPL": "#8d6a9f",
    "SEED_NEW": "#66a182",
}
_FAILURE_COLOURS = ("#d1495b", "#edae49", "#30638e", "#8d6a9f", "#9e9e9e", "#00798c", "#a05195", "#ff7c43")


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} yet", ha="center", va="center", transform=ax.transAxes)


def _stacked(
    ax: Any, frame: pd.DataFrame, columns: Sequence[str], colours: dict[str, str], ylabel: str
) -> None:
    """Stacked bars per round (the frame's index), one segment per column, the legend beside the axes."""
    labels = [str(r) for r in frame.index]
    bottom = [0.0] * len(frame)
    for column in columns:
        values = [float(v) for v in frame[column].tolist()]
        if any(values):
            ax.bar(labels, values, bottom=bottom, label=column, color=colours.get(column))
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _axes_verdicts(ax: Any, stats: RunStats) -> None:
    mix = stats.verdict_mix("round")
    ax.set_title("Probe outcomes by round")
    if not len(mix) or not mix["probed"].sum():
        _empty(ax, "probes")
        return
    _stacked(ax, mix, ("matched", *VERDICT_LABELS), _VERDICT_COLOURS, "probes")


def _axes_accuracy(ax: Any, stats: RunStats) -> None:
    mix = stats.verdict_mix("checkpoint")
    ax.set_title("ToolMatch accuracy by checkpoint")
    if not len(mix):
        _empty(ax, "probes")
        return
    ax.plot(range(len(mix)), (100 * mix["accuracy"]).tolist(), marker="o", color="#30638e")
    ticks = [
        f"r{int(row['round'])} s{int(row['step'])}" if pd.notna(row["round"]) else str(checkpoint)[:12]
        for checkpoint, row in mix.iterrows()
    ]
    ax.set_xticks(range(len(mix)), ticks)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy %")
    ax.set_xlabel("checkpoint (round trained, step)")


def _axes_curation(ax: Any, stats: RunStats) -> None:
    curation = stats.curation()
    ax.set_title("D_j by source (Eq. 5)")
    if not len(curation):
        _empty(ax, "rounds")
        return
    _stacked(ax, curation, SOURCES, _SOURCE_COLOURS, "samples")


def _axes_expansion(ax: Any, stats: RunStats) -> None:
    outcomes = stats.expansion_outcomes()
    ax.set_title("Expansion candidates by outcome")
    if not len(outcomes):
        _empty(ax, "candidates")
        return
    table = outcomes.pivot_table(index="round", columns="outcome", values="candidates", fill_value=0)
    failures = sorted(c for c in table.columns if c != PASSED)
    colours = {PASSED: "#4c9a2a"}
    colours.update({f: _FAILURE_COLOURS[i % len(_FAILURE_COLOURS)] for i, f in enumerate(failures)})
    _stacked(ax, table, [c for c in (PASSED, *failures) if c in table.columns], colours, "candidates")


_PANELS: dict[str, Callable[[Any, RunStats], None]] = {
    "verdicts": _axes_verdicts,
    "accuracy": _axes_accuracy,
    "curation": _axes_curation,
    "expansion": _axes_expansion,
}


def plot_stats(stats: RunStats, out_dir: Path, *, title: str | None = None) -> list[Path]:
    """Write one PNG per chart and an ``overview.png`` with all four into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    metadata = {"Software": None}  # keep the files free of the library version
    for name, draw in _PANELS.items():
        figure, ax = plt.subplots(figsize=(6, 4))
        try:
            draw(ax, stats)
            figure.tight_layout()
            path = out_dir / f"{name}.png"
            figure.savefig(path, dpi=110, metadata=metadata)
            written.append(path)
        finally:
            plt.close(figure)
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    try:
        for ax, draw in zip(axes.flat, _PANELS.values(), strict=True):
            draw(ax, stats)
        if title:
            figure.suptitle(title)
        figure.tight_layout()
        path = out_dir / "overview.png"
        figure.savefig(path, dpi=110, metadata=metadata)
        written.append(path)
    finally:
        plt.close(figure)
    return written


# --- the command --------------------------------------------------------------------------------


async def follow_stats(
    settings: Settings,
    console: Console,
    stop: asyncio.Event,
    *,
    refresh_s: float = 2.0,
    on_update: Callable[[RunStats], None] | None = None,
) -> RunStats:
    """Follow every topic of the run and keep the tables up to date on ``console`` until ``stop``."""
    from looptool.kafka import follow

    collector = StatsCollector()
    stats = collector.stats()
    loop = asyncio.get_running_loop()
    last_render = float("-inf")
    changed = True
    stream = follow(settings.kafka, settings.run_id, ALL_TOPIC_NAMES)
    with Live(render_stats(stats), console=console, auto_refresh=False, transient=False) as live:
        try:
            # follow() yields at least once per idle timeout (an empty batch), so stop is seen promptly.
            async for batch in stream:
                if stop.is_set():
                    break
                changed |= collector.add_all(d.event for d in batch) > 0
                # Redraw when caught up (an empty batch) or at most every refresh_s while catching up.
                if changed and (not batch or loop.time() - last_render >= refresh_s):
                    stats = collector.stats()
                    live.update(render_stats(stats), refresh=True)
                    last_render, changed = loop.time(), False
                    if on_update is not None:
                        on_update(stats)
        finally:
            await stream.aclose()
    return collector.stats()


def run_stats(
    settings: Settings,
    *,
    follow: bool,
    plot: Path | None,
    console: Console,
    store_path: Path | None = None,
) -> RunStats:
    """``looptool stats``: the tables from a replay of the topics (or from the store at ``store_path``);
    ``follow`` keeps them live until Ctrl-C; ``plot`` writes the PNG charts into that folder."""
    if follow:
        if store_path is not None:
            raise ValueError("--follow reads the topics; it cannot follow a store")

        async def main() -> RunStats:
            import signal

            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            return await follow_stats(settings, console, stop)

        stats = asyncio.run(main())
    else:
        if store_path is not None:
            stats = load_stats(store_path)
        else:
            with console.status(f"replaying run {settings.run_id} from the topics…"):
                stats = asyncio.run(stats_from_topics(settings))
        console.print(render_stats(stats))
    if plot is not None:
        paths = plot_stats(stats, plot, title=f"looptool run {settings.run_id}")
        console.print("wrote " + ", ".join(str(p) for p in paths))
    return stats


__all__: Sequence[str] = (
    "RunStats",
    "StatsCollector",
    "accuracy_by_tool_frame",
    "curation_frame",
    "error_types_frame",
    "expansion_frame",
    "expansion_outcomes_frame",
    "load_stats",
    "plot_stats",
    "relabels_frame",
    "render_stats",
    "run_stats",
    "stats_from_topics",
    "tables_text",
    "verdict_mix_frame",
    "verdicts_frame",
)
