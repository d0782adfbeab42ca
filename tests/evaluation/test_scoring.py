"""Scoring one output per category kind, and BFCL's summary columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.scoring import (
    CategoryScore,
    ItemResult,
    score_output,
    summarise,
    summary_from_scores,
    to_bfcl_output,
)
from evaluation.suite import SuiteError, load_suite, parse_categories
from toolcall.types import Action, ToolCall

CALL = '<tool_call>\n{{"name": "calculate_triangle_area", "arguments": {}}}\n</tool_call>'


@pytest.fixture(scope="module")
def simple_item():  # simple_python_0: calculate_triangle_area(base=10, height=5[, unit="units"])
    return load_suite("simple_python", 1)[0]


def test_to_bfcl_output_is_the_decoded_ast_form() -> None:
    action = Action(calls=[ToolCall(name="a.b", arguments={"x": 1, "y": [1.5, "s"]}), ToolCall(name="c")])
    assert to_bfcl_output(action) == [{"a.b": {"x": 1, "y": [1.5, "s"]}}, {"c": {}}]
    assert to_bfcl_output(Action(text="no tool fits")) == []
    assert to_bfcl_output(None) == []


def test_ast_item_correct_wrong_text_and_unparseable(simple_item) -> None:
    good = score_output(
        simple_item,
        CALL.format('{"base": 10, "height": 5}'),
    )
    assert good.correct and good.made_call and good.error_type is None
    assert good.decoded == [{"calculate_triangle_area": {"base": 10, "height": 5}}]
    wrong = score_output(
        simple_item,
        CALL.format('{"base": 5, "height": 10}'),
    )
    assert not wrong.correct and wrong.error_type == "value_error:others"
    text = score_output(simple_item, "The area is 25 square units.")
    assert not text.correct and not text.made_call
    assert text.error_type == "simple_function_checker:wrong_count"
    broken_block = '<tool_call>\n{"name": "calculate_triangle_area", "arguments": {base: }\n</tool_call>'
    # bfcl-eval's reading drops a block that is not JSON: no call, the checker's count error
    broken = score_output(simple_item, broken_block)
    assert not broken.correct and broken.error_type == "simple_function_checker:wrong_count"
    assert broken.parse_error is not None and "1 not JSON" in broken.parse_error
    # our parser refuses the whole output
    refused = score_output(simple_item, broken_block, "repair")
    assert not refused.correct and refused.error_type == "ast_decoder:decoder_failed" and refused.parse_error


@pytest.mark.parametrize(
    "block",
    [
        '["calculate_triangle_area", {"base": 10, "height": 5}]',  # JSON, not an object
        '{"name": "calculate_triangle_area"}',  # no "arguments"
        '{"name": "calculate_triangle_area", "arguments": "{\\"base\\": 10, \\"height\\": 5}"}',  # a string
        '{"name": ["calculate_triangle_area"], "arguments": {}}',  # a name that is not hashable
    ],
)
def test_outputs_bfcl_eval_cannot_decode_are_decoder_failures(simple_item, block: str) -> None:
    good = CALL.format('{"base": 10, "height": 5}')
    result = score_output(simple_item, f"{good}\n<tool_call>\n{block}\n</tool_call>")
    assert not result.correct and not result.made_call
    assert result.error_type == "ast_decoder:decoder_failed" and result.errors == [result.parse_error]


def test_think_blocks_are_read_and_repairs_only_by_the_repair_reading(simple_item) -> None:
    thought = "<think>base 10, height 5</think>\n"
    assert score_output(simple_item, thought + CALL.format('{"base": 10, "height": 5}')).correct
    python_literals = (
        thought + "<tool_call>\n"
        "{'name': 'calculate_triangle_area', 'arguments': {'base': 10, 'height': 5, 'unit': 'units'}}"
        "\n</tool_call>"
    )
    unclosed = CALL.format('{"base": 10, "height": 5}').removesuffix("</tool_call>")
    inline = CALL.format('{"base": 10, "height": 5}').replace("\n", "")
    for output in (python_literals, unclosed, inline):
        as_bfcl = score_output(simple_item, output)  # the default: as bfcl-eval reads it
        assert not as_bfcl.correct and not as_bfcl.made_call, output
        assert as_bfcl.error_type == "simple_function_checker:wrong_count"
        assert as_bfcl.parse_error is not None and "drops 1 of 1" in as_bfcl.parse_error
        assert score_output(simple_item, output, "repair").correct, output
    with pytest.raises(ValueError, match="unknown output reading"):
        score_output(simple_item, python_literals, "lenient")  # type: ignore[arg-type]


def test_relevance_and_irrelevance_depend_only_on_whether_a_call_is_made() -> None:
    irrelevant = load_suite("irrelevance", 1)[0]
    relevant = load_suite("live_relevance", 1)[0]
    call = '<tool_call>\n{"name": "anything", "arguments": {}}\n</tool_call>'
    assert not score_output(irrelevant, call).correct
    assert score_output(irrelevant, call).error_type == "irrelevance_error:decoder_success"  # BFCL's name
    assert score_output(irrelevant, "No function can do that.").correct
    for reading in ("bfcl", "repair"):  # unreadable: no call
        assert score_output(irrelevant, "<tool_call>\n{not json\n</tool_call>", reading).correct
    # a block bfcl-eval cannot decode makes the whole output no call, even beside a good one
    assert score_output(irrelevant, call + '\n<tool_call>\n["x"]\n</tool_call>').correct
    assert score_output(relevant, call).correct
    sorry = score_output(relevant, "Sorry.")
    assert not sorry.correct and sorry.error_type == "relevance_error:decoder_failed"


def test_item_results_flatten_to_records(simple_item) -> None:
    result = score_output(simple_item, "no")
    record = result.to_record()
    assert json.loads(record["decoded"]) == [] and isinstance(json.loads(record["errors"]), list)
    assert set(record) == {f for f in ItemResult.__dataclass_fields__}


def test_summary_formulas() -> None:
    summary = summary_from_scores(
        {
            "simple_python": CategoryScore("simple_python", 1, 2),
            "multiple": CategoryScore("multiple", 2, 2),
            "parallel": CategoryScore("parallel", 0, 4),
            "parallel_multiple": CategoryScore("parallel_multiple", 3, 4),
            "live_simple": CategoryScore("live_simple", 1, 4),
            "live_multiple": CategoryScore("live_multiple", 3, 4),
            "live_parallel": CategoryScore("live_parallel", 0, 0),
            "irrelevance": CategoryScore("irrelevance", 1, 1),
            "live_irrelevance": CategoryScore("live_irrelevance", 0, 1),
            "live_relevance": CategoryScore("live_relevance", 2, 2),
        }
    )
    assert summary.non_live_ast == pytest.approx((0.5 + 1.0 + 0.0 + 0.75) / 4)  # unweighted
    assert summary.live_ast == pytest.approx(4 / 8)  # weighted by items
    assert summary.irrelevance == pytest.approx(0.5)
    assert summary.relevance == pytest.approx(1.0)
    assert summary.overall == pytest.approx((0.5625 + 0.5 + 0.5) / 3)
    assert summary.multi_turn is None
    # live_parallel_multiple never ran, live_parallel is empty, no multi-turn category ran
    assert summary.partial == ("live_ast", "overall")
    with_multi_turn = summary_from_scores(
        {
            **summary.categories,
            "multi_turn_base": CategoryScore("multi_turn_base", 1, 4),
            "multi_turn_miss_func": CategoryScore("multi_turn_miss_func", 2, 4),
        }
    )
    assert with_multi_turn.multi_turn == pytest.approx((0.25 + 0.5) / 2)  # unweighted
    # BFCL's weights 10/10/10/30 (agentic's 40 never runs), renormalised
    assert with_multi_turn.overall == pytest.approx((0.5625 + 0.5 + 0.5 + 3 * 0.375) / 6)
    assert with_multi_turn.partial == ("live_ast", "multi_turn", "overall")
    empty = summarise([])
    assert empty.columns() == {} and empty.total == 0


def test_summary_formulas_agree_with_bfcls_own_aggregation(tmp_path: Path) -> None:
    """Our columns equal those BFCL's leaderboard code computes from the same per-category scores."""
    scores = {
        "simple_python": (7, 10),
        "multiple": (3, 4),
        "parallel": (1, 5),
        "parallel_multiple": (2, 2),
        "live_simple": (5, 9),
        "live_multiple": (11, 20),
        "live_parallel": (1, 3),
        "live_parallel_multiple": (0, 2),
        "irrelevance": (8, 10),
        "live_irrelevance": (3, 7),
        "live_relevance": (1, 4),
        "multi_turn_base": (9, 20),
        "multi_turn_miss_func": (4, 20),
        "multi_turn_miss_param": (6, 20),
        "multi_turn_long_context": (3, 20),
    }
    ours = summary_from_scores({c: CategoryScore(c, k, n) for c, (k, n) in scores.items()})
    code = f"""
import json
from evaluation.bfcl_checker import install_registry_shim
install_registry_shim()
from bfcl_eval.eval_checker.eval_runner_helper import (
    calculate_percentage_weighted_accuracy as pct, calculate_unweighted_accuracy as unweighted,
    calculate_weighted_accuracy as weighted)
scores = {json.dumps(scores)}
acc = {{c: {{"accuracy": k / n, "total_count": n, "display_accuracy": k / n}}
       for c, (k, n) in scores.items()}}
non_live = unweighted([acc[c] for c in ("simple_python", "multiple", "parallel", "parallel_multiple")])
live = weighted([acc[c] for c in ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")])
irrelevance = unweighted([acc["irrelevance"], acc["live_irrelevance"]])
multi_turn = unweighted([acc[c] for c in
    ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")])
# BFCL's overall is pct([non_live, live, irrelevance, multi_turn, agentic], [10, 10, 10, 30, 40]) (pinned
# here from its source); no agentic part runs here, so ours is that formula over the four parts that did.
import inspect
from bfcl_eval.eval_checker.eval_runner_helper import generate_leaderboard_csv
assert "[10, 10, 10, 30, 40]" in inspect.getsource(generate_leaderboard_csv)
overall = pct([non_live, live, irrelevance, multi_turn], [10, 10, 10, 30])
print(json.dumps([non_live["accuracy"], live["accuracy"], irrelevance["accuracy"], multi_turn["accuracy"],
                  overall["accuracy"]]))
"""
    env = {**os.environ, "BFCL_PROJECT_ROOT": str(tmp_path)}  # BFCL creates its result folders there
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    assert [
        ours.non_live_ast,
        ours.live_ast,
        ours.irrelevance,
        ours.multi_turn,
        ours.overall,
    ] == pytest.approx(theirs)


def test_categories_and_limits() -> None:
    assert parse_categories("live") == [
        "live_simple",
        "live_multiple",
        "live_parallel",
        "live_parallel_multiple",
        "live_irrelevance",
        "live_relevance",
    ]
    assert parse_categories("multiple, multiple,parallel") == ["multiple", "parallel"]
    assert len(parse_categories(None)) == 15 and len(parse_categories("single_turn")) == 11
    assert parse_categories("multi_turn") == [
        "multi_turn_base",
        "multi_turn_miss_func",
        "multi_turn_miss_param",
        "multi_turn_long_context",
    ]
    with pytest.raises(SuiteError, match="unknown BFCL category 'simple_java'"):
        parse_categories("simple_java")
    with pytest.raises(SuiteError, match="no BFCL category"):
        parse_categories(" , ")
    with pytest.raises(SuiteError, match="at least 1"):
        load_suite("multiple", 0)
    items = load_suite("multiple,irrelevance", 3)
    assert [i.id for i in items] == [
        "multiple_0",
        "multiple_1",
        "multiple_2",
        "irrelevance_0",
        "irrelevance_1",
        "irrelevance_2",
    ]


def test_item_tools_carry_bfcls_python_hint_and_messages_keep_system_turns() -> None:
    item = load_suite("simple_python", 1)[0]
    (tool,) = item.tools()
    assert tool.description.endswith("Note that the provided function is in Python 3 syntax.")
    assert tool.parameters.properties["base"].types == ("integer",)
    with_system = next(
        i for i in load_suite("live_simple") if any(m["role"] == "system" for m in i.question[0])
    )
    assert with_system.messages()[0].role == "system"


def test_the_repair_reading_types_an_xml_argument_call_by_the_items_tools(simple_item) -> None:
    """Qwen3-Coder's call form: its "10" is the integer BFCL's function declares, not a string."""
    output = (
        "<tool_call>\n<function=calculate_triangle_area>\n<parameter=base>\n10\n</parameter>\n"
        "<parameter=height>\n5\n</parameter>\n</function>\n</tool_call>"
    )
    assert score_output(simple_item, output, "repair").correct


async def test_the_repair_reading_reads_an_output_from_inside_the_trace_its_prompt_opened(
    simple_item,
) -> None:
    """The backend rendered a prompt ending inside an opened trace (Generation.trace_opened): a call
    drafted there, the budget cutting the trace before </think>, is no call under our reading."""
    from evaluation.runner import evaluate
    from inference.base import Generation

    call = CALL.format('{"base": 10, "height": 5}')
    outputs = [(f"Plan: {call} then I", "length"), (f"Plan: base 10, height 5.</think>\n\n{call}", "stop")]

    class OpenedTrace:
        model_id = "opened-trace"

        async def generate(self, prompts, sampling):  # type: ignore[no-untyped-def]
            text, end = outputs.pop(0)
            return [[Generation(text=text, finish_reason=end, trace_opened=True)] for _ in prompts]

    results = []
    for _ in range(2):
        run = await evaluate(OpenedTrace(), [simple_item], reading="repair", show_progress=False)  # type: ignore[arg-type]
        results.append(run.results[0])
    cut, answered = results
    assert not cut.correct and not cut.made_call and "never closed" in (cut.parse_error or "")
    assert answered.correct
