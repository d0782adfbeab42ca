"""Round trips of the data plane on generated samples: every sample-carrying event through Avro, and
a sample's row in the store, give back the sample they hold.

The samples (tests/toolcall/strategies.py) are what a curated round can hold, at its edges: unicode
of every kind in every text, very long strings, nested arguments with large integers, ``-0.0``,
``1e300``, booleans beside integers and nulls, tool names with dots, hyphens and spaces, multi-turn
dialogues with calls and their results, parallel and ordered calls, text labels, a conversation time
or none. Equality alone would not do: ``True == 1`` and ``-0.0 == 0.0`` in Python, so each check
compares the ordered JSON (key order, types and signs) and the content hash too.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import EventCodec
from schemas.events import (
    CuratedSample,
    ExpansionCandidate,
    LabelCorrected,
    ProbeResult,
    Producer,
    SampleAdded,
    Scenario,
    ToolSetRegistered,
    Verdict,
    make_event,
)
from schemas.interning import toolset_digest
from tests.toolcall.strategies import samples
from toolcall.canonical import compact_json
from toolcall.specs import load_tools
from toolcall.types import Action, Message, Sample
from views.store import SampleStore

PRODUCER = Producer(stage="roundtrip", version="0")
# Each example writes files (and the store a LanceDB table): few examples, no deadline.
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _exact(sample: Sample) -> str:
    """The sample as ordered JSON: what equality misses (bool vs int, -0.0, key order) shows here."""
    return compact_json(sample.model_dump(mode="json"))


def _assert_same(got: list[Sample], expected: list[Sample]) -> None:
    assert [s.content_hash() for s in got] == [s.content_hash() for s in expected]
    assert got == expected
    assert [_exact(s) for s in got] == [_exact(s) for s in expected]


def _sample_events(sample: Sample) -> list[Any]:
    """Every event type that carries a sample (or its label, or its tools), holding this one."""
    tools, messages, label, time = sample.tools, sample.messages, sample.label, sample.conversation_time
    other = Action(text="no call")
    payloads = [
        SampleAdded(
            sample_id="s",
            tools=tools,
            messages=messages,
            label=label,
            origin="seed",
            round=0,
            source_format="paper",
            content_hash=sample.content_hash(),
            conversation_time=time,
        ),
        ProbeResult(
            sample_id="s",
            round=1,
            label_event_id="e",
            tools=tools,
            messages=messages,
            label=label,
            raw_output="",
            prediction=label,
            matched=True,
            conversation_time=time,
        ),
        Verdict(
            sample_id="s",
            round=1,
            probe_event_id="e",
            tools=tools,
            messages=messages,
            label=label,
            prediction=other,
            verdict="PRED_WRONG",
            decided_by="judge",
            conversation_time=time,
        ),
        LabelCorrected(sample_id="s", round=1, old_label=other, new_label=label, reason="judge LABEL_WRONG"),
        ExpansionCandidate(
            candidate_id="c",
            seed_sample_id="s",
            round=1,
            verdict_event_id="e",
            index=0,
            count=1,
            scenario=Scenario(focus="", parameters=""),
            tools=tools,
            messages=messages,
            label=label,
            conversation_time=time,
        ),
        CuratedSample(
            round=1,
            sample_id="s",
            source="SEED",
            tools=tools,
            messages=messages,
            label=label,
            label_event_id="e",
            content_hash=sample.content_hash(),
            conversation_time=time,
        ),
        ToolSetRegistered(toolset=toolset_digest(tools).hex(), tools=tools),
    ]
    return [make_event(payload, run_id="roundtrip", producer=PRODUCER) for payload in payloads]


@settings(max_examples=60, deadline=None)
@given(samples())
def test_avro_encode_then_decode_is_the_identity_on_every_sample_carrying_event(sample: Sample) -> None:
    codec = EventCodec()
    for event in _sample_events(sample):
        decoded = codec.decode(codec.encode(event))
        assert decoded == event, event.event_type
        assert compact_json(decoded.payload.model_dump(mode="json")) == compact_json(
            event.payload.model_dump(mode="json")
        ), event.event_type


def _stored_sample(row: dict[str, Any]) -> Sample:
    """A sample back from its ``samples`` row (docs/analytics.md: the JSON columns hold the export's JSON)."""
    return Sample(
        tools=load_tools(json.loads(row["tools_json"])),
        messages=[Message.model_validate(m) for m in json.loads(row["messages_json"])],
        label=Action.model_validate(json.loads(row["current_label_json"])),
    )


@SLOW
@given(st.lists(samples(), min_size=1, max_size=3))
def test_a_samples_row_in_the_store_gives_back_the_sample(members: list[Sample]) -> None:
    """The store keeps no conversation time in ``samples`` (it is context, not content: the events
    table's payload holds it), so the sample read back has none."""
    added = [
        make_event(
            SampleAdded(
                sample_id=f"s{index}",
                tools=sample.tools,
                messages=sample.messages,
                label=sample.label,
                origin="seed",
                round=0,
                source_format="paper",
                content_hash=sample.content_hash(),
                conversation_time=sample.conversation_time,
            ),
            run_id="roundtrip",
            producer=PRODUCER,
        )
        for index, sample in enumerate(members)
    ]
    with tempfile.TemporaryDirectory() as folder:
        store = SampleStore(Path(folder))
        store.apply(added)
        rows = store.rows("samples")
    timeless = [sample.model_copy(update={"conversation_time": None}) for sample in members]
    _assert_same([_stored_sample(row) for row in rows], timeless)
    assert [row["content_hash"] for row in rows] == [sample.content_hash() for sample in members]
