"""Seed construction (Section 3) for a run: synthesised tools, simulated dialogues, label noise.

:func:`build_seed_set` turns a :class:`~world.World` into D_seed (every learnable step of each dialogue
is a sample, Section 4.1), with a configurable share of realistic annotation errors; the true label of
every sample is kept apart, in :class:`SeedSet`, never in the events, so a run can be scored without
the pipeline seeing the truth. :func:`seed_events` makes the SampleAdded events; :func:`write_jsonl`
exports the samples in the ``paper`` seed format that ``looptool ingest`` reads, and the truth in a
separate file.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.events import Event, Producer, SampleAdded, root_event_id
from streams.ingest import sample_added, sample_id_for
from toolcall.canonical import canonical_json
from world import World, WorldSample

PRODUCER = Producer(stage="seed", version="1")


@dataclass(frozen=True)
class SeedSet:
    """D_seed as given to the pipeline, and what only the world knows about it."""

    samples: list[WorldSample]
    heldout: list[WorldSample]

    def noise_rate(self) -> float:
        return sum(item.noise is not None for item in self.samples) / max(1, len(self.samples))

    def kinds(self) -> Counter[str]:
        return Counter(item.kind for item in self.samples)

    def noise_kinds(self) -> Counter[str]:
        return Counter(item.noise for item in self.samples if item.noise)


def unique_samples(items: Sequence[WorldSample], exclude: set[str] = frozenset()) -> list[WorldSample]:  # type: ignore[assignment]
    """Drop repeated samples (same tools, context and label) and any whose context is in ``exclude``."""
    seen: set[str] = set()
    out = []
    for item in items:
        key = item.sample.content_hash()
        if key in seen or item.sample.context_hash() in exclude:
            continue
        seen.add(key)
        out.append(item)
    return out


async def build_seed_set(
    world: World,
    dialogues: int,
    *,
    heldout: int = 0,
    noise_rate: float = 0.2,
    noise_mix: dict[str, float] | None = None,
    name: str = "seed",
) -> SeedSet:
    """The samples of ``dialogues`` dialogues, a ``noise_rate`` share with wrong labels, and the clean
    samples of ``heldout`` further dialogues, which share no context with the seeds.
    """
    drawn = await world.samples(dialogues, noise_rate=noise_rate, noise_mix=noise_mix, seed=name)
    samples = unique_samples(drawn)
    contexts = {item.sample.context_hash() for item in samples}
    held = (
        unique_samples(await world.samples(heldout, noise_rate=0.0, seed=f"{name}-heldout"), contexts)
        if heldout
        else []
    )
    return SeedSet(samples, held)


async def build_warm_start_samples(
    world: World,
    dialogues: int,
    *,
    exclude: Sequence[WorldSample],
    noise_rate: float = 0.2,
    noise_mix: dict[str, float] | None = None,
    mix: dict[str, float] | None = None,
    name: str = "warm-start",
) -> list[WorldSample]:
    """The samples of ``dialogues`` further dialogues for a small policy's warm start.

    Same world, same noise rate and kinds of noise as D_seed (the warm start gets no cleaner data than the
    loop), and no context of ``exclude`` (the seeds and the held-out set): the held-out set stays
    disjoint from everything trained on, and the warm start never sees a seed the probe will check.
    ``mix`` weighs the dialogue kinds (default: the world's own mix).
    """
    drawn = await world.samples(dialogues, noise_rate=noise_rate, noise_mix=noise_mix, mix=mix, seed=name)
    return unique_samples(drawn, {item.sample.context_hash() for item in exclude})


def seed_events(seed_set: SeedSet, run_id: str) -> list[Event[SampleAdded]]:
    """SampleAdded events for the seeds (the world's truth stays out of them).

    Their ids follow from the run, the position and the content, so publishing the same seed set
    again (``looptool seed`` run again after a broker restart) adds nothing.
    """
    return [
        sample_added(
            item.sample,
            run_id=run_id,
            origin="seed",
            round_=0,
            source_format="world",
            source_ref=f"world:{index}",
            metadata={"dialogue_kind": item.kind},
            producer=PRODUCER,
            event_id=root_event_id("seed", run_id, f"world:{index}", sample_id_for(item.sample)),
        )
        for index, item in enumerate(seed_set.samples)
    ]


def _record(item: WorldSample) -> dict[str, Any]:
    sample = item.sample
    return {
        "tools": [{"type": "function", "function": tool.to_openai()} for tool in sample.tools],
        "messages": [message.model_dump(mode="json", exclude_defaults=True) for message in sample.messages],
        "label": sample.label.model_dump(mode="json", exclude_defaults=True),
    }


def write_jsonl(items: Sequence[WorldSample], path: Path, truth_path: Path | None = None) -> None:
    """Samples as ``paper``-format JSONL (ingestible); the truth, if asked, in a file of its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Key order kept (not canonical JSON): a tool's parameter order is part of the prompt.
    path.write_text(
        "".join(json.dumps(_record(item), ensure_ascii=False) + "\n" for item in items), encoding="utf-8"
    )
    if truth_path is not None:
        truth_path.write_text(
            "".join(
                canonical_json(
                    {
                        "sample_id": sample_id_for(item.sample),
                        "truth": item.truth.model_dump(mode="json"),
                        "noise": item.noise,
                        "dialogue_kind": item.kind,
                    }
                )
                + "\n"
                for item in items
            ),
            encoding="utf-8",
        )


def read_truth(path: Path) -> dict[str, dict[str, Any]]:
    """The truth file written by :func:`write_jsonl`, by sample id."""
    return {
        row["sample_id"]: row
        for row in (
            json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        )
    }
