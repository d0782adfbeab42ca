"""The analytics folded as the events arrive (``stats --follow``): running counts, not per-event rows.

:class:`~views.analytics.collect.StatsCollector` keeps a row per event, and
:class:`~views.analytics.frames.RunStats` derives every table from all the rows each time it is asked:
right for one reading of a run, wrong for a follower that runs for days (about 840 bytes per event,
and a recount of everything at every refresh). :class:`RunningStats` adds each event once to counts
keyed by what the summary tables show (round, checkpoint, tool, error type, outcome, source, judge
model), and :meth:`RunningStats.stats` builds the tables from those counts with the same code
(``frames.finish_*``) as RunStats, so they are the same tables.

What it keeps per key, each because a figure needs it (the counting rules of ``collect``):

- per (round, sample) probed and per (round, sample) curated: the first event's id, since a sample
  counts once per round (and a redelivered copy must be told from a second event);
- per probe judged: its verdict (a verdict counts once per probe; the error-type split joins the two,
  which arrive on two topics in any order), and per mismatched probe not judged yet its round and
  error types, until its verdict comes;
- per expansion candidate: round, parsed and outcome (the candidate and its verification come on
  two topics in any order);
- per sample: its origin (the SampleAdded with the smallest id, whenever it arrives: it decides
  which samples and which members count as expansions) and the ids of its SampleAdded events;
- the ids of LabelCorrected, CheckpointEvaluated and registration events (each counts once), and the
  dead letters' rows themselves (the ``dead_letters`` table lists each one);
- per round its RoundClosed manifest, per checkpoint its round and step, per promotion-gate decision
  its payload (a few per round);
- the ids of second events of a key already held (none in a run whose ids are deterministic): they
  count as events, not in the tables, and their copies must not count again.

Nothing else grows with the events: no votes, reasons, tool lists or labels are kept, and a
redelivered copy of an event adds nothing. The per-event tables (``votes``, ``verdicts``,
``relabels``) need every row: ``stats --follow`` reads those with the StatsCollector.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

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
from views.analytics.collect import DEAD_LETTER_COLUMNS, dead_letter_row, failing_rule, probe_tools
from views.analytics.frames import (
    ERROR_SEEDS,
    NO_CHECKPOINT,
    PASSED,
    UNVERIFIED,
    finish_accuracy_by_tool,
    finish_curation,
    finish_error_types,
    finish_expansion,
    finish_expansion_outcomes,
    finish_verdict_mix,
)
from views.analytics.judges import finish_judge_agreement, truncations, vote_counts, vote_rows


def _checkpoint_key(event: Event[Any]) -> str:
    return event.checkpoint_id if event.checkpoint_id is not None else NO_CHECKPOINT


@dataclass(slots=True)  # one per candidate: no per-instance dict
class _Candidate:
    """An expansion candidate as the tables count it: from its ExpansionCandidate and its
    VerificationResult, whichever came first."""

    candidate_event_id: str | None = None
    verification_event_id: str | None = None
    candidate_round: int | None = None
    verification_round: int | None = None
    parsed: bool = False
    outcome: str = UNVERIFIED

    def counts(self) -> Counter[tuple[Any, ...]]:
        if self.candidate_event_id is None and self.verification_event_id is None:
            return Counter()
        round_ = self.candidate_round if self.candidate_event_id is not None else self.verification_round
        return Counter(
            {
                ("candidates", round_): 1,
                ("parsed", round_): int(self.parsed),
                ("verified", round_): int(self.outcome != UNVERIFIED),
                ("passed", round_): int(self.outcome == PASSED),
                ("outcome", round_, self.outcome): 1,
            }
        )


@dataclass(slots=True)  # one per sample: no per-instance dict
class _Sample:
    """A sample as the tables count it: its origin (the SampleAdded with the smallest id) and the
    rounds it was curated into (the first CuratedSample's id per round)."""

    added_ids: set[str] = field(default_factory=set)
    origin_event_id: str | None = None
    origin: str | None = None
    origin_round: int | None = None
    curated: dict[int, str] = field(default_factory=dict)

    def counts(self) -> Counter[tuple[Any, ...]]:
        if self.origin != "expansion":
            return Counter()
        found: Counter[tuple[Any, ...]] = Counter({("new_samples", self.origin_round): 1})
        for round_ in self.curated:
            found["expansion_members", round_] += 1
        return found


@dataclass(frozen=True)
class SummaryStats:
    """The summary tables of a run at one moment, as :class:`~views.analytics.frames.RunStats` gives
    them (what the renderers, the plots and the summary tables of the catalog read)."""

    events: int
    undecodable: int
    evaluations: list[Any]
    promotions: list[Any]
    dead_letters: pd.DataFrame
    _mix_by_round: pd.DataFrame
    _mix_by_checkpoint: pd.DataFrame
    _expansion: pd.DataFrame
    _expansion_outcomes: pd.DataFrame
    _accuracy_by_tool: pd.DataFrame
    _error_types: pd.DataFrame
    _curation: pd.DataFrame
    _judges: pd.DataFrame

    def verdict_mix(self, by: Literal["round", "checkpoint"] = "round") -> pd.DataFrame:
        if by not in ("round", "checkpoint"):
            raise ValueError(f"by must be 'round' or 'checkpoint', not {by!r}")
        return (self._mix_by_round if by == "round" else self._mix_by_checkpoint).copy()

    def expansion_summary(self) -> pd.DataFrame:
        return self._expansion.copy()

    def expansion_outcomes(self) -> pd.DataFrame:
        return self._expansion_outcomes.copy()

    def accuracy_by_tool(self) -> pd.DataFrame:
        return self._accuracy_by_tool.copy()

    def error_types(self) -> pd.DataFrame:
        return self._error_types.copy()

    def curation(self) -> pd.DataFrame:
        return self._curation.copy()

    def judge_agreement(self) -> pd.DataFrame:
        return self._judges.copy()

    def truncations(self) -> pd.DataFrame:
        return truncations(self.dead_letters)


class RunningStats:
    """Folds events into running counts (pure, incremental); :meth:`stats` gives the summary tables."""

    def __init__(self) -> None:
        self.events = 0
        self.counts: Counter[tuple[Any, ...]] = Counter()  # (figure, key...) -> count
        self._repeated_key_ids: set[str] = set()  # distinct events whose key an earlier one held
        self._probes: dict[tuple[int, str], str] = {}
        self._verdicts: dict[str, tuple[str, str]] = {}  # probe event id -> (verdict event id, verdict)
        self._unjudged: dict[str, tuple[int, tuple[str, ...]]] = {}  # mismatched probe -> round, types
        self._candidates: dict[str, _Candidate] = {}
        self._samples: dict[str, _Sample] = {}
        self._rounds: dict[int, tuple[str, float | None, str | None]] = {}
        self._checkpoints: dict[str, tuple[str, int, int]] = {}
        self._promotions: dict[str, str] = {}
        self._counted_ids: set[str] = set()  # LabelCorrected, CheckpointEvaluated, registrations
        self._dead_letters: dict[str, dict[str, Any]] = {}
        self.judges: dict[str, Counter[str]] = {}
        self.evaluations: list[CheckpointEvaluated] = []
        self.promotions: list[PolicyPromoted | PromotionRefused] = []

    # --- the fold -------------------------------------------------------------------------------

    def add_all(self, events: Iterable[Event[Any]]) -> int:
        return sum(self.add(event) for event in events)

    def _first(self, held_by: str | None, event_id: str) -> bool | None:
        """For an event whose key ``held_by`` an earlier event holds (None: nobody): True when it is
        the first of its key, False for a second event of the key (counted as an event, not in the
        tables), None for a copy of one already counted."""
        if held_by is None:
            return True
        if held_by == event_id or event_id in self._repeated_key_ids:
            return None
        self._repeated_key_ids.add(event_id)
        return False

    def add(self, event: Event[Any]) -> bool:
        """Fold one event; False for a copy of one already folded."""
        first = self._fold(event)
        if first is None:
            return False
        self.events += 1
        return True

    def _fold(self, event: Event[Any]) -> bool | None:
        p, event_id = event.payload, event.event_id
        if isinstance(p, ProbeResult):
            key = (p.round, p.sample_id)
            first = self._first(self._probes.get(key), event_id)
            if first:
                self._probes[key] = event_id
                self._add_probe(event_id, p, _checkpoint_key(event))
            return first
        if isinstance(p, Verdict):
            held = self._verdicts.get(p.probe_event_id)
            first = self._first(held[0] if held else None, event_id)
            if first:
                self._verdicts[p.probe_event_id] = (event_id, p.verdict)
                self._add_verdict(event_id, p, _checkpoint_key(event))
            return first
        if isinstance(p, ExpansionCandidate | VerificationResult):
            return self._add_candidate(event_id, p)
        if isinstance(p, SampleAdded):
            sample = self._samples.setdefault(p.sample_id, _Sample())
            if event_id in sample.added_ids:
                return None
            sample.added_ids.add(event_id)
            if p.origin == "expansion":
                self.counts["added", p.round] += 1
            if sample.origin_event_id is None or event_id < sample.origin_event_id:
                self._update_sample(sample, origin=(event_id, p.origin, p.round))
            return True
        if isinstance(p, CuratedSample):
            sample = self._samples.setdefault(p.sample_id, _Sample())
            first = self._first(sample.curated.get(p.round), event_id)
            if first:
                self._update_sample(sample, curated=(p.round, event_id))
                self.counts["members", p.round] += 1
                self.counts["source", p.round, p.source] += 1
            return first
        if isinstance(p, RoundClosed):
            held_round = self._rounds.get(p.round)
            first = self._first(held_round[0] if held_round else None, event_id)
            if first:
                self._rounds[p.round] = (event_id, p.seed_new_fraction, p.content_hash)
            return first
        if isinstance(p, CheckpointPublished):
            held_checkpoint = self._checkpoints.get(p.new_checkpoint_id)
            first = self._first(held_checkpoint[0] if held_checkpoint else None, event_id)
            if first:
                self._checkpoints[p.new_checkpoint_id] = (event_id, p.round, p.step)
            return first
        if isinstance(p, PolicyPromoted | PromotionRefused):
            first = self._first(self._promotions.get(p.evaluation_event_id), event_id)
            if first:
                self._promotions[p.evaluation_event_id] = event_id
                self.promotions.append(p)
            return first
        if isinstance(p, DeadLetter):
            if event_id in self._dead_letters:
                return None
            self._dead_letters[event_id] = dead_letter_row(event_id, p)
            return True
        # Each counted one by one: relabels, evaluations, and events no table shows (registrations).
        if event_id in self._counted_ids:
            return None
        self._counted_ids.add(event_id)
        if isinstance(p, LabelCorrected):
            figure = "reverts" if p.reverts_event_id is not None else "relabels"
            self.counts[figure, "round", p.round] += 1
            self.counts[figure, "checkpoint", _checkpoint_key(event)] += 1
        elif isinstance(p, CheckpointEvaluated):
            self.evaluations.append(p)
        return True

    def _add_probe(self, event_id: str, p: ProbeResult, checkpoint_id: str) -> None:
        counts = self.counts
        for by, key in (("round", p.round), ("checkpoint", checkpoint_id)):
            counts["probed", by, key] += 1
            counts["matched", by, key] += int(p.matched)
        for tool in probe_tools(p):
            counts["tool_probes", p.round, tool] += 1
            counts["tool_matched", p.round, tool] += int(p.matched)
        if p.matched:
            return
        counts["mismatched", p.round] += 1
        error_types = tuple(sorted({d.kind for d in p.diffs}))
        for error_type in error_types:
            counts["error_type", p.round, error_type] += 1
        judged = self._verdicts.get(event_id)
        if judged is not None:
            self._split(p.round, error_types, judged[1])
        elif error_types:
            self._unjudged[event_id] = (p.round, error_types)

    def _add_verdict(self, event_id: str, p: Verdict, checkpoint_id: str) -> None:
        self.counts["verdict", "round", p.round, p.verdict] += 1
        self.counts["verdict", "checkpoint", checkpoint_id, p.verdict] += 1
        if p.verdict in ERROR_SEEDS:
            self.counts["error_seeds", p.round] += 1
        for row in vote_rows(event_id, p):
            self.judges.setdefault(row["judge_model"], Counter()).update(vote_counts(row))
        unjudged = self._unjudged.pop(p.probe_event_id, None)
        if unjudged is not None:
            self._split(*unjudged, p.verdict)

    def _split(self, round_: int, error_types: tuple[str, ...], verdict: str) -> None:
        for error_type in error_types:
            self.counts["error_type_verdict", round_, error_type, verdict] += 1

    def _add_candidate(self, event_id: str, p: ExpansionCandidate | VerificationResult) -> bool | None:
        candidate = self._candidates.setdefault(p.candidate_id, _Candidate())
        before = candidate.counts()
        if isinstance(p, ExpansionCandidate):
            first = self._first(candidate.candidate_event_id, event_id)
            if first:
                candidate.candidate_event_id, candidate.candidate_round = event_id, p.round
                candidate.parsed = p.parse_error is None and p.label is not None
        else:
            first = self._first(candidate.verification_event_id, event_id)
            if first:
                candidate.verification_event_id, candidate.verification_round = event_id, p.round
                candidate.outcome = failing_rule(p)
        if first:
            self.counts.subtract(before)
            self.counts.update(candidate.counts())
        return first

    def _update_sample(
        self,
        sample: _Sample,
        *,
        origin: tuple[str, str, int] | None = None,
        curated: tuple[int, str] | None = None,
    ) -> None:
        before = sample.counts()
        if origin is not None:
            sample.origin_event_id, sample.origin, sample.origin_round = origin
        if curated is not None:
            sample.curated[curated[0]] = curated[1]
        self.counts.subtract(before)
        self.counts.update(sample.counts())

    def retained(self) -> dict[str, int]:
        """How many entries each kept structure holds (what grows, and with what)."""
        return {
            "counts": len(self.counts),
            "probes": len(self._probes),
            "verdicts": len(self._verdicts),
            "unjudged": len(self._unjudged),
            "candidates": len(self._candidates),
            "samples": len(self._samples),
            "sample_added_ids": sum(len(s.added_ids) for s in self._samples.values()),
            "curated": sum(len(s.curated) for s in self._samples.values()),
            "rounds": len(self._rounds),
            "checkpoints": len(self._checkpoints),
            "promotions": len(self._promotions),
            "counted_ids": len(self._counted_ids),
            "repeated_key_ids": len(self._repeated_key_ids),
            "dead_letters": len(self._dead_letters),
            "judges": len(self.judges),
            "evaluations": len(self.evaluations),
        }

    # --- the tables -----------------------------------------------------------------------------

    def _series(self, figure: str, *prefix: Any) -> pd.Series:
        """The counts of ``figure`` (under ``prefix``) by their last key; zeros left out as the
        groupby counts of RunStats leave out groups with no row."""
        width = 1 + len(prefix)
        found = {
            key[width]: count
            for key, count in self.counts.items()
            if key[:width] == (figure, *prefix) and len(key) == width + 1 and count
        }
        return pd.Series(found, dtype="int64")

    def _mix(self, by: Literal["round", "checkpoint"]) -> pd.DataFrame:
        columns = {
            "probed": self._series("probed", by),
            "matched": self._series("matched", by),
            "relabels": self._series("relabels", by),
            "reverts": self._series("reverts", by),
        }
        if by == "round":
            columns["members"] = self._series("members")
        verdicts: dict[str, dict[Any, int]] = {}
        for key, count in self.counts.items():
            if key[:2] == ("verdict", by) and count:
                verdicts.setdefault(key[3], {})[key[2]] = count
        # A verdict outside the known ones is no column but its round (checkpoint) is still a row.
        columns |= {verdict: pd.Series(by_key, dtype="int64") for verdict, by_key in verdicts.items()}
        frame = pd.DataFrame(columns)
        checkpoints = pd.DataFrame(
            [(checkpoint_id, round_, step) for checkpoint_id, (_, round_, step) in self._checkpoints.items()],
            columns=["checkpoint_id", "round", "step"],
        ).set_index("checkpoint_id")
        return finish_verdict_mix(frame, by, checkpoints)

    def _rounds_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [(round_, fraction, digest) for round_, (_, fraction, digest) in self._rounds.items()],
            columns=["round", "seed_new_fraction", "content_hash"],
        )

    def _curation(self) -> pd.DataFrame:
        members = self._series("members")
        if not len(members) and not self._rounds:
            return finish_curation(None, pd.Series(dtype="int64"), self._rounds_frame())
        by_source: dict[str, dict[int, int]] = {}
        for key, count in self.counts.items():
            if key[0] == "source" and count:
                by_source.setdefault(key[2], {})[key[1]] = count
        frame = pd.DataFrame(by_source).fillna(0).astype("int64") if by_source else pd.DataFrame()
        return finish_curation(frame, self._series("expansion_members"), self._rounds_frame())

    def _long(self, figure: str, names: list[str], value: str) -> pd.DataFrame:
        rows = [(*key[1:], count) for key, count in self.counts.items() if key[0] == figure and count]
        return pd.DataFrame(sorted(rows), columns=[*names, value])

    def _error_types(self) -> pd.DataFrame:
        mismatched = self._series("mismatched")
        if not len(mismatched):
            return finish_error_types(None, mismatched, mismatched, None)
        frame = self._long("error_type", ["round", "error_type"], "probes")
        split = self._long("error_type_verdict", ["round", "error_type", "verdict"], "count")
        wide = (
            split.pivot_table(index=["round", "error_type"], columns="verdict", values="count", fill_value=0)
            if len(split)
            else None
        )
        return finish_error_types(frame, self._series("probed", "round"), mismatched, wide)

    def _accuracy_by_tool(self) -> pd.DataFrame:
        probes = self._long("tool_probes", ["round", "tool"], "probes")
        matched = self._long("tool_matched", ["round", "tool"], "matched")
        frame = probes.merge(matched, on=["round", "tool"], how="left").fillna({"matched": 0})
        return finish_accuracy_by_tool(frame)

    def stats(self, undecodable: int = 0) -> SummaryStats:
        """The summary tables as of now (a snapshot: later events do not change it)."""
        expansion = pd.DataFrame(
            {
                name: self._series(name)
                for name in (
                    "error_seeds",
                    "candidates",
                    "parsed",
                    "verified",
                    "passed",
                    "added",
                    "new_samples",
                )
            }
        )
        outcomes = self._long("outcome", ["round", "outcome"], "candidates")
        judges = (
            pd.DataFrame.from_dict({model: dict(c) for model, c in self.judges.items()}, orient="index")
            if self.judges
            else None
        )
        if judges is not None:
            judges.index.name = "judge_model"
        return SummaryStats(
            events=self.events,
            undecodable=undecodable,
            evaluations=list(self.evaluations),
            promotions=list(self.promotions),
            dead_letters=pd.DataFrame(list(self._dead_letters.values()), columns=list(DEAD_LETTER_COLUMNS)),
            _mix_by_round=self._mix("round"),
            _mix_by_checkpoint=self._mix("checkpoint"),
            _expansion=finish_expansion(expansion),
            _expansion_outcomes=finish_expansion_outcomes(outcomes),
            _accuracy_by_tool=self._accuracy_by_tool(),
            _error_types=self._error_types(),
            _curation=self._curation(),
            _judges=finish_judge_agreement(judges),
        )
