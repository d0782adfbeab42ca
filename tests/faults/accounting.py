"""What a run's topics say happened to every sample, and how two runs compare (pure: no I/O).

"Duplicated" means two different event ids for one logical fact (the probe of member s of D_j, the
verdict on probe p, ...); redelivered copies share their id and are counted apart as ``copies``.
"Lost" means a piece of work the round needed that no event answers.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.events import Event
from streams.curate import Ledger
from trainer.dataset import round_dataset

# The logical fact each event type records; two distinct ids for one key are a duplicate.
LOGICAL_KEY: dict[str, Callable[[Any], tuple[Any, ...]]] = {
    "SampleAdded": lambda p: (
        ("expansion", p.metadata.get("candidate_id")) if p.origin == "expansion" else ("seed", p.sample_id)
    ),
    "CuratedSample": lambda p: (p.round, p.sample_id),
    "RoundClosed": lambda p: (p.round,),
    "ProbeResult": lambda p: (p.round, p.sample_id),
    "Verdict": lambda p: (p.probe_event_id,),
    "LabelCorrected": lambda p: (p.verdict_event_id, p.reverts_event_id),
    "ExpansionCandidate": lambda p: (p.verdict_event_id, p.index),
    "VerificationResult": lambda p: (p.candidate_id,),
    "DeadLetter": lambda p: (p.stage, p.source_ref, p.source_topic, p.source_partition, p.source_offset),
    "CheckpointPublished": lambda p: (p.new_checkpoint_id,),
}


def first_copies(records: Iterable[Event[Any]]) -> dict[str, Event[Any]]:
    """The first copy of every event id, in log order (what every consumer keeps)."""
    out: dict[str, Event[Any]] = {}
    for event in records:
        out.setdefault(event.event_id, event)
    return out


@dataclass
class Accounting:
    """Counts of one run: distinct events, redelivered copies, logical duplicates, dead letters."""

    distinct: Counter[str] = field(default_factory=Counter)  # by event type
    copies: int = 0  # records beyond the first of their id
    duplicates: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)  # type -> duplicated keys
    dead_letters: int = 0

    @property
    def duplicated(self) -> int:
        return sum(len(keys) for keys in self.duplicates.values())


def account(records: list[Event[Any]]) -> Accounting:
    first = first_copies(records)
    result = Accounting(copies=len(records) - len(first))
    ids_by_key: dict[tuple[str, tuple[Any, ...]], set[str]] = defaultdict(set)
    for event in first.values():
        result.distinct[event.event_type] += 1
        ids_by_key[(event.event_type, LOGICAL_KEY[event.event_type](event.payload))].add(event.event_id)
        result.dead_letters += event.event_type == "DeadLetter"
    for (event_type, key), ids in ids_by_key.items():
        if len(ids) > 1:
            result.duplicates.setdefault(event_type, []).append(key)
    return result


def ledger_of(records: Iterable[Event[Any]]) -> Ledger:
    ledger = Ledger()
    for event in records:
        ledger.add(event)
    return ledger


def seed_outcomes(records: list[Event[Any]], round_: int = 1) -> dict[str, str]:
    """Where every seed sample ended up after round ``round_``: one outcome per seed.

    ``pool`` (not in D_j), or ``D<j>:<what the round made of it>`` (matched, a verdict, or
    ``lost`` when no probe or verdict answers it), then ``->D<j+1>:<source>`` if it is in D_{j+1}.
    """
    ledger = ledger_of(records)
    members = ledger.members.get(round_, {})
    following = ledger.members.get(round_ + 1, {})
    outcomes: dict[str, str] = {}
    for sample_id, added in ledger.samples.items():
        if added.payload.origin != "seed":
            continue
        if sample_id not in members:
            outcome = "pool"
        else:
            probe = ledger.probes.get((round_, sample_id))
            if probe is None:
                dead = ledger.dead_lettered("probe", members[sample_id].event_id)
                outcome = f"D{round_}:dead-lettered" if dead else f"D{round_}:lost"
            elif probe.matched:
                outcome = f"D{round_}:matched"
            else:
                verdict = ledger.verdicts.get(probe.event_id)
                outcome = f"D{round_}:{verdict.verdict}" if verdict is not None else f"D{round_}:lost"
        if sample_id in following:
            outcome += f"->D{round_ + 1}:{following[sample_id].payload.source}"
        outcomes[sample_id] = outcome
    return outcomes


def check_round(records: list[Event[Any]], round_: int, k: int) -> None:
    """Round ``round_`` is complete (nothing lost) and D_{round+1} matches its manifest exactly."""
    ledger = ledger_of(records)
    status = ledger.status(round_, k)
    assert status.complete, f"round {round_} is not complete: {status}"
    assert status.probed == status.members == status.expected_members
    manifest = ledger.closed[round_ + 1]
    # The trainer's own check: exactly `total` members, each hashing to its content, hashing together
    # to the manifest's content hash, with the manifest's source counts; raises otherwise.
    dataset = round_dataset(manifest, records)
    hashes = [row.sample_id for row in dataset.rows]
    assert len(hashes) == len(set(hashes)) == manifest.payload.total
    member_hashes = [m.payload.content_hash for m in ledger.members[round_ + 1].values()]
    assert len(member_hashes) == len(set(member_hashes)), "two members of the curated set share content"


def _same(a: Any, b: Any, path: str, problems: list[str]) -> None:
    if isinstance(a, float) and isinstance(b, float):
        # Batched CPU decoding: a prompt's log-probs depend on its batch's padding at the 1e-7 level.
        if not math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6):
            problems.append(f"{path}: {a!r} != {b!r}")
    elif isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            _same(a.get(key), b.get(key), f"{path}.{key}", problems)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{index}]", problems)
    elif a != b:
        problems.append(f"{path}: {str(a)[:80]!r} != {str(b)[:80]!r}")


def compare_runs(
    run: list[Event[Any]],
    reference: list[Event[Any]],
    *,
    event_types: Iterable[str],
    rename: Mapping[str, str] | None = None,
) -> list[str]:
    """Differences between two runs' derived events of ``event_types`` (empty when they agree).

    Each run's first copies are compared id by id: the same ids, and per id the same payload, parents
    and checkpoint (floats to 1e-5). ``rename`` maps strings of ``run`` to those of ``reference``
    (checkpoint ids and event ids that legitimately differ, e.g. a retrained round's attempt token).
    """
    rename = dict(rename or {})

    def view(event: Event[Any]) -> Any:
        data = {
            "payload": event.payload.model_dump(mode="json"),
            "parents": event.parent_ids,
            "checkpoint": event.checkpoint_id,
        }
        return _renamed(data, rename)

    types = set(event_types)
    ours = {i: e for i, e in first_copies(run).items() if e.event_type in types}
    theirs = {i: e for i, e in first_copies(reference).items() if e.event_type in types}
    problems = [f"only in this run: {ours[i].event_type} {i}" for i in sorted(set(ours) - set(theirs))]
    problems += [
        f"only in the reference: {theirs[i].event_type} {i}" for i in sorted(set(theirs) - set(ours))
    ]
    for event_id in sorted(set(ours) & set(theirs)):
        where = f"{ours[event_id].event_type} {event_id}"
        _same(view(ours[event_id]), view(theirs[event_id]), where, problems)
    return problems


def _renamed(value: Any, rename: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in rename.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, Mapping):
        return {k: _renamed(v, rename) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, rename) for v in value]
    return value
