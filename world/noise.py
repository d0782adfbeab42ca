"""Label-noise injection: realistic annotation errors at a configurable rate and mix.

Kinds (each applied only where it makes sense for the label):
- ``swap``: two arguments of the same type exchange values (the paper's Figure 12: base/symbols).
- ``wrong_value``: one argument gets another plausible value.
- ``missing_required``: a required argument is left out.
- ``wrong_function``: the call names another tool of the sample's tool list.
- ``missing_call``: one of several parallel calls is dropped.
- ``extra_call``: a further call is added (a repeated call with another value).
The true label is kept apart by the caller; noise never touches the context.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from toolcall.specs import ToolSpec
from toolcall.types import Action, ToolCall
from world.language import CITIES, CURRENCIES, FLIGHTS, TICKERS, USERS, WORDS

NOISE_KINDS = ("swap", "wrong_value", "missing_required", "wrong_function", "missing_call", "extra_call")
DEFAULT_NOISE_MIX: dict[str, float] = {
    "swap": 0.25,
    "wrong_value": 0.25,
    "missing_required": 0.15,
    "wrong_function": 0.1,
    "missing_call": 0.15,
    "extra_call": 0.1,
}


def _other_value(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return (
            value + rng.choice((1, 2, 3, 10)) * rng.choice((1, -1))
            if value > 10
            else value + rng.randint(1, 3)
        )
    for pool in (CITIES, CURRENCIES, TICKERS, USERS, WORDS, FLIGHTS):
        if value in pool:
            return rng.choice([v for v in pool if v != value])
    if isinstance(value, str) and len(value) == 10 and value[4] == "-":  # a date
        day = int(value[8:]) % 28 + 1
        return f"{value[:8]}{day:02d}"
    return f"{value}x" if isinstance(value, str) else value


def _with_call(action: Action, index: int, call: ToolCall | None) -> Action:
    calls = list(action.calls)
    if call is None:
        del calls[index]
    else:
        calls[index] = call
    return action.model_copy(update={"calls": calls})


def inject(action: Action, tools: Sequence[ToolSpec], kind: str, rng: random.Random) -> Action | None:
    """``action`` with one error of ``kind``, or None if that kind does not apply to it."""
    if not action.calls:
        return None
    index = rng.randrange(len(action.calls))
    call = action.calls[index]
    args = dict(call.arguments)
    spec = next((t for t in tools if t.name == call.name), None)
    if kind == "swap":
        pairs = [
            (a, b)
            for i, a in enumerate(sorted(args))
            for b in sorted(args)[i + 1 :]
            if type(args[a]) is type(args[b]) and args[a] != args[b]
        ]
        if not pairs:
            return None
        a, b = rng.choice(pairs)
        args[a], args[b] = args[b], args[a]
        return _with_call(action, index, ToolCall(name=call.name, arguments=args))
    if kind == "wrong_value":
        if not args:
            return None
        key = rng.choice(sorted(args))
        args[key] = _other_value(args[key], rng)
        return _with_call(action, index, ToolCall(name=call.name, arguments=args))
    if kind == "missing_required":
        required = [p for p in (spec.parameters.required if spec else []) if p in args]
        if not required:
            return None
        del args[rng.choice(required)]
        return _with_call(action, index, ToolCall(name=call.name, arguments=args))
    if kind == "wrong_function":
        others = [t.name for t in tools if t.name != call.name]
        if not others:
            return None
        return _with_call(action, index, ToolCall(name=rng.choice(others), arguments=args))
    if kind == "missing_call":
        if len(action.calls) < 2:
            return None
        return _with_call(action, index, None)
    if kind == "extra_call":
        if not args:
            return None
        key = rng.choice(sorted(args))
        args[key] = _other_value(args[key], rng)
        return action.model_copy(update={"calls": [*action.calls, ToolCall(name=call.name, arguments=args)]})
    raise ValueError(f"unknown noise kind {kind!r}")


def add_noise(
    action: Action, tools: Sequence[ToolSpec], mix: dict[str, float], rng: random.Random
) -> tuple[Action, str] | None:
    """Apply one noise kind drawn from ``mix`` among those that apply; None if none applies."""
    kinds = [k for k in sorted(mix) if mix[k] > 0]
    while kinds:
        kind = rng.choices(kinds, weights=[mix[k] for k in kinds])[0]
        noisy = inject(action, tools, kind, rng)
        if noisy is not None and noisy != action:
            return noisy, kind
        kinds.remove(kind)
    return None
