"""BFCL multi-turn: bfcl-eval's checker on known-good and known-bad trajectories, and the conversation
protocol (steps, executed tool results, held-out functions, the step limit) with scripted policies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from evaluation.bfcl_multi_turn import (
    UNEXECUTABLE_CALL,
    ApiNamespace,
    additional_function_prompt,
    live_instances,
    max_step_limit,
    methods_of,
    parse_bfcl_call,
    to_bfcl_call,
)
from evaluation.multi_turn import (
    FORCE_TERMINATED,
    INFERENCE_ERROR,
    Conversation,
    run_conversations,
    score_conversation,
)
from evaluation.multi_turn_parity import END_OF_TURN, ground_truth_plan, render_step, transcript_of
from evaluation.runner import evaluate, write_results
from evaluation.suite import MultiTurnItem, load_suite
from inference.base import Chat, Generation, InferenceError, SamplingConfig
from toolcall.parsing import render_call
from toolcall.types import ToolCall


def item(category: str, index: int = 0) -> MultiTurnItem:
    found = load_suite(category, index + 1)[index]
    assert isinstance(found, MultiTurnItem)
    return found


@pytest.mark.parametrize(
    "category",
    ["multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"],
)
def test_the_suite_offers_what_bfcl_evals_loader_offers(category: str) -> None:
    # Each of the 800 conversations with bfcl-eval's own function docs and held-out functions, so a
    # BFCL score here is bfcl-eval's (its loader still offers an entry's excluded_function).
    from bfcl_eval.utils import load_dataset_entry

    theirs = {entry["id"]: entry for entry in load_dataset_entry(category)}
    ours = {found.id: found for found in load_suite(category)}
    assert ours.keys() == theirs.keys() and len(ours) == 200
    for entry_id, found in ours.items():
        assert isinstance(found, MultiTurnItem)
        entry = theirs[entry_id]
        assert found.question == entry["question"], entry_id
        assert found.functions == entry["function"], entry_id
        assert found.missed_function == entry.get("missed_function", {}), entry_id
        assert found.excluded_function == tuple(entry.get("excluded_function", ())), entry_id


# --- bfcl-eval's checker on trajectories built from its own ground truth -----------------------------


def test_ground_truth_calls_read_back_with_named_arguments() -> None:
    call = parse_bfcl_call("sort('final_report.pdf')", ["TwitterAPI", "GorillaFileSystem"])
    assert call == ToolCall(name="sort", arguments={"file_name": "final_report.pdf"})
    methods = methods_of(["GorillaFileSystem"])
    assert to_bfcl_call(call, methods) == "sort(file_name='final_report.pdf')"
    with pytest.raises(ValueError, match="not a method"):
        parse_bfcl_call("nowhere('x')", ["MathAPI"])


@pytest.mark.parametrize(
    "category",
    ["multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"],
)
def test_known_good_and_known_bad_trajectories(category: str) -> None:
    conversation = item(category)
    plan = ground_truth_plan(conversation)
    good = score_conversation(conversation, transcript_of(plan))
    assert good.correct and good.error_type is None, good.error_message
    turn = next(i for i, steps in enumerate(plan) if isinstance(steps[0], list))
    calls: list[ToolCall] = list(plan[turn][0])  # type: ignore[arg-type]

    skipped = [list(t) for t in plan]
    skipped[turn] = [END_OF_TURN]  # the model answers in text where the ground truth calls
    verdict = score_conversation(conversation, transcript_of(skipped))
    assert not verdict.correct and verdict.error_type == "multi_turn:empty_turn_model_response"

    string_args = [(i, k) for i, c in enumerate(calls) for k, v in c.arguments.items() if isinstance(v, str)]
    index, key = string_args[-1]
    edited = [list(t) for t in plan]
    changed = calls[index].model_copy(update={"arguments": {**calls[index].arguments, key: "elsewhere_x"}})
    edited[turn] = [[*calls[:index], changed, *calls[index + 1 :]], END_OF_TURN]
    verdict = score_conversation(conversation, transcript_of(edited))
    assert not verdict.correct
    assert verdict.error_type in (
        "multi_turn:instance_state_mismatch",
        "multi_turn:execution_response_mismatch",
    )
    assert verdict.error_message

    cut = score_conversation(conversation, transcript_of(plan[:-1]))
    assert not cut.correct and cut.error_type == FORCE_TERMINATED
    assert live_instances() == 0


def test_calls_spread_over_steps_and_prose_around_them_still_pass() -> None:
    conversation = item("multi_turn_base")
    plan = ground_truth_plan(conversation)
    steps = [[[c] for c in turn[0]] + [END_OF_TURN] if isinstance(turn[0], list) else turn for turn in plan]
    transcript = transcript_of(steps, lambda s: f"<think>ok</think>Doing it.\n{render_step(s)}")  # type: ignore[arg-type]
    result = score_conversation(conversation, transcript)
    assert result.correct, result.error_message
    assert result.steps == sum(len(turn) for turn in steps)
    # every call its own decoded step; the closing text answers decode to nothing and are dropped
    assert [len(turn) for turn in result.decoded] == [len(turn) - 1 for turn in steps]


def test_model_output_never_reaches_eval_as_code(tmp_path: Path) -> None:
    """Names that resolve to something in BFCL's executor (builtins, its modules) and argument names that
    are not identifiers are not executed: they become a call that fails with an error result."""
    target = tmp_path / "pwned.txt"
    methods = methods_of(["GorillaFileSystem"])
    dangerous = [
        ToolCall(name="open", arguments={"file": str(target), "mode": "w"}),
        ToolCall(name="__import__", arguments={"name": "os"}),
        ToolCall(name="copy", arguments={}),
        ToolCall(name="ls", arguments={"a=__import__('os').system('touch x'),b": 1}),
        ToolCall(name="ls(a=True);open", arguments={}),
    ]
    assert [to_bfcl_call(call, methods) for call in dangerous] == [UNEXECUTABLE_CALL] * len(dangerous)
    with ApiNamespace("multi_turn_base_0", {}, ["GorillaFileSystem"], False) as namespace:
        results = namespace.execute([to_bfcl_call(call, methods) for call in dangerous])
        unknown = namespace.execute([to_bfcl_call(ToolCall(name="rm_everything", arguments={}), methods)])
    assert all(r.startswith("Error during execution") for r in results)
    assert unknown == ["Error during execution: name 'rm_everything' is not defined"]  # as in BFCL
    assert not target.exists()
    assert live_instances() == 0


# --- the conversation protocol with scripted policies ----------------------------------------------


class ScriptedPolicy:
    """A backend answering each conversation's next step from a script: ``answer(chat, step)``, where
    ``step`` counts the assistant messages already in the chat. Records every prompt it saw."""

    name = "scripted"
    model_id = "scripted"

    def __init__(self, answer: Callable[[Chat, int], str], *, refuse: Callable[[Chat], bool] | None = None):
        self.answer = answer
        self.refuse = refuse
        self.prompts: list[Chat] = []
        self.calls = 0

    async def generate(self, prompts: Sequence[Chat], sampling: SamplingConfig) -> list[list[Generation]]:
        self.calls += 1
        if self.refuse is not None and any(self.refuse(p) for p in prompts):
            raise InferenceError("prompt too long", retryable=False, input_fault=True)
        self.prompts.extend(prompts)
        outputs = []
        for chat in prompts:
            steps = sum(m["role"] == "assistant" for m in chat)
            outputs.append([Generation(text=self.answer(chat, steps))])
        return outputs

    async def load(self, model_path: str, model_id: str) -> None: ...

    async def score(self, prompts: Any, continuations: Any) -> Any:
        raise NotImplementedError

    async def close(self) -> None: ...


def playing(conversations: Sequence[MultiTurnItem]) -> Callable[[Chat, int], str]:
    """A perfect policy: each conversation's ground truth, one call per step, then a text answer.

    Conversations are told apart by their first user message (the tests pick distinct ones)."""
    scripts: dict[str, list[str]] = {}
    for conversation in conversations:
        outputs: list[str] = []
        for turn in ground_truth_plan(conversation):
            calls = turn[0] if isinstance(turn[0], list) else []
            outputs.extend(render_call(call) for call in calls)
            outputs.append(END_OF_TURN)
        first = next(m["content"] for turn in conversation.question for m in turn if m["role"] == "user")
        assert first not in scripts
        scripts[first] = outputs

    def answer(chat: Chat, step: int) -> str:
        first_user = next(m["content"] for m in chat if m["role"] == "user")
        return scripts[first_user][step]

    return answer


async def test_a_perfect_policy_scores_every_category_through_the_protocol(tmp_path: Path) -> None:
    conversations = [
        item("multi_turn_base", 1),
        item("multi_turn_miss_func"),
        item("multi_turn_miss_param", 2),
        item("multi_turn_long_context", 3),
    ]  # BFCL's categories share questions by index: these four are distinct
    policy = ScriptedPolicy(playing(conversations))
    run = await evaluate(policy, conversations, batch_size=3, show_progress=False)  # type: ignore[arg-type]
    assert [r.id for r in run.results] == [c.id for c in conversations]
    assert all(r.correct for r in run.results), [(r.id, r.error_type, r.error_message) for r in run.results]  # type: ignore[union-attr]
    assert run.summary.multi_turn == 1.0 and run.max_steps == max_step_limit() == 20
    expected_steps = {
        c.category: sum(len(t) for t in c.ground_truth) + len(c.ground_truth) for c in conversations
    }
    assert run.steps() == expected_steps  # one output per call, one text answer per turn
    assert len(policy.prompts) == sum(expected_steps.values()) == 46
    # Each backend call steps every open conversation, 3 at a time: the fourth (7 steps) starts when
    # the first (10 steps) ends, so 17 calls, while the longest alone takes 15.
    assert policy.calls == 10 + 7 > expected_steps["multi_turn_miss_func"]
    assert live_instances() == 0
    # Tool results come from BFCL's executed APIs: after `cd(folder=...)`, the file system's answer.
    base = conversations[0]
    first_call = ground_truth_plan(base)[0][0][0]  # type: ignore[index]
    after_first = next(
        p for p in policy.prompts if p[1]["content"] == base.question[0][0]["content"] and len(p) == 4
    )
    assert after_first[-1]["content"].startswith("<tool_response>\n")
    with ApiNamespace(base.id, base.initial_config, base.involved_classes, False) as reference:
        expected = reference.execute([to_bfcl_call(first_call, methods_of(base.involved_classes))])
    assert after_first[-1]["content"] == f"<tool_response>\n{expected[0]}\n</tool_response>"
    rows = write_results(run.results, tmp_path / "mt.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 4 and '"steps"' in rows[0]


async def test_held_out_functions_arrive_at_their_turn_as_bfcl_adds_them() -> None:
    conversation = item("multi_turn_miss_func")
    (turn, held), *_ = conversation.missed_function.items()
    held_names = {doc["name"] for doc in held}
    policy = ScriptedPolicy(playing([conversation]))
    result = (await evaluate(policy, [conversation], show_progress=False)).results[0]  # type: ignore[arg-type]
    assert result.correct, result.error_message  # type: ignore[union-attr]
    for chat in policy.prompts:
        users = [m["content"] for m in chat if m["role"] == "user" and not m["content"].startswith("<tool_")]
        shown = all(f'"name": "{name}"' in chat[0]["content"] for name in held_names)
        # The held-out docs are in the tool list exactly once BFCL's prompt for them was sent.
        assert shown == (additional_function_prompt() in users)
    assert any(
        additional_function_prompt() in m["content"] for m in policy.prompts[-1] if m["role"] == "user"
    )
    assert int(turn) < len(conversation.question)


async def test_the_step_limit_force_quits_a_conversation_that_never_stops_calling() -> None:
    conversation = item("multi_turn_base")
    looping = ScriptedPolicy(lambda chat, step: render_call(ToolCall(name="ls", arguments={})))
    (transcript,) = await run_conversations(looping, [conversation], max_steps=2)  # type: ignore[arg-type]
    assert transcript.force_terminated and transcript.steps == 3  # BFCL quits once count > limit
    assert len(transcript.turns) == 1 < len(conversation.ground_truth)
    result = score_conversation(conversation, transcript)
    assert not result.correct and result.error_type == FORCE_TERMINATED
    assert live_instances() == 0


async def test_a_prompt_the_backend_refuses_fails_only_its_conversation() -> None:
    conversations = [item("multi_turn_base", 1), item("multi_turn_miss_param", 2)]
    refused = conversations[1].question[0][0]["content"]
    policy = ScriptedPolicy(playing(conversations), refuse=lambda chat: chat[1]["content"] == refused)
    run = await evaluate(policy, conversations, show_progress=False)  # type: ignore[arg-type]
    ok, failed = run.results
    assert ok.correct and not failed.correct and failed.error_type == INFERENCE_ERROR
    assert run.error_types() == {"multi_turn_miss_param": {INFERENCE_ERROR: 1}}
    assert live_instances() == 0


def test_a_conversation_cannot_be_fed_after_its_end() -> None:
    conversation = Conversation(item("multi_turn_base"), max_steps=1)
    while not conversation.done:
        conversation.feed("I cannot do that.")
    assert len(conversation.transcript.turns) == len(conversation.item.question)
    with pytest.raises(RuntimeError, match="over"):
        conversation.feed("more")


# --- how outputs are read: bfcl-eval's rules by default, our repairing parser as a setting -----------


def _python_literal_step(calls: list[ToolCall]) -> str:
    return "\n".join(
        f"<tool_call>\n{ {'name': c.name, 'arguments': c.arguments}!r}\n</tool_call>" for c in calls
    )


def test_bfcl_reading_drops_blocks_bfcl_eval_drops_and_repair_reads_them() -> None:
    conversation = item("multi_turn_base")
    plan = ground_truth_plan(conversation)
    repairable = transcript_of(plan, lambda s: _python_literal_step(s) if isinstance(s, list) else s)
    as_bfcl = score_conversation(conversation, repairable)  # the default reading
    assert not as_bfcl.correct and as_bfcl.error_type == "multi_turn:empty_turn_model_response"
    assert not as_bfcl.made_call
    assert score_conversation(conversation, repairable, "bfcl") == as_bfcl
    repaired = score_conversation(conversation, repairable, "repair")
    assert repaired.correct and repaired.made_call, repaired.error_message

    # one block that is not JSON beside good ones: bfcl-eval drops that block and keeps the rest;
    # our parser calls the whole step unreadable.
    bad_block = '<tool_call>\n{"name": "cd", "arguments": {folder: }\n</tool_call>'
    with_bad_block = transcript_of(
        plan, lambda s: render_step(s) + "\n" + bad_block if isinstance(s, list) else s
    )
    assert score_conversation(conversation, with_bad_block).correct
    assert not score_conversation(conversation, with_bad_block, "repair").correct
    with pytest.raises(ValueError, match="unknown output reading"):
        score_conversation(conversation, repairable, "lenient")  # type: ignore[arg-type]
    assert live_instances() == 0


def test_the_conversation_executes_what_its_reading_reads() -> None:
    base = item("multi_turn_base")
    first_call = next(turn[0][0] for turn in ground_truth_plan(base) if isinstance(turn[0], list))
    output = _python_literal_step([first_call])
    bfcl = Conversation(base)
    bfcl.feed(output)  # not read as a call: the turn ends, nothing is executed
    assert bfcl.turn == 1 and not any(m.role == "tool" for m in bfcl.messages)
    repair = Conversation(base, reading="repair")
    repair.feed(output)  # repaired: executed, the turn goes on
    assert repair.turn == 0 and [m.role for m in repair.messages[-2:]] == ["assistant", "tool"]
    for conversation in (bfcl, repair):
        conversation.finish()
    assert live_instances() == 0


def test_a_steps_xml_argument_call_is_typed_by_the_tools_offered() -> None:
    """Qwen3-Coder's call form: "2" is the integer the tool declares; without the tools it is no call."""
    from evaluation.multi_turn import read_calls
    from toolcall.specs import ToolSpec

    tool = ToolSpec.from_openai(
        {
            "name": "mv",
            "parameters": {
                "type": "object",
                "properties": {"source": {"type": "string"}, "count": {"type": "integer"}},
            },
        }
    )
    output = (
        "<tool_call>\n<function=mv>\n<parameter=source>\n2024\n</parameter>\n"
        "<parameter=count>\n2\n</parameter>\n</function>\n</tool_call>"
    )
    assert read_calls(output, "repair", [tool]) == [("mv", {"source": "2024", "count": 2})]
    assert read_calls(output, "repair") == []
