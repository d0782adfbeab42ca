"""Multi-agent dialogue simulation (Section 3.2) with four roles: planner, user, assistant, tool.

The planner designs a conversation over a subset of tools; the user speaks each planned turn; the
assistant answers with tool calls or text; the tool executes calls and returns results. The
dialogue proceeds turn by turn, and every learnable assistant step becomes a sample (Section 4.1).
The roles sit behind :class:`DialogueRoles`; :class:`WorldRoles` plays them offline from the
synthetic world's templates and executable backends.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from toolcall.formats import dialogue_samples
from toolcall.specs import ToolSpec
from toolcall.types import Message, Sample
from world.language import (
    ANSWER,
    Oracle,
    Request,
    execute,
    render_clause,
    sample_value,
    slot_words,
    summarise,
)
from world.trees import SynthesisedTool

DialogueKind = Literal["single", "parallel", "multi_turn", "no_tool", "missing_param", "clarified"]
DEFAULT_MIX: dict[str, float] = {
    "single": 0.35,
    "parallel": 0.2,
    "multi_turn": 0.2,
    "no_tool": 0.1,
    "missing_param": 0.1,
    "clarified": 0.05,
}


@dataclass
class PlannedTurn:
    """One user turn the planner wants: the requests it carries, or free text (out of scope)."""

    requests: list[Request] = field(default_factory=list)
    text: str | None = None  # out-of-scope request or an answer to a clarification
    omit: str | None = None  # a required slot the user forgets to give


@dataclass
class DialoguePlan:
    kind: str
    tools: list[SynthesisedTool]
    turns: list[PlannedTurn]


class DialogueRoles(Protocol):
    async def plan(self, kind: str, rng: random.Random) -> DialoguePlan: ...
    async def user(
        self, plan: DialoguePlan, turn: int, history: Sequence[Message], rng: random.Random
    ) -> str: ...
    async def assistant(self, tools: Sequence[ToolSpec], history: Sequence[Message]) -> Message: ...
    async def tool(self, tools: Sequence[ToolSpec], message: Message) -> list[Message]: ...


class WorldRoles:
    """All four roles played by the synthetic world (templates + oracle + executable backends)."""

    def __init__(
        self, toolset: Sequence[SynthesisedTool], oracle: Oracle, distractors: tuple[int, int] = (1, 3)
    ):
        self.toolset = list(toolset)
        self.oracle = oracle
        self.distractors = distractors

    def _requests(self, tool: SynthesisedTool, rng: random.Random) -> Request:
        values: dict[str, Any] = {}
        for slot in tool.slots:
            # Optional parameters are mentioned about half the time.
            values[slot.name] = sample_value(slot, rng) if slot.required or rng.random() < 0.5 else None
        return Request(tool, values)

    async def plan(self, kind: str, rng: random.Random) -> DialoguePlan:
        primary = rng.sample(self.toolset, 2)
        others = [t for t in self.toolset if t not in primary]
        extra = rng.sample(others, rng.randint(*self.distractors))
        tools = primary[:1] + extra if kind not in ("parallel", "multi_turn") else primary + extra
        rng.shuffle(tools)
        first, second = primary
        if kind == "single":
            turns = [PlannedTurn([self._requests(first, rng)])]
        elif kind == "parallel":
            same_tool = rng.random() < 0.5
            turns = [
                PlannedTurn([self._requests(first, rng), self._requests(first if same_tool else second, rng)])
            ]
        elif kind == "multi_turn":
            turns = [PlannedTurn([self._requests(first, rng)]), PlannedTurn([self._requests(second, rng)])]
        elif kind == "no_tool":
            template = rng.choice(
                ("write a short poem about {w}", "order a pizza to {c}", "tell me a joke about {w}")
            )
            text = template.format(
                w=rng.choice(("rain", "coffee", "mondays")), c=rng.choice(("Paris", "Oslo"))
            )
            turns = [PlannedTurn(text=rng.choice(("Could you ", "Please ")) + text + "?")]
        elif kind in ("missing_param", "clarified"):
            request = self._requests(first, rng)
            omit = rng.choice([s.name for s in first.slots if s.required])
            turns = [PlannedTurn([request], omit=omit)]
            if kind == "clarified":
                slot = next(s for s in first.slots if s.name == omit)
                turns.append(PlannedTurn(text=ANSWER.format(phrase=slot_words(slot), v=request.values[omit])))
        else:
            raise ValueError(f"unknown dialogue kind {kind!r}")
        return DialoguePlan(kind, tools, turns)

    async def user(
        self, plan: DialoguePlan, turn: int, history: Sequence[Message], rng: random.Random
    ) -> str:
        planned = plan.turns[turn]
        if planned.text is not None:
            return planned.text
        clauses = []
        for index, request in enumerate(planned.requests):
            shown = Request(
                request.tool, {k: (None if k == planned.omit else v) for k, v in request.values.items()}
            )
            opener = (
                None
                if index == 0
                else rng.choice(("Also {action}", "And then {action}", "Additionally, {action}"))
            )
            clauses.append(render_clause(shown, rng, opener))
        return " ".join(clauses)

    async def assistant(self, tools: Sequence[ToolSpec], history: Sequence[Message]) -> Message:
        action = self.oracle.truth([t.name for t in tools], history)
        return Message(role="assistant", content=action.text or "", tool_calls=list(action.calls))

    async def tool(self, tools: Sequence[ToolSpec], message: Message) -> list[Message]:
        responses = []
        for call in message.tool_calls:
            tool = self.oracle.by_name[call.name]
            by_param = {param: slot for slot, param in tool.param_names.items()}
            request = Request(tool, {by_param[k]: v for k, v in call.arguments.items() if k in by_param})
            responses.append(Message(role="tool", name=call.name, content=json.dumps(execute(request))))
        return responses


async def simulate_dialogue(
    roles: DialogueRoles, kind: str, rng: random.Random
) -> tuple[list[ToolSpec], list[Message]]:
    """Run the four roles turn by turn; returns the tools and the whole dialogue."""
    plan = await roles.plan(kind, rng)
    tools = [t.spec for t in plan.tools]
    history: list[Message] = []
    for turn in range(len(plan.turns)):
        history.append(Message(role="user", content=await roles.user(plan, turn, history, rng)))
        reply = await roles.assistant(tools, history)
        history.append(reply)
        if reply.tool_calls:
            history.extend(await roles.tool(tools, reply))
            summary = "; ".join(m.content for m in history if m.role == "tool")
            history.append(Message(role="assistant", content=summarise({"results": summary})))
    return tools, history


async def dialogue_to_samples(roles: DialogueRoles, kind: str, rng: random.Random) -> list[Sample]:
    tools, history = await simulate_dialogue(roles, kind, rng)
    return dialogue_samples(tools, history)


def choose_kind(mix: dict[str, float], rng: random.Random) -> str:
    kinds = sorted(mix)
    return rng.choices(kinds, weights=[mix[k] for k in kinds])[0]
