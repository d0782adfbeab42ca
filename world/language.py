"""How the synthetic world talks: slot values, request templates, tool execution, and the oracle.

Every user request is rendered from templates whose slots have recognisable shapes, so the world can
read any request back (:class:`Oracle`) and say what the correct action is: which tool, which
arguments, or that no call is right (out-of-scope request, missing required parameter). That is
what lets the simulated judge, generator and verifier work from a sample alone, in any process.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from toolcall.types import Action, Message, ToolCall
from world.trees import Slot, SynthesisedTool

CITIES = (
    "Paris", "Berlin", "Tokyo", "Lisbon", "Oslo", "Cairo", "Lima", "Seoul", "Dublin", "Madrid",
    "Rome", "Vienna", "Prague", "Nairobi", "Toronto", "Sydney", "Denver", "Boston", "Mumbai", "Hanoi",
)  # fmt: skip
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "MXN", "INR", "BRL")
TICKERS = ("AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "GOOG", "META", "IBM")
AIRLINES = ("LH", "BA", "AF", "UA", "KL", "IB", "AZ", "QF")
FLIGHTS = tuple(f"{airline}{number}" for airline in AIRLINES for number in (118, 402, 731))
DATES = tuple(f"2026-{month:02d}-{day:02d}" for month in range(1, 13) for day in range(1, 29))
AMOUNTS = (50, 120, 250, 400, 750, 1200, 3000)
USERS = ("jane_doe", "bob_king", "ana_silva", "li_wei", "omar_haddad", "eva_novak", "sam_lee", "mia_rossi")
WORDS = ("budget", "roadmap", "printer", "vpn", "login", "billing", "payroll", "launch", "hiring", "backup")
OUT_OF_SCOPE = (
    "write a short poem about {word}",
    "order a pizza to {city}",
    "translate the word {word} into French",
    "tell me a joke about {word}",
    "recommend a movie set in {city}",
)

SLOT_PHRASES: dict[str, tuple[str, ...]] = {
    # slot name -> phrasings; "{v}" is the value
    "flight_number": ("for flight {v}", "of flight {v}"),
    "date": ("on {v}",),
    "origin": ("from {v}",),
    "destination": ("to {v}",),
    "passengers": ("for {v} passengers",),
    "city": ("in {v}", "for {v}"),
    "check_in": ("starting {v}",),
    "nights": ("for {v} nights",),
    "room_type": ("with a {v} room",),
    "amount": ("{v} units", "an amount of {v}"),
    "from_currency": ("from {v}",),
    "to_currency": ("into {v}",),
    "base": ("of {v}",),
    "symbol": ("against {v}",),
    "start_date": ("from {v}",),
    "end_date": ("until {v}",),
    "ticker": ("for ticker {v}",),
    "exchange": ("on the {v} exchange",),
    "title": ("titled {v}",),
    "duration_minutes": ("lasting {v} minutes",),
    "topic": ("about {v}",),
    "priority": ("with {v} priority",),
    "username": ("for user {v}",),
    "status": ("with status {v}",),
    "days": ("for the next {v} days",),
    "unit": ("in {v}",),
}
KIND_PATTERN = {
    "city": "|".join(CITIES),
    "date": r"\d{4}-\d{2}-\d{2}",
    "int": r"\d{1,3}",
    "number": r"\d{1,5}",
    "name": r"[a-z]+_[a-z]+",
    "word": "|".join(WORDS),
}
OPENERS = ("Please {action}", "Could you {action}", "I need you to {action}", "Can you {action}")
CLARIFY = "Could you tell me the {phrase} so I can {verb}?"
ANSWER = "The {phrase} is {v}."


def slot_words(slot: Slot) -> str:
    """How the world names a parameter in plain words (clarification questions and answers)."""
    return slot.name.replace("_", " ")


def slot_pattern(slot: Slot) -> str:
    if slot.kind == "enum":
        return "|".join(slot.choices)
    if slot.kind == "code":
        return {"flight_number": r"[A-Z]{2}\d{3}", "ticker": "|".join(TICKERS)}.get(
            slot.name, "|".join(CURRENCIES)
        )
    return KIND_PATTERN[slot.kind]


def sample_value(slot: Slot, rng: random.Random) -> Any:
    if slot.kind == "city":
        return rng.choice(CITIES)
    if slot.kind == "date":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if slot.kind == "int":
        return rng.choice((15, 30, 45, 60, 90)) if slot.name == "duration_minutes" else rng.randint(2, 9)
    if slot.kind == "number":
        return rng.choice(AMOUNTS)
    if slot.kind == "code":
        if slot.name == "flight_number":
            return rng.choice(FLIGHTS)
        return rng.choice(TICKERS) if slot.name == "ticker" else rng.choice(CURRENCIES)
    if slot.kind == "name":
        return rng.choice(USERS)
    if slot.kind == "word":
        return rng.choice(WORDS)
    if slot.kind == "enum":
        return rng.choice(slot.choices)
    raise ValueError(f"no values for slot kind {slot.kind}")


def _typed(slot: Slot, text: str) -> Any:
    return int(text) if slot.kind in ("int", "number") else text


def slot_text(slot: Slot, value: Any, rng: random.Random) -> str:
    return rng.choice(SLOT_PHRASES[slot.name]).format(v=value)


def _clause_regexes(slot: Slot) -> list[re.Pattern[str]]:
    value = f"(?P<v>{slot_pattern(slot)})"
    return [
        re.compile(r"(?:^|\s)" + re.escape(phrase).replace(re.escape("{v}"), value) + r"(?=$|[\s.,?!])")
        for phrase in SLOT_PHRASES[slot.name]
    ]


@dataclass(frozen=True)
class Request:
    """One requested call: the tool and its argument values by slot name (None = not mentioned)."""

    tool: SynthesisedTool
    values: dict[str, Any]

    def call(self) -> ToolCall:
        arguments = {
            self.tool.param_names[name]: value for name, value in self.values.items() if value is not None
        }
        return ToolCall(name=self.tool.spec.name, arguments=arguments)


def render_clause(request: Request, rng: random.Random, opener: str | None = None) -> str:
    verb = rng.choice(request.tool.specialisation.verbs)
    parts = [
        slot_text(s, request.values[s.name], rng)
        for s in request.tool.slots
        if request.values.get(s.name) is not None
    ]
    action = " ".join([verb, *parts])
    return (opener or rng.choice(OPENERS)).format(action=action) + rng.choice((".", "?"))


def execute(request: Request) -> dict[str, Any]:
    """The tool's executable backend: a deterministic result computed from its arguments."""
    call = request.call()
    digest = int(
        hashlib.blake2b(json.dumps(call.model_dump(), sort_keys=True).encode(), digest_size=4).hexdigest(), 16
    )
    key = request.tool.specialisation.key
    v = request.values
    if key == "weather_forecast":
        return {
            "city": v["city"],
            "forecast": ["sunny", "rain", "cloudy", "windy"][digest % 4],
            "high": 5 + digest % 25,
        }
    if key == "currency_conversion":
        return {"result": round(v["amount"] * (0.5 + (digest % 150) / 100), 2), "currency": v["to_currency"]}
    if key == "stock_quote":
        return {"ticker": v["ticker"], "price": 50 + digest % 400}
    if key in ("flight_status",):
        return {"flight": v["flight_number"], "status": ["on time", "delayed", "boarding"][digest % 3]}
    if key == "flight_search":
        return {"flights": [f"{v['origin'][:3].upper()}-{v['destination'][:3].upper()}-{digest % 900 + 100}"]}
    if key == "hotel_booking":
        return {"status": "confirmed", "booking_id": f"H{digest % 100000:05d}"}
    if key == "exchange_fluctuation":
        return {"change_pct": round(((digest % 2000) - 1000) / 100, 2)}
    if key == "meeting_create":
        return {"status": "created", "meeting_id": f"M{digest % 10000:04d}"}
    if key == "ticket_create":
        return {"status": "opened", "ticket_id": f"T{digest % 10000:04d}"}
    return {"tickets": [f"T{(digest + i) % 10000:04d}" for i in range(1 + digest % 3)]}


def summarise(result: dict[str, Any]) -> str:
    return "Done. " + ", ".join(f"{k}: {v}" for k, v in result.items()) + "."


def split_clauses(text: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<=[.?!])\s+", text.strip()) if c.strip()]


class Oracle:
    """Reads requests back into the correct action, using the templates that produced them."""

    def __init__(self, tools: Sequence[SynthesisedTool]):
        self.by_name = {tool.spec.name: tool for tool in tools}
        self._slot_regexes = {
            (tool.spec.name, slot.name): _clause_regexes(slot)
            for tool in tools
            for slot in tool.specialisation.slots
        }

    def _tool_for(self, clause: str, available: Sequence[str]) -> SynthesisedTool | None:
        for name in available:
            tool = self.by_name.get(name)
            if tool and any(
                re.search(r"\b" + re.escape(verb) + r"\b", clause) for verb in tool.specialisation.verbs
            ):
                return tool
        return None

    def _values(self, tool: SynthesisedTool, clause: str) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for slot in tool.slots:
            for regex in self._slot_regexes[(tool.spec.name, slot.name)]:
                match = regex.search(clause)
                if match:
                    values[slot.name] = _typed(slot, match.group("v"))
                    break
        return values

    def requests(self, text: str, available: Sequence[str]) -> list[Request] | None:
        """The calls a user turn asks for; None when a clause asks for nothing the tools can do."""
        found = []
        for clause in split_clauses(text):
            tool = self._tool_for(clause, available)
            if tool is None:
                return None
            found.append(Request(tool, self._values(tool, clause)))
        return found or None

    def truth(self, tool_names: Sequence[str], messages: Sequence[Message]) -> Action:
        """The correct next action for a context (the world's ground truth)."""
        users = [i for i, m in enumerate(messages) if m.role == "user"]
        if not users:
            return Action(text="There is no request to act on.")
        last = messages[users[-1]].content
        requests = self.requests(last, tool_names)
        if requests is None and len(users) >= 2:
            # A reply to a clarification question: merge it into the request it completes.
            previous = self.requests(messages[users[-2]].content, tool_names)
            answer = re.match(r"^The (?P<phrase>.+?) is (?P<v>\S+?)\.$", last.strip())
            if previous and answer and len(previous) == 1:
                request = previous[0]
                for slot in request.tool.slots:
                    if (
                        slot_words(slot) == answer.group("phrase")
                        and request.values.get(slot.name) is None
                        and re.fullmatch(slot_pattern(slot), answer.group("v"))
                    ):
                        request.values[slot.name] = _typed(slot, answer.group("v"))
                requests = previous
        if requests is None:
            return Action(text="None of the available tools can help with this request.")
        for request in requests:
            missing = [s for s in request.tool.slots if s.required and request.values.get(s.name) is None]
            if missing:
                verb = request.tool.specialisation.verbs[0]
                return Action(text=CLARIFY.format(phrase=slot_words(missing[0]), verb=verb))
        return Action(calls=[request.call() for request in requests])
