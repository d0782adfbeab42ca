"""curate: build each round's dataset, D_1 from the seed pool and D_{j+1} by Eq. (5).

    D_{j+1} = D_j^ES ∪ D_j^EE ∪ D_j^HPPL ∪ D_j^Seed-new

- ES: round j's error seeds: PRED_WRONG samples, and LABEL_WRONG ones with their corrected label.
- EE: expansions of round j's error seeds that passed both verification tiers.
- HPPL: matched (and BOTH_CORRECT) samples of D_j whose perplexity is in the round's top quantile.
- Seed-new: seeds never trained on, a fraction of the target size that falls by round
  (the paper: 100% → 30.8% → 15.4% → 7.7%); remaining room is filled with more fresh seeds.
BOTH_WRONG and UNPARSEABLE samples leave, as do samples whose processing a stage dead-lettered (a
poison input is accounted for, so it can never hold a round open), and NO_QUORUM ones (the judge panel
did not agree), unless the panel defers them: those go back to the pool with the fresh seeds. Exact
duplicates (canonical content hash of tools, context and label) are kept once, in source priority
ES > EE > HPPL > Seed-new. Every choice is deterministic given the events, seeded by run id and round.

The :class:`Ledger` is the pure part: a fold over events that knows, per round, what has been
probed, judged, corrected, expanded and verified, and therefore when round j is complete. The
:class:`CurateService` is the only part that reads the log (through :class:`~streams.registry.EventLog`,
which the bus implements on Kafka): it follows every topic it needs from offset 0
(curation needs the whole picture, so it runs as a singleton, not a consumer group) and emits a
round once it is complete and not yet closed. Its output ids are deterministic, so a restarted or
duplicated curator re-emits identical events that consumers deduplicate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from common.logs import get_logger
from common.seeding import seeded_rng
from schemas.events import (
    CuratedSample,
    CurationSource,
    DeadLetter,
    Event,
    ExpansionCandidate,
    LabelCorrected,
    ProbeResult,
    Producer,
    RoundClosed,
    SampleAdded,
    Verdict,
    VerificationResult,
    derived_event_id,
    make_event,
)
from streams.registry import EventLog, StageClients, StageSettings, register
from toolcall.canonical import canonical_json, content_hash
from toolcall.perplexity import select_high_ppl
from toolcall.specs import ToolSpec
from toolcall.types import Action, Message, Sample

log = get_logger(__name__)
PRODUCER = Producer(stage="curate", version="1")
LEDGER_TOPICS = (
    "samples",
    "labels",
    "curated",
    "rounds",
    "probes",
    "verdicts",
    "candidates",
    "verifications",
    "deadletter",
)
PAPER_SEED_NEW_SCHEDULE = (1.0, 0.308, 0.154, 0.077)
REFUSAL_CATEGORY = "seed is an evaluation-suite question (kept out of training)"


@dataclass(frozen=True)
class CurationPolicy:
    target_size: int = 256
    seed_new_schedule: tuple[float, ...] = PAPER_SEED_NEW_SCHEDULE
    hppl_quantile: float = 0.5
    hppl_threshold: float | None = None
    fill: Literal["seed_new", "none"] = "seed_new"
    max_round: int | None = None  # J: no D_{J+1} is built
    # Why a sample must stay out of training, or None (evaluation.decontam.Decontaminator.overlaps).
    exclude: Callable[[Any], str | None] | None = field(default=None, compare=False)
    expansions_per_seed: int = 4  # k: candidates expected per error seed before any arrives
    # "perplexity": the paper's high-PPL samples; "random": as many matched samples drawn at random
    # (the no_hppl ablation of the efficacy benchmark).
    hppl_selection: Literal["perplexity", "random"] = "perplexity"
    # Most of D_j error seeds may take (None: all of them fit, the paper's rule). A policy far weaker
    # than the paper's errs on most of D_j; uncapped, D_j becomes error seeds it keeps failing.
    max_error_seed_share: float | None = None

    @classmethod
    def from_settings(cls, settings: StageSettings) -> CurationPolicy:
        """The run's policy: ``[loop]``, decontamination against the eval suite (``[eval]
        decontaminate``), and the held-out set (``[eval] heldout_path``), which no round may train on
        whatever ``decontaminate`` says: the promotion gate's figure would otherwise measure recall."""
        loop = settings.loop
        checks: list[Callable[[Any], str | None]] = []
        if settings.eval.decontaminate:
            from evaluation.decontam import Decontaminator

            checks.append(Decontaminator.from_suite(settings.eval.categories).overlaps)
        if settings.eval.heldout_path is not None:
            checks.append(heldout_screen(settings.eval.heldout_path))

        def exclude(sample: Any) -> str | None:
            return next((reason for check in checks if (reason := check(sample))), None)

        return cls(
            target_size=loop.target_size,
            seed_new_schedule=tuple(loop.seed_new_schedule),
            hppl_quantile=loop.hppl_quantile,
            hppl_threshold=loop.hppl_threshold,
            max_round=loop.rounds,
            expansions_per_seed=loop.expansions_per_seed,
            max_error_seed_share=loop.max_error_seed_share,
            exclude=exclude if checks else None,
        )

    def seed_new_fraction(self, round_: int) -> float:
        return self.seed_new_schedule[min(round_ - 1, len(self.seed_new_schedule) - 1)]


def heldout_screen(path: Path) -> Callable[[Any], str | None]:
    """The reason to keep a sample out of training when it asks a question of the held-out set at
    ``path`` (the same user turns over the same tools, as suite decontamination matches them)."""
    from evaluation.decontam import sample_key
    from evaluation.heldout import load_heldout

    heldout = load_heldout(path)
    keys = {sample_key(sample) for sample in heldout.samples}

    def overlaps(sample: Any) -> str | None:
        return f"a question of the held-out set {heldout.source}" if sample_key(sample) in keys else None

    return overlaps


@dataclass(frozen=True)
class PoolSample:
    """A sample as curation sees it: its current label and where that label came from."""

    sample_id: str
    tools: list[ToolSpec]
    messages: list[Message]
    label: Action
    label_event_id: str
    lineage: tuple[str, ...] = ()  # extra parents for the CuratedSample (probe, verdict)
    conversation_time: str | None = None

    def content_hash(self) -> str:
        return Sample(tools=self.tools, messages=self.messages, label=self.label).content_hash()


@dataclass
class RoundStatus:
    round: int
    closed: bool = False
    members: int = 0
    expected_members: int = 0
    probed: int = 0
    mismatched: int = 0
    judged: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    corrections_needed: int = 0
    corrected: int = 0
    candidates_expected: int = 0
    candidates: int = 0
    verified: int = 0
    passed: int = 0
    expansions_added: int = 0

    @property
    def complete(self) -> bool:
        return (
            self.closed
            and self.members == self.expected_members
            and self.probed == self.members
            and self.judged == self.mismatched
            and self.corrected == self.corrections_needed
            and self.candidates == self.candidates_expected
            and self.verified == self.candidates
            and self.expansions_added == self.passed
        )


# The per-member counters of RoundStatus, in this order in a chain's tally (verdicts apart).
_CHAIN_FIELDS = (
    "probed",
    "mismatched",
    "judged",
    "corrections_needed",
    "corrected",
    "candidates_expected",
    "candidates",
    "verified",
    "passed",
    "expansions_added",
)


@dataclass
class _RoundTally:
    """A round's status kept up to date: each member's counters, their sums, and the members whose
    events changed since (recounted on the next :meth:`Ledger.status`, the others are not walked)."""

    chains: dict[str, tuple[tuple[int, ...], str | None]] = field(default_factory=dict)
    totals: list[int] = field(default_factory=lambda: [0] * len(_CHAIN_FIELDS))
    verdicts: dict[str, int] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)

    def recount(self, sample_id: str, share: tuple[tuple[int, ...], str | None]) -> None:
        """Replace a member's share (its counters and verdict) in the sums."""
        old = self.chains.get(sample_id)
        if old is not None:
            self._add(*old, sign=-1)
        self.chains[sample_id] = share
        self._add(*share, sign=1)

    def _add(self, counts: tuple[int, ...], verdict: str | None, sign: int) -> None:
        for index, value in enumerate(counts):
            self.totals[index] += sign * value
        if verdict is not None:
            left = self.verdicts.get(verdict, 0) + sign
            if left:
                self.verdicts[verdict] = left
            else:
                del self.verdicts[verdict]


@dataclass
class RoundOutcome:
    error_seeds: list[PoolSample]
    expansions: list[PoolSample]
    high_ppl: list[PoolSample]
    dropped: dict[str, int]
    probed_checkpoints: list[str]


def _first(store: dict[Any, Any], key: Any, record: Any) -> None:
    """Keep the first occurrence (log order) of a logical event; later copies are redeliveries."""
    store.setdefault(key, record)


# What curation reads of each event of a round's chain, kept instead of the event: a probe, verdict or
# candidate carries the sample's tools, context, label, raw model and judge answers (kilobytes, a copy
# per event), none of which a decision reads; a long run folds millions of them.


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    """What curation reads of a ProbeResult."""

    event_id: str
    round: int
    checkpoint_id: str | None
    matched: bool
    ppl: float | None


@dataclass(frozen=True, slots=True)
class VerdictRecord:
    """What curation reads of a Verdict."""

    event_id: str
    sample_id: str
    round: int
    verdict: str
    deferred: bool
    has_label: bool  # the label is not None
    has_prediction: bool  # the prediction is not None


@dataclass(frozen=True, slots=True)
class CorrectionRecord:
    """What curation reads of a LabelCorrected that answers a verdict."""

    event_id: str
    round: int


@dataclass(frozen=True, slots=True)
class CandidateRecord:
    """What curation reads of an ExpansionCandidate."""

    event_id: str
    candidate_id: str
    round: int
    index: int
    count: int


@dataclass(frozen=True, slots=True)
class VerificationRecord:
    """What curation reads of a VerificationResult."""

    round: int
    passed: bool


@dataclass(frozen=True, slots=True)
class ExpansionRecord:
    """What curation reads of the SampleAdded of a candidate that passed: the sample it added."""

    sample_id: str
    round: int


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """What curation reads of a sample's origin SampleAdded (the add with the smallest event id)."""

    event_id: str
    origin: str
    tools: list[ToolSpec]
    messages: list[Message]
    conversation_time: str | None


class Ledger:
    """Everything curation needs to know, folded from events (pure: no I/O).

    The fold is idempotent: a copy of an event already folded (a redelivery, or the curator's own
    events read back) changes nothing, since every entry keeps its first event (log order) or, for a
    sample's origin and label, the smallest or latest event id. So no set of every event id seen is
    kept (it grew by an id per event for the life of the curator).

    ``keep_events=False`` is the live curator's ledger, which folds a run for days: it keeps only what
    the next decisions read. No whole SampleAdded or CuratedSample events (``samples`` and ``members``
    stay empty: :attr:`pool` and :attr:`member_events` hold what curation reads of them), and once a
    round closes, what the rounds before it were made of is forgotten: the curator only decides on the
    latest closed round (:func:`next_round_events`). Of those rounds it keeps what later decisions
    read: their members' ids (who was trained, :meth:`fresh_seeds`) and their deferring verdicts
    (:meth:`deferred`); late events of those rounds update just that. ``status`` and ``outcome`` of a
    forgotten round raise.
    """

    def __init__(self, *, keep_events: bool = True) -> None:
        self.keep_events = keep_events
        self.samples: dict[str, Event[SampleAdded]] = {}  # the origin SampleAdded (keep_events only)
        self.pool: dict[str, SampleRecord] = {}  # what curation reads of it, for every sample
        self.labels: dict[str, tuple[str, Action]] = {}  # sample -> (label event id, label)
        self._corrected: set[str] = set()  # samples whose current label comes from a LabelCorrected
        self.members: dict[int, dict[str, Event[CuratedSample]]] = {}  # (keep_events only)
        self.member_events: dict[int, dict[str, str]] = {}  # round -> sample -> CuratedSample event id
        self.closed: dict[int, Event[RoundClosed]] = {}
        # keep_events=False: rounds before this one are forgotten (the latest closed round), and what
        # later decisions read of them: their members, and the (sample, round) of deferring verdicts
        # with the probes already judged (the first verdict of a probe counts, as in ``verdicts``).
        self.forgotten_before = 0
        self._members_before: dict[int, set[str]] = {}
        self._deferrals_before: set[tuple[str, int]] = set()
        self._judged_before: set[str] = set()
        # A round's chain: what curation reads of each event (the records above), not the event.
        self.probes: dict[tuple[int, str], ProbeRecord] = {}
        self.verdicts: dict[str, VerdictRecord] = {}  # by probe event id
        self.corrections: dict[str, CorrectionRecord] = {}  # by verdict event id
        self.reverted: set[str] = set()  # LabelCorrected event ids an operator undid (revert-relabel)
        self.candidates: dict[str, dict[int, CandidateRecord]] = {}  # by verdict event id
        self.verifications: dict[str, VerificationRecord] = {}  # by candidate id
        self.expansions: dict[str, ExpansionRecord] = {}  # by candidate id
        self.dead: set[tuple[str, str]] = set()  # (stage, input event id) a stage dead-lettered
        # status() is asked after every caught-up fold: a round's tally is kept per (round, k) and
        # only the members whose chain gained an event are recounted (a walk of every member each
        # time grew with |D_j| times the number of asks). A member's count reads entries of the dicts
        # above; ``_watchers`` maps each entry it read (present or not) to the members to recount
        # once that entry is written.
        self._tallies: dict[tuple[int, int | None], _RoundTally] = {}
        self._watchers: dict[tuple[str, Any], set[tuple[int, str]]] = {}

    def add(self, event: Event[Any]) -> None:
        p = event.payload
        # Of a forgotten round (keep_events=False), only what later rounds read is folded.
        forgotten = getattr(p, "round", self.forgotten_before) < self.forgotten_before
        if isinstance(p, SampleAdded):
            # A sample added twice (a seed and an expansion of the same content) is credited to the
            # add with the smaller event id, as in the store and the stats: the order of arrival
            # must not decide its origin, nor so whether it is a fresh seed.
            known = self.pool.get(p.sample_id)
            if known is None or event.event_id < known.event_id:
                self.pool[p.sample_id] = SampleRecord(
                    event.event_id, p.origin, p.tools, p.messages, p.conversation_time
                )
                if self.keep_events:
                    self.samples[p.sample_id] = event
            self._label(p.sample_id, event.event_id, p.label, corrected=False)
            if p.origin == "expansion" and "candidate_id" in p.metadata and not forgotten:
                _first(self.expansions, p.metadata["candidate_id"], ExpansionRecord(p.sample_id, p.round))
                self._written("expansion", p.metadata["candidate_id"])
        elif isinstance(p, LabelCorrected):
            self._label(p.sample_id, event.event_id, p.new_label, corrected=True)
            if p.reverts_event_id:
                self.reverted.add(p.reverts_event_id)
            if p.verdict_event_id and not forgotten:
                _first(self.corrections, p.verdict_event_id, CorrectionRecord(event.event_id, p.round))
                self._written("correction", p.verdict_event_id)
        elif isinstance(p, CuratedSample):
            if forgotten:
                self._members_before.setdefault(p.round, set()).add(p.sample_id)
                return
            _first(self.member_events.setdefault(p.round, {}), p.sample_id, event.event_id)
            if self.keep_events:
                _first(self.members.setdefault(p.round, {}), p.sample_id, event)
            self._recount(p.round, p.sample_id)
        elif isinstance(p, RoundClosed):
            _first(self.closed, p.round, event)
            if not self.keep_events and p.round > self.forgotten_before:
                self._forget_before(p.round)
        elif isinstance(p, Verdict) and forgotten:
            if p.probe_event_id not in self._judged_before:
                self._judged_before.add(p.probe_event_id)
                if p.verdict == "NO_QUORUM" and p.deferred:
                    self._deferrals_before.add((p.sample_id, p.round))
        elif forgotten and isinstance(p, ProbeResult | ExpansionCandidate | VerificationResult):
            return
        elif isinstance(p, ProbeResult):
            key = (p.round, p.sample_id)
            if key not in self.probes:
                checkpoint = sys.intern(event.checkpoint_id) if event.checkpoint_id else event.checkpoint_id
                self.probes[key] = ProbeRecord(event.event_id, p.round, checkpoint, p.matched, p.ppl)
            self._written("probe", key)
        elif isinstance(p, Verdict):
            if p.probe_event_id not in self.verdicts:
                self.verdicts[p.probe_event_id] = VerdictRecord(
                    event.event_id,
                    p.sample_id,
                    p.round,
                    sys.intern(p.verdict),
                    p.deferred,
                    p.label is not None,
                    p.prediction is not None,
                )
            self._written("verdict", p.probe_event_id)
        elif isinstance(p, ExpansionCandidate):
            record = CandidateRecord(event.event_id, p.candidate_id, p.round, p.index, p.count)
            _first(self.candidates.setdefault(p.verdict_event_id, {}), p.index, record)
            self._written("candidates", p.verdict_event_id)
        elif isinstance(p, VerificationResult):
            _first(self.verifications, p.candidate_id, VerificationRecord(p.round, p.passed))
            self._written("verification", p.candidate_id)
        elif isinstance(p, DeadLetter) and p.source_ref:
            self.dead.add((p.stage, p.source_ref))
            self._written("dead", (p.stage, p.source_ref))

    def _forget_before(self, round_: int) -> None:
        """Forget what the rounds before ``round_`` were made of, but for what later rounds read."""
        self.forgotten_before = round_
        for earlier in [r for r in self.member_events if r < round_]:
            self._members_before.setdefault(earlier, set()).update(self.member_events.pop(earlier))
        for probe_id, verdict in self.verdicts.items():
            if verdict.round < round_:
                self._judged_before.add(probe_id)
                if verdict.verdict == "NO_QUORUM" and verdict.deferred:
                    self._deferrals_before.add((verdict.sample_id, verdict.round))
        self.verdicts = {k: v for k, v in self.verdicts.items() if v.round >= round_}
        self.probes = {k: v for k, v in self.probes.items() if v.round >= round_}
        self.corrections = {k: v for k, v in self.corrections.items() if v.round >= round_}
        self.candidates = {
            k: kept
            for k, by_index in self.candidates.items()
            if (kept := {i: c for i, c in by_index.items() if c.round >= round_})
        }
        self.verifications = {k: v for k, v in self.verifications.items() if v.round >= round_}
        self.expansions = {k: v for k, v in self.expansions.items() if v.round >= round_}
        self._tallies = {k: v for k, v in self._tallies.items() if k[0] >= round_}
        self._watchers = {
            key: kept
            for key, watching in self._watchers.items()
            if (kept := {w for w in watching if w[0] >= round_})
        }

    def _check_kept(self, round_: int) -> None:
        if round_ < self.forgotten_before:
            raise ValueError(
                f"round {round_} was forgotten once round {self.forgotten_before} closed "
                "(a ledger with keep_events=False decides on the latest closed round only)"
            )

    def _written(self, kind: str, key: Any) -> None:
        """An entry was written: recount the members whose count read it."""
        for round_, sample_id in self._watchers.pop((kind, key), ()):
            self._recount(round_, sample_id)

    def _recount(self, round_: int, sample_id: str) -> None:
        """Count a member of round j again at the next status of that round (for every k asked)."""
        for (tally_round, _), tally in self._tallies.items():
            if tally_round == round_:
                tally.dirty.add(sample_id)

    def dead_lettered(self, stage: str, event_id: str) -> bool:
        """Whether ``stage`` gave up on input ``event_id`` (it went to the dead-letter topic)."""
        return (stage, event_id) in self.dead

    def _label(self, sample_id: str, event_id: str, label: Action, *, corrected: bool) -> None:
        # As in the store: the latest LabelCorrected (event ids sort causally) is the current label,
        # else the earliest SampleAdded's (a sample added again, e.g. seeds re-ingested, changes nothing).
        current = self.labels.get(sample_id)
        was_corrected = sample_id in self._corrected
        if corrected:
            newer = current is None or not was_corrected or event_id > current[0]
            if newer:
                self.labels[sample_id] = (event_id, label)
                self._corrected.add(sample_id)
        elif current is None or (not was_corrected and event_id < current[0]):
            self.labels[sample_id] = (event_id, label)

    # --- per-round accounting -------------------------------------------------------------------

    def _probe_chain(self, round_: int) -> Iterable[tuple[str, ProbeRecord | None]]:
        for sample_id in sorted(self.member_events.get(round_, {})):
            yield sample_id, self.probes.get((round_, sample_id))

    def status(self, round_: int, policy_k: int | None = None) -> RoundStatus:
        """How far round j's work has come; ``policy_k`` is the configured k of EDDE."""
        self._check_kept(round_)
        members = self.member_events.get(round_, {})
        tally = self._tallies.get((round_, policy_k))
        if tally is None:
            tally = self._tallies[(round_, policy_k)] = _RoundTally(dirty=set(members))
        for sample_id in tally.dirty:
            tally.recount(sample_id, self._chain_counts(round_, sample_id, members[sample_id], policy_k))
        tally.dirty.clear()
        status = RoundStatus(round=round_, closed=round_ in self.closed)
        status.members = len(members)
        status.expected_members = self.closed[round_].payload.total if status.closed else -1
        for name, value in zip(_CHAIN_FIELDS, tally.totals, strict=True):
            setattr(status, name, value)
        status.verdicts = dict(sorted(tally.verdicts.items()))
        return status

    def _chain_counts(
        self, round_: int, sample_id: str, member_event_id: str, policy_k: int | None
    ) -> tuple[tuple[int, ...], str | None]:
        """One member's share of its round's status (counters in ``_CHAIN_FIELDS`` order, and its
        verdict), noting every entry it reads so that a write to one of them recounts it."""
        watch = (round_, sample_id)

        def read(kind: str, key: Any, found: Any) -> Any:
            self._watchers.setdefault((kind, key), set()).add(watch)
            return found

        def dead(stage: str, event_id: str) -> bool:
            return read("dead", (stage, event_id), (stage, event_id) in self.dead)

        counts = dict.fromkeys(_CHAIN_FIELDS, 0)
        verdict_label: str | None = None
        probe_key = (round_, sample_id)
        probe = read("probe", probe_key, self.probes.get(probe_key))
        if probe is None:
            counts["probed"] = int(dead("probe", member_event_id))
        else:
            counts["probed"] = 1
            if not probe.matched:
                counts["mismatched"] = 1
                verdict = read("verdict", probe.event_id, self.verdicts.get(probe.event_id))
                if verdict is None:
                    if dead("judge", probe.event_id):
                        counts["judged"] = 1
                        verdict_label = "DEAD_LETTER"
                else:
                    counts["judged"] = 1
                    label = verdict_label = verdict.verdict
                    if label == "LABEL_WRONG" and verdict.has_prediction:
                        counts["corrections_needed"] = 1
                        corrected = read("correction", verdict.event_id, verdict.event_id in self.corrections)
                        counts["corrected"] = int(corrected or dead("relabel", verdict.event_id))
                    if label in ("PRED_WRONG", "LABEL_WRONG"):
                        self._count_candidates(counts, verdict, label, policy_k, read, dead)
        return tuple(counts.values()), verdict_label

    def _count_candidates(
        self,
        counts: dict[str, int],
        verdict: VerdictRecord,
        label: str,
        policy_k: int | None,
        read: Callable[[str, Any, Any], Any],
        dead: Callable[[str, str], bool],
    ) -> None:
        candidates = read("candidates", verdict.event_id, self.candidates.get(verdict.event_id, {}))
        correct = verdict.has_label if label == "PRED_WRONG" else verdict.has_prediction
        if not correct or dead("expand", verdict.event_id):
            # No correct call to expand from: expand makes no candidate for it.
            expected = len(candidates)
        elif candidates:  # k travels on every candidate
            expected = next(iter(candidates.values())).count
        else:
            expected = policy_k if policy_k is not None else 1
        counts["candidates_expected"] = expected
        counts["candidates"] = len(candidates)
        for candidate in candidates.values():
            candidate_id = candidate.candidate_id
            result = read("verification", candidate_id, self.verifications.get(candidate_id))
            if result is None:
                counts["verified"] += dead("verify", candidate.event_id)
                continue
            counts["verified"] += 1
            if result.passed:
                counts["passed"] += 1
                counts["expansions_added"] += read("expansion", candidate_id, candidate_id in self.expansions)

    def pool_sample(self, sample_id: str, lineage: Sequence[str] = ()) -> PoolSample:
        added = self.pool[sample_id]
        label_event_id, label = self.labels[sample_id]
        return PoolSample(
            sample_id,
            added.tools,
            added.messages,
            label,
            label_event_id,
            tuple(lineage),
            conversation_time=added.conversation_time,
        )

    def outcome(self, round_: int, policy: CurationPolicy) -> RoundOutcome:
        """What a complete round j contributes to D_{j+1} (call only when ``status(j).complete``)."""
        self._check_kept(round_)
        error_seeds: list[PoolSample] = []
        expansions: list[PoolSample] = []
        ppl_pool: list[tuple[str, float]] = []
        pool_lineage: dict[str, tuple[str, ...]] = {}
        dropped: dict[str, int] = {}
        checkpoints: set[str] = set()
        for sample_id, probe in self._probe_chain(round_):
            if probe is None:  # the probe dead-lettered this member
                dropped["DEAD_LETTER"] = dropped.get("DEAD_LETTER", 0) + 1
                continue
            if probe.checkpoint_id:
                checkpoints.add(probe.checkpoint_id)
            if probe.matched:
                if probe.ppl is not None:
                    ppl_pool.append((sample_id, probe.ppl))
                    pool_lineage[sample_id] = (probe.event_id,)
                continue
            verdict = self.verdicts.get(probe.event_id)
            if verdict is None:  # the judge dead-lettered this probe
                dropped["DEAD_LETTER"] = dropped.get("DEAD_LETTER", 0) + 1
                continue
            label = verdict.verdict
            if label in ("PRED_WRONG", "LABEL_WRONG"):
                correction = self.corrections.get(verdict.event_id)
                added = [
                    self.expansions[c.candidate_id].sample_id
                    for c in sorted(self.candidates.get(verdict.event_id, {}).values(), key=lambda c: c.index)
                    if c.candidate_id in self.expansions
                ]
                if label == "LABEL_WRONG" and verdict.has_prediction and correction is None:
                    # The relabel stage dead-lettered it: the sample still holds the label the judge
                    # called wrong, which must not go in beside expansions built from the judge's call.
                    dropped["LABEL_WRONG_UNCORRECTED"] = dropped.get("LABEL_WRONG_UNCORRECTED", 0) + 1
                else:
                    error_seeds.append(self.pool_sample(sample_id, (probe.event_id, verdict.event_id)))
                if correction is not None and correction.event_id in self.reverted:
                    # An operator undid the judge's correction: the sample is back with its label, and
                    # the expansions built from the overruled call stay out.
                    key = "EXPANSIONS_OF_A_REVERTED_RELABEL"
                    dropped[key] = dropped.get(key, 0) + len(added)
                    continue
                expansions.extend(self.pool_sample(added_id) for added_id in added)
            elif label == "BOTH_CORRECT" and probe.ppl is not None:
                ppl_pool.append((sample_id, probe.ppl))
                pool_lineage[sample_id] = (probe.event_id, verdict.event_id)
            else:
                dropped[label] = dropped.get(label, 0) + 1
        chosen = select_high_ppl(
            ppl_pool, quantile=policy.hppl_quantile, threshold=policy.hppl_threshold, max_count=None
        )
        if policy.hppl_selection == "random":
            pool_ids = sorted(sample_id for sample_id, _ in ppl_pool)
            rng = seeded_rng("hppl-random", str(round_), *pool_ids[:1])
            chosen = rng.sample(pool_ids, len(chosen))
        high_ppl = [self.pool_sample(sample_id, pool_lineage[sample_id]) for sample_id in chosen]
        return RoundOutcome(error_seeds, expansions, high_ppl, dropped, sorted(checkpoints))

    def deferred(self) -> set[str]:
        """Samples the judge panel deferred (no quorum, ``no_quorum = "defer"``) in the latest round they
        were a member of: they are back in the pool, to be drawn, probed and judged again."""
        last_round: dict[str, int] = {}
        for round_, members in self._closed_members():
            for sample_id in members:
                last_round[sample_id] = max(round_, last_round.get(sample_id, round_))
        deferrals = self._deferrals_before | {
            (v.sample_id, v.round) for v in self.verdicts.values() if v.verdict == "NO_QUORUM" and v.deferred
        }
        return {sample_id for sample_id, round_ in deferrals if last_round.get(sample_id) == round_}

    def _closed_members(self) -> Iterable[tuple[int, Iterable[str]]]:
        """(round, its members' sample ids) for every closed round (a round with members and no
        RoundClosed yet is an emission cut short, see :meth:`fresh_seeds`)."""
        for by_round in (self._members_before, self.member_events):
            for round_, members in by_round.items():
                if round_ in self.closed:
                    yield round_, members

    def fresh_seeds(self) -> list[PoolSample]:
        """Seeds never curated into any closed round, and deferred samples, in sample-id order.

        Members of a round with no RoundClosed yet are a curator's emission cut short (killed between
        its members and its manifest): the round is composed again, and must draw the same seeds."""
        trained = {sample_id for _, members in self._closed_members() for sample_id in members}
        deferred = self.deferred()
        return [
            self.pool_sample(sample_id)
            for sample_id, added in sorted(self.pool.items())
            if (added.origin == "seed" and sample_id not in trained) or sample_id in deferred
        ]


def compose_round(
    round_: int,
    outcome: RoundOutcome | None,
    fresh_seeds: Sequence[PoolSample],
    policy: CurationPolicy,
    run_id: str,
) -> list[tuple[PoolSample, CurationSource]]:
    """The members of D_round and their sources (pure and deterministic)."""
    rng = seeded_rng(run_id, "curate", str(round_))
    target = policy.target_size
    chosen: list[tuple[PoolSample, CurationSource]] = []
    hashes: set[str] = set()

    def take(items: Sequence[PoolSample], source: CurationSource, limit: int) -> None:
        taken = 0
        for item in items:
            if taken >= limit or len(chosen) >= target:
                return
            digest = item.content_hash()
            if digest in hashes:
                continue
            hashes.add(digest)
            chosen.append((item, source))
            taken += 1

    def distinct(items: Sequence[PoolSample]) -> list[PoolSample]:
        """``items`` not chosen yet, each content once (first in the given order): duplicates are
        removed before a subset is drawn, so a duplicate never costs a place a distinct one could take."""
        seen, kept = set(hashes), []
        for item in items:
            digest = item.content_hash()
            if digest not in seen:
                seen.add(digest)
                kept.append(item)
        return kept

    shuffled_seeds = rng.sample(list(fresh_seeds), len(fresh_seeds))
    if outcome is None:  # D_1 = a subset of the seed pool
        take(shuffled_seeds, "SEED", target)
        return chosen
    seed_new = min(len(shuffled_seeds), round(policy.seed_new_fraction(round_) * target))
    room = target - seed_new
    error_seeds = distinct(outcome.error_seeds)
    if policy.max_error_seed_share is not None:
        cap = min(room, round(policy.max_error_seed_share * target))
        if len(error_seeds) > cap:  # a random subset, so no kind of error is always the one left out
            error_seeds = sorted(rng.sample(list(error_seeds), cap), key=lambda s: s.sample_id)
    take(error_seeds, "ES", room)
    expansions = distinct(outcome.expansions)
    if len(expansions) > room - len(chosen):  # keep every error seed; subsample expansions evenly
        expansions = sorted(
            rng.sample(list(expansions), max(0, room - len(chosen))), key=lambda s: s.sample_id
        )
    take(expansions, "EE", room - len(chosen))
    take(outcome.high_ppl, "HPPL", room - len(chosen))
    take(shuffled_seeds, "SEED_NEW", target - len(chosen) if policy.fill == "seed_new" else seed_new)
    return chosen


def round_events(
    round_: int,
    members: Sequence[tuple[PoolSample, CurationSource]],
    policy: CurationPolicy,
    run_id: str,
    previous: Event[RoundClosed] | None,
    probed_checkpoints: Sequence[str] = (),
) -> list[Event[Any]]:
    """CuratedSample events for the members, then the RoundClosed manifest (deterministic ids)."""
    events: list[Event[Any]] = []
    counts: dict[str, int] = {}
    for sample, source in members:
        counts[source] = counts.get(source, 0) + 1
        events.append(
            make_event(
                CuratedSample(
                    round=round_,
                    sample_id=sample.sample_id,
                    source=source,
                    tools=sample.tools,
                    messages=sample.messages,
                    label=sample.label,
                    label_event_id=sample.label_event_id,
                    content_hash=sample.content_hash(),
                    conversation_time=sample.conversation_time,
                ),
                run_id=run_id,
                producer=PRODUCER,
                event_id=derived_event_id([sample.label_event_id], "curate", f"{round_}:{sample.sample_id}"),
                parent_ids=[sample.label_event_id, *sample.lineage],
            )
        )
    manifest_hash = content_hash(sorted(e.payload.content_hash for e in events))
    events.append(
        make_event(
            RoundClosed(
                round=round_,
                total=len(members),
                counts=counts,
                content_hash=manifest_hash,
                target_size=policy.target_size,
                seed_new_fraction=policy.seed_new_fraction(round_),
                probed_checkpoint_id=",".join(probed_checkpoints) or None,
            ),
            run_id=run_id,
            producer=PRODUCER,
            event_id=derived_event_id(
                [e.event_id for e in events] or [previous.event_id if previous else "0" * 26],
                "curate",
                f"round:{round_}",
            ),
            parent_ids=[previous.event_id] if previous else [],
        )
    )
    return events


def screen(
    samples: Sequence[PoolSample], policy: CurationPolicy
) -> tuple[list[PoolSample], list[tuple[PoolSample, str]]]:
    """(samples that may be trained on, (sample, reason) for those ``policy.exclude`` refuses)."""
    if policy.exclude is None:
        return list(samples), []
    kept: list[PoolSample] = []
    refused: list[tuple[PoolSample, str]] = []
    for sample in samples:
        reason = policy.exclude(sample)
        if reason:
            refused.append((sample, reason))
        else:
            kept.append(sample)
    return kept, refused


def refusal_events(refused: Sequence[tuple[PoolSample, str]], run_id: str) -> list[Event[DeadLetter]]:
    """A DeadLetter per refused sample, with the reason; the id is stable, so each round re-emits the same."""
    events = []
    for sample, reason in refused:
        content = Sample(tools=sample.tools, messages=sample.messages, label=sample.label)
        record = {"sample_id": sample.sample_id, **content.model_dump(mode="json")}
        events.append(
            make_event(
                DeadLetter(
                    stage=PRODUCER.stage,
                    reason=reason,
                    error_type="EvalSuiteOverlap",
                    source_ref=sample.label_event_id,
                    key=sample.sample_id.encode("utf-8"),
                    raw=canonical_json(record).encode("utf-8"),
                    category=REFUSAL_CATEGORY,
                ),
                run_id=run_id,
                producer=PRODUCER,
                event_id=derived_event_id([sample.label_event_id], "curate", f"refused:{sample.sample_id}"),
                parent_ids=[sample.label_event_id],
            )
        )
    return events


def next_round_events(ledger: Ledger, policy: CurationPolicy, run_id: str) -> list[Event[Any]]:
    """The events that close the next round, if the latest closed round is complete (pure)."""
    if not ledger.closed:
        return []
    latest = max(ledger.closed)
    if policy.max_round is not None and latest >= policy.max_round:
        return []
    if latest + 1 in ledger.closed or not ledger.status(latest, policy.expansions_per_seed).complete:
        return []
    outcome = ledger.outcome(latest, policy)
    error_seeds, refused_es = screen(outcome.error_seeds, policy)
    expansions, refused_ee = screen(outcome.expansions, policy)
    high_ppl, refused_hppl = screen(outcome.high_ppl, policy)
    fresh, refused_seeds = screen(ledger.fresh_seeds(), policy)
    outcome = dataclasses.replace(outcome, error_seeds=error_seeds, expansions=expansions, high_ppl=high_ppl)
    members = compose_round(latest + 1, outcome, fresh, policy, run_id)
    refused = refusal_events([*refused_es, *refused_ee, *refused_hppl, *refused_seeds], run_id)
    return refused + round_events(
        latest + 1, members, policy, run_id, ledger.closed[latest], outcome.probed_checkpoints
    )


def initial_round_events(ledger: Ledger, policy: CurationPolicy, run_id: str) -> list[Event[Any]]:
    """D_1 from the seed pool, unless round 1 already exists (pure)."""
    if 1 in ledger.closed:
        return []
    fresh, refused = screen(ledger.fresh_seeds(), policy)
    members = compose_round(1, None, fresh, policy, run_id)
    if not members and refused:
        raise ValueError(
            f"all {len(refused)} seeds in the pool are evaluation-suite questions (e.g. {refused[0][1]}); "
            "none may be trained on: ingest other seeds, or turn [eval] decontaminate off"
        )
    if not members:
        raise ValueError("the seed pool is empty: ingest seeds before opening round 1")
    return refusal_events(refused, run_id) + round_events(1, members, policy, run_id, None)


async def load_ledger(log: EventLog) -> Ledger:
    """A ledger of everything currently in the run's topics (replay, then stop)."""
    ledger = Ledger()
    async for batch in log.replay(LEDGER_TOPICS):
        for event in batch:
            ledger.add(event)
    return ledger


async def open_first_round(log: EventLog, policy: CurationPolicy) -> list[Event[Any]]:
    """``looptool curate --initial``: publish D_1 from the seeds now in the pool.

    The events are the refusals (a DeadLetter per seed kept out of training, see :func:`refusals`),
    then D_1's CuratedSample events and its RoundClosed manifest.
    """
    ledger = await load_ledger(log)
    events = initial_round_events(ledger, policy, log.run_id)
    async with log.publisher() as sink:
        await sink.send_all(events)
    return events


def refusals(events: Sequence[Event[Any]]) -> list[Event[DeadLetter]]:
    """The curator's refusals among ``events``: seeds kept out of training, each with its reason."""
    return [e for e in events if isinstance(e.payload, DeadLetter) and e.payload.stage == PRODUCER.stage]


@register("service")
class CurateService:
    """The singleton curator: follows the topics, closes each round once it is complete."""

    name = "curate"

    def __init__(self, log: EventLog, policy: CurationPolicy):
        self.log = log
        self.policy = policy
        self.ledger = Ledger(keep_events=False)  # only what the next decisions read: it runs for days
        self.emitted_rounds: list[int] = []
        self._hinted = False  # said that no round is open yet

    @classmethod
    def from_settings(cls, settings: StageSettings, clients: StageClients) -> CurateService:
        log = clients.event_log()
        if log is None:
            raise ValueError("the curate service follows the run's log: it needs an event log")
        return cls(log, CurationPolicy.from_settings(settings))

    async def run(self, stop: asyncio.Event) -> None:
        async with self.log.publisher() as sink:
            stream = self.log.follow(LEDGER_TOPICS)
            try:
                # follow() yields at least every idle timeout (an empty batch), so stop is seen promptly.
                async for batch in stream:
                    if stop.is_set():
                        break
                    for event in batch:
                        self.ledger.add(event)
                    if batch:
                        continue
                    # Caught up: decide only on the whole picture.
                    if not self.ledger.closed and not self._hinted:
                        # Nothing opened round 1: every stage waits for it. Say so once.
                        log.info(
                            "curate.waiting",
                            seeds=len(self.ledger.pool),
                            reason="no round is open yet: `looptool curate --initial` opens round 1 from "
                            "the ingested seeds",
                        )
                        self._hinted = True
                    events = next_round_events(self.ledger, self.policy, self.log.run_id)
                    if events:
                        await sink.send_all(events)
                        manifest = events[-1].payload
                        self.emitted_rounds.append(manifest.round)
                        for event in events:
                            self.ledger.add(event)
                        log.info(
                            "curate.round_closed",
                            round=manifest.round,
                            total=manifest.total,
                            counts=manifest.counts,
                        )
            finally:
                await stream.aclose()
