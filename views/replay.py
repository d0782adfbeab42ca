"""replay: rebuild D_J and the sample store as of a point in the run, from the topics alone.

A *cut* says which point: the close of round J (``--round J``), the publication of a checkpoint, or a
wall-clock time (``--until CHECKPOINT|TIMESTAMP``). Events carry the time they were produced
(``produced_at``); partitions give no total order across topics, so the cut is a time T:

- ``round J``: T is when RoundClosed(J) was produced (its first copy in the log). Everything round
  J-1's work produced, and D_J itself, lies before it; nothing that probing D_J produced does (the
  trainer has to train on D_J first). So a label corrected after probing D_J (a LabelCorrected of
  round J) is not in the store as of round J, and D_J's labels are the labels its CuratedSample
  events carry: the labels that were current when D_J was curated.
- ``CHECKPOINT``: T is when that checkpoint was published; the round it was trained on, and those
  before, closed within the cut whatever the clocks say.
- ``TIMESTAMP``: T itself (ISO 8601; without a zone it is UTC).

Stamps come from the workers' clocks, which can disagree, so events that carry their round are placed
by it, on the pipeline's order rather than the stamp:

- the members of a round whose RoundClosed belongs to the cut are kept whole whatever their stamps
  say (a round is one decision), and no member or manifest of a round after ``--round J`` belongs;
- the events of round j's work (ProbeResult, Verdict, the LabelCorrected that answers a verdict,
  ExpansionCandidate, VerificationResult, an expansion's SampleAdded: all carry j) start only once D_j
  was curated, and the curator closes round j+1 only once that work is complete: they belong if
  RoundClosed(j+1) does (and their stamp is at most ``CLOCK_SKEW_TOLERANCE``, 10 minutes, after it),
  and not if RoundClosed(j) does not or, for ``--round J``, if j >= J. Of the round in progress at a
  checkpoint or a time, they are placed by their stamp;
- a checkpoint of round j (trained on D_j), its evaluation and its promotion decision follow
  RoundClosed(j) too, but may come after RoundClosed(j+1): they do not belong if RoundClosed(j) does
  not or, for ``--round J``, if j >= J; otherwise they are placed by their stamp. (The one exception to
  that order: what ``looptool redrive`` makes a stage produce for a dead-lettered input of round j
  after RoundClosed(j+1) carries j too, though D_{j+1} was curated without it. Stamped more than the
  tolerance after that close, it is placed by its stamp; a redrive within it, like a clock skewed
  beyond it, is misplaced.)

Every other event (a seed, a dead letter, an operator's revert of a relabel) belongs to the cut iff it
was produced at or before T.

The dataset as of the cut is the latest round closed within it. Redelivered copies of an event
share its id; the first copy in the log is the event, as for every consumer.

The rebuilt D_J is checked against its manifest (member count, source counts, the content hash in
RoundClosed, each member's content hash recomputed from its tools, context and label) and, when a
curation policy is given, recomputed by the curator's own pure fold (:class:`streams.curate.Ledger`)
from the events that preceded it: a rebuild equals what the live pipeline curated, or the result
says where it differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bus.kafka import ReplayStats, replay
from common.logs import get_logger
from common.progress import counting_status
from schemas.events import (
    CheckpointEvaluated,
    CheckpointPublished,
    CuratedSample,
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
from streams.curate import CurationPolicy, Ledger, initial_round_events, next_round_events
from toolcall.canonical import content_hash
from toolcall.specs import ToolSpec
from toolcall.types import Action, Message, Sample
from views.config import StoreRunSettings
from views.store import ALL_TOPIC_NAMES, BulkLoad, SampleStore, building_beside, store_lock

log = get_logger(__name__)

CONTROL_TOPICS = ("rounds", "checkpoints")
# How far past RoundClosed(j+1) a worker's clock may have stamped round j's work and still have it
# placed with that work. Later than this it is taken for what `looptool redrive` made of a dead
# letter after the round closed (curated without it), and placed by its stamp.
CLOCK_SKEW_TOLERANCE = timedelta(minutes=10)
# What a dataset needs: its members and manifest, the samples (origin, seed) and the cut's anchors.
DATASET_TOPICS = ("samples", "curated", "rounds", "checkpoints")


class ReplayError(ValueError):
    """The cut names a round or checkpoint the log does not hold, or a time that is not one."""


@dataclass(frozen=True)
class Cut:
    """A point in the run: the close of a round, a checkpoint, a time, or (all None) the log's end."""

    round: int | None = None
    checkpoint_id: str | None = None
    timestamp: datetime | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.round, self.checkpoint_id, self.timestamp) if v is not None]
        if len(given) > 1:
            raise ReplayError("a cut is one of: a round, a checkpoint, a timestamp")
        if self.round is not None and self.round < 1:
            raise ReplayError(f"rounds start at 1, got {self.round}")
        if self.timestamp is not None and self.timestamp.tzinfo is None:
            raise ReplayError("a cut's timestamp must carry a time zone")

    @classmethod
    def from_options(cls, round_: int | None = None, until: str | None = None) -> Cut:
        """The cut of ``--round J`` / ``--until CHECKPOINT|TIMESTAMP`` (neither: the end of the log)."""
        if round_ is not None and until is not None:
            raise ReplayError("give --round or --until, not both")
        if round_ is not None:
            return cls(round=round_)
        if until is not None:
            return cls.until(until)
        return cls()

    @classmethod
    def until(cls, text: str) -> Cut:
        """``TIMESTAMP`` if ``text`` parses as ISO 8601 (naive means UTC), else a checkpoint id."""
        text = text.strip()
        if not text:
            raise ReplayError("--until needs a checkpoint id or an ISO 8601 timestamp")
        if re.match(r"^\d{4}-\d{2}-\d{2}", text):
            try:
                stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError as error:
                raise ReplayError(f"{text!r} looks like a timestamp but is not ISO 8601: {error}") from None
            return cls(timestamp=stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC))
        return cls(checkpoint_id=text)

    @property
    def is_end(self) -> bool:
        return self.round is None and self.checkpoint_id is None and self.timestamp is None

    def describe(self) -> str:
        if self.round is not None:
            return f"round {self.round} closed"
        if self.checkpoint_id is not None:
            return f"checkpoint {self.checkpoint_id} published"
        if self.timestamp is not None:
            return f"{self.timestamp.isoformat()}"
        return "end of the log"

    def slug(self) -> str:
        """A file-name-safe name for the cut (default output paths)."""
        if self.round is not None:
            return f"round-{self.round}"
        if self.checkpoint_id is not None:
            return "ckpt-" + re.sub(r"[^A-Za-z0-9._-]+", "_", self.checkpoint_id)
        if self.timestamp is not None:
            return "until-" + self.timestamp.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return "end"


@dataclass(frozen=True)
class Boundary:
    """A cut resolved against the log: its time and the rounds closed within it."""

    cut: Cut
    time: datetime | None  # None: no cut, everything belongs
    closed_rounds: frozenset[int]
    dataset_round: int | None  # the round whose dataset is current at the cut
    closed_at: dict[int, datetime] = field(default_factory=dict)  # when each round closed (all rounds)

    def includes(self, event: Event[Any]) -> bool:
        if self.time is None:
            return True
        payload = event.payload
        if isinstance(payload, CuratedSample | RoundClosed):
            if payload.round in self.closed_rounds:
                return True
            if self.cut.round is not None and payload.round > self.cut.round:
                return False
        worked = work_round(payload)
        if worked is not None and worked + 1 in self.closed_rounds and self._skewed(event, worked + 1):
            return True  # D_{j+1} was curated from it all
        after = after_round_closed(payload)
        if after is not None:
            if after not in self.closed_rounds:  # D_j was not even curated by the cut
                return False
            if self.cut.round is not None and after >= self.cut.round:  # training on D_J follows the cut
                return False
        return event.produced_at <= self.time

    def _skewed(self, event: Event[Any], round_: int) -> bool:
        """Whether ``event``, of the work that RoundClosed(round_) followed, was stamped no later than
        a clock's skew after that close (:data:`CLOCK_SKEW_TOLERANCE`)."""
        return event.produced_at <= self.closed_at[round_] + CLOCK_SKEW_TOLERANCE


def work_round(payload: Any) -> int | None:
    """The round j whose work (probing D_j and what follows from it) produced an event, else None.

    Such an event is produced after RoundClosed(j) and before RoundClosed(j+1) whatever its stamp
    says. An operator's revert of a relabel carries the relabel's round but may come at any time, and
    a seed's round (0) is none: both are placed by their stamp.
    """
    if isinstance(payload, ProbeResult | Verdict | ExpansionCandidate | VerificationResult):
        return payload.round
    if isinstance(payload, LabelCorrected) and payload.verdict_event_id is not None:
        return payload.round
    if isinstance(payload, SampleAdded) and payload.origin == "expansion":
        return payload.round
    return None


def after_round_closed(payload: Any) -> int | None:
    """The round j whose RoundClosed an event follows whatever its stamp says, else None: round j's
    work, and the checkpoints trained on D_j (the trainer trains a round once its manifest is in the
    log, and names it as the checkpoint's parent) with their evaluations and promotion decisions.
    Those may come after RoundClosed(j+1) too (the trainer or the evaluator is behind the curator):
    beyond this, they are placed by their stamp."""
    worked = work_round(payload)
    if worked is not None:
        return worked
    if isinstance(payload, CheckpointPublished | CheckpointEvaluated | PolicyPromoted | PromotionRefused):
        return payload.round if payload.round >= 1 else None  # round 0: a base model's, before any D_j
    return None


def resolve_boundary(cut: Cut, control_events: Sequence[Event[Any]]) -> Boundary:
    """Resolve ``cut`` with the run's RoundClosed and CheckpointPublished events (pure)."""
    closings: dict[int, Event[RoundClosed]] = {}
    checkpoints: dict[str, Event[CheckpointPublished]] = {}
    for event in control_events:  # log order: the first copy of each is the event
        if isinstance(event.payload, RoundClosed):
            closings.setdefault(event.payload.round, event)
        elif isinstance(event.payload, CheckpointPublished):
            checkpoints.setdefault(event.payload.new_checkpoint_id, event)
    closed_at = {r: e.produced_at for r, e in closings.items()}
    if cut.is_end:
        closed = frozenset(closings)
        return Boundary(cut, None, closed, max(closed) if closed else None, closed_at)
    if cut.round is not None:
        if cut.round not in closings:
            known = ", ".join(map(str, sorted(closings))) or "none"
            raise ReplayError(f"round {cut.round} has not closed in this run (closed rounds: {known})")
        at = closings[cut.round].produced_at
        closed = frozenset(r for r in closings if r <= cut.round)
        return Boundary(cut, at, closed, cut.round, closed_at)
    if cut.checkpoint_id is not None:
        if cut.checkpoint_id not in checkpoints:
            known = ", ".join(sorted(checkpoints)[:10]) or "none"
            raise ReplayError(f"checkpoint {cut.checkpoint_id!r} is not in this run (checkpoints: {known})")
        checkpoint = checkpoints[cut.checkpoint_id]
        at = checkpoint.produced_at
        # Its round closed before it was trained, whatever the trainer's clock says.
        trained_on = {r for r in closings if r <= checkpoint.payload.round}
    else:
        assert cut.timestamp is not None
        at = cut.timestamp
        trained_on = set()
    closed = frozenset(trained_on | {r for r, e in closings.items() if e.produced_at <= at})
    return Boundary(cut, at, closed, max(closed) if closed else None, closed_at)


# --- the dataset D_J ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetMember:
    """One member of D_J, with the label it was curated with and where the sample came from."""

    sample_id: str
    round: int
    source: str
    tools: list[ToolSpec]
    messages: list[Message]
    label: Action
    label_event_id: str
    content_hash: str
    event_id: str
    origin: str | None = None  # seed | expansion (None: its SampleAdded is not in the log)
    seed_sample_id: str | None = None
    conversation_time: str | None = None  # the prompts' current time; None: the run's default

    @property
    def sample(self) -> Sample:
        return Sample(
            tools=self.tools,
            messages=self.messages,
            label=self.label,
            conversation_time=self.conversation_time,
        )


@dataclass(frozen=True)
class RoundDataset:
    """D_J as the log holds it, members in sample-id order, checked against its manifest."""

    round: int
    members: tuple[DatasetMember, ...]
    manifest: RoundClosed | None
    manifest_event_id: str | None
    content_hash: str  # over the members' recomputed content hashes, as RoundClosed's
    problems: tuple[str, ...] = ()
    # Records of the topics read that did not decode (a newer release's, another run's): what they
    # held is missing, e.g. the origin of a member whose SampleAdded is one of them.
    undecodable: int = 0

    @property
    def verified(self) -> bool:
        return self.manifest is not None and not self.problems

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for member in self.members:
            counts[member.source] = counts.get(member.source, 0) + 1
        return counts


def dataset_from_ledger(
    ledger: Ledger, round_: int, origins: dict[str, Event[SampleAdded]] | None = None
) -> RoundDataset:
    """D_round from a ledger's CuratedSample and RoundClosed events, with every check that fails.

    ``origins`` maps sample ids to their origin SampleAdded (the smallest event id, the store's rule;
    default: the ledger's first arrival): ids are content hashes, so one sample can be added twice.
    """
    origins = origins if origins is not None else ledger.samples
    problems: list[str] = []
    members: list[DatasetMember] = []
    for sample_id, event in sorted(ledger.members.get(round_, {}).items()):
        p = event.payload
        recomputed = Sample(tools=p.tools, messages=p.messages, label=p.label).content_hash()
        if recomputed != p.content_hash:
            problems.append(f"member {sample_id}: content hash {p.content_hash} != recomputed {recomputed}")
        added = origins.get(sample_id)
        members.append(
            DatasetMember(
                sample_id=sample_id,
                round=p.round,
                source=p.source,
                tools=p.tools,
                messages=p.messages,
                label=p.label,
                label_event_id=p.label_event_id,
                content_hash=recomputed,
                event_id=event.event_id,
                origin=added.payload.origin if added else None,
                seed_sample_id=added.payload.seed_sample_id if added else None,
                conversation_time=p.conversation_time,
            )
        )
    digest = content_hash(sorted(m.content_hash for m in members))
    closing = ledger.closed.get(round_)
    manifest = closing.payload if closing else None
    if manifest is None:
        problems.append(f"round {round_} has no RoundClosed manifest in the log")
    else:
        if manifest.total != len(members):
            problems.append(f"manifest lists {manifest.total} members, the log holds {len(members)}")
        counts: dict[str, int] = {}
        for member in members:
            counts[member.source] = counts.get(member.source, 0) + 1
        if manifest.counts != counts:
            problems.append(f"manifest counts {manifest.counts} != members' sources {counts}")
        if manifest.content_hash != digest:
            problems.append(f"manifest content hash {manifest.content_hash} != rebuilt {digest}")
    return RoundDataset(
        round=round_,
        members=tuple(members),
        manifest=manifest,
        manifest_event_id=closing.event_id if closing else None,
        content_hash=digest,
        problems=tuple(problems),
    )


@dataclass(frozen=True)
class RecomputeCheck:
    """D_J curated again by the curator's pure fold from the events before it, compared with the log."""

    round: int
    matches: bool
    content_hash: str | None
    differences: tuple[str, ...] = ()


def recompute_round(
    upstream: Ledger, dataset: RoundDataset, policy: CurationPolicy, run_id: str
) -> RecomputeCheck:
    """Curate D_J again from ``upstream`` (everything before it, no round >= J) and compare."""
    round_ = dataset.round
    policy = dataclasses.replace(policy, max_round=None)
    if round_ == 1:
        try:
            events = initial_round_events(upstream, policy, run_id)
        except ValueError as error:
            return RecomputeCheck(round_, False, None, (str(error),))
    else:
        status = upstream.status(round_ - 1, policy.expansions_per_seed)
        if not status.complete:
            return RecomputeCheck(
                round_, False, None, (f"round {round_ - 1}'s work is incomplete: {status}",)
            )
        events = next_round_events(upstream, policy, run_id)
    if not events or events[-1].payload.round != round_:
        return RecomputeCheck(round_, False, None, (f"the curator would not build round {round_} now",))
    # The curator also emits a DeadLetter per seed it refuses (eval-suite overlap): not members.
    recomputed = {e.payload.sample_id: e for e in events if isinstance(e.payload, CuratedSample)}
    logged = {m.sample_id: m for m in dataset.members}
    differences: list[str] = []
    for sample_id in sorted(set(recomputed) - set(logged)):
        differences.append(
            f"{sample_id}: recomputed as {recomputed[sample_id].payload.source}, not in the log"
        )
    for sample_id in sorted(set(logged) - set(recomputed)):
        differences.append(f"{sample_id}: in the log as {logged[sample_id].source}, not recomputed")
    for sample_id in sorted(set(logged) & set(recomputed)):
        mine, theirs = recomputed[sample_id], logged[sample_id]
        if (mine.event_id, mine.payload.source, mine.payload.label, mine.payload.content_hash) != (
            theirs.event_id,
            theirs.source,
            theirs.label,
            theirs.content_hash,
        ):
            differences.append(f"{sample_id}: recomputed member differs from the logged one")
    manifest_hash = events[-1].payload.content_hash
    if manifest_hash != dataset.content_hash:
        differences.append(f"recomputed content hash {manifest_hash} != logged {dataset.content_hash}")
    return RecomputeCheck(round_, not differences, manifest_hash, tuple(differences[:50]))


# --- reading the log ----------------------------------------------------------------------------


@dataclass
class ReplayResult:
    cut: Cut
    boundary: Boundary
    records: int = 0  # records read from the topics
    undecodable: int = 0
    duplicates: int = 0  # redelivered copies of an event already seen
    included: int = 0  # distinct events within the cut
    excluded: int = 0  # distinct events after the cut
    elapsed_s: float = 0.0
    dataset: RoundDataset | None = None
    recompute: RecomputeCheck | None = None
    store_path: Path | None = None
    by_type: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def load_boundary(settings: StoreRunSettings, cut: Cut) -> Boundary:
    """Resolve ``cut`` by reading the run's control topics (rounds, checkpoints)."""
    control: list[Event[Any]] = []
    async for batch in replay(settings.kafka, settings.run_id, CONTROL_TOPICS):
        control.extend(d.event for d in batch)
    return resolve_boundary(cut, control)


async def events_within(
    settings: StoreRunSettings,
    boundary: Boundary,
    topics: Sequence[str] = ALL_TOPIC_NAMES,
    result: ReplayResult | None = None,
    batch_size: int = 5000,
) -> AsyncIterator[list[Event[Any]]]:
    """The distinct events of ``topics`` within the cut, in batches (first copy of each id)."""
    stats = ReplayStats()
    seen: set[str] = set()
    started = time.perf_counter()
    async for batch in replay(settings.kafka, settings.run_id, topics, batch_size=batch_size, stats=stats):
        kept: list[Event[Any]] = []
        for delivered in batch:
            event = delivered.event
            if event.event_id in seen:
                if result is not None:
                    result.duplicates += 1
                continue
            seen.add(event.event_id)
            if not boundary.includes(event):
                if result is not None:
                    result.excluded += 1
                continue
            kept.append(event)
            if result is not None:
                result.included += 1
                result.by_type[event.event_type] = result.by_type.get(event.event_type, 0) + 1
        if result is not None:
            result.records, result.undecodable = stats.records, stats.undecodable
            result.elapsed_s = time.perf_counter() - started
        if kept:
            yield kept
    if result is not None:  # records after the last delivered batch (undecodable ones) count too
        result.records, result.undecodable = stats.records, stats.undecodable
        result.elapsed_s = time.perf_counter() - started


async def replay_to(
    settings: StoreRunSettings,
    cut: Cut,
    *,
    store_path: Path | None = None,
    policy: CurationPolicy | None = None,
    topics: Sequence[str] = ALL_TOPIC_NAMES,
    on_batch: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Rebuild the run as of ``cut``: D_J (checked), and the LanceDB store at ``store_path`` if given.

    With ``policy`` (the run's curation policy) D_J is also recomputed from the events before it.
    """
    boundary = await load_boundary(settings, cut)
    result = ReplayResult(cut=cut, boundary=boundary, store_path=store_path)
    with contextlib.ExitStack() as held:
        store: BulkLoad | None = None
        if store_path is not None:  # one writer per store folder (a live store, a rebuild)
            held.enter_context(store_lock(store_path))
            # Built beside the folder and swapped in at the end: an interrupted replay leaves the
            # store that was there (an earlier replay) as it was.
            store = BulkLoad(SampleStore(held.enter_context(building_beside(store_path))))
            held.callback(store.close)
        ledger = Ledger()
        origins: dict[str, Event[SampleAdded]] = {}
        upstream = Ledger() if policy is not None and boundary.dataset_round is not None else None
        started = time.perf_counter()
        async for batch in events_within(settings, boundary, topics, result):
            for event in batch:
                ledger.add(event)
                if isinstance(event.payload, SampleAdded):
                    known = origins.get(event.payload.sample_id)
                    if known is None or event.event_id < known.event_id:
                        origins[event.payload.sample_id] = event
                if upstream is not None and _before_curation(event, boundary):
                    upstream.add(event)
            if store is not None:
                store.add(batch)
            if on_batch is not None:
                on_batch(len(batch))
        if store is not None:
            store.finish()
    result.elapsed_s = time.perf_counter() - started
    if boundary.dataset_round is not None:
        result.dataset = dataset_from_ledger(ledger, boundary.dataset_round, origins)
        if upstream is not None and policy is not None:
            result.recompute = recompute_round(upstream, result.dataset, policy, settings.run_id)
    log.info(
        "replay.done",
        cut=cut.describe(),
        records=result.records,
        included=result.included,
        excluded=result.excluded,
        dataset_round=boundary.dataset_round,
        events_per_s=round(result.events_per_s),
    )
    return result


def _before_curation(event: Event[Any], boundary: Boundary) -> bool:
    """Whether the curator of the cut's dataset round could have seen ``event`` (for the recompute)."""
    round_ = boundary.dataset_round
    assert round_ is not None
    payload = event.payload
    # By round where the event carries one, as Boundary.includes: D_J was curated from D_{J-1}'s
    # members and its whole work, and from nothing of round J or later.
    if isinstance(payload, CuratedSample | RoundClosed):
        return payload.round < round_
    worked = work_round(payload)
    if worked is not None:
        if worked >= round_:
            return False
        if boundary._skewed(event, worked + 1):
            return True
    return event.produced_at <= boundary.closed_at[round_]


async def dataset_at(settings: StoreRunSettings, cut: Cut) -> RoundDataset:
    """D_J as of ``cut`` (reads only the topics a dataset needs); raises if none closed by then."""
    result = await replay_to(settings, cut, topics=DATASET_TOPICS)
    if result.dataset is None:
        if result.records == 0:  # most likely a mistyped run id, not a run still in its first round
            raise ReplayError(
                f"run {settings.run_id!r} has no events on {settings.kafka.bootstrap_servers}: "
                "a mistyped --run-id (or run_id in the config)?"
            )
        raise ReplayError(f"no round had closed by the cut ({cut.describe()})")
    return dataclasses.replace(result.dataset, undecodable=result.undecodable)


# --- the command --------------------------------------------------------------------------------


def default_replay_path(settings: StoreRunSettings, cut: Cut) -> Path:
    return settings.store.path.parent / "replay" / settings.run_id / cut.slug()


def run_replay(
    settings: StoreRunSettings,
    *,
    round_: int | None,
    until: str | None,
    store_path: Path | None,
    console: Console,
    check_curation: bool = True,
) -> ReplayResult:
    """``looptool replay``: rebuild the store and D_J as of the cut, print what was rebuilt and checked."""
    cut = Cut.from_options(round_, until)
    target = store_path or default_replay_path(settings, cut)
    live = {Path(settings.store.folder(settings.run_id)).resolve(), Path(settings.store.path).resolve()}
    if Path(target).resolve() in live:
        raise ReplayError(
            f"{target} is the live store: replay into another folder "
            "(`looptool rebuild` rebuilds the live store itself)"
        )
    policy = None
    if check_curation:
        from streams.curate import CurationPolicy

        policy = CurationPolicy.from_settings(settings)
    with counting_status(console, f"replaying run {settings.run_id} up to {cut.describe()}") as progress:
        result = asyncio.run(replay_to(settings, cut, store_path=target, policy=policy, on_batch=progress))
    console.print(render_replay(result))
    return result


def render_replay(result: ReplayResult) -> Table:
    table = Table("", "", title=f"replay up to {result.cut.describe()}", show_header=False)
    boundary = result.boundary
    table.add_row("cut time", boundary.time.isoformat() if boundary.time else "(none: the whole log)")
    table.add_row(
        "records read", f"{result.records} ({result.undecodable} undecodable, {result.duplicates} duplicates)"
    )
    table.add_row("events within the cut", str(result.included))
    table.add_row("events after the cut", str(result.excluded))
    table.add_row("speed", f"{result.events_per_s:,.0f} records/s")
    if result.store_path is not None:
        table.add_row("store", str(result.store_path))
    dataset = result.dataset
    if dataset is None:
        table.add_row("dataset", "no round closed by the cut")
        return table
    table.add_row(f"D_{dataset.round}", f"{len(dataset.members)} samples {dataset.counts()}")
    table.add_row("content hash", dataset.content_hash)
    if dataset.verified:
        table.add_row("manifest", "[green]matches RoundClosed (members, sources, content hash)[/]")
    else:
        table.add_row("manifest", "[red]" + "; ".join(dataset.problems[:5]) + "[/]")
    if result.recompute is not None:
        check = result.recompute
        table.add_row(
            "recomputed",
            "[green]the curator's fold rebuilds the same members[/]"
            if check.matches
            else "[red]" + "; ".join(check.differences[:5]) + "[/]",
        )
    return table
