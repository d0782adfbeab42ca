"""The event envelope and the payload of every event type, as typed Python objects.

Every state change of a sample is one immutable event: an :class:`Event` envelope (id, type, schema
version, run, time, producer, lineage, checkpoint) around a typed payload. The Avro schemas in
``schemas/avro`` are the wire form; :mod:`schemas.codec` converts between the two, and a test keeps
their fields in step.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from ulid import ULID

from toolcall.specs import ToolSpec
from toolcall.types import Action, Message

VerdictLabel = Literal["PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG", "UNPARSEABLE", "NO_QUORUM"]
CurationSource = Literal["SEED", "ES", "EE", "HPPL", "SEED_NEW"]


class Payload(BaseModel):
    """Base of every payload: its event type and the key that partitions it."""

    model_config = ConfigDict(frozen=True)
    EVENT_TYPE: ClassVar[str]

    def partition_key(self) -> str:
        """Events about one sample share a key, so each topic keeps a sample's events in order."""
        return str(self.sample_id)  # type: ignore[attr-defined]


class Producer(BaseModel):
    model_config = ConfigDict(frozen=True)

    stage: str
    version: str


class MatchDiff(BaseModel):
    """One difference between a prediction and its label, as ToolMatch reports it."""

    model_config = ConfigDict(frozen=True)

    kind: str
    path: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class RuleViolation(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    call_index: int | None = None
    path: str | None = None


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True)

    focus: str
    parameters: str


class SampleAdded(Payload):
    EVENT_TYPE: ClassVar[str] = "SampleAdded"

    sample_id: str
    tools: list[ToolSpec]
    messages: list[Message]
    label: Action
    origin: Literal["seed", "expansion"]
    round: int
    source_format: str
    source_ref: str | None = None
    seed_sample_id: str | None = None
    content_hash: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    conversation_time: str | None = None


class ProbeResult(Payload):
    EVENT_TYPE: ClassVar[str] = "ProbeResult"

    sample_id: str
    round: int
    label_event_id: str
    tools: list[ToolSpec]
    messages: list[Message]
    label: Action
    raw_output: str
    prediction: Action | None = None
    parse_error: str | None = None
    matched: bool
    diffs: list[MatchDiff] = Field(default_factory=list)
    ppl: float | None = None
    num_tokens: int = 0
    high_ppl: bool = False
    conversation_time: str | None = None


class JudgeVote(BaseModel):
    """One judge's answer on one order of the responses, and whether its judge's vote counted."""

    model_config = ConfigDict(frozen=True)

    judge_model: str
    label_position: int  # which response the label was shown as in this answer
    verdict: VerdictLabel | None = None  # None: the answer could not be read
    status: Literal["read", "unparseable", "truncated"] = "read"
    counted: bool = False  # this judge's vote counted (read; with two orders, both read and agreeing)
    attempts: int = 1
    reason: str = ""  # why it was not read, or why the judge's vote did not count
    raw_response: str = ""  # the answer's text (its end, when long)


class Verdict(Payload):
    EVENT_TYPE: ClassVar[str] = "Verdict"

    sample_id: str
    round: int
    probe_event_id: str
    tools: list[ToolSpec]
    messages: list[Message]
    label: Action
    prediction: Action | None = None
    ppl: float | None = None
    verdict: VerdictLabel
    decided_by: Literal["rules", "judge", "simulation", "ablation"]
    label_position: int | None = None
    error_analysis: str = ""
    correct_approach: str = ""
    raw_response: str = ""
    judge_model: str = ""
    attempts: int = 1
    prediction_text: str = ""  # the model's raw output when it did not parse as a call (prediction None)
    votes: list[JudgeVote] = Field(default_factory=list)
    quorum: int | None = None  # votes the verdict needed (None: one judge, before panels)
    deferred: bool = False  # NO_QUORUM only: the sample goes back to the pool instead of leaving
    conversation_time: str | None = None


class LabelCorrected(Payload):
    EVENT_TYPE: ClassVar[str] = "LabelCorrected"

    sample_id: str
    round: int
    verdict_event_id: str | None = None
    old_label: Action
    new_label: Action
    reason: str
    reverts_event_id: str | None = None


class ExpansionCandidate(Payload):
    EVENT_TYPE: ClassVar[str] = "ExpansionCandidate"

    candidate_id: str
    seed_sample_id: str
    round: int
    verdict_event_id: str
    index: int
    count: int
    scenario: Scenario
    tools: list[ToolSpec]
    messages: list[Message] = Field(default_factory=list)
    label: Action | None = None
    parse_error: str | None = None
    raw_response: str = ""
    generator_model: str = ""
    conversation_time: str | None = None

    def partition_key(self) -> str:
        return self.candidate_id


class VerificationResult(Payload):
    EVENT_TYPE: ClassVar[str] = "VerificationResult"

    candidate_id: str
    seed_sample_id: str
    round: int
    passed: bool
    failed_tier: Literal["rules", "llm"] | None = None
    rule_violations: list[RuleViolation] = Field(default_factory=list)
    llm_verdict: str | None = None
    reason: str = ""
    verifier_model: str = ""

    def partition_key(self) -> str:
        return self.candidate_id


class CuratedSample(Payload):
    EVENT_TYPE: ClassVar[str] = "CuratedSample"

    round: int
    sample_id: str
    source: CurationSource
    tools: list[ToolSpec]
    messages: list[Message]
    label: Action
    label_event_id: str
    content_hash: str
    conversation_time: str | None = None


class RoundClosed(Payload):
    EVENT_TYPE: ClassVar[str] = "RoundClosed"

    round: int
    total: int
    counts: dict[str, int]
    content_hash: str
    target_size: int
    seed_new_fraction: float
    probed_checkpoint_id: str | None = None

    def partition_key(self) -> str:
        return f"round-{self.round}"


class CheckpointPublished(Payload):
    EVENT_TYPE: ClassVar[str] = "CheckpointPublished"

    new_checkpoint_id: str
    parent_checkpoint_id: str | None = None
    round: int
    step: int
    final: bool
    uri: str
    backend: str
    metrics: dict[str, float] = Field(default_factory=dict)
    wall_time_s: float = 0.0

    def partition_key(self) -> str:
        return self.new_checkpoint_id


class CheckpointEvaluated(Payload):
    """A checkpoint's benchmark scores (BFCL v4 single- and multi-turn, bfcl-eval's checkers) and its
    held-out ToolMatch accuracy (when the evaluator has a held-out set)."""

    EVENT_TYPE: ClassVar[str] = "CheckpointEvaluated"

    checkpoint_id: str
    round: int
    step: int
    final: bool
    suite: str
    suite_version: str
    categories: list[str]
    limit: int | None = None
    correct: dict[str, int]
    total: dict[str, int]
    accuracy: dict[str, float]
    summary: dict[str, float] = Field(default_factory=dict)
    wall_time_s: float = 0.0
    results_uri: str | None = None
    # v2
    uri: str | None = None
    max_steps: int | None = None
    steps: dict[str, int] = Field(default_factory=dict)
    error_types: dict[str, dict[str, int]] = Field(default_factory=dict)
    heldout_correct: int | None = None
    heldout_total: int | None = None
    heldout_source: str | None = None
    # v3
    output_reading: str | None = None  # how BFCL outputs were read (evaluation.reading); None: no BFCL

    def partition_key(self) -> str:
        return self.checkpoint_id


class PolicyPromoted(Payload):
    """The promotion gate made ``checkpoint_id`` the promoted policy (see :mod:`evaluation.gate`)."""

    EVENT_TYPE: ClassVar[str] = "PolicyPromoted"

    checkpoint_id: str
    round: int
    step: int
    final: bool
    uri: str | None = None
    evaluation_event_id: str
    previous_checkpoint_id: str | None = None
    previous_evaluation_event_id: str | None = None
    figures: dict[str, float]
    counts: dict[str, int]
    previous_figures: dict[str, float] = Field(default_factory=dict)
    previous_counts: dict[str, int] = Field(default_factory=dict)
    deltas: dict[str, float] = Field(default_factory=dict)
    tolerance: float
    tolerances: dict[str, float] = Field(default_factory=dict)
    reason: str

    def partition_key(self) -> str:
        return self.checkpoint_id


class PromotionRefused(Payload):
    """The promotion gate kept ``promoted_checkpoint_id``; ``checkpoint_id`` regressed (or could not
    be compared)."""

    EVENT_TYPE: ClassVar[str] = "PromotionRefused"

    checkpoint_id: str
    round: int
    step: int
    final: bool
    uri: str | None = None
    evaluation_event_id: str
    promoted_checkpoint_id: str | None = None
    promoted_evaluation_event_id: str | None = None
    figures: dict[str, float]
    counts: dict[str, int]
    promoted_figures: dict[str, float] = Field(default_factory=dict)
    promoted_counts: dict[str, int] = Field(default_factory=dict)
    deltas: dict[str, float] = Field(default_factory=dict)
    tolerance: float
    tolerances: dict[str, float] = Field(default_factory=dict)
    regressions: list[str] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    incomparable: list[str] = Field(default_factory=list)
    reason: str

    def partition_key(self) -> str:
        return self.checkpoint_id


class ToolSetRegistered(Payload):
    """A tool set of the run, by content: other events carry ``toolset`` (its digest) instead of the
    tools (see :mod:`schemas.interning`). Written to the run's ``toolsets`` topic before any event that
    refers to it; the digest is checked against the tools whenever the event is read."""

    EVENT_TYPE: ClassVar[str] = "ToolSetRegistered"

    toolset: str  # hex of the BLAKE2b-128 digest
    tools: list[ToolSpec]

    def partition_key(self) -> str:
        return self.toolset


class SchemaRegistered(Payload):
    """A writer schema of the run, by fingerprint: what lets a reader of an older release read an event
    a newer release wrote (a rolling upgrade), by Avro schema resolution into its own version instead
    of dead-lettering it. Written to the run's ``schemas`` topic before any event written with it; the
    fingerprint is checked against the schema whenever the event is read."""

    EVENT_TYPE: ClassVar[str] = "SchemaRegistered"

    fingerprint: str  # hex of the 8 fingerprint bytes an event is framed with
    schema_event_type: str
    version: int
    definition: dict[str, Any]  # the full self-contained schema (JSON form)

    def partition_key(self) -> str:
        return self.fingerprint


# The most one encoded event may be: the producers' request limit (8 MiB, ``bus.kafka``) less room for
# its key and the record batch around it. A bigger event can never be sent.
MAX_EVENT_BYTES = 8_000_000

# Room a dead letter needs beside its raw bytes (reason, place, envelope).
DEAD_LETTER_OVERHEAD = 16_384
# A dead letter must fit the broker's message.max.bytes, Kafka's default 1 MB: a record bigger than
# this is kept as a prefix, its size and its sha256.
DEAD_LETTER_RAW_LIMIT = 1_000_000 - DEAD_LETTER_OVERHEAD
DEAD_LETTER_PREFIX = 4096


RAW_IS_A_PREFIX = "raw keeps its first"  # in a reason: the record was too big to keep whole


def dead_letter_raw(
    raw: bytes, *, limit: int = DEAD_LETTER_RAW_LIMIT, prefix: int = DEAD_LETTER_PREFIX
) -> tuple[bytes, str]:
    """What a dead letter keeps of ``raw``, and a note for its reason ("" when kept whole): a dead
    letter too big to publish would fail, and with it the record it accounts for."""
    if len(raw) <= limit:
        return raw, ""
    digest = hashlib.sha256(raw).hexdigest()
    kept = raw[:prefix]
    return kept, f" [record of {len(raw)} bytes, sha256 {digest}; {RAW_IS_A_PREFIX} {len(kept)}]"


class DeadLetter(Payload):
    # Raw records are arbitrary bytes: base64 in JSON so they survive the store's JSON column.
    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")
    EVENT_TYPE: ClassVar[str] = "DeadLetter"

    stage: str
    reason: str
    error_type: str
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    source_ref: str | None = None
    key: bytes | None = None
    raw: bytes
    category: str | None = None  # the reason's stable class (v2); None in older events

    def partition_key(self) -> str:
        return self.key.decode("utf-8", "replace") if self.key else self.stage


PAYLOAD_TYPES: dict[str, type[Payload]] = {
    cls.EVENT_TYPE: cls
    for cls in (
        SampleAdded,
        ProbeResult,
        Verdict,
        LabelCorrected,
        ExpansionCandidate,
        VerificationResult,
        CuratedSample,
        RoundClosed,
        CheckpointPublished,
        CheckpointEvaluated,
        PolicyPromoted,
        PromotionRefused,
        ToolSetRegistered,
        SchemaRegistered,
        DeadLetter,
    )
}

P = TypeVar("P", bound=Payload)


class Event(BaseModel, Generic[P]):
    """The envelope every event shares."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    event_type: str
    schema_version: int
    run_id: str
    produced_at: datetime
    producer: Producer
    parent_ids: list[str] = Field(default_factory=list)
    checkpoint_id: str | None = None
    payload: P

    @property
    def key(self) -> str:
        return self.payload.partition_key()


def new_event_id() -> str:
    """A fresh ULID (time-ordered, unique)."""
    return str(ULID())


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_ALIASES = str.maketrans("OIL", "011")


def ulid_milliseconds(event_id: str) -> int:
    """The time part of a ULID event id, reading Crockford's aliases (O as 0, I and L as 1) as the
    codec admits them. ValueError for an id that is not a ULID."""
    head = event_id[:10].upper().translate(_CROCKFORD_ALIASES)
    if len(event_id) != 26 or any(character not in _CROCKFORD for character in head):
        raise ValueError(f"event id {event_id[:60]!r} is not a ULID")
    value = 0
    for character in head:
        value = value * 32 + _CROCKFORD.index(character)
    return value


def derived_event_id(parent_ids: list[str], stage: str, discriminator: str = "") -> str:
    """A deterministic ULID for an event derived from ``parent_ids`` by ``stage``.

    Processing the same input twice (redelivery after a crash) yields the same id, so consumers
    that deduplicate by event id see one event. The time part is one millisecond after the newest
    parent, so sorting ids still puts every event after its parents.
    """
    if not parent_ids:
        raise ValueError("a derived event needs at least one parent")
    newest_parent_ms = max(ulid_milliseconds(parent) for parent in parent_ids)
    digest = hashlib.blake2b(
        "\x1f".join([stage, discriminator, *sorted(parent_ids)]).encode("utf-8"), digest_size=10
    ).digest()
    return str(ULID.from_bytes((newest_parent_ms + 1).to_bytes(6, "big") + digest))


def root_event_id(stage: str, *parts: str) -> str:
    """A deterministic ULID for an event with no parents (a seed), from what identifies it.

    Publishing the same seed twice (a command run again after a broker restart) yields the same id,
    so consumers that deduplicate by event id see one event. The time part is 0: such events sort
    before every event derived from them, as derived ids require.
    """
    digest = hashlib.blake2b("\x1f".join([stage, *parts]).encode("utf-8"), digest_size=10).digest()
    return str(ULID.from_bytes((0).to_bytes(6, "big") + digest))


def make_event(
    payload: P,
    *,
    run_id: str,
    producer: Producer,
    parent_ids: list[str] | None = None,
    checkpoint_id: str | None = None,
    event_id: str | None = None,
    produced_at: datetime | None = None,
) -> Event[P]:
    """Wrap ``payload`` in an envelope stamped with the current schema version of its type."""
    from schemas.registry import default_registry

    return Event[type(payload)](  # type: ignore[misc]
        event_id=event_id or new_event_id(),
        event_type=payload.EVENT_TYPE,
        schema_version=default_registry().current(payload.EVENT_TYPE).version,
        run_id=run_id,
        produced_at=produced_at or datetime.now(UTC),
        producer=producer,
        parent_ids=list(parent_ids or []),
        checkpoint_id=checkpoint_id,
        payload=payload,
    )
