"""The topic catalog: every topic of a run, which events it carries, its partitions, in one place.

Topic names are ``<run_id>.<name>``. Per-sample topics are keyed by sample id (see each payload's
``partition_key``); their partition count is ``kafka.partitions``, or per topic
``kafka.topic_partitions`` (a stage's input topic is what bounds its consumer group: one partition per
worker process at most). No stage joins two topics by key, so per-sample topics need not share a count.
Control topics (rounds, checkpoints, ...) have one partition for a total order. ``toolsets`` and
``schemas`` hold the run's definitions (each distinct tool set once, keyed by its digest:
:mod:`schemas.interning`; each writer schema once, keyed by its fingerprint, so a reader of an older
release can resolve an event a newer one wrote); they are compacted, and they are a dictionary of the
wire format, not a record of what happened, so the views that replay "every topic" leave them out
(:data:`RECORD_TOPICS`).
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
    per_sample: bool  # keyed by sample id, many partitions
    doc: str
    definitions: bool = False  # values other events refer to by digest (compacted; not a record of the run)


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
    TopicSpec(
        "toolsets",
        ("ToolSetRegistered",),
        False,
        "Each distinct tool set of the run, once, by digest (events refer to it).",
        definitions=True,
    ),
    TopicSpec(
        "schemas",
        ("SchemaRegistered",),
        False,
        "Each writer schema of the run, once, by fingerprint (readers of older releases resolve by it).",
        definitions=True,
    ),
)
# The topics that record the run (what replay, the store and the analytics read): all but definitions.
RECORD_TOPICS: tuple[str, ...] = tuple(spec.name for spec in TOPICS if not spec.definitions)
DEFINITION_TOPICS: tuple[str, ...] = tuple(spec.name for spec in TOPICS if spec.definitions)

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
    """The topic's partition count: its own setting, else the per-sample default, else 1."""
    override = kafka.topic_partitions.get(spec.name)
    if override is not None:
        return override
    return kafka.partitions if spec.per_sample else 1


def check_partition_overrides(kafka: KafkaSettings) -> None:
    """Refuse overrides of unknown topics, and of ordered topics (control, definitions) beyond 1."""
    for name, count in kafka.topic_partitions.items():
        spec = _BY_NAME.get(name)
        if spec is None:
            raise TopicError(
                f"kafka.topic_partitions names unknown topic {name!r}; known: {sorted(_BY_NAME)}"
            )
        if not spec.per_sample and count != 1:
            raise TopicError(f"topic {name!r} keeps a total order: it has 1 partition, not {count}")


def spec_of(name: str) -> TopicSpec:
    return _BY_NAME[name]
