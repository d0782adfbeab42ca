"""The topic catalog: every topic of a run, which events it carries, its partitions, in one place.

Topic names are ``<run_id>.<name>``. Per-sample topics are keyed by sample id (see each payload's
``partition_key``) and share one partition count, so a sample's events sit in the same partition
index on every topic; control topics (rounds, checkpoints) have one partition for a total order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bus.config import KafkaSettings
from common.settings import RUN_ID_PATTERN

# Kafka's own rule for topic names.
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


@dataclass(frozen=True)
class TopicSpec:
    name: str  # short name, e.g. "samples"
    event_types: tuple[str, ...]
    per_sample: bool  # keyed by sample id and partitioned like the other per-sample topics
    doc: str


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("samples", ("SampleAdded",), True, "Seeds and verified expansions entering the pool."),
    TopicSpec("probes", ("ProbeResult",), True, "Greedy probing results per sample and checkpoint."),
    TopicSpec("verdicts", ("Verdict",), True, "Judge (or rule-tier) verdicts on mismatches."),
    TopicSpec("labels", ("LabelCorrected",), True, "Label replacements and their reverts."),
    TopicSpec("candidates", ("ExpansionCandidate",), True, "Expansion candidates before verification."),
    TopicSpec("verifications", ("VerificationResult",), True, "Two-tier verification outcomes."),
    TopicSpec("curated", ("CuratedSample",), True, "Members of each round's dataset D_j."),
    TopicSpec("rounds", ("RoundClosed",), False, "Round manifests, after all of a round's members."),
    TopicSpec("checkpoints", ("CheckpointPublished",), False, "Policy checkpoints from the trainer."),
    TopicSpec("evaluations", ("CheckpointEvaluated",), False, "Benchmark scores of checkpoints (BFCL v4)."),
    TopicSpec(
        "promotions",
        ("PolicyPromoted", "PromotionRefused"),
        False,
        "Promotion-gate decisions on evaluated checkpoints.",
    ),
    TopicSpec("deadletter", ("DeadLetter",), True, "Records a stage could not process, with the reason."),
)

_BY_NAME = {spec.name: spec for spec in TOPICS}
_BY_EVENT_TYPE = {event_type: spec for spec in TOPICS for event_type in spec.event_types}


class TopicError(ValueError):
    pass


def topic_name(run_id: str, name: str) -> str:
    """Full Kafka topic name of ``name`` in ``run_id``; validates both parts."""
    if not RUN_ID_PATTERN.match(run_id):
        raise TopicError(f"invalid run id {run_id!r}")
    if name not in _BY_NAME:
        raise TopicError(f"unknown topic {name!r}; known: {sorted(_BY_NAME)}")
    full = f"{run_id}.{name}"
    if not _TOPIC_NAME.match(full):
        raise TopicError(f"invalid topic name {full!r}")
    return full


def topic_for_event(run_id: str, event_type: str) -> str:
    try:
        return topic_name(run_id, _BY_EVENT_TYPE[event_type].name)
    except KeyError:
        raise TopicError(f"no topic carries event type {event_type!r}") from None


def all_topics(run_id: str) -> list[str]:
    return [topic_name(run_id, spec.name) for spec in TOPICS]


def partitions_for(spec: TopicSpec, kafka: KafkaSettings) -> int:
    return kafka.partitions if spec.per_sample else 1


def spec_of(name: str) -> TopicSpec:
    return _BY_NAME[name]
