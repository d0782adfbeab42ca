"""Our single-turn scoring against bfcl-eval's own, on the same model outputs.

Per item an action is written out in several ways (:data:`KINDS`): AST items the label
(:func:`evaluation.suite.ground_truth_label`), irrelevance and relevance items a call of the item's
first function; well-formed renderings (the calls as ``<tool_call>`` blocks, with a reasoning trace
and prose before them, a text answer) and malformed ones (Python literals, a missing final
``</tool_call>``, blocks on one line, an extra block that is not JSON or not an object, arguments as
a JSON string, a call without ``"arguments"``, a call in a code fence).

Both sides score the same raw output:

- ours: :func:`evaluation.scoring.score_output` (by default bfcl-eval's reading, :mod:`evaluation.reading`;
  bfcl-eval's AST checker);
- bfcl-eval's: ``eval_runner._evaluate_single_ast_entry`` / ``_evaluate_single_relevance_entry``
  with its ``QwenFCHandler`` decoding the output, as ``bfcl evaluate`` runs them for
  ``Qwen/Qwen3-8B-FC`` (loaded by :func:`evaluation.multi_turn_parity.bfcl_reference`).

A pair agrees when the verdict and BFCL's error type are the same.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from evaluation.bfcl_checker import REFERENCE_MODEL
from evaluation.multi_turn_parity import NON_OBJECT_BLOCK, UNREADABLE_BLOCK, bfcl_reference, stored_response
from evaluation.reading import DEFAULT_OUTPUT_READING, OutputReading
from evaluation.scoring import score_output
from evaluation.suite import BfclItem, ground_truth_label
from evaluation.verdict_parity import Outcome, ParityCheck
from toolcall.parsing import render_call
from toolcall.types import ToolCall

TEXT_ANSWER = "None of the provided functions can be used for this request."


def item_calls(item: BfclItem) -> list[ToolCall]:
    """The calls every rendering writes: the label's (AST items), else a call of the first function
    (of a made-up one where the item offers none, as some live_irrelevance items do)."""
    if item.kind == "ast":
        return list(ground_truth_label(item).calls)
    return [ToolCall(name=item.functions[0]["name"] if item.functions else "unoffered_function")]


def _blocks(calls: Sequence[ToolCall]) -> str:
    return "\n".join(render_call(call) for call in calls)


def _raw_blocks(bodies: Iterable[str]) -> str:
    return "\n".join(f"<tool_call>\n{body}\n</tool_call>" for body in bodies)


@dataclass(frozen=True)
class Kind:
    name: str
    render: Callable[[list[ToolCall]], str]
    well_formed: bool = True  # False: bfcl-eval's reading drops or refuses it in part or whole


KINDS: tuple[Kind, ...] = (
    Kind("ground_truth", _blocks),
    Kind("prose_around_calls", lambda calls: "<think>The user asked.</think>I will call:\n" + _blocks(calls)),
    Kind("text_answer", lambda calls: TEXT_ANSWER),
    # Calls drafted in the reasoning trace are not the answer: bfcl-eval scores only what follows it.
    Kind(
        "calls_drafted_in_think",
        lambda calls: f"<think>Draft:\n{_blocks(calls)}\nNo.</think>\n\n{TEXT_ANSWER}",
    ),
    Kind(
        "wrong_draft_then_calls",
        lambda calls: f"<think>\n{_blocks([*calls, *calls])}\nToo many.\n</think>\n\n{_blocks(calls)}",
    ),
    Kind(
        "python_literal_blocks",
        lambda calls: _raw_blocks(repr({"name": c.name, "arguments": c.arguments}) for c in calls),
        well_formed=False,
    ),
    Kind(
        "unclosed_last_block",
        lambda calls: _blocks(calls).removesuffix("</tool_call>").rstrip(),
        well_formed=False,
    ),
    Kind("inline_blocks", lambda calls: "".join(render_call(c).replace("\n", "") for c in calls), False),
    Kind("one_unreadable_block", lambda calls: _blocks(calls) + "\n" + UNREADABLE_BLOCK, False),
    Kind("non_object_block", lambda calls: _blocks(calls) + "\n" + NON_OBJECT_BLOCK, False),
    Kind(
        "arguments_as_string",
        lambda calls: _raw_blocks(
            json.dumps({"name": c.name, "arguments": json.dumps(c.arguments)}) for c in calls
        ),
        well_formed=False,
    ),
    Kind(
        "missing_arguments_key",
        lambda calls: _raw_blocks(json.dumps({"name": c.name}) for c in calls),
        well_formed=False,
    ),
    Kind(
        "code_fenced_call",
        lambda calls: (
            "```json\n" + json.dumps({"name": calls[0].name, "arguments": calls[0].arguments}) + "\n```"
        ),
        well_formed=False,
    ),
)


def bfcl_verdict(item: BfclItem, raw_output: str) -> tuple[bool, str | None]:
    """bfcl-eval's own evaluation of one single-turn output: (valid, error_type)."""
    handler, _ = bfcl_reference()
    raw_output = stored_response(handler, raw_output)
    runner = importlib.import_module("bfcl_eval.eval_checker.eval_runner")
    enums = importlib.import_module("bfcl_eval.constants.enums")
    prompt_entry = {"id": item.id, "function": copy.deepcopy(item.functions)}
    try:
        if item.kind == "ast":
            result = runner._evaluate_single_ast_entry(
                handler,
                item.id,
                raw_output,
                copy.deepcopy(item.possible_answer),
                prompt_entry,
                REFERENCE_MODEL,
                item.category,
                language=enums.Language.PYTHON,
                return_format=enums.ReturnFormat.PYTHON,
            )
        else:
            result = runner._evaluate_single_relevance_entry(
                handler, item.id, raw_output, prompt_entry, REFERENCE_MODEL, item.category
            )
    except Exception as error:  # bfcl-eval would crash on this output; ours calls it invalid
        return False, f"exception:{type(error).__name__}"
    if result.get("valid"):
        return True, None
    return False, result.get("error_type")


def compare(item: BfclItem, kind: Kind, reading: OutputReading = DEFAULT_OUTPUT_READING) -> Outcome:
    raw_output = kind.render(item_calls(item))
    ours = score_output(item, raw_output, reading)
    bfcl_valid, bfcl_error = bfcl_verdict(item, raw_output)
    return Outcome(item.id, item.category, kind.name, ours.correct, ours.error_type, bfcl_valid, bfcl_error)


def commonest_errors(error_types: dict[str, int], top: int = 3) -> str:
    """bfcl-eval's ``top`` commonest error types, commonest first."""
    ranked = sorted(error_types.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return ", ".join(f"{name} {n}" for name, n in ranked)


CHECK: ParityCheck[BfclItem, Kind] = ParityCheck(
    KINDS, compare, "items", "bfcl-eval's commonest error types", commonest_errors
)
parity_outcomes = CHECK.parity_outcomes
summarise = CHECK.summarise
markdown_table = CHECK.markdown_table
