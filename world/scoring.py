"""Scoring a run against the synthetic world's ground truth (never visible to the pipeline).

- :func:`label_noise`: the share of a dataset's labels (a curated round, the seeds) that are wrong,
  by ToolMatch against the world's true next step;
- :func:`heldout_accuracy`: greedy ToolMatch accuracy of a checkpoint on the clean held-out set,
  through the same inference backend and prompt builder the probe uses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from inference.base import InferenceBackend, SamplingConfig
from toolcall.match import counts_as_match, tool_match
from toolcall.parsing import parse_output
from toolcall.prompts import DEFAULT_CURRENT_TIME, build_chat
from toolcall.specs import ToolSpec
from toolcall.types import Action, Message
from world import World, WorldSample


@dataclass(frozen=True)
class NoiseStats:
    total: int
    noisy: int

    @property
    def rate(self) -> float:
        return self.noisy / self.total if self.total else 0.0


def label_noise(
    world: World, samples: Iterable[tuple[Sequence[ToolSpec], Sequence[Message], Action]]
) -> NoiseStats:
    """How many labels differ from the world's truth (ToolMatch), out of how many."""
    total = noisy = 0
    for tools, messages, label in samples:
        total += 1
        noisy += not tool_match(label, world.truth(tools, messages), list(tools)).matched
    return NoiseStats(total, noisy)


@dataclass(frozen=True)
class Accuracy:
    correct: int
    total: int
    by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)
    unparseable: int = 0

    @property
    def rate(self) -> float:
        return self.correct / self.total if self.total else 0.0


async def heldout_accuracy(
    backend: InferenceBackend,
    heldout: Sequence[WorldSample],
    *,
    current_time: str = DEFAULT_CURRENT_TIME,
    max_tokens: int = 128,
) -> Accuracy:
    """Greedy-decode every held-out context and ToolMatch the answer against the world's truth."""
    chats = [build_chat(item.sample.tools, item.sample.messages, current_time) for item in heldout]
    generations = await backend.generate(chats, SamplingConfig(greedy=True, max_tokens=max_tokens))
    correct = unparseable = 0
    kinds: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for item, (generation, *_) in zip(heldout, generations, strict=True):
        parsed = parse_output(  # the tools type XML-argument calls (Qwen3-Coder, GLM-4.5)
            generation.text, item.sample.tools, trace_opened=generation.trace_opened
        )
        kinds[item.kind] += 1
        if parsed.action is None:
            unparseable += 1
            continue
        matched = tool_match(parsed.action, item.truth, item.sample.tools).matched
        if counts_as_match(parsed.action, matched, truncated=generation.finish_reason == "length"):
            correct += 1
            hits[item.kind] += 1
    return Accuracy(
        correct=correct,
        total=len(heldout),
        by_kind={kind: (hits[kind], count) for kind, count in sorted(kinds.items())},
        unparseable=unparseable,
    )
