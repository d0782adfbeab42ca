"""The held-out ToolMatch set: a fixed file of labelled samples that a checkpoint's evaluation scores.

The promotion gate weighs a checkpoint on BFCL and on samples of the run's own kind, which no round
trains on (``looptool seed --heldout-out`` writes such a set; any format ``looptool ingest`` reads
works). Each sample is decoded greedily with the policy's prompt, read by our parser and compared with
its label by ToolMatch, as the probe does; an unreadable output counts as wrong.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from inference.base import InferenceBackend, SamplingConfig
from toolcall.formats import RecordError, record_to_samples
from toolcall.match import counts_as_match, tool_match
from toolcall.parsing import parse_output
from toolcall.prompts import DEFAULT_CURRENT_TIME, build_chat
from toolcall.types import Sample


class HeldoutError(ValueError):
    """The held-out file is missing, empty, or has a record that is not a sample."""


@dataclass(frozen=True)
class HeldoutSet:
    """The samples, and a name that says which file (and which content) they came from."""

    source: str  # "<file name>@<sha256 prefix of its bytes>"
    samples: tuple[Sample, ...]


@dataclass(frozen=True)
class HeldoutScore:
    correct: int
    total: int
    unparseable: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def load_heldout(path: Path) -> HeldoutSet:
    """Every sample of a JSONL file (formats as ``looptool ingest`` detects them); bad records fail loudly,
    since a gate on a silently shrunken set would compare checkpoints on different questions."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise HeldoutError(f"cannot read the held-out set {path}: {exc}") from exc
    samples: list[Sample] = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            samples.extend(record_to_samples(json.loads(line)))
        except (ValueError, RecordError) as exc:
            raise HeldoutError(f"{path}:{number}: not a sample: {exc}") from exc
    if not samples:
        raise HeldoutError(f"the held-out set {path} has no samples")
    return HeldoutSet(f"{Path(path).name}@{hashlib.sha256(data).hexdigest()[:12]}", tuple(samples))


async def heldout_toolmatch(
    backend: InferenceBackend,
    samples: Sequence[Sample],
    *,
    max_tokens: int = 256,
    batch_size: int = 16,
    current_time: str = DEFAULT_CURRENT_TIME,
) -> HeldoutScore:
    """Greedy ToolMatch accuracy of the backend's policy on ``samples``."""
    sampling = SamplingConfig(greedy=True, max_tokens=max_tokens)
    correct = unparseable = 0
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        chats = [build_chat(s.tools, s.messages, current_time) for s in batch]
        generations = await backend.generate(chats, sampling)
        for sample, (generation, *_) in zip(batch, generations, strict=True):
            parsed = parse_output(generation.text, sample.tools, trace_opened=generation.trace_opened)
            if parsed.action is None:
                unparseable += 1
                continue
            matched = tool_match(parsed.action, sample.label, sample.tools).matched
            # As the probe counts it: cut off at the budget, only matching calls count.
            correct += counts_as_match(parsed.action, matched, truncated=generation.finish_reason == "length")
    return HeldoutScore(correct, len(samples), unparseable)
