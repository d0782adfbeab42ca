"""ToolMatch against bfcl-eval's AST checker, on label/prediction pairs derived from BFCL's ground truth.

For every AST item the label is :func:`evaluation.suite.ground_truth_label` (the first acceptable
value of each parameter). Predictions are the label itself and perturbations of it, one kind at a
time (:data:`PERTURBATIONS`). Both judges see the same pair: ToolMatch compares prediction and label
under the item's tool schemas; BFCL's checker compares the prediction, in its decoded model-output
form, with a possible answer built from the label alone (each labelled parameter: exactly its value;
each declared parameter the label leaves out: ``""``, i.e. must be left out). Agreement is counted per
perturbation kind, and every disagreement is kept with an example, so each class can be fixed or
explained (``docs/toolmatch.md``).

Perturbations are deterministic: the parameter or call to perturb is chosen by a hash of the item id
and the kind, among those the kind applies to; a kind that applies nowhere in an item is skipped.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evaluation.bfcl_checker import ast_check
from evaluation.scoring import to_bfcl_output
from evaluation.suite import BfclItem, ground_truth_label, unsatisfiable_reason
from toolcall.match import tool_match
from toolcall.types import Action, ToolCall

UNKNOWN_PARAM = "unknown_param_x"


@dataclass(frozen=True)
class Target:
    """One place a perturbation can apply: call index and parameter (None for call-level kinds)."""

    call: int
    param: str | None = None


@dataclass(frozen=True)
class PairOutcome:
    item_id: str
    category: str
    kind: str
    label: Action
    prediction: Action
    target: Target
    bfcl: bool
    bfcl_error: str | None
    ours: bool
    our_diffs: list[str] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return self.bfcl == self.ours

    def describe(self) -> str:
        """A compact, human-readable example of this pair."""
        where = self.label.calls[self.target.call] if self.target.call < len(self.label.calls) else None
        param = self.target.param
        if where is not None and param is not None:
            predicted = next(
                (c for c in self.prediction.calls if c.name == where.name and param in c.arguments), None
            )
            before = (
                json.dumps(where.arguments[param], ensure_ascii=False)
                if param in where.arguments
                else "<absent>"
            )
            after = json.dumps(predicted.arguments[param], ensure_ascii=False) if predicted else "<absent>"
            return f"{self.item_id} {where.name}.{param}: {before} -> {after}"
        names = lambda action: [c.name for c in action.calls]  # noqa: E731
        return f"{self.item_id}: {names(self.label)} -> {names(self.prediction)}"


# --- schema helpers on BFCL's function docs -------------------------------------------------------


def _docs(item: BfclItem) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in item.functions}


def _props(doc: dict[str, Any]) -> dict[str, Any]:
    props = doc.get("parameters", {}).get("properties")
    return props if isinstance(props, dict) else {}


def _required(doc: dict[str, Any]) -> set[str]:
    return set(doc.get("parameters", {}).get("required") or [])


def _pick(targets: Sequence[Target], item: BfclItem, kind: str) -> Target | None:
    if not targets:
        return None
    digest = hashlib.blake2b(f"{item.id}\x1f{kind}".encode(), digest_size=4).digest()
    return targets[int.from_bytes(digest, "big") % len(targets)]


def _param_targets(
    item: BfclItem, label: Action, accept: Callable[[Any, dict[str, Any], str, dict[str, Any]], bool]
) -> list[Target]:
    """Labelled parameters whose value (and schema) ``accept`` takes."""
    docs = _docs(item)
    targets = []
    for index, call in enumerate(label.calls):
        doc = docs.get(call.name, {})
        for param, value in call.arguments.items():
            schema = _props(doc).get(param)
            if isinstance(schema, dict) and accept(value, schema, param, doc):
                targets.append(Target(index, param))
    return targets


def _absent_targets(
    item: BfclItem, label: Action, accept: Callable[[dict[str, Any], str, dict[str, Any]], bool]
) -> list[Target]:
    """Declared parameters the label leaves out that ``accept`` takes."""
    docs = _docs(item)
    targets = []
    for index, call in enumerate(label.calls):
        doc = docs.get(call.name, {})
        for param, schema in _props(doc).items():
            if param not in call.arguments and isinstance(schema, dict) and accept(schema, param, doc):
                targets.append(Target(index, param))
    return targets


def _with_argument(label: Action, target: Target, value: Any) -> Action:
    calls = [c.model_copy(deep=True) for c in label.calls]
    call = calls[target.call]
    arguments = dict(call.arguments)
    assert target.param is not None
    arguments[target.param] = value
    calls[target.call] = ToolCall(name=call.name, arguments=arguments)
    return label.model_copy(update={"calls": calls})


def _without_argument(label: Action, target: Target) -> Action:
    calls = list(label.calls)
    call = calls[target.call]
    calls[target.call] = ToolCall(
        name=call.name, arguments={k: v for k, v in call.arguments.items() if k != target.param}
    )
    return label.model_copy(update={"calls": calls})


def _has_letters(value: Any) -> bool:
    return isinstance(value, str) and any(ch.isalpha() for ch in value) and value.upper() != value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _non_default_value(schema: dict[str, Any]) -> Any:
    """A plausible value for a parameter that differs from its declared default (None: none found)."""
    default = schema.get("default", object())
    enum = schema.get("enum")
    if isinstance(enum, list):
        return next((v for v in enum if v != default), None)
    kind = schema.get("type")
    candidates: dict[str, list[Any]] = {
        "string": ["zz-perturbed"],
        "integer": [7, 8],
        "float": [7.5, 8.5],
        "boolean": [True, False],
        "array": [["zz-perturbed"]] if schema.get("items", {}).get("type") == "string" else [],
    }
    return next((v for v in candidates.get(str(kind), []) if v != default), None)


# --- perturbations: (item, label) -> (target, prediction) or None ---------------------------------

Perturbation = Callable[[BfclItem, Action], tuple[Target, Action] | None]


def _value_change(
    kind: str,
    accept: Callable[[Any, dict[str, Any], str, dict[str, Any]], bool],
    change: Callable[[Any], Any],
) -> Perturbation:
    def perturb(item: BfclItem, label: Action) -> tuple[Target, Action] | None:
        target = _pick(_param_targets(item, label, accept), item, kind)
        if target is None:
            return None
        assert target.param is not None
        value = label.calls[target.call].arguments[target.param]
        return target, _with_argument(label, target, change(copy.deepcopy(value)))

    return perturb


def _string_spacing(value: str) -> str:
    return (
        value.replace(" ", "") if " " in value else value[: len(value) // 2] + " " + value[len(value) // 2 :]
    )


def _string_punctuation(value: str) -> str:
    return value.replace(" ", ", ", 1) if " " in value else value + "."


def _identity(item: BfclItem, label: Action) -> tuple[Target, Action] | None:
    return Target(0), label


def _parallel_reorder(item: BfclItem, label: Action) -> tuple[Target, Action] | None:
    if len(label.calls) < 2 or label.calls == list(reversed(label.calls)):
        return None
    return Target(0), label.model_copy(update={"calls": list(reversed(label.calls))})


def _drop(kind: str, accept: Callable[[Any, dict[str, Any], str, dict[str, Any]], bool]) -> Perturbation:
    def perturb(item: BfclItem, label: Action) -> tuple[Target, Action] | None:
        target = _pick(_param_targets(item, label, accept), item, kind)
        return None if target is None else (target, _without_argument(label, target))

    return perturb


def _add(
    kind: str,
    accept: Callable[[dict[str, Any], str, dict[str, Any]], bool],
    value_of: Callable[[dict[str, Any]], Any],
) -> Perturbation:
    def perturb(item: BfclItem, label: Action) -> tuple[Target, Action] | None:
        target = _pick(_absent_targets(item, label, accept), item, kind)
        if target is None:
            return None
        schema = _props(_docs(item)[label.calls[target.call].name])[target.param]
        return target, _with_argument(label, target, copy.deepcopy(value_of(schema)))

    return perturb


def _unknown_param(item: BfclItem, label: Action) -> tuple[Target, Action] | None:
    target = Target(0, UNKNOWN_PARAM)
    return target, _with_argument(label, target, "x")


def _wrong_function(item: BfclItem, label: Action) -> tuple[Target, Action] | None:
    call = label.calls[0]
    others = [f["name"] for f in item.functions if f["name"] != call.name]
    name = others[0] if others else call.name + "_v2"
    calls = [ToolCall(name=name, arguments=dict(call.arguments)), *label.calls[1:]]
    return Target(0), label.model_copy(update={"calls": calls})


def _missing_call(item: BfclItem, label: Action) -> tuple[Target, Action] | None:
    index = len(label.calls) - 1
    calls = label.calls[:index]
    text = None if calls else "I cannot help with that."
    return Target(index), label.model_copy(update={"calls": calls, "text": text})


def _duplicated_call(item: BfclItem, label: Action) -> tuple[Target, Action] | None:
    return Target(0), label.model_copy(update={"calls": [*label.calls, label.calls[0]]})


def _declared(schema: dict[str, Any], *types: str) -> bool:
    return schema.get("type") in types


PERTURBATIONS: dict[str, Perturbation] = {
    "identity": _identity,
    "string_case": _value_change(
        "string_case", lambda v, s, p, d: _declared(s, "string") and _has_letters(v), str.upper
    ),
    "string_spacing": _value_change(
        "string_spacing",
        lambda v, s, p, d: _declared(s, "string") and isinstance(v, str) and len(v) > 1,
        _string_spacing,
    ),
    "string_punctuation": _value_change(
        "string_punctuation",
        lambda v, s, p, d: _declared(s, "string") and isinstance(v, str) and bool(v),
        _string_punctuation,
    ),
    "int_for_float": _value_change(
        "int_for_float",
        lambda v, s, p, d: _declared(s, "float") and isinstance(v, float) and v.is_integer(),
        int,
    ),
    "float_for_int": _value_change(
        "float_for_int", lambda v, s, p, d: _declared(s, "integer") and _is_int(v), float
    ),
    # The next integer: any two distinct integers differ (ToolMatch's float tolerance never applies).
    "int_off_by_one": _value_change(
        "int_off_by_one", lambda v, s, p, d: _declared(s, "integer") and _is_int(v), lambda v: v + 1
    ),
    "numeric_string": _value_change(
        "numeric_string",
        lambda v, s, p, d: _declared(s, "integer", "float") and (_is_int(v) or isinstance(v, float)),
        lambda v: json.dumps(v),
    ),
    "boolean_string": _value_change(
        "boolean_string",
        lambda v, s, p, d: _declared(s, "boolean") and isinstance(v, bool),
        lambda v: json.dumps(v),
    ),
    "list_reorder": _value_change(
        "list_reorder",
        lambda v, s, p, d: isinstance(v, list) and len(v) > 1 and v != list(reversed(v)),
        lambda v: list(reversed(v)),
    ),
    "parallel_reorder": _parallel_reorder,
    "optional_dropped": _drop(
        "optional_dropped",
        lambda v, s, p, d: p not in _required(d) and ("default" not in s or s["default"] != v),
    ),
    "optional_added": _add(
        "optional_added",
        lambda s, p, d: p not in _required(d) and _non_default_value(s) is not None,
        _non_default_value,
    ),
    "default_dropped": _drop("default_dropped", lambda v, s, p, d: "default" in s and s["default"] == v),
    "default_added": _add(
        "default_added", lambda s, p, d: p not in _required(d) and "default" in s, lambda s: s["default"]
    ),
    "unknown_param": _unknown_param,
    "wrong_function": _wrong_function,
    "missing_call": _missing_call,
    "duplicated_call": _duplicated_call,
}


# --- the label as BFCL's possible answer ---------------------------------------------------------


def _acceptable(value: Any, schema: dict[str, Any]) -> Any:
    """One labelled value in BFCL's possible-answer form.

    BFCL's checker compares a dict parameter key by key, each key against a list of acceptable values
    (one level deep: nested dicts are compared whole), and a list of dicts element by element.
    """
    kind = schema.get("type")
    if kind == "dict" and isinstance(value, dict):
        return {k: [v] for k, v in value.items()}
    if kind == "array" and isinstance(value, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        if items.get("type") == "dict" and all(isinstance(v, dict) for v in value):
            return [{k: [v] for k, v in element.items()} for element in value]
    return value


def possible_answer_from_label(item: BfclItem, label: Action) -> list[dict[str, dict[str, list[Any]]]]:
    """BFCL's possible answer that accepts exactly the label (declared, unlabelled parameters: omitted)."""
    docs = _docs(item)
    answer = []
    for call in label.calls:
        props = _props(docs.get(call.name, {}))
        params: dict[str, list[Any]] = {p: [""] for p in props if p not in call.arguments}
        params.update({p: [_acceptable(v, props.get(p, {}))] for p, v in call.arguments.items()})
        answer.append({call.name: params})
    return answer


def root_error(error_type: str | None, errors: Sequence[Any]) -> str | None:
    """BFCL's error type, looking inside a parallel "cannot find a match" at the same-function attempt."""
    if not error_type or not error_type.endswith("cannot_find_match"):
        return error_type
    attempts = [value for entry in errors if isinstance(entry, dict) for value in entry.values()]
    for attempt in attempts:
        if not isinstance(attempt, dict):
            continue
        produced, expected = attempt.get("model_output_item"), attempt.get("possible_answer_item")
        if isinstance(produced, dict) and isinstance(expected, dict) and produced.keys() == expected.keys():
            return str(attempt.get("sub_error_type"))
    return error_type


def compare(item: BfclItem, kind: str, label: Action, target: Target, prediction: Action) -> PairOutcome:
    tools = item.tools()
    ours = tool_match(prediction, label, tools)
    verdict = ast_check(
        item.functions, to_bfcl_output(prediction), possible_answer_from_label(item, label), item.category
    )
    return PairOutcome(
        item_id=item.id,
        category=item.category,
        kind=kind,
        label=label,
        prediction=prediction,
        target=target,
        bfcl=verdict.valid,
        bfcl_error=root_error(verdict.error_type, verdict.errors),
        ours=ours.matched,
        our_diffs=sorted({d.kind for d in ours.diffs}),
    )


def parity_pairs(items: Iterable[BfclItem], kinds: Sequence[str] | None = None) -> list[PairOutcome]:
    """Every applicable (item, perturbation kind) pair, judged by both sides. AST items only."""
    chosen = list(kinds or PERTURBATIONS)
    unknown = sorted(set(chosen) - set(PERTURBATIONS))
    if unknown:
        raise ValueError(f"unknown perturbation kinds {unknown}; known: {', '.join(PERTURBATIONS)}")
    outcomes = []
    for item in items:
        if item.kind != "ast" or unsatisfiable_reason(item) is not None:
            continue
        label = ground_truth_label(item)
        for kind in chosen:
            perturbed = PERTURBATIONS[kind](item, label)
            if perturbed is not None:
                outcomes.append(compare(item, kind, label, *perturbed))
    return outcomes


@dataclass
class KindSummary:
    kind: str
    pairs: int = 0
    bfcl_accepts: int = 0
    ours_accepts: int = 0
    only_bfcl: int = 0  # BFCL accepts, ToolMatch does not
    only_ours: int = 0  # ToolMatch accepts, BFCL does not
    examples: dict[str, PairOutcome] = field(default_factory=dict)  # disagreement class -> first example
    class_counts: dict[str, int] = field(default_factory=dict)  # disagreement class -> pairs

    @property
    def agreement(self) -> float:
        return 1 - (self.only_bfcl + self.only_ours) / self.pairs if self.pairs else 1.0


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "float": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "tuple": (list,),
    "dict": (dict,),
}


def _conforms(value: Any, kind: Any) -> bool:
    """``value`` has BFCL's declared type ``kind`` (unknown kinds such as ``any`` accept anything)."""
    allowed = _PYTHON_TYPES.get(str(kind))
    if allowed is None:
        return True
    if isinstance(value, bool) and bool not in allowed:
        return False
    return isinstance(value, allowed)


def _cause(outcome: PairOutcome, item: BfclItem) -> str:
    """What the perturbed parameter is, for the parameter-level kinds that touch defaults."""
    param = outcome.target.param
    if param is None or outcome.target.call >= len(outcome.label.calls):
        return ""
    doc = _docs(item).get(outcome.label.calls[outcome.target.call].name, {})
    schema = _props(doc).get(param, {})
    if not isinstance(schema, dict) or "default" not in schema:
        return "no declared default"
    default = schema["default"]
    where = "required parameter" if param in _required(doc) else "optional parameter"
    if default is None:
        return f"{where}, declared default null"
    if not _conforms(default, schema.get("type")):
        return f"{where}, declared default {default!r} not of its type {schema.get('type')}"
    return f"{where} with a declared default"


def disagreement_class(outcome: PairOutcome, item: BfclItem | None = None) -> str:
    cause = _cause(outcome, item) if item is not None else ""
    suffix = f" [{cause}]" if cause else ""
    if outcome.bfcl:
        return f"BFCL accepts; ToolMatch: {', '.join(outcome.our_diffs) or '?'}{suffix}"
    return f"ToolMatch accepts; BFCL: {outcome.bfcl_error}{suffix}"


def summarise_parity(
    outcomes: Iterable[PairOutcome], items: Iterable[BfclItem] = ()
) -> dict[str, KindSummary]:
    """Counts per kind; ``items`` (by id) lets each disagreement class name its cause."""
    by_id = {item.id: item for item in items}
    by_kind: dict[str, KindSummary] = {kind: KindSummary(kind) for kind in PERTURBATIONS}
    for outcome in outcomes:
        summary = by_kind[outcome.kind]
        summary.pairs += 1
        summary.bfcl_accepts += int(outcome.bfcl)
        summary.ours_accepts += int(outcome.ours)
        if not outcome.agree:
            if outcome.bfcl:
                summary.only_bfcl += 1
            else:
                summary.only_ours += 1
            name = disagreement_class(outcome, by_id.get(outcome.item_id))
            summary.examples.setdefault(name, outcome)
            summary.class_counts[name] = summary.class_counts.get(name, 0) + 1
    return {kind: s for kind, s in by_kind.items() if s.pairs}


def markdown_table(summaries: dict[str, KindSummary]) -> str:
    """The agreement table by perturbation kind, with one example per disagreement class."""
    lines = [
        "| perturbation | pairs | BFCL accepts | ToolMatch accepts | agree "
        "| only BFCL accepts | only ToolMatch accepts |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in summaries.values():
        lines.append(
            f"| {s.kind} | {s.pairs} | {s.bfcl_accepts} | {s.ours_accepts} | {100 * s.agreement:.1f}% "
            f"| {s.only_bfcl} | {s.only_ours} |"
        )
    examples = [(s.kind, cls, ex) for s in summaries.values() for cls, ex in s.examples.items()]
    if examples:
        lines += ["", "| perturbation | disagreement | pairs | example |", "| --- | --- | ---: | --- |"]
        for kind, cls, ex in examples:
            count = summaries[kind].class_counts[cls]
            lines.append(f"| {kind} | {cls} | {count} | `{ex.describe().replace('|', '∣')}` |")
    return "\n".join(lines)
