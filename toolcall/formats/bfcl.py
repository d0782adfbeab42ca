"""BFCL (Berkeley Function-Calling Leaderboard) records, as the ``bfcl-eval`` package ships them.

- **Single turn** (``simple_*``, ``multiple``, ``parallel*``, their ``live_`` forms, Java and
  JavaScript): ``question`` (turns of messages) and ``function`` (BFCL specs). The label comes from the
  possible answer (``ground_truth``, inline or joined by id from ``possible_answer/``): per call, each
  parameter's first acceptable value, a parameter whose first acceptable value is ``""`` left out.
- **Executable** (v3's ``exec_*`` and ``rest``): ``ground_truth`` inline, each call written as Python
  (``calc_binomial_probability(n=20, k=5, p=0.6)``): those calls are the label.
- **Irrelevance** (``irrelevance``, ``live_irrelevance``) and records offering no function: a "no
  call" label (no possible answer exists for them).
- **Multi turn** (``multi_turn_*``): ``question`` is one list of user messages per turn, the tools are
  the docs of the ``involved_classes`` (``multi_turn_func_doc/``) less the functions named in
  ``excluded_function`` (never offered), functions named in ``missed_function`` are held back until
  their turn, and the possible answer lists each turn's
  calls as Python source (``cd(folder='document')``, positional arguments in the declared order).
  Each turn becomes one sample: the earlier turns (user messages and the calls that answered them)
  as context, this turn's calls as an ordered label, or "no call" where the turn has none (a missing
  function or parameter). BFCL executes the calls in a simulator; their results are not in the data,
  so the context holds the calls without tool results. A turn that only adds the held-back functions
  carries BFCL's own user message for it.
- **v1** (``gorilla_openfunctions_v1_test_*.json``, the leaderboard's first release, and OpenFunctions
  v1's ``gorilla_openfunctions_v1_test.json``): ``question`` is the user's text, the answer inline as
  Python (``human_eval_answer``, or ``model_answer``), read as the executable categories' ground truth;
  OpenFunctions v1 names each function for people (``"name": "Weather Forecast"``) and gives the name
  it is called by in ``api_call`` (``weather.forecast``): that is the tool's name.
- **Relevance** (``live_relevance``: any call is accepted) and the agentic categories (``memory``,
  ``web_search``: the answer is a final text reached through many tool calls) have no call to learn:
  they are refused with that reason.
"""

from __future__ import annotations

from typing import Any

from toolcall.formats.common import (
    NO_SUITABLE_TOOL,
    Conversion,
    FormatContext,
    RecordError,
    check_context,
    json_or_value,
    message,
    python_calls_to_tool_calls,
    tools_from,
)
from toolcall.specs import ParamSchema, ToolSpec
from toolcall.types import Action, Message, Sample, ToolCall

# BFCL's multi-turn classes and the file of their function docs in ``multi_turn_func_doc/``.
BFCL_CLASS_DOC_FILES: dict[str, str] = {
    "GorillaFileSystem": "gorilla_file_system.json",
    "MathAPI": "math_api.json",
    "MessageAPI": "message_api.json",
    "TwitterAPI": "posting_api.json",
    "TicketAPI": "ticket_api.json",
    "TradingBot": "trading_bot.json",
    "TravelAPI": "travel_booking.json",
    "VehicleControlAPI": "vehicle_control.json",
    "WebSearchAPI": "web_search.json",
    "MemoryAPI_kv": "memory_kv.json",
    "MemoryAPI_vector": "memory_vector.json",
    "MemoryAPI_rec_sum": "memory_rec_sum.json",
}
# BFCL's user message for a turn that adds the held-back functions (bfcl-eval's default prompts).
ADDED_FUNCTIONS_MESSAGE = "I have updated some more functions you can choose from. What about now?"
MISSING_FUNCTION_TEXT = "None of the available functions can do this; the needed function is missing."
MISSING_PARAMETER_TEXT = "Some information this request needs is missing; could you provide it?"
_AGENTIC = ("memory", "web_search")
# Where v1 records write their answer as Python: the leaderboard's first release, OpenFunctions v1.
_V1_ANSWER_KEYS = ("human_eval_answer", "model_answer")


def is_bfcl(record: dict[str, Any]) -> bool:
    return "question" in record and ("function" in record or "involved_classes" in record)


def _category(record: dict[str, Any]) -> str:
    identifier = str(record.get("id", ""))
    return identifier.rsplit("_", 1)[0] if "_" in identifier else identifier


def from_bfcl(record: dict[str, Any], context: FormatContext) -> Conversion:
    category = _category(record)
    if category.startswith(_AGENTIC):
        raise RecordError(
            f"bfcl agentic record ({category}): its ground truth is a final answer reached through many "
            "tool calls, not a call to learn",
            "bfcl agentic record: no call to learn",
        )
    if category.startswith("multi_turn") or ("involved_classes" in record and "function" not in record):
        return _multi_turn(record, context)
    return _single_turn(record, context, category)


def _turns(record: dict[str, Any]) -> list[list[Any]]:
    question = record.get("question")
    if isinstance(question, str) and question.strip():  # v1: the user's text
        return [[{"role": "user", "content": question.strip()}]]
    if not isinstance(question, list) or not question:
        raise RecordError("bfcl 'question' must be a non-empty list of turns")
    if all(isinstance(turn, list) for turn in question):
        return question
    if all(isinstance(turn, dict) for turn in question):
        return [question]
    raise RecordError("bfcl 'question' must be a list of turns, each a list of messages")


def _plain(raw: Any) -> Message:
    if not isinstance(raw, dict):
        raise RecordError("each bfcl message must be an object")
    return message(str(raw.get("role")), raw.get("content"))


def _truth(record: dict[str, Any], context: FormatContext) -> Any:
    if "ground_truth" in record:
        return json_or_value(record["ground_truth"], "ground_truth")
    identifier = record.get("id")
    if isinstance(identifier, str) and identifier in context.bfcl_answers:
        return context.bfcl_answers[identifier]
    for key in _V1_ANSWER_KEYS:  # v1: the answer inline, as Python (its possible answers carry no id)
        answer = record.get(key)
        if isinstance(answer, str) and answer.strip():
            return [answer.strip()]
    return None


def _no_ground_truth(record: dict[str, Any], context: FormatContext) -> RecordError:
    identifier = record.get("id", "")
    errors = context.bfcl_answer_errors
    if errors:  # its answer may be on a line that could not be read: say which
        shown = "; ".join(errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
        return RecordError(
            f"bfcl record {identifier!r} has no ground truth, and possible answers could not be read: "
            + shown,
            "bfcl record has no ground truth: possible answers unreadable",
        )
    return RecordError(
        f"bfcl record {identifier!r} has no ground truth: give its possible answers "
        "(a possible_answer/ folder beside the file, or --answers FILE)",
        "bfcl record has no ground truth",
    )


def _single_turn(record: dict[str, Any], context: FormatContext, category: str) -> Conversion:
    notes: list[str] = []
    tools = tools_from(_called_names(record.get("function")), notes, "bfcl functions")
    messages = [_plain(m) for turn in _turns(record) for m in turn]
    check_context(messages)
    truth = _truth(record, context)
    if truth is None:
        if category.startswith(("irrelevance", "live_irrelevance")) or not tools:
            truth = []  # BFCL ships no possible answer for these: no call is the right answer
        elif category.startswith("live_relevance"):
            raise RecordError(
                "bfcl relevance record: any call is accepted, so there is no reference call to learn",
                "bfcl relevance record: no reference call",
            )
        else:
            raise _no_ground_truth(record, context)
    label = _executable_label(truth, tools) if _written_as_python(truth) else bfcl_label(truth, tools)
    if not label.calls:
        label = Action(text=NO_SUITABLE_TOOL)
    return Conversion("bfcl", [Sample(tools=tools, messages=messages, label=label)], notes)


def _called_names(functions: Any) -> Any:
    """The functions with OpenFunctions v1's ``api_call`` (the name a call uses; its ``name`` is a title
    for people, "Weather Forecast") as their name; anything else as it is."""
    listed = functions if isinstance(functions, list) else [functions]
    renamed = [
        {**{k: v for k, v in function.items() if k != "api_call"}, "name": function["api_call"]}
        if isinstance(function, dict) and isinstance(function.get("api_call"), str)
        else function
        for function in listed
    ]
    return renamed if isinstance(functions, list) else renamed[0]


def _written_as_python(truth: Any) -> bool:
    """Whether a ground truth is the executable categories' calls as Python text (``exec_*``,
    ``rest``: ``["calc_binomial_probability(n=20, k=5, p=0.6)"]``), not acceptable values per parameter."""
    return isinstance(truth, list) and bool(truth) and all(isinstance(call, str) for call in truth)


def _executable_label(truth: list[str], tools: list[ToolSpec]) -> Action:
    """The calls an executable record's ground truth writes (positional arguments in declared order)."""
    calls: list[ToolCall] = []
    for source in truth:
        calls.extend(python_calls_to_tool_calls(source, tools, "bfcl ground truth"))
    return Action(calls=calls)


def _multi_turn(record: dict[str, Any], context: FormatContext) -> Conversion:
    classes = record.get("involved_classes")
    if not isinstance(classes, list) or not classes:
        raise RecordError("bfcl multi-turn record has no 'involved_classes'")
    docs: list[Any] = []
    for name in classes:
        if isinstance(name, str) and name in context.bfcl_class_doc_errors:
            raise RecordError(
                f"bfcl multi-turn record needs the function docs of {name!r}, and "
                f"{context.bfcl_class_doc_errors[name]}",
                "bfcl multi-turn record: class docs unreadable",
            )
        if name not in context.bfcl_class_docs:
            raise RecordError(
                f"bfcl multi-turn record needs the function docs of {name!r} "
                "(multi_turn_func_doc/ beside the file)",
                "bfcl multi-turn record: class docs missing",
            )
        docs.extend(context.bfcl_class_docs[name])
    notes: list[str] = []
    excluded = _function_names(record.get("excluded_function"), "excluded_function")
    all_tools = [tool for tool in tools_from(docs, notes, "bfcl class docs") if tool.name not in excluded]
    held_back = _held_back(record.get("missed_function"))
    truth = _truth(record, context)
    if truth is None:
        raise _no_ground_truth(record, context)
    turns = _turns(record)
    if not isinstance(truth, list) or len(truth) != len(turns):
        raise RecordError(
            f"bfcl multi-turn ground truth must hold one list of calls per turn ({len(turns)} turns)",
            "bfcl multi-turn ground truth does not match the turns",
        )
    is_miss_param = _category(record).startswith("multi_turn_miss_param")
    samples: list[Sample] = []
    history: list[Message] = []
    for index, (turn, answer) in enumerate(zip(turns, truth, strict=True)):
        hidden = {name for turn_index, names in held_back.items() if turn_index > index for name in names}
        tools = [tool for tool in all_tools if tool.name not in hidden]
        if not isinstance(turn, list) or not all(isinstance(m, dict) for m in turn):
            raise RecordError(f"bfcl turn {index} must be a list of messages")
        turn_messages = [_plain(m) for m in turn]
        if not turn_messages:
            if index not in held_back:
                raise RecordError(f"bfcl turn {index} is empty and adds no function", "bfcl turn is empty")
            turn_messages = [Message(role="user", content=ADDED_FUNCTIONS_MESSAGE)]
        context_messages = [*history, *turn_messages]
        check_context(context_messages)
        if not isinstance(answer, list) or not all(isinstance(call, str) for call in answer):
            raise RecordError(
                f"bfcl turn {index}: ground truth must be a list of calls written as Python",
                "bfcl multi-turn ground truth is not a list of calls",
            )
        calls: list[ToolCall] = []
        for source in answer:
            calls.extend(python_calls_to_tool_calls(source, tools, f"bfcl turn {index} ground truth"))
        if calls:
            label = Action(calls=calls, ordered=len(calls) > 1)
        else:
            label = Action(text=MISSING_PARAMETER_TEXT if is_miss_param else MISSING_FUNCTION_TEXT)
        samples.append(Sample(tools=tools, messages=context_messages, label=label))
        history = [*context_messages]
        if calls:
            history.append(Message(role="assistant", tool_calls=calls))
    return Conversion("bfcl", samples, notes)


def _function_names(value: Any, key: str) -> set[str]:
    """A list of function names (``excluded_function``: functions of the classes BFCL never offers in
    this record); absent or null: none."""
    if value is None:
        return set()
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise RecordError(f"bfcl {key!r} must be a list of function names")
    return set(value)


def _held_back(value: Any) -> dict[int, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError("bfcl 'missed_function' must map turn indices to function names")
    held: dict[int, list[str]] = {}
    for key, names in value.items():
        if (
            not str(key).isdigit()
            or not isinstance(names, list)
            or not all(isinstance(n, str) for n in names)
        ):
            raise RecordError("bfcl 'missed_function' must map turn indices to function names")
        held[int(key)] = names
    return held


# --- possible answers -> labels --------------------------------------------------------------------

_OMIT = object()


def _bfcl_first(acceptable: list[Any], required: bool) -> Any:
    """The first acceptable value; ``""`` means "left out", which a required parameter cannot be."""
    for value in acceptable:
        if value == "":
            if required:
                continue
            return _OMIT
        return value
    return _OMIT


def _nested_acceptable(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, list) for v in value.values())


def _bfcl_arguments(name: str, acceptable_by_param: Any, schema: ParamSchema | None) -> dict[str, Any]:
    if not isinstance(acceptable_by_param, dict):
        raise RecordError(
            f"ground truth of {name} must map parameters to acceptable values",
            "bfcl ground truth does not map parameters to acceptable values",
        )
    properties = schema.properties if schema is not None else {}
    required = set(schema.required) if schema is not None else set()
    arguments: dict[str, Any] = {}
    for param, acceptable in acceptable_by_param.items():
        if not isinstance(acceptable, list):
            arguments[param] = acceptable  # a bare value (seen inside nested dicts): take it as given
            continue
        sub = properties.get(param)
        if sub is None and "" in acceptable:
            continue  # BFCL data quirk: an undeclared parameter the answer may leave out is left out
        value = _bfcl_first(acceptable, param in required)
        if value is _OMIT:
            continue
        if sub is not None and "object" in sub.types and _nested_acceptable(value):
            value = _bfcl_arguments(f"{name}.{param}", value, sub)  # acceptable values per dict key
        elif sub is not None and "array" in sub.types and isinstance(value, list):
            items = sub.items
            if items is not None and "object" in items.types:
                value = [
                    _bfcl_arguments(f"{name}.{param}[]", v, items) if _nested_acceptable(v) else v
                    for v in value
                ]
        arguments[param] = value
    return arguments


def bfcl_label(possible_answer: Any, tools: list[ToolSpec]) -> Action:
    """BFCL's possible answer -> our label: per parameter its first acceptable value.

    ``""`` means "may be left out" (a required parameter takes its first other value); dict values
    carry acceptable values per key and are resolved recursively. The result is one output BFCL's
    checker accepts (tested on every satisfiable BFCL v4 item). An empty list is a "no call" label.
    """
    if not isinstance(possible_answer, list):
        raise RecordError("bfcl 'ground_truth' must be a list of calls")
    specs = {tool.name: tool.parameters for tool in tools}
    calls = []
    for entry in possible_answer:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise RecordError("each bfcl ground-truth call must be an object with one function name")
        ((name, acceptable_by_param),) = entry.items()
        calls.append(
            ToolCall(name=name, arguments=_bfcl_arguments(name, acceptable_by_param, specs.get(name)))
        )
    return Action(calls=calls)
