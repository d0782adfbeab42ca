"""Decontamination: samples that are the suite's questions are recognised, others are not."""

from __future__ import annotations

import pytest

from evaluation.decontam import Decontaminator, normalise_tool_name, sample_key
from evaluation.suite import BfclItem, ground_truth_label, load_suite
from toolcall.specs import ToolSpec
from toolcall.types import Action, Message, Sample


@pytest.fixture(scope="module")
def suite() -> Decontaminator:
    return Decontaminator.from_suite()


def sample_of(item: BfclItem) -> Sample:
    label = ground_truth_label(item) if item.kind == "ast" else Action(text="No tool fits.")
    return Sample(tools=item.tools(), messages=item.messages(), label=label)


def test_every_suite_question_overlaps(suite: Decontaminator) -> None:
    items = load_suite(None, 3)
    for item in items:
        reason = suite.overlaps(sample_of(item))
        assert reason is not None and item.id in reason, item.id
        assert "bfcl-v4-single-turn@2026.3.23" in reason
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
