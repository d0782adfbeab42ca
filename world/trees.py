"""Hierarchical Dual-Tree tool synthesis (Section 3.1, Appendix D).

Two trees per world: a *context tree* (domain → category → specialisation) that says what a tool
does, and a *constraint tree* (naming convention → parameter profile → output format) that says how
it must look. A tool is synthesised by sampling one leaf path from each tree and merging them into a
spec, which is then rule-validated. Leaves of the context tree carry everything the offline world
needs to play the tool: the action's phrasings, typed parameter slots and an executable behaviour.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Literal

from toolcall.specs import ParamSchema, ToolSpec

SlotType = Literal["city", "date", "int", "number", "code", "name", "word", "enum", "list"]


@dataclass(frozen=True)
class Slot:
    """A parameter the world knows how to fill, phrase and recognise in text."""

    name: str  # snake_case base name; the naming convention renders it
    phrase: str  # how a user refers to it ("departure city")
    kind: SlotType
    description: str
    choices: tuple[str, ...] = ()  # for enum slots
    required: bool = True
    default: str | int | float | None = None


@dataclass(frozen=True)
class Specialisation:
    """A context-tree leaf: one concrete capability."""

    key: str  # e.g. "flight_status"
    verbs: tuple[str, ...]  # phrasings of the action ("check the status of a flight")
    noun: str  # object of the action, used for names ("flight status")
    slots: tuple[Slot, ...]
    description: str


@dataclass(frozen=True)
class ContextNode:
    name: str
    children: tuple[ContextNode, ...] = ()
    leaves: tuple[Specialisation, ...] = ()


@dataclass(frozen=True)
class ConstraintPath:
    """A constraint-tree leaf path: naming convention, parameter profile and output format."""

    naming: Literal["snake_verb", "camel_verb", "dotted", "pascal"]
    parameter_profile: Literal["required_only", "with_optional", "with_enum"]
    output_format: Literal["json_object", "json_list", "status_message"]


@dataclass(frozen=True)
class SynthesisedTool:
    spec: ToolSpec
    specialisation: Specialisation
    constraints: ConstraintPath
    domain: str
    category: str
    slots: tuple[Slot, ...]  # in the order the spec declares them
    param_names: dict[str, str] = field(default_factory=dict)  # slot name -> rendered parameter name


def _s(name: str, phrase: str, kind: SlotType, description: str, **kw: object) -> Slot:
    return Slot(name, phrase, kind, description, **kw)  # type: ignore[arg-type]


CONTEXT_TREE = ContextNode(
    "root",
    children=(
        ContextNode(
            "travel",
            children=(
                ContextNode(
                    "flights",
                    leaves=(
                        Specialisation(
                            "flight_status",
                            ("check the status", "look up the status"),
                            "flight status",
                            (
                                _s("flight_number", "flight", "code", "Flight number, e.g. LH402"),
                                _s("date", "on", "date", "Date of departure, YYYY-MM-DD"),
                            ),
                            "Get the live status of a flight on a given date.",
                        ),
                        Specialisation(
                            "flight_search",
                            ("find flights", "search for flights"),
                            "flights",
                            (
                                _s("origin", "from", "city", "Departure city"),
                                _s("destination", "to", "city", "Arrival city"),
                                _s("date", "on", "date", "Travel date, YYYY-MM-DD"),
                                _s(
                                    "passengers",
                                    "for passengers",
                                    "int",
                                    "Number of passengers",
                                    required=False,
                                    default=1,
                                ),
                            ),
                            "Search available flights between two cities.",
                        ),
                    ),
                ),
                ContextNode(
                    "hotels",
                    leaves=(
                        Specialisation(
                            "hotel_booking",
                            ("book a hotel", "reserve a hotel room"),
                            "hotel booking",
                            (
                                _s("city", "in", "city", "City of the hotel"),
                                _s("check_in", "from", "date", "Check-in date, YYYY-MM-DD"),
                                _s("nights", "for nights", "int", "Number of nights"),
                                _s(
                                    "room_type",
                                    "room",
                                    "enum",
                                    "Room type",
                                    choices=("single", "double", "suite"),
                                    required=False,
                                    default="double",
                                ),
                            ),
                            "Book a hotel room.",
                        ),
                    ),
                ),
            ),
        ),
        ContextNode(
            "finance",
            children=(
                ContextNode(
                    "currency",
                    leaves=(
                        Specialisation(
                            "currency_conversion",
                            ("convert", "exchange"),
                            "currency conversion",
                            (
                                _s("amount", "amount", "number", "Amount to convert"),
                                _s("from_currency", "from", "code", "ISO code of the source currency"),
                                _s("to_currency", "into", "code", "ISO code of the target currency"),
                            ),
                            "Convert an amount between two currencies.",
                        ),
                        Specialisation(
                            "exchange_fluctuation",
                            ("show the exchange rate movement", "report the rate fluctuation"),
                            "exchange fluctuation",
                            (
                                _s("base", "base", "code", "Currency whose movement is measured"),
                                _s("symbol", "against", "code", "Currency it is measured against"),
                                _s("start_date", "from", "date", "Start date, YYYY-MM-DD"),
                                _s("end_date", "until", "date", "End date, YYYY-MM-DD"),
                            ),
                            "Fluctuation of an exchange rate between two dates.",
                        ),
                    ),
                ),
                ContextNode(
                    "stocks",
                    leaves=(
                        Specialisation(
                            "stock_quote",
                            ("get the stock price", "quote the share price"),
                            "stock quote",
                            (
                                _s("ticker", "ticker", "code", "Stock ticker symbol"),
                                _s(
                                    "exchange",
                                    "on exchange",
                                    "enum",
                                    "Exchange",
                                    choices=("NYSE", "NASDAQ", "LSE"),
                                    required=False,
                                    default="NYSE",
                                ),
                            ),
                            "Latest price of a stock.",
                        ),
                    ),
                ),
            ),
        ),
        ContextNode(
            "productivity",
            children=(
                ContextNode(
                    "calendar",
                    leaves=(
                        Specialisation(
                            "meeting_create",
                            ("schedule a meeting", "set up a meeting"),
                            "meeting",
                            (
                                _s("title", "called", "word", "Meeting title"),
                                _s("date", "on", "date", "Meeting date, YYYY-MM-DD"),
                                _s(
                                    "duration_minutes",
                                    "for minutes",
                                    "int",
                                    "Length in minutes",
                                    required=False,
                                    default=30,
                                ),
                            ),
                            "Create a calendar meeting.",
                        ),
                    ),
                ),
                ContextNode(
                    "support",
                    leaves=(
                        Specialisation(
                            "ticket_create",
                            ("open a support ticket", "file a support ticket"),
                            "support ticket",
                            (
                                _s("topic", "about", "word", "What the problem is"),
                                _s(
                                    "priority",
                                    "priority",
                                    "enum",
                                    "Ticket priority",
                                    choices=("low", "medium", "high"),
                                ),
                            ),
                            "Open a support ticket.",
                        ),
                        Specialisation(
                            "ticket_list",
                            ("list the support tickets", "show the support tickets"),
                            "user tickets",
                            (
                                _s("username", "user", "name", "Account name"),
                                _s(
                                    "status",
                                    "with status",
                                    "enum",
                                    "Ticket status",
                                    choices=("open", "closed", "all"),
                                    required=False,
                                    default="all",
                                ),
                            ),
                            "List a user's support tickets.",
                        ),
                    ),
                ),
            ),
        ),
        ContextNode(
            "weather",
            children=(
                ContextNode(
                    "forecast",
                    leaves=(
                        Specialisation(
                            "weather_forecast",
                            ("get the weather forecast", "tell me the weather forecast"),
                            "weather forecast",
                            (
                                _s("city", "for", "city", "City name"),
                                _s("days", "for days", "int", "Days ahead"),
                                _s(
                                    "unit",
                                    "in",
                                    "enum",
                                    "Temperature unit",
                                    choices=("celsius", "fahrenheit"),
                                    required=False,
                                    default="celsius",
                                ),
                            ),
                            "Weather forecast for a city.",
                        ),
                    ),
                ),
            ),
        ),
    ),
)

CONSTRAINT_TREE: tuple[ConstraintPath, ...] = tuple(
    ConstraintPath(naming, profile, output)  # type: ignore[arg-type]
    for naming in ("snake_verb", "camel_verb", "dotted", "pascal")
    for profile in ("required_only", "with_optional", "with_enum")
    for output in ("json_object", "json_list", "status_message")
)

_VERB_FOR = {
    "flight_status": "get",
    "flight_search": "search",
    "hotel_booking": "book",
    "currency_conversion": "convert",
    "exchange_fluctuation": "get",
    "stock_quote": "get",
    "meeting_create": "create",
    "ticket_create": "create",
    "ticket_list": "list",
    "weather_forecast": "get",
}
_JSON_TYPE = {
    "city": "string",
    "date": "string",
    "int": "integer",
    "number": "number",
    "code": "string",
    "name": "string",
    "word": "string",
    "enum": "string",
    "list": "array",
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{1,63}$")


def context_leaf_paths(
    node: ContextNode = CONTEXT_TREE, prefix: tuple[str, ...] = ()
) -> list[tuple[str, str, Specialisation]]:
    """Every (domain, category, specialisation) path of the context tree."""
    paths = []
    for child in node.children:
        path = (*prefix, child.name)
        paths.extend((path[0], path[-1], leaf) for leaf in child.leaves)
        paths.extend(context_leaf_paths(child, path))
    return paths


def _camel(words: list[str]) -> str:
    return words[0] + "".join(w.capitalize() for w in words[1:])


def render_name(naming: str, verb: str, noun: str, domain: str) -> str:
    words = [verb, *noun.split()]
    if naming == "snake_verb":
        return "_".join(words)
    if naming == "camel_verb":
        return _camel(words)
    if naming == "dotted":
        return f"{domain}.{'_'.join(words)}"
    return "".join(w.capitalize() for w in words)


def render_param(naming: str, slot_name: str) -> str:
    words = slot_name.split("_")
    return _camel(words) if naming in ("camel_verb", "pascal") else slot_name


def synthesise_tool(
    domain: str, category: str, leaf: Specialisation, constraints: ConstraintPath
) -> SynthesisedTool:
    """Merge one context leaf path with one constraint leaf path into a validated tool."""
    slots = [s for s in leaf.slots if s.required or constraints.parameter_profile != "required_only"]
    if constraints.parameter_profile == "with_enum":
        slots = [s for s in leaf.slots if s.required or s.kind == "enum"]
    name = render_name(constraints.naming, _VERB_FOR[leaf.key], leaf.noun, domain)
    param_names = {slot.name: render_param(constraints.naming, slot.name) for slot in slots}
    properties = {}
    for slot in slots:
        schema: dict[str, object] = {"type": _JSON_TYPE[slot.kind], "description": slot.description}
        if slot.choices:
            schema["enum"] = list(slot.choices)
        if not slot.required and slot.default is not None:
            schema["default"] = slot.default
        properties[param_names[slot.name]] = ParamSchema.model_validate(schema)
    output = {
        "json_object": "a JSON object",
        "json_list": "a JSON list of results",
        "status_message": "a status message",
    }
    spec = ToolSpec(
        name=name,
        description=f"{leaf.description} Returns {output[constraints.output_format]}.",
        parameters=ParamSchema(
            type="object",
            properties=properties,
            required=[param_names[s.name] for s in slots if s.required],
        ),
    )
    problems = validate_synthesised(spec)
    if problems:
        raise ValueError(f"synthesised tool {name} is invalid: {problems}")
    return SynthesisedTool(spec, leaf, constraints, domain, category, tuple(slots), param_names)


def validate_synthesised(spec: ToolSpec) -> list[str]:
    """Rule-based validation of a synthesised spec (the paper's conformity checks)."""
    problems = []
    if not _NAME.match(spec.name):
        problems.append(f"bad tool name {spec.name!r}")
    if not spec.description.strip():
        problems.append("empty description")
    properties = spec.parameters.properties
    if not properties:
        problems.append("no parameters")
    for param, schema in properties.items():
        if not _NAME.match(param) or "." in param:
            problems.append(f"bad parameter name {param!r}")
        if not schema.description:
            problems.append(f"parameter {param} has no description")
    for required in spec.parameters.required:
        if required not in properties:
            problems.append(f"required parameter {required} is not declared")
    return problems


def synthesise_toolset(rng: random.Random) -> list[SynthesisedTool]:
    """One tool per context leaf, each with an independently sampled constraint path."""
    tools = []
    names: set[str] = set()
    for domain, category, leaf in context_leaf_paths():
        for _ in range(10):  # resample on a name clash
            tool = synthesise_tool(domain, category, leaf, rng.choice(CONSTRAINT_TREE))
            if tool.spec.name not in names:
                break
        names.add(tool.spec.name)
        tools.append(tool)
    return tools
