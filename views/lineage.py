"""lineage: one sample's whole history, from its origin to every round it was curated into.

For a sample: where it came from (a seed file, or an expansion of an error seed: the candidate, the
verdict and the probe that made that seed an error seed, then the seed's own lineage, up to an
original seed), its label history, every round it was curated into and as what, every probe of it
(checkpoint, match, ToolMatch diffs, perplexity), the verdict on each mismatch, the relabel it
caused, the expansions it spawned (each candidate's verification outcome and the sample it became)
and any dead letter about it.

The history is read through an :class:`EventIndex`: :class:`MemoryIndex` over events (a replay of
the topics) or :class:`StoreIndex` over the sample store's ``events`` table (indexed by subject
sample id; expansions and dead letters are found through their ``parent_ids``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from bus.kafka import ReplayStats
from schemas.events import (
    CuratedSample,
    DeadLetter,
    Event,
    ExpansionCandidate,
    LabelCorrected,
    ProbeResult,
    SampleAdded,
    Verdict,
    VerificationResult,
)
from toolcall.canonical import canonical_json
from toolcall.parsing import render_action
from toolcall.types import Action, ToolCall
from views.analytics.collect import failing_rule
from views.config import StoreRunSettings
from views.store import SampleStore, event_from_row, open_for_reading

MAX_DEPTH = 16


class LineageError(LookupError):
    """The sample is not in the run."""


class EventIndex(Protocol):
    def about(self, sample_id: str) -> list[Event[Any]]:
        """Events whose subject is the sample (its own, and the candidates it seeded)."""
        ...

    def children(self, parent_ids: Sequence[str], event_type: str) -> list[Event[Any]]:
        """Events of ``event_type`` with one of ``parent_ids`` among their parents."""
        ...


def _subject(event: Event[Any]) -> str | None:
    payload = event.payload
    return getattr(payload, "sample_id", None) or getattr(payload, "seed_sample_id", None)


class MemoryIndex:
    """An index over events in memory (first copy of each id)."""

    def __init__(self, events: Iterable[Event[Any]]):
        self._about: dict[str, list[Event[Any]]] = {}
        self._children: dict[str, list[Event[Any]]] = {}
        seen: set[str] = set()
        for event in events:
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            subject = _subject(event)
            if subject:
                self._about.setdefault(subject, []).append(event)
            for parent in event.parent_ids:
                self._children.setdefault(parent, []).append(event)

    def about(self, sample_id: str) -> list[Event[Any]]:
        return list(self._about.get(sample_id, []))

    def children(self, parent_ids: Sequence[str], event_type: str) -> list[Event[Any]]:
        found: dict[str, Event[Any]] = {}
        for parent in parent_ids:
            for event in self._children.get(parent, []):
                if event.event_type == event_type:
                    found.setdefault(event.event_id, event)
        return list(found.values())


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class StoreIndex:
    """An index over a sample store's ``events`` table (LanceDB filters, nothing loaded in bulk)."""

    def __init__(self, store: SampleStore, chunk: int = 500):
        self.table = store.table("events")
        self.chunk = chunk

    def _where(self, where: str) -> list[Event[Any]]:
        rows = self.table.search().where(where).limit(None).to_arrow().to_pylist()
        return [event_from_row(row) for row in rows]

    def about(self, sample_id: str) -> list[Event[Any]]:
        return self._where(f"sample_id = {_quote(sample_id)}")

    def children(self, parent_ids: Sequence[str], event_type: str) -> list[Event[Any]]:
        found: dict[str, Event[Any]] = {}
        ids = sorted(set(parent_ids))
        for start in range(0, len(ids), self.chunk):
            listed = ", ".join(_quote(i) for i in ids[start : start + self.chunk])
            where = f"event_type = {_quote(event_type)} AND array_has_any(parent_ids, [{listed}])"
            for event in self._where(where):
                found.setdefault(event.event_id, event)
        return list(found.values())


# --- the history --------------------------------------------------------------------------------


def _render(action: Action | None) -> str:
    """The action as the model writes it, arguments in sorted key order: the store keeps events as
    canonical JSON, so the order a producer wrote them in is not part of an event's identity."""
    if action is None:
        return "(none)"
    calls = [ToolCall(name=c.name, arguments=json.loads(canonical_json(c.arguments))) for c in action.calls]
    return render_action(action.model_copy(update={"calls": calls})).replace("\n", " ")


@dataclass
class LabelStep:
    event_id: str
    round: int
    label: str
    reason: str


@dataclass
class CurationStep:
    round: int
    source: str
    label_event_id: str
    label: str
    event_id: str


@dataclass
class ExpansionStep:
    candidate_id: str
    index: int
    focus: str
    outcome: str  # passed | rule:<code> | llm:<verdict> | unverified
    reason: str
    parse_error: str | None
    sample_id: str | None  # the sample it became, when it passed
    event_id: str


@dataclass
class ProbeStep:
    event_id: str
    round: int
    checkpoint_id: str | None
    matched: bool
    prediction: str
    parse_error: str | None
    diffs: list[str]
    ppl: float | None
    verdict: str | None = None
    decided_by: str | None = None
    error_analysis: str = ""
    verdict_event_id: str | None = None
    relabel: LabelStep | None = None
    expansions: list[ExpansionStep] = field(default_factory=list)


@dataclass
class DeadLetterStep:
    event_id: str
    stage: str
    reason: str


@dataclass
class OtherOrigin:
    """A further SampleAdded of the same (content-addressed) sample, e.g. an expansion that recreated it."""

    event_id: str
    origin: str
    round: int
    seed_sample_id: str | None
    candidate_id: str | None


@dataclass
class SampleLineage:
    sample_id: str
    origin: str
    round_added: int
    source_format: str
    source_ref: str | None
    added_event_id: str
    seed_sample_id: str | None
    candidate_id: str | None
    labels: list[LabelStep]
    curated: list[CurationStep]
    probes: list[ProbeStep]
    dead_letters: list[DeadLetterStep]
    also_added: list[OtherOrigin] = field(default_factory=list)
    spawned_by: ProbeStep | None = None  # the seed's probe whose verdict led to this expansion
    parent: SampleLineage | None = None  # the error seed's own lineage
    truncated: bool = False  # the chain of seeds was longer than MAX_DEPTH (or looped)

    def ancestry(self) -> list[str]:
        """This sample, the error seed it was expanded from, that seed's seed, … the original seed."""
        chain, node = [], self
        while node is not None:
            chain.append(node.sample_id)
            node = node.parent
        return chain

    @property
    def root(self) -> SampleLineage:
        node = self
        while node.parent is not None:
            node = node.parent
        return node


def _diff_text(diff: Any) -> str:
    return diff.kind + (f" at {diff.path}" if diff.path else "")


def build_lineage(
    index: EventIndex, sample_id: str, *, _depth: int = 0, _chain: tuple[str, ...] = ()
) -> SampleLineage:
    """The history of ``sample_id`` (and of the seeds it descends from), from the index."""
    events = sorted(index.about(sample_id), key=lambda e: e.event_id)
    added = [e for e in events if isinstance(e.payload, SampleAdded) and e.payload.sample_id == sample_id]
    if not added:
        raise LineageError(f"sample {sample_id!r} has no SampleAdded event in this run")
    origin = added[
        0
    ]  # the store's rule: the smallest event id is the sample's origin (ids are content-based,
    # so an expansion can recreate a sample that exists: those further SampleAdded are listed, not followed)
    o = origin.payload
    labels = [LabelStep(origin.event_id, o.round, _render(o.label), "added")]
    corrections: dict[str, LabelStep] = {}
    for event in events:
        if isinstance(event.payload, LabelCorrected) and event.payload.sample_id == sample_id:
            step = LabelStep(
                event.event_id, event.payload.round, _render(event.payload.new_label), event.payload.reason
            )
            labels.append(step)
            if event.payload.verdict_event_id:
                corrections.setdefault(event.payload.verdict_event_id, step)
    curated = sorted(
        (
            CurationStep(
                e.payload.round,
                e.payload.source,
                e.payload.label_event_id,
                _render(e.payload.label),
                e.event_id,
            )
            for e in _first_by(events, CuratedSample, lambda p: p.round)
        ),
        key=lambda step: step.round,
    )
    verdicts = {e.payload.probe_event_id: e for e in _first_by(events, Verdict, lambda p: p.probe_event_id)}
    candidates = _first_by(events, ExpansionCandidate, lambda p: p.candidate_id)
    results = {
        e.payload.candidate_id: e for e in _first_by(events, VerificationResult, lambda p: p.candidate_id)
    }
    became: dict[str, str] = {}
    for child in index.children([c.event_id for c in candidates], "SampleAdded"):
        for parent in child.parent_ids:
            became.setdefault(parent, child.payload.sample_id)
    expansions: dict[str, list[ExpansionStep]] = {}
    for candidate in sorted(candidates, key=lambda e: (e.payload.round, e.payload.index)):
        c = candidate.payload
        result = results.get(c.candidate_id)
        expansions.setdefault(c.verdict_event_id, []).append(
            ExpansionStep(
                candidate_id=c.candidate_id,
                index=c.index,
                focus=c.scenario.focus,
                outcome=failing_rule(result.payload) if result else "unverified",
                reason=result.payload.reason if result else "",
                parse_error=c.parse_error,
                sample_id=became.get(candidate.event_id),
                event_id=candidate.event_id,
            )
        )
    probes = []
    for probe in sorted(_first_by(events, ProbeResult, lambda p: p.round), key=lambda e: e.payload.round):
        p = probe.payload
        step = ProbeStep(
            event_id=probe.event_id,
            round=p.round,
            checkpoint_id=probe.checkpoint_id,
            matched=p.matched,
            prediction=_render(p.prediction) if p.prediction is not None else p.raw_output[:200],
            parse_error=p.parse_error,
            diffs=[_diff_text(d) for d in p.diffs],
            ppl=p.ppl,
        )
        verdict = verdicts.get(probe.event_id)
        if verdict is not None:
            v = verdict.payload
            step.verdict, step.decided_by, step.error_analysis = v.verdict, v.decided_by, v.error_analysis
            step.verdict_event_id = verdict.event_id
            step.relabel = corrections.get(verdict.event_id)
            step.expansions = expansions.get(verdict.event_id, [])
        probes.append(step)
    own_ids = [e.event_id for e in events]
    dead = [
        DeadLetterStep(e.event_id, e.payload.stage, e.payload.reason)
        for e in sorted(index.children(own_ids, "DeadLetter"), key=lambda e: e.event_id)
        if isinstance(e.payload, DeadLetter)
    ]
    lineage = SampleLineage(
        sample_id=sample_id,
        origin=o.origin,
        round_added=o.round,
        source_format=o.source_format,
        source_ref=o.source_ref,
        added_event_id=origin.event_id,
        seed_sample_id=o.seed_sample_id,
        candidate_id=o.metadata.get("candidate_id"),
        labels=labels,
        curated=curated,
        probes=probes,
        dead_letters=dead,
        also_added=[
            OtherOrigin(
                e.event_id,
                e.payload.origin,
                e.payload.round,
                e.payload.seed_sample_id,
                e.payload.metadata.get("candidate_id"),
            )
            for e in added[1:]
        ],
    )
    seed = o.seed_sample_id
    if o.origin == "expansion" and seed:
        if _depth + 1 >= MAX_DEPTH or seed in _chain or seed == sample_id:
            lineage.truncated = True
        else:
            try:
                lineage.parent = build_lineage(index, seed, _depth=_depth + 1, _chain=(*_chain, sample_id))
            except LineageError:
                lineage.truncated = True
            else:
                lineage.spawned_by = next(
                    (
                        probe
                        for probe in lineage.parent.probes
                        if any(x.candidate_id == lineage.candidate_id for x in probe.expansions)
                    ),
                    None,
                )
    return lineage


def _first_by(events: Sequence[Event[Any]], kind: type, key: Any) -> list[Event[Any]]:
    """The first event (smallest id) of ``kind`` per logical key (redeliveries share their id anyway)."""
    found: dict[Any, Event[Any]] = {}
    for event in events:
        if isinstance(event.payload, kind):
            found.setdefault(key(event.payload), event)
    return list(found.values())


# --- rendering ----------------------------------------------------------------------------------


def _probe_node(tree: Tree, probe: ProbeStep) -> None:
    where = f"round {probe.round} probe" + (f" ({_t(probe.checkpoint_id)})" if probe.checkpoint_id else "")
    ppl = f", PPL {probe.ppl:.2f}" if probe.ppl is not None else ""
    if probe.matched:
        tree.add(f"{where}: [green]matched[/]{ppl}")
        return
    node = tree.add(f"{where}: [red]mismatch[/] {_t(', '.join(probe.diffs))}{ppl}")
    node.add(f"prediction: {_t(probe.prediction)}")
    if probe.verdict is None:
        node.add("[yellow]no verdict[/]")
        return
    verdict = node.add(
        f"verdict [bold]{_t(probe.verdict)}[/] ({_t(probe.decided_by)}) {_t(probe.error_analysis[:160])}"
    )
    if probe.relabel is not None:
        verdict.add(f"relabelled → {_t(probe.relabel.label)}")
    for expansion in probe.expansions:
        became = f" → sample {_t(expansion.sample_id)}" if expansion.sample_id else ""
        colour = "green" if expansion.outcome == "passed" else "red"
        verdict.add(f"expansion {_t(expansion.candidate_id)}: [{colour}]{_t(expansion.outcome)}[/]{became}")


def _t(value: object) -> str:
    """A value from the run shown as text: its brackets are not rich markup (a label written as
    ``[get_weather(city='Paris')]`` or a reason naming ``[judge]`` once vanished from the tree)."""
    return escape(str(value))


def render_lineage(lineage: SampleLineage, tree: Tree | None = None) -> Tree:
    """A rich Tree of the history, the error seeds it descends from nested under its origin."""
    added = f"{_t(lineage.origin)}, added in round {lineage.round_added}"
    title = f"[bold]sample {_t(lineage.sample_id)}[/] · {added}"
    root = tree.add(title) if tree is not None else Tree(title)
    if lineage.origin == "seed":
        ref = f": {lineage.source_ref}" if lineage.source_ref else ""
        root.add(f"origin: seed ({_t(f'{lineage.source_format}{ref}')})")
    else:
        spawned = lineage.spawned_by
        how = (
            f"round {spawned.round} verdict {spawned.verdict} on {', '.join(spawned.diffs)}"
            if spawned is not None
            else "verdict not found"
        )
        seed = _t(lineage.seed_sample_id)
        origin = root.add(f"origin: expansion {_t(lineage.candidate_id)} of error seed {seed} ({_t(how)})")
        if lineage.parent is not None:
            render_lineage(lineage.parent, origin)
        elif lineage.truncated:
            origin.add("[yellow](the chain of seeds goes on; not shown)[/]")
    for other in lineage.also_added:
        how = f" by {other.candidate_id} of seed {other.seed_sample_id}" if other.seed_sample_id else ""
        root.add(f"also added in round {other.round} as {_t(other.origin)}{_t(how)}")
    labels = root.add("labels")
    for step in lineage.labels:
        # The whole reason: a revert's carries the operator's note at its end.
        labels.add(f"{_t(step.reason)} (round {step.round}): {_t(step.label)}")
    rounds = root.add("curated into")
    for step in lineage.curated:
        rounds.add(f"D_{step.round} as {_t(step.source)}: {_t(step.label)}")
    if not lineage.curated:
        rounds.add("(no round)")
    for probe in lineage.probes:
        _probe_node(root, probe)
    for letter in lineage.dead_letters:
        root.add(f"[yellow]dead letter[/] from {_t(letter.stage)}: {_t(letter.reason[:120])}")
    return root


# --- the command --------------------------------------------------------------------------------


async def index_from_topics(settings: StoreRunSettings, stats: ReplayStats | None = None) -> MemoryIndex:
    """The run's events, indexed; ``stats`` counts the records read and those that did not decode."""
    from bus.kafka import replay
    from views.store import ALL_TOPIC_NAMES

    events: list[Event[Any]] = []
    async for batch in replay(settings.kafka, settings.run_id, ALL_TOPIC_NAMES, stats=stats):
        events.extend(d.event for d in batch)
    return MemoryIndex(events)


def lineage_document(lineage: SampleLineage) -> dict[str, Any]:
    """``lineage --json``: every field of the history (the error seed's own lineage nested under
    ``parent``), with ``ancestry`` first: this sample, its error seed, … the original seed."""
    return {"ancestry": lineage.ancestry(), **dataclasses.asdict(lineage)}


def run_lineage(
    settings: StoreRunSettings,
    sample_id: str,
    *,
    console: Console,
    store_path: Path | None = None,
    as_json: bool = False,
    on_undecodable: Callable[[int], None] | None = None,
) -> SampleLineage:
    """``looptool lineage SAMPLE_ID``: from the store at ``store_path`` if given, else the topics;
    ``as_json`` prints :func:`lineage_document` on one line instead of the tree (progress on stderr).
    ``on_undecodable`` is told how many records of the topics did not decode (left out of the history:
    any of them may be this sample's), when some did not."""
    status_console = Console(stderr=True) if as_json else console
    if store_path is not None:
        index: EventIndex = StoreIndex(open_for_reading(store_path))
    else:
        read = ReplayStats()
        with status_console.status(f"reading run {settings.run_id} from the topics…"):
            index = asyncio.run(index_from_topics(settings, read))
        if read.undecodable and on_undecodable is not None:
            on_undecodable(read.undecodable)
    lineage = build_lineage(index, sample_id)
    if as_json:
        console.file.write(json.dumps(lineage_document(lineage), ensure_ascii=False) + "\n")
        console.file.flush()
        return lineage
    console.print(render_lineage(lineage))
    chain = lineage.ancestry()
    if len(chain) > 1:
        console.print("descends from: " + " → ".join(chain[1:]))
    return lineage
