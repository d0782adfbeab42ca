"""Our multi-turn scoring against bfcl-eval's own, on the same model outputs.

Outputs are built from BFCL's ground truth: per turn, one step with the turn's ground-truth calls as
``<tool_call>`` blocks, then a text answer that ends the turn (:func:`ground_truth_plan`). Each
perturbation kind (:data:`KINDS`) edits that plan in one way: good variants (one call per step,
prose around the calls) and known-bad ones (a call dropped, an argument changed, a turn skipped, the
conversation cut short, ...), plus malformed renderings that bfcl-eval's reading drops (and our
parser, the ``repair`` reading, repairs or refuses). The edit's place is chosen by a hash of the item
id and the kind.

Both sides score the same per-turn, per-step raw outputs:

- ours: :func:`evaluation.multi_turn.score_conversation` (by default bfcl-eval's reading,
  :mod:`evaluation.reading`; our call strings; bfcl-eval's ``multi_turn_checker``);
- bfcl-eval's: its evaluation of one multi-turn entry, ``eval_runner._evaluate_single_multi_turn_entry``,
  with its ``QwenFCHandler`` decoding the outputs (``decode_execute``), as ``bfcl evaluate`` runs it
  for ``Qwen/Qwen3-8B-FC``.

Loading bfcl-eval's evaluation code needs what its reference path imports: the model-registry
stand-in of :mod:`evaluation.bfcl_checker`, a ``BFCL_PROJECT_ROOT`` (BFCL creates result folders
there on import) and, where ``tree-sitter`` is not installed, stand-ins for BFCL's Java and
JavaScript call parsers, which only Java/JavaScript AST categories use (they raise if called). This
is done by :func:`bfcl_reference`, for the parity script and its test only, never by the evaluator.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from evaluation.bfcl_checker import REFERENCE_MODEL, install_registry_shim
from evaluation.bfcl_multi_turn import ApiNamespace, parse_bfcl_call
from evaluation.multi_turn import Transcript, score_conversation
from evaluation.reading import DEFAULT_OUTPUT_READING, OutputReading
from evaluation.suite import MultiTurnItem
from evaluation.verdict_parity import Outcome, ParityCheck
from toolcall.parsing import render_call
from toolcall.types import ToolCall

Step = list[ToolCall] | str  # calls (rendered as <tool_call> blocks) or a text answer
Plan = list[list[Step]]
END_OF_TURN = "Done."
_PARSER_STUBS = {
    "bfcl_eval.model_handler.parser.java_parser": "parse_java_function_call",
    "bfcl_eval.model_handler.parser.js_parser": "parse_javascript_function_call",
}


def ground_truth_plan(item: MultiTurnItem) -> Plan:
    """Per turn: one step with the ground-truth calls (if any), then a text answer."""
    plan: Plan = []
    for turn in item.ground_truth:
        calls = [parse_bfcl_call(text, item.involved_classes) for text in turn]
        plan.append([calls, END_OF_TURN] if calls else [END_OF_TURN])
    return plan


def render_step(step: Step) -> str:
    return "\n".join(render_call(call) for call in step) if isinstance(step, list) else step


def transcript_of(plan: Plan, render: Callable[[Step], str] = render_step) -> Transcript:
    return Transcript(turns=[[render(step) for step in turn] for turn in plan])


# --- perturbations --------------------------------------------------------------------------------


def _choose(options: Sequence[Any], item: MultiTurnItem, kind: str) -> Any:
    if not options:
        return None
    digest = hashlib.blake2b(f"{item.id}\x1f{kind}".encode(), digest_size=8).digest()
    return options[int.from_bytes(digest, "big") % len(options)]


def _call_turns(plan: Plan) -> list[int]:
    return [i for i, turn in enumerate(plan) if isinstance(turn[0], list)]


def _replace_calls(plan: Plan, turn: int, calls: list[ToolCall]) -> Plan:
    edited = [list(t) for t in plan]
    edited[turn] = [calls, END_OF_TURN] if calls else [END_OF_TURN]
    return edited


def _one_call_per_step(item: MultiTurnItem, plan: Plan) -> Plan | None:
    split = [
        [[call] for call in turn[0]] + [END_OF_TURN] if isinstance(turn[0], list) else turn for turn in plan
    ]
    return split if any(len(turn[0]) > 1 for turn in plan if isinstance(turn[0], list)) else None  # type: ignore[arg-type]


def _prose_around_calls(item: MultiTurnItem, plan: Plan) -> Plan | None:
    return plan  # rendered by _render_with_prose


def _drop_call(item: MultiTurnItem, plan: Plan) -> Plan | None:
    turn = _choose(_call_turns(plan), item, "drop_call")
    if turn is None:
        return None
    calls = list(plan[turn][0])  # type: ignore[arg-type]
    return _replace_calls(plan, turn, calls[:-1])


def _wrong_argument(item: MultiTurnItem, plan: Plan) -> Plan | None:
    targets = [
        (t, c, key)
        for t in _call_turns(plan)
        for c, call in enumerate(plan[t][0])  # type: ignore[arg-type]
        for key, value in call.arguments.items()
        if isinstance(value, str) and value
    ]
    target = _choose(targets, item, "wrong_argument")
    if target is None:
        return None
    turn, index, key = target
    calls = list(plan[turn][0])  # type: ignore[arg-type]
    call = calls[index]
    calls[index] = ToolCall(
        name=call.name, arguments={**call.arguments, key: call.arguments[key] + "_edited"}
    )
    return _replace_calls(plan, turn, calls)


def _unknown_function(item: MultiTurnItem, plan: Plan) -> Plan | None:
    targets = [(t, c) for t in _call_turns(plan) for c in range(len(plan[t][0]))]  # type: ignore[arg-type]
    target = _choose(targets, item, "unknown_function")
    if target is None:
        return None
    turn, index = target
    calls = list(plan[turn][0])  # type: ignore[arg-type]
    calls[index] = ToolCall(name=calls[index].name + "_unknown", arguments=calls[index].arguments)
    return _replace_calls(plan, turn, calls)


def _repeated_call(item: MultiTurnItem, plan: Plan) -> Plan | None:
    turn = _choose(_call_turns(plan), item, "repeated_call")
    if turn is None:
        return None
    calls = list(plan[turn][0])  # type: ignore[arg-type]
    return _replace_calls(plan, turn, [*calls, calls[-1]])


def _skipped_turn(item: MultiTurnItem, plan: Plan) -> Plan | None:
    turn = _choose(_call_turns(plan), item, "skipped_turn")
    return None if turn is None else _replace_calls(plan, turn, [])


def _call_in_empty_turn(item: MultiTurnItem, plan: Plan) -> Plan | None:
    """A call where the ground truth makes none (miss_func / miss_param): the next turn's first call."""
    options = [
        t
        for t, turn in enumerate(plan[:-1])
        if not isinstance(turn[0], list) and isinstance(plan[t + 1][0], list)
    ]
    turn = _choose(options, item, "call_in_empty_turn")
    if turn is None:
        return None
    return _replace_calls(plan, turn, [plan[turn + 1][0][0]])  # type: ignore[index]


def _cut_short(item: MultiTurnItem, plan: Plan) -> Plan | None:
    return plan[:-1] if len(plan) > 1 else None


def _identity(item: MultiTurnItem, plan: Plan) -> Plan | None:
    return plan


@dataclass(frozen=True)
class Kind:
    name: str
    perturb: Callable[[MultiTurnItem, Plan], Plan | None]
    render: Callable[[Step], str] = render_step
    well_formed: bool = True  # False: outputs bfcl-eval's reading drops in part or whole


def _render_with_prose(step: Step) -> str:
    if isinstance(step, str):
        return step
    return "<think>The user asked for this.</think>I will call the tools now.\n" + render_step(step)


def _render_python_literals(step: Step) -> str:
    if isinstance(step, str):
        return step
    blocks = (repr({"name": call.name, "arguments": call.arguments}) for call in step)
    return "\n".join(f"<tool_call>\n{block}\n</tool_call>" for block in blocks)


def _render_unclosed(step: Step) -> str:
    if isinstance(step, str):
        return step
    return render_step(step).removesuffix("</tool_call>").rstrip()


def _render_inline(step: Step) -> str:
    """Blocks on one line with their tags: not bfcl-eval's layout (it needs a newline after
    ``<tool_call>`` and before ``</tool_call>``)."""
    if isinstance(step, str):
        return step
    return "".join(render_call(call).replace("\n", "") for call in step)


UNREADABLE_BLOCK = '<tool_call>\n{"name": "cd", "arguments": {folder: }\n</tool_call>'


def _render_with_unreadable_block(step: Step) -> str:
    """The step's calls and one more block that is not JSON (bfcl-eval drops that block only)."""
    if isinstance(step, str):
        return step
    return render_step(step) + "\n" + UNREADABLE_BLOCK


def _render_arguments_as_string(step: Step) -> str:
    """``"arguments"`` as a JSON string (bfcl-eval's multi-turn decoding loads it)."""
    if isinstance(step, str):
        return step
    blocks = (json.dumps({"name": call.name, "arguments": json.dumps(call.arguments)}) for call in step)
    return "\n".join(f"<tool_call>\n{block}\n</tool_call>" for block in blocks)


NON_OBJECT_BLOCK = '<tool_call>\n["cd", {"folder": "documents"}]\n</tool_call>'


def _render_with_non_object_block(step: Step) -> str:
    """The step's calls and a block holding JSON that is not an object: bfcl-eval's decoding of the
    whole step fails, so the step makes no call."""
    if isinstance(step, str):
        return step
    return render_step(step) + "\n" + NON_OBJECT_BLOCK


KINDS: tuple[Kind, ...] = (
    Kind("ground_truth", _identity),
    Kind("one_call_per_step", _one_call_per_step),
    Kind("prose_around_calls", _prose_around_calls, _render_with_prose),
    Kind("drop_call", _drop_call),
    Kind("wrong_argument", _wrong_argument),
    Kind("unknown_function", _unknown_function),
    Kind("repeated_call", _repeated_call),
    Kind("skipped_turn", _skipped_turn),
    Kind("call_in_empty_turn", _call_in_empty_turn),
    Kind("cut_short", _cut_short),
    Kind("python_literal_blocks", _identity, _render_python_literals, well_formed=False),
    Kind("unclosed_last_block", _identity, _render_unclosed, well_formed=False),
    Kind("inline_blocks", _identity, _render_inline, well_formed=False),
    Kind("one_unreadable_block", _identity, _render_with_unreadable_block, well_formed=False),
    Kind("non_object_block", _identity, _render_with_non_object_block, well_formed=False),
    Kind("arguments_as_string", _identity, _render_arguments_as_string, well_formed=False),
)


# --- bfcl-eval's own evaluation -------------------------------------------------------------------


@cache
def bfcl_reference() -> tuple[Any, Callable[..., dict[str, Any]]]:
    """(bfcl-eval's ``QwenFCHandler`` instance, its ``_evaluate_single_multi_turn_entry``)."""
    os.environ.setdefault("BFCL_PROJECT_ROOT", tempfile.mkdtemp(prefix="looptool-bfcl-"))
    install_registry_shim()
    if importlib.util.find_spec("tree_sitter") is None:
        for module_name, function_name in _PARSER_STUBS.items():
            if module_name in sys.modules:
                continue
            stub = types.ModuleType(
                module_name, doc="looptool-stream: stand-in (tree-sitter is not installed)"
            )

            def unavailable(*args: Any, _name: str = function_name, **kwargs: Any) -> Any:
                raise RuntimeError(f"{_name} needs tree-sitter, which is not installed")

            setattr(stub, function_name, unavailable)
            sys.modules[module_name] = stub
    qwen_fc = importlib.import_module("bfcl_eval.model_handler.local_inference.qwen_fc")
    runner = importlib.import_module("bfcl_eval.eval_checker.eval_runner")
    handler = qwen_fc.QwenFCHandler(
        model_name="Qwen/Qwen3-8B", temperature=0.0, registry_name=REFERENCE_MODEL, is_fc_model=True
    )
    return handler, runner._evaluate_single_multi_turn_entry


def stored_response(handler: Any, raw_output: str) -> str:
    """What ``bfcl generate`` stores for one raw output (``_parse_query_response_prompting``'s
    ``model_responses``: the text after the reasoning trace), which is what ``bfcl evaluate`` scores."""
    response = types.SimpleNamespace(
        choices=[types.SimpleNamespace(text=raw_output)],
        usage=types.SimpleNamespace(prompt_tokens=0, completion_tokens=0),
    )
    return str(handler._parse_query_response_prompting(response)["model_responses"])


def bfcl_verdict(item: MultiTurnItem, turns: list[list[str]]) -> tuple[bool, str | None]:
    """bfcl-eval's own evaluation of one conversation's raw outputs: (valid, error_type)."""
    handler, evaluate_entry = bfcl_reference()
    turns = [[stored_response(handler, output) for output in turn] for turn in turns]
    namespace = ApiNamespace(item.id, item.initial_config, list(item.involved_classes), item.long_context)
    try:
        result = evaluate_entry(
            handler,
            item.id,
            json.loads(json.dumps(turns)),
            json.loads(json.dumps(item.ground_truth)),
            json.loads(json.dumps(item.entry())),
            namespace.model_name,
            item.category,
        )
    finally:
        namespace.close()
    if result.get("valid"):
        return True, None
    error = result.get("error") or {}
    return False, error.get("error_type") if isinstance(error, dict) else None


# --- comparison -----------------------------------------------------------------------------------


def compare(
    item: MultiTurnItem, kind: Kind, reading: OutputReading = DEFAULT_OUTPUT_READING
) -> Outcome | None:
    plan = kind.perturb(item, ground_truth_plan(item))
    if plan is None:
        return None
    transcript = transcript_of(plan, kind.render)
    ours = score_conversation(item, transcript, reading)
    bfcl_valid, bfcl_error = bfcl_verdict(item, transcript.turns)
    return Outcome(item.id, item.category, kind.name, ours.correct, ours.error_type, bfcl_valid, bfcl_error)


def describe_errors(error_types: dict[str, int]) -> str:
    """Every error type bfcl-eval gave, by name, without the ``multi_turn:`` prefix."""
    return ", ".join(f"{name.removeprefix('multi_turn:')} {n}" for name, n in sorted(error_types.items()))


CHECK: ParityCheck[MultiTurnItem, Kind] = ParityCheck(
    KINDS, compare, "conversations", "bfcl-eval's error types", describe_errors
)
parity_outcomes = CHECK.parity_outcomes
summarise = CHECK.summarise
markdown_table = CHECK.markdown_table
