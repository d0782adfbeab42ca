"""Events in their flat form (schemas.flat): read straight from Avro, equal to the models' dump."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import CorruptEventError, EventCodec, UnresolvedReferenceError
from schemas.events import CheckpointPublished, ProbeResult, new_event_id
from schemas.flat import FlatReader, flat_payload, flatten
from schemas.interning import TOOLSET_DEFINITION, ToolSetCatalog
from schemas.registry import default_registry
from tests.foundation.events_factory import beyond_avro, event_of, one_of_each, sample_added
from tests.foundation.golden import GOLDEN_DIR
from toolcall.canonical import compact_json
from toolcall.types import Action, Message, ToolCall

# Writer schemas whose events a replay reads without models. The rest go through them: dead letters
# (bytes), tool-set definitions and the versions with inline tool specs (their validators run).
COMPILED_CURRENT = {
    "SampleAdded",
    "ProbeResult",
    "Verdict",
    "LabelCorrected",
    "ExpansionCandidate",
    "VerificationResult",
    "CuratedSample",
    "RoundClosed",
    "CheckpointPublished",
    "CheckpointEvaluated",
    "PolicyPromoted",
    "PromotionRefused",
    "SchemaRegistered",
}


def _not_json(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON")


def _comparable(flat):
    """``flat`` with NaN values replaced by a marker (NaN equals nothing, not even itself)."""
    fields = {k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in flat.fields.items()}
    return (
        flat.event_id,
        flat.produced_at,
        flat.producer,
        flat.parent_ids,
        fields,
        flat.json,
        flat.payload_json,
    )


def test_the_hot_event_types_are_read_without_models() -> None:
    reader = FlatReader(EventCodec(toolsets=ToolSetCatalog()))
    registry = default_registry()
    compiled = {t for t in registry.event_types() if reader.compiled(registry.current(t)) is not None}
    assert compiled == COMPILED_CURRENT


@pytest.mark.parametrize("path", sorted(GOLDEN_DIR.glob("*.bin")), ids=lambda p: p.stem)
def test_golden_bytes_of_every_version_read_flat_as_their_models_flatten(path) -> None:
    """Every event type at every frozen version, read compiled or through models: the same flat event."""
    codec = EventCodec(toolsets=ToolSetCatalog())
    for definition in sorted(GOLDEN_DIR.glob(f"{TOOLSET_DEFINITION}.v*.bin")):
        codec.decode(definition.read_bytes())
    data = path.read_bytes()
    assert FlatReader(codec).decode(data) == flatten(codec.decode(data))


def test_every_event_type_at_every_version_reads_flat_as_its_model_flattens() -> None:
    codec = EventCodec(toolsets=ToolSetCatalog())
    reader = FlatReader(codec)
    for payload in one_of_each():
        event = event_of(payload, parent_ids=[new_event_id()], checkpoint_id="c")
        for schema in default_registry().versions(payload.EVENT_TYPE):
            data = codec.encode_as(event, schema)
            flat = reader.decode(data)
            assert flat == flatten(codec.decode(data)), f"{payload.EVENT_TYPE} v{schema.version}"
            assert reader.decode(data) == flat  # again, with the JSON of its short texts kept
            assert flat.schema_version == schema.version


def test_the_payload_json_is_the_ordered_json_of_the_models_dump() -> None:
    """Compact, in the dump's own key order (a tool's parameters, a call's arguments as the run gave
    them), both from a model and from the Avro record."""
    codec = EventCodec(toolsets=ToolSetCatalog())
    reader = FlatReader(codec)
    for payload in [*one_of_each(), sample_added("s_no_tools").model_copy(update={"tools": []})]:
        expected = compact_json(payload.model_dump(mode="json"))
        assert flat_payload(payload)[2] == expected
        assert reader.decode(codec.encode(event_of(payload))).payload_json == expected


texts = st.text(max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)
calls = st.builds(ToolCall, name=texts, arguments=st.dictionaries(texts, json_values, max_size=3))
actions = st.builds(Action, calls=st.lists(calls, max_size=2), text=st.none() | texts, ordered=st.booleans())
messages = st.builds(
    Message,
    role=st.sampled_from(["system", "user", "assistant", "tool"]),
    content=texts,
    tool_calls=st.lists(calls, max_size=2),
    name=st.none() | texts,
)
any_float = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    label=actions,
    prediction=st.none() | actions,
    conversation=st.lists(messages, min_size=1, max_size=3),
    ppl=st.none() | any_float,
    raw=texts,
    metrics=st.dictionaries(texts, any_float, max_size=3),
    metadata=st.dictionaries(texts, json_values, max_size=3),
)
def test_any_content_reads_flat_as_its_model_flattens(
    label, prediction, conversation, ppl, raw, metrics, metadata
) -> None:
    """Unicode, escapes, empty and nested JSON, and floats that are not finite (JSON's null, as
    pydantic writes them): the compiled readers write what the models' dump gives."""
    codec = EventCodec(toolsets=ToolSetCatalog())
    reader = FlatReader(codec)
    added = sample_added("s_1").model_copy(
        update={"messages": conversation, "label": label, "metadata": metadata}
    )
    probe = ProbeResult(
        sample_id=raw,
        round=1,
        label_event_id="e",
        tools=added.tools,
        messages=conversation,
        label=label,
        raw_output=raw,
        prediction=prediction,
        matched=prediction == label,
        ppl=ppl,
    )
    checkpoint = CheckpointPublished(
        new_checkpoint_id=raw, round=1, step=2, final=False, uri="u", backend="cpu", metrics=metrics
    )
    for payload in (added, probe, checkpoint):
        event = event_of(payload)
        flat = reader.decode(codec.encode(event))
        assert _comparable(flat) == _comparable(flatten(event))
        json.loads(flat.payload_json, parse_constant=_not_json)  # strict JSON: no NaN, no Infinity


@pytest.mark.parametrize("number", [math.inf, -math.inf, math.nan])
def test_a_float_that_is_not_finite_is_null_in_json_and_kept_as_a_value(number: float) -> None:
    """A perplexity of inf (a token of log-probability -inf) or a NaN loss: JSON has no such numbers,
    so the JSON says null (as pydantic's JSON does); the value is kept where a column holds floats."""
    probe = next(p for p in one_of_each() if isinstance(p, ProbeResult)).model_copy(update={"ppl": number})
    checkpoint = next(p for p in one_of_each() if isinstance(p, CheckpointPublished)).model_copy(
        update={"metrics": {"loss": number}}
    )
    codec = EventCodec(toolsets=ToolSetCatalog())
    flats = []
    for event in (event_of(probe), event_of(checkpoint)):
        flats.append(FlatReader(codec).decode(codec.encode(event)))
        assert _comparable(flats[-1]) == _comparable(flatten(event))
    assert '"ppl":null' in flats[0].payload_json
    assert '"metrics":{"loss":null}' in flats[1].payload_json
    assert math.isnan(number) or flats[0].fields["ppl"] == number  # the probes table keeps the number


def test_what_a_model_read_refuses_the_flat_read_refuses() -> None:
    codec = EventCodec(toolsets=ToolSetCatalog())
    reader = FlatReader(codec)
    for data in beyond_avro(codec):
        with pytest.raises(CorruptEventError, match="invalid SampleAdded content"):
            codec.decode(data)
        with pytest.raises(CorruptEventError, match="invalid SampleAdded content"):
            reader.decode(data)
    with pytest.raises(CorruptEventError, match="trailing bytes"):
        reader.decode(codec.encode(event_of(sample_added())) + b"\x00")


def test_an_unknown_tool_set_is_an_unresolved_reference_until_its_definition_is_read() -> None:
    writer = EventCodec(toolsets=ToolSetCatalog())
    event = event_of(sample_added())
    data = writer.encode(event)
    reader = FlatReader(EventCodec(toolsets=ToolSetCatalog()))
    with pytest.raises(UnresolvedReferenceError):
        reader.decode(data)
    definition = writer.encode(event_of(writer.definition(writer.references[0])))
    reader.codec.decode(definition)  # as the run's definitions topic is read
    assert reader.decode(data) == flatten(event)
