"""Decontamination: samples that are the suite's questions are recognised, others are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.decontam import Decontaminator, normalise_tool_name, sample_key
from evaluation.suite import BfclItem, MultiTurnItem, ground_truth_label, load_suite
from streams.sources import iter_records
from toolcall.formats import convert_record
from toolcall.specs import ToolSpec
from toolcall.types import Action, Message, Sample, ToolCall


@pytest.fixture(scope="module")
def suite() -> Decontaminator:
    return Decontaminator.from_suite()


def sample_of(item: BfclItem) -> Sample:
    label = ground_truth_label(item) if item.kind == "ast" else Action(text="No tool fits.")
    return Sample(tools=item.tools(), messages=item.messages(), label=label)


def test_every_suite_question_overlaps(suite: Decontaminator) -> None:
    items = load_suite("single_turn", 3)
    for item in items:
        reason = suite.overlaps(sample_of(item))
        assert reason is not None and item.id in reason, item.id
        assert "bfcl-v4@2026.3.23" in reason
    # Distinct BFCL questions over the same tools share a key only when their text is the same.
    assert len(suite) > 3000


def test_copies_with_cosmetic_changes_still_overlap(suite: Decontaminator) -> None:
    item = load_suite("parallel_multiple", 1)[0]
    original = sample_of(item)
    renamed = [
        ToolSpec(name=t.name.replace(".", "_").upper(), description="reworded", parameters=t.parameters)
        for t in reversed(original.tools)
    ]
    query = original.messages[-1].content
    copy = Sample(
        tools=renamed,
        messages=[
            Message(role="system", content="You are a helpful assistant."),
            Message(role="user", content="  " + query.upper().replace(" ", "\n ") + " "),
        ],
        label=Action(text="a different answer"),
    )
    assert suite.matches(copy) == (item.id,)


def test_other_questions_do_not_overlap(suite: Decontaminator) -> None:
    item = load_suite("simple_python", 1)[0]
    original = sample_of(item)
    other_query = Sample(
        tools=original.tools,
        messages=[Message(role="user", content=original.messages[0].content + " Then round it.")],
        label=original.label,
    )
    other_tools = Sample(
        tools=[
            ToolSpec(name="calculate_circle_area", description="", parameters=original.tools[0].parameters)
        ],
        messages=original.messages,
        label=original.label,
    )
    assert suite.overlaps(other_query) is None
    assert suite.overlaps(other_tools) is None


def test_keys_and_names_are_normalised() -> None:
    assert (
        normalise_tool_name(" Math.Factorial ") == normalise_tool_name("math_factorial") == "math_factorial"
    )
    tools = [ToolSpec(name="a.b"), ToolSpec(name="c")]
    first = Sample(tools=tools, messages=[Message(role="user", content="Hi  there")], label=Action(text="x"))
    second = Sample(
        tools=list(reversed(tools)),
        messages=[Message(role="user", content="hi there")],
        label=Action(text="y"),
    )
    assert sample_key(first) == sample_key(second)


def test_from_items_builds_a_small_index() -> None:
    items = load_suite("multiple", 2)
    check = Decontaminator.from_items(items, "mini", "1")
    assert len(check) == 2
    assert check.overlaps(sample_of(items[0])) == "overlaps evaluation suite mini@1 (multiple_0)"
    assert check.overlaps(sample_of(load_suite("parallel", 1)[0])) is None


def conversation_sample(item: MultiTurnItem, upto: int, *, only_last: bool = False) -> Sample:
    """A training sample cut from a BFCL conversation at turn ``upto`` (assistant and tool messages
    between the user turns, as a dialogue export would hold them), with the tools offered by then."""
    messages: list[Message] = []
    tools = item.tools()
    for turn, query in enumerate(item.turn_queries()[: upto + 1]):
        tools = [*tools, *item.held_out_tools(turn)]
        if not query or (only_last and turn < upto):
            continue
        messages.append(Message(role="user", content=query))
        if turn < upto:
            messages.append(Message(role="assistant", tool_calls=[ToolCall(name="ls", arguments={})]))
            messages.append(Message(role="tool", name="ls", content='{"current_directory_content": []}'))
    return Sample(tools=tools, messages=messages, label=Action(text="ok"))


def test_multi_turn_conversations_are_covered_turn_by_turn(suite: Decontaminator) -> None:
    for category in ("multi_turn_base", "multi_turn_miss_func", "multi_turn_long_context"):
        item = load_suite(category, 1)[0]
        assert isinstance(item, MultiTurnItem)
        last = len(item.question) - 1
        for upto in (0, last):
            assert item.id in suite.matches(conversation_sample(item, upto)), (item.id, upto)
            assert item.id in suite.matches(conversation_sample(item, upto, only_last=True)), (item.id, upto)
    # miss_func: after the held-out functions arrive the sample offers them too; a copy that never held
    # them out (every function from the start) is the same question.
    item = load_suite("multi_turn_miss_func", 1)[0]
    held_turn = int(next(iter(item.missed_function)))
    every_tool = Sample(
        tools=[*item.tools(), *item.held_out_tools(held_turn)],
        messages=[Message(role="user", content=item.turn_queries()[0])],
        label=Action(text="ok"),
    )
    assert item.id in suite.matches(every_tool)
    reworded = conversation_sample(item, 0).model_copy(
        update={"messages": [Message(role="user", content=item.turn_queries()[0] + " And then delete it.")]}
    )
    assert suite.overlaps(reworded) is None


def test_an_ingested_bfcl_multi_turn_entry_is_its_suite_item(suite: Decontaminator) -> None:
    # multi_turn_base_0 as bfcl-eval ships it, with "excluded_function": ["cp"]: ingest leaves cp out of
    # the tools, the suite offers it as bfcl-eval's loader does, and the samples are still that item.
    published = Path(__file__).parents[1] / "toolcall" / "data" / "published" / "bfcl"
    [source] = iter_records(published / "BFCL_v4_multi_turn_base.json")
    assert source.value["excluded_function"] == ["cp"]
    samples = convert_record(source.value, "auto", source.context).samples
    [item] = [i for i in load_suite("multi_turn_base") if i.id == source.value["id"]]
    assert isinstance(item, MultiTurnItem) and item.excluded_function == ("cp",)
    assert "cp" in {f["name"] for f in item.functions}
    assert "cp" not in {t.name for t in samples[0].tools}
    for sample in samples:
        assert item.id in suite.matches(sample)
