"""Copy drills: well-formed samples that copy the user's values, in order, with a tool of their own."""

from __future__ import annotations

from toolcall.match import tool_match
from toolcall.rules import validate_action
from world import World
from world.drills import DRILL_TOOL_NAME, copy_drills


def test_drills_copy_the_requested_values_in_order_with_a_tool_outside_the_world() -> None:
    world = World(0)
    drills = copy_drills(world.vocabulary(), 200, distractors=[t.spec for t in world.toolset], seed=3)
    assert len(drills) == 200
    assert DRILL_TOOL_NAME not in {tool.spec.name for tool in world.toolset}
    for drill in drills:
        (call,) = drill.label.calls
        assert call.name == DRILL_TOOL_NAME
        values = list(call.arguments.values())
        assert drill.messages[0].content == "Please record " + ", then ".join(values) + "."
        assert set(values) <= set(world.vocabulary())
        assert not validate_action(drill.label, drill.tools), "a drill's label must pass the rule tier"
        assert tool_match(drill.label, drill.label, drill.tools).matched
    # One to four values, and distractors from the world's tools.
    assert {len(d.label.calls[0].arguments) for d in drills} == {1, 2, 3, 4}
    assert all(len(d.tools) == 3 for d in drills)


def test_drills_are_deterministic_per_seed() -> None:
    vocabulary = World(0).vocabulary()
    assert copy_drills(vocabulary, 20, seed=1) == copy_drills(vocabulary, 20, seed=1)
    assert copy_drills(vocabulary, 20, seed=1) != copy_drills(vocabulary, 20, seed=2)


def test_two_request_drills_answer_each_sentence_with_its_own_call() -> None:
    world = World(0)
    drills = copy_drills(world.vocabulary(), 300, seed=4, two_requests=0.5)
    pairs = [d for d in drills if len(d.label.calls) == 2]
    assert 100 < len(pairs) < 200
    assert all(len(d.label.calls) in (1, 2) for d in drills)
    for drill in pairs:
        first, second = drill.label.calls
        text = drill.messages[0].content
        head, tail = text.split(". ", 1)
        assert head == "Please record " + ", then ".join(first.arguments.values())
        assert tail.endswith("record " + ", then ".join(second.arguments.values()) + ".")
        assert not validate_action(drill.label, drill.tools)
