"""Python-flavoured type expressions and literals, as tool datasets write them.

xLAM/APIGen declare parameter types as Python typing expressions with modifiers:
``List[Tuple[float, float]]``, ``Union[int, float]``, ``Set[int]``, ``Optional[str]``,
``str, default='en'``, ``str, optional``, ``Dict[str, Any]``, ``Literal['a', 'b']``, ``int | None``.
:func:`parse_type_expression` reads one into JSON Schema (with what JSON Schema can say of it: tuple
positions as ``prefixItems``, sets as ``uniqueItems``, dict values as ``additionalProperties``) plus
whether it is optional and its default. :func:`python_literal` reads a Python literal (datasets
write tools and calls with single quotes and ``True``) into JSON values without evaluating code.

Pure: standard library only. Every failure is a :class:`TypeExpressionError` with the reason.
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


class TypeExpressionError(ValueError):
    """A type expression or literal that cannot be read; the message says why."""


_SCALARS: dict[str, str | None] = {
    "str": "string",
    "string": "string",
    "text": "string",
    "bytes": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "double": "number",
    "complex": None,  # refused below: JSON has no complex numbers
    "bool": "boolean",
    "boolean": "boolean",
    "none": "null",
    "nonetype": "null",
    "null": "null",
    "any": None,
    "object": "object",
}
_CALLABLES = {"callable", "function", "lambda"}
_ARRAYS = {"list", "sequence", "iterable", "collection", "array", "tuple", "set", "frozenset"}
_OBJECTS = {"dict", "mapping", "mutablemapping", "ordereddict", "defaultdict"}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<punct>\.\.\.|[\[\],|])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class TypeExpression:
    """A parsed type expression: its JSON Schema, whether it may be left out, and its default."""

    schema: dict[str, Any]
    optional: bool = False
    has_default: bool = False
    default: Any = None
    notes: tuple[str, ...] = field(default=())


def python_literal(text: str, what: str = "value") -> Any:
    """A Python literal (or JSON) as JSON values: tuples and sets become lists, nothing is executed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError) as error:
        raise TypeExpressionError(f"{what} is neither JSON nor a Python literal: {error}") from error
    return literal_value(node, what)


_NAMED_CONSTANTS = {"True": True, "False": False, "None": None, "true": True, "false": False, "null": None}


def literal_value(node: ast.AST, what: str = "value") -> Any:
    """The JSON value of one literal node (``true``/``null`` accepted too); anything else is refused."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool | int | str) or value is None:
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise TypeExpressionError(f"{what} holds a number that is not finite")
            return value
        raise TypeExpressionError(f"{what} holds a {type(value).__name__} literal, which JSON cannot hold")
    if isinstance(node, ast.Name) and node.id in _NAMED_CONSTANTS:
        return _NAMED_CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = literal_value(node.operand, what)
        if isinstance(inner, bool) or not isinstance(inner, int | float):
            raise TypeExpressionError(f"{what}: a sign before a non-number")
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [literal_value(item, what) for item in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[str, Any] = {}
        for key_node, value_node in zip(node.keys, node.values, strict=True):
            if key_node is None:
                raise TypeExpressionError(f"{what}: '**' unpacking is not a literal")
            key = literal_value(key_node, what)
            if not isinstance(key, str):
                raise TypeExpressionError(f"{what}: object keys must be strings, got {key!r}")
            out[key] = literal_value(value_node, what)
        return out
    source = ast.unparse(node) if hasattr(ast, "unparse") else type(node).__name__
    raise TypeExpressionError(f"{what}: {source[:60]!r} is not a literal")


# --- type expressions ------------------------------------------------------------------------------


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise TypeExpressionError(f"unexpected {text[position:].strip()[:20]!r} in type {text!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def split_top_level(text: str) -> list[str]:
    """Split at commas outside brackets and quotes: the type, then its modifiers."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    start = 0
    for index, char in enumerate(text):
        if quote:
            if char == quote and text[index - 1] != "\\":
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part.strip() for part in parts]


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokens(text)
        self.position = 0
        self.notes: list[str] = []

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            expected = f"{value!r}" if value else "more"
            raise TypeExpressionError(f"type {self.text!r}: expected {expected}")
        self.position += 1
        return token

    def parse(self) -> tuple[dict[str, Any], bool]:
        schema, optional = self.union()
        if self.peek() is not None:
            raise TypeExpressionError(f"type {self.text!r}: unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return schema, optional

    def union(self) -> tuple[dict[str, Any], bool]:
        options = [self.atom()]
        while self.peek() == ("punct", "|"):
            self.take("|")
            options.append(self.atom())
        # ``int | None`` is ``Optional[int]``: both may be left out, as datasets write them.
        optional = any(o for _, o in options) or _admits_none(options)
        return _union([s for s, _ in options]), optional

    def arguments(self) -> list[tuple[dict[str, Any], bool]]:
        self.take("[")
        items: list[tuple[dict[str, Any], bool]] = []
        while True:
            if self.peek() == ("punct", "..."):
                self.take("...")
                items.append(({"...": True}, False))
            else:
                items.append(self.union())
            if self.peek() == ("punct", ","):
                self.take(",")
                continue
            self.take("]")
            return items

    def skip_brackets(self) -> None:
        """Past a balanced ``[...]`` (a Callable's signature, which JSON cannot use)."""
        depth = 0
        while True:
            _, text = self.take()
            depth += {"[": 1, "]": -1}.get(text, 0)
            if depth == 0:
                return

    def literals(self) -> list[Any]:
        self.take("[")
        values: list[Any] = []
        while True:
            kind, text = self.take()
            if kind not in ("string", "number", "name"):
                raise TypeExpressionError(f"type {self.text!r}: Literal takes literal values")
            values.append(python_literal(text, f"type {self.text!r}"))
            if self.peek() == ("punct", ","):
                self.take(",")
                continue
            self.take("]")
            return values

    def atom(self) -> tuple[dict[str, Any], bool]:
        kind, name = self.take()
        if kind != "name":
            raise TypeExpressionError(f"type {self.text!r}: expected a type name, got {name!r}")
        key = name.rsplit(".", 1)[-1].lower()  # typing.List, t.Dict -> list, dict
        has_arguments = self.peek() == ("punct", "[")
        if key == "literal":
            values = self.literals()
            kinds = sorted({_json_type(v) for v in values})
            schema: dict[str, Any] = {"enum": values}
            if len(kinds) == 1:
                schema = {"type": kinds[0], "enum": values}
            return schema, False
        if key in ("optional", "union"):
            if not has_arguments:
                raise TypeExpressionError(f"type {self.text!r}: {name} needs [arguments]")
            options = self.arguments()
            merged = _union([s for s, _ in options])
            if key == "optional":
                return _union([merged, {"type": "null"}]), True
            return merged, any(o for _, o in options) or _admits_none(options)
        if key in _ARRAYS:
            arguments = self.arguments() if has_arguments else []
            return _array(key, [s for s, _ in arguments], self.text), False
        if key in _OBJECTS:
            arguments = self.arguments() if has_arguments else []
            schema = {"type": "object"}
            if len(arguments) == 2:
                value_schema = arguments[1][0]
                if value_schema:
                    schema["additionalProperties"] = value_schema
                if arguments[0][0].get("type") not in (None, "string"):
                    self.notes.append(f"object keys are strings in JSON, not {arguments[0][0].get('type')}")
            elif arguments:
                raise TypeExpressionError(f"type {self.text!r}: {name} takes [key type, value type]")
            return schema, False
        if key in _CALLABLES:
            # A function cannot travel in JSON; datasets (xLAM's math tools) pass its source as a
            # string ("lambda x: x**2"), so that is how the parameter is read.
            if has_arguments:
                self.skip_brackets()
            self.notes.append(f"{name} is passed as a string (its source text) in JSON")
            return {"type": "string"}, False
        if key in _SCALARS:
            if has_arguments:
                raise TypeExpressionError(f"type {self.text!r}: {name} takes no [arguments]")
            if key == "complex":
                raise TypeExpressionError(f"type {self.text!r}: JSON has no complex numbers")
            json_type = _SCALARS[key]
            return ({"type": json_type} if json_type else {}), False
        raise TypeExpressionError(f"unknown type {name!r} in {self.text!r}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _admits_none(options: list[tuple[dict[str, Any], bool]]) -> bool:
    """One of a union's members is None (``Union[int, None]``, ``int | None``)."""
    return len(options) > 1 and any(schema == {"type": "null"} for schema, _ in options)


def _union(options: list[dict[str, Any]]) -> dict[str, Any]:
    if len(options) == 1:
        return options[0]
    if any(not option for option in options):
        return {}  # Any among the options: anything goes
    simple = all(set(option) == {"type"} and isinstance(option["type"], str) for option in options)
    if simple:
        kinds: list[str] = []
        for option in options:
            if option["type"] not in kinds:
                kinds.append(option["type"])
        return {"type": kinds if len(kinds) > 1 else kinds[0]}
    return {"anyOf": options}


def _array(key: str, arguments: list[dict[str, Any]], text: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array"}
    if key in ("set", "frozenset"):
        schema["uniqueItems"] = True
    if not arguments:
        return schema
    if key == "tuple":
        if len(arguments) == 2 and arguments[1] == {"...": True}:
            if arguments[0]:
                schema["items"] = arguments[0]
            return schema
        if any(a == {"...": True} for a in arguments):
            raise TypeExpressionError(f"type {text!r}: '...' only as Tuple[X, ...]")
        schema["prefixItems"] = arguments
        schema["minItems"] = schema["maxItems"] = len(arguments)
        return schema
    if len(arguments) != 1 or arguments[0] == {"...": True}:
        raise TypeExpressionError(f"type {text!r}: a list takes one element type")
    if arguments[0]:
        schema["items"] = arguments[0]
    return schema


def parse_type_expression(text: str) -> TypeExpression:
    """``"List[Tuple[float, float]], optional"`` -> JSON Schema, optional flag and default."""
    if not isinstance(text, str) or not text.strip():
        raise TypeExpressionError("empty type")
    first, *modifiers = split_top_level(text.strip())
    parser = _Parser(first)
    schema, optional = parser.parse()
    has_default = False
    default: Any = None
    for modifier in modifiers:
        word = modifier.lower()
        if word == "optional":
            optional = True
        elif word == "required":
            optional = False
        elif word.startswith("default"):
            _, equals, value = modifier.partition("=")
            if not equals or not value.strip():
                raise TypeExpressionError(f"type {text!r}: 'default' needs '=value'")
            default = python_literal(value, f"default in type {text!r}")
            has_default = optional = True
        else:
            raise TypeExpressionError(f"type {text!r}: unknown modifier {modifier!r}")
    return TypeExpression(schema, optional, has_default, default, tuple(parser.notes))


# --- Python call syntax ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PythonCall:
    """One call written as Python: its name, keyword arguments and positional arguments."""

    name: str
    keywords: dict[str, Any]
    positional: tuple[Any, ...] = ()


def _unquoted_characters(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, character, bracket depth after it) for each character of ``text`` from ``start`` that
    lies outside string literals (backslash escapes honoured)."""
    depth = 0
    quote: str | None = None
    index = start
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        else:
            if char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
            yield index, char, depth
        index += 1


def _matching_paren(text: str, start: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``start``, skipping quoted strings and nesting."""
    for index, char, depth in _unquoted_characters(text, start):
        if char in ")]}" and depth == 0:
            if char != ")":
                raise TypeExpressionError("unbalanced brackets in a call")
            return index
    raise TypeExpressionError("a call's '(' is never closed")


def parse_python_calls(text: str) -> list[PythonCall]:
    """Calls written as Python: ``[f(a=1), g(b='x')]``, ``f(a=1)``, one per line, or as statements
    ``f(a=1); g(b='x')`` (Llama 3.x writes several calls after ``<|python_tag|>`` so).

    Names may be dotted or hold spaces (``Market Trends API(trend_type="X")``, as ToolACE writes
    them); argument values must be literals. Raises :class:`TypeExpressionError` with the reason.
    """
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1].strip()
    if not body:
        raise TypeExpressionError("no call in an empty list")
    calls: list[PythonCall] = []
    position = 0
    while position < len(body):
        while position < len(body) and body[position] in " \t\r\n,;":
            position += 1
        if position >= len(body):
            break
        open_at = body.find("(", position)
        if open_at == -1:
            raise TypeExpressionError(f"{body[position:][:40]!r} is not a call")
        name = body[position:open_at].strip()
        if not name or any(char in name for char in "[]{}\"'=,:;<>"):
            raise TypeExpressionError(f"{name[:40]!r} is not a function name")
        close_at = _matching_paren(body, open_at)
        calls.append(_python_call(name, body[open_at + 1 : close_at]))
        position = close_at + 1
    return calls


# A keyword argument's name as tool datasets write it, Python keywords ("from", "class") and hyphens
# ("league-id") included. Python's own parser refuses those and NFKC-normalises the names it reads
# ("µ" becomes "μ"), so names are read here, as written, and only the values go to ast.
_KEYWORD = re.compile(r"\s*([^\W\d][\w-]*)\s*=(?!=)")


def _split_arguments(text: str) -> list[str]:
    """Split at commas outside brackets and string literals (backslash escapes honoured)."""
    parts: list[str] = []
    start = 0
    for index, char, depth in _unquoted_characters(text):
        if char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    if len(parts) > 1 and not parts[-1].strip():
        parts.pop()  # a trailing comma, as Python allows
    return parts


def _argument_value(name: str, source: str, what: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            node = ast.parse(source.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError) as error:
        reason = error.msg if isinstance(error, SyntaxError) else type(error).__name__
        raise TypeExpressionError(f"arguments of {name} do not parse: {what}: {reason}") from error
    return literal_value(node, what)


def _python_call(name: str, arguments: str) -> PythonCall:
    keywords: dict[str, Any] = {}
    positional: list[Any] = []
    parts = _split_arguments(arguments)
    if len(parts) == 1 and not parts[0].strip():
        parts = []  # f()
    for part in parts:
        if not part.strip():
            raise TypeExpressionError(f"arguments of {name} do not parse: an empty argument")
        if part.lstrip().startswith("*"):
            raise TypeExpressionError(f"{name}: '*' and '**' arguments are not literals")
        keyword = _KEYWORD.match(part)
        if keyword is None:
            if keywords:
                raise TypeExpressionError(f"{name}: a positional argument after keyword arguments")
            positional.append(_argument_value(name, part, f"{name} argument {len(positional) + 1}"))
            continue
        key, value = keyword.group(1), part[keyword.end() :]
        if not value.strip():
            raise TypeExpressionError(f"{name}({key}=…) has no value")
        if key in keywords:
            raise TypeExpressionError(f"{name}: keyword argument {key!r} repeated")
        keywords[key] = _argument_value(name, value, f"{name}({key}=…)")
    return PythonCall(name=name, keywords=keywords, positional=tuple(positional))
