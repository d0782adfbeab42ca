"""A sample's content and context hashes: the tool list's JSON is made once per list and spliced in,
and the hash stays the canonical JSON's of the whole sample (sample ids and dedup depend on it)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.toolcall.strategies import call_actions, names
from toolcall import specs
from toolcall.canonical import canonical_json, content_hash
from toolcall.specs import ParamSchema, ToolSpec, load_tool
from toolcall.types import Action, Message, Sample

params = st.builds(
    ParamSchema,
    type=st.sampled_from(["string", "integer", "number", "boolean"]),
    description=st.text(max_size=20),
)
tools = st.builds(
    ToolSpec,
    name=names,
    description=st.text(max_size=40),
    parameters=st.builds(
        lambda props: ParamSchema(type="object", properties=props, required=sorted(props)[:1]),
        st.dictionaries(names, params, max_size=3),
    ),
)
messages = st.lists(
    st.builds(Message, role=st.sampled_from(["user", "assistant", "tool"]), content=st.text(max_size=40)),
    min_size=1,
    max_size=3,
)
samples = st.builds(Sample, tools=st.lists(tools, max_size=3), messages=messages, label=call_actions)


def whole_dump_hashes(sample: Sample) -> tuple[str, str]:
    return (
        content_hash(sample.model_dump(mode="json", exclude={"conversation_time"})),
        content_hash(sample.model_dump(mode="json", include={"tools", "messages"})),
    )


@settings(max_examples=200, deadline=None)
@given(samples)
def test_hashes_equal_the_canonical_json_of_the_whole_sample(sample: Sample) -> None:
    assert (sample.content_hash(), sample.context_hash()) == whole_dump_hashes(sample)
    # Asked again (the tool list's JSON now comes from the cache): the same.
    assert (sample.content_hash(), sample.context_hash()) == whole_dump_hashes(sample)


def test_equal_tool_lists_hash_equal_and_different_ones_differ() -> None:
    spec = {
        "name": "météo",
        "description": "Wetter für eine Stadt — \u2603",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "where": {"type": "object", "properties": {"lat": {"type": "number"}}},
            },
            "required": ["city"],
        },
    }
    label = Action(calls=[])
    talk = [Message(role="user", content="Wetter in Köln?")]
    first = Sample(tools=[load_tool(spec)], messages=talk, label=label)
    twin = Sample(tools=[load_tool(spec)], messages=talk, label=label)  # equal specs, other instances
    other = Sample(tools=[load_tool({**spec, "description": "other"})], messages=talk, label=label)
    dated = first.model_copy(update={"conversation_time": "2024-05-01"})
    assert first.content_hash() == twin.content_hash() == dated.content_hash()
    assert first.context_hash() == twin.context_hash()
    assert other.content_hash() != first.content_hash()
    assert other.context_hash() != first.context_hash()
    assert (first.content_hash(), first.context_hash()) == whole_dump_hashes(first)


def test_the_tool_list_cache_stays_within_its_character_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(specs, "_TOOLS_JSON", {})
    monkeypatch.setattr(specs, "_TOOLS_JSON_CHARS", 2_000)
    monkeypatch.setattr(specs, "_tools_json_chars", 0)
    lists = [[ToolSpec(name=f"tool_{i}", description="d" * 300)] for i in range(40)]
    texts = [specs.tools_json(tools) for tools in lists]
    assert sum(len(text) for text, _ in specs._TOOLS_JSON.values()) <= 2_000
    assert 0 < len(specs._TOOLS_JSON) < 40
    # Whatever was dropped, every answer is the list's canonical JSON.
    assert texts == [canonical_json([t.model_dump(mode="json") for t in tools]) for tools in lists]
    assert [specs.tools_json(tools) for tools in lists] == texts
