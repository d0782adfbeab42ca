"""A local OpenAI-compatible HTTP server that plays every seed-construction role like a competent LLM.

It tells the roles apart by their system prompts and answers from what the prompt holds, with the
synthetic world behind it: a tool-synthesis prompt gets the world's dual-tree tool for that leaf path
(with a parameter added where the constraint's profile asks for one the leaf lacks); the planner gets
a plan over the tools in its prompt; the user speaks the planned turn with the world's templates; the
assistant (the Figure 7 policy prompt) answers with the world oracle's correct action, or a summary
after tool results; the tool runs the world's executable backend; the verifier compares the
candidate with the oracle's answer. ``faults`` make one role misbehave in a named way, so tests see
each kind of bad answer rejected for its reason. Every request is recorded by role.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.http_server import serve_app
from toolcall.expansion import parse_expansion
from toolcall.match import tool_match
from toolcall.parsing import parse_output, render_action
from toolcall.specs import ParamSchema, ToolSpec, load_tool
from toolcall.types import Action, Message, ToolCall
from world.language import (
    ANSWER,
    OUT_OF_SCOPE,
    WORDS,
    Oracle,
    Request,
    execute,
    render_clause,
    sample_value,
    slot_words,
    summarise,
)
from world.trees import (
    ConstraintPath,
    SynthesisedTool,
    context_leaf_paths,
    render_param,
    synthesise_tool,
)

ROLE_MARKERS = {
    "synthesis": "You are an API designer",
    "planner": "You are the planner",
    "user": "You play the USER",
    "assistant": "You are an expert in composing functions",
    "tool": "You simulate the backend",
    "verifier": "You are a strict reviewer",
}
FAULTS = (
    "synth_naming_once",  # the first answer for every leaf pair breaks the naming convention
    "synth_garbage_weather",  # the weather leaf never gets a tool, only prose
    "plan_garbage",
    "plan_wrong_shape",  # a plan with one call more than its kind allows
    "user_leaks",  # the user gives the value they were told to withhold
    "assistant_unparseable",
    "assistant_bad_type",
    "assistant_unknown_tool",
    "assistant_placeholder",
    "assistant_swap",  # a schema-valid call with a wrong value: only the LLM tier can catch it
    "tool_garbage",
    "verifier_garbage",
)


def _block(text: str, tag: str) -> str:
    match = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.DOTALL)
    if match is None:
        raise ValueError(f"no <{tag}> block in the prompt")
    return match.group(1).replace("&lt;", "<")


def _rng(text: str) -> random.Random:
    return random.Random(hashlib.blake2b(text.encode(), digest_size=8).hexdigest())


@dataclass
class FakeSeedLLM:
    faults: set[str] = field(default_factory=set)
    tools: dict[str, SynthesisedTool] = field(default_factory=dict)
    prompts: dict[str, list[list[dict[str, str]]]] = field(default_factory=dict)
    served: Counter[str] = field(default_factory=Counter)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- the HTTP side -------------------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.Response:
        payload = await request.json()
        messages = payload["messages"]
        role = next(
            (r for r, marker in ROLE_MARKERS.items() if messages[0]["content"].startswith(marker)), None
        )
        if role is None:
            return web.json_response({"error": {"message": "unknown prompt"}}, status=400)
        self.served[role] += 1
        self.prompts.setdefault(role, []).append(messages)
        text = getattr(self, role)(messages)
        return web.json_response(
            {
                "id": "fake",
                "object": "chat.completion",
                "model": payload.get("model"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
            }
        )

    # -- the roles -----------------------------------------------------------------------------------

    def synthesis(self, messages: list[dict[str, str]]) -> str:
        prompt = messages[1]["content"]
        domain = re.search(r"Domain: (\S+)", prompt).group(1)  # type: ignore[union-attr]
        category = re.search(r"Category: (\S+)", prompt).group(1)  # type: ignore[union-attr]
        key = re.search(r"Specialisation: (.+?) - ", prompt).group(1).replace(" ", "_")  # type: ignore[union-attr]
        naming, profile, output = (
            re.search(rf"{label} \((\w+)\)", prompt).group(1)  # type: ignore[union-attr]
            for label in ("Naming convention", "Parameter profile", "Output format")
        )
        if "synth_garbage_weather" in self.faults and key == "weather_forecast":
            return "I'm sorry, I cannot design a weather tool."
        leaf = next(leaf for d, c, leaf in context_leaf_paths() if leaf.key == key)
        tool = synthesise_tool(domain, category, leaf, ConstraintPath(naming, profile, output))  # type: ignore[arg-type]
        spec = _fit_profile(tool.spec, naming, profile)
        if "synth_naming_once" in self.faults and "<rejection>" not in prompt:
            spec = spec.model_copy(update={"name": leaf.noun.replace(" ", "-")})
        self.tools[spec.name] = dataclasses.replace(tool, spec=spec)
        body = json.dumps({"type": "function", "function": spec.to_openai()}, indent=1)
        # Real models wrap their JSON in prose and fences now and then.
        return f"Here is the tool:\n```json\n{body}\n```" if len(self.tools) % 2 else body

    def planner(self, messages: list[dict[str, str]]) -> str:
        prompt = messages[1]["content"]
        if "plan_garbage" in self.faults:
            return "Sure! First the user says hello, then they ask for something."
        names = [json.loads(line)["function"]["name"] for line in _block(prompt, "tools").splitlines()]
        tools = [self.tools[name] for name in names]
        kind = re.search(r"Dialogue kind: (\w+)", prompt).group(1)  # type: ignore[union-attr]
        turns = int(re.search(r"Number of user turns: (\d+)", prompt).group(1))  # type: ignore[union-attr]
        rng = _rng(prompt)

        def requested(tool: SynthesisedTool) -> Request:
            values = {
                s.name: sample_value(s, rng) if s.required or rng.random() < 0.5 else None for s in tool.slots
            }
            return Request(tool, values)

        def turn(requests: list[Request], withhold: str | None = None) -> dict[str, Any]:
            text = " and ".join(r.tool.specialisation.verbs[0] for r in requests)
            calls = [r.call().model_dump(mode="json") for r in requests]
            return {"request": text, "calls": calls, "withhold": withhold}

        if kind == "single":
            plan = [turn([requested(rng.choice(tools))])]
        elif kind == "parallel":
            plan = [turn([requested(rng.choice(tools)), requested(rng.choice(tools))])]
        elif kind == "multi_turn":
            plan = [turn([requested(rng.choice(tools))]) for _ in range(turns)]
        elif kind == "no_tool":
            text = rng.choice(OUT_OF_SCOPE).format(word=rng.choice(WORDS), city="Paris")
            plan = [{"request": text, "calls": [], "withhold": None}]
        else:
            request = requested(rng.choice(tools))
            slot = rng.choice([s for s in request.tool.slots if s.required])
            plan = [turn([request], request.tool.param_names[slot.name])]
            if kind == "clarified":
                plan.append(turn([request]))
        if "plan_wrong_shape" in self.faults and plan[0]["calls"]:
            plan[0]["calls"].append(plan[0]["calls"][0])
        return json.dumps({"scenario": f"a {kind} conversation", "turns": plan})

    def user(self, messages: list[dict[str, str]]) -> str:
        prompt = messages[1]["content"]
        plan = json.loads(_block(prompt, "plan"))
        number = int(re.search(r"for turn (\d+) of", prompt).group(1))  # type: ignore[union-attr]
        planned = plan["turns"][number - 1]
        rng = _rng(prompt)
        if "The assistant asked for information you left out" in prompt:
            param = plan["turns"][number - 2]["withhold"]
            call = planned["calls"][0]
            tool = self.tools[call["name"]]
            slot = next(s for s in tool.slots if tool.param_names[s.name] == param)
            return ANSWER.format(phrase=slot_words(slot), v=call["arguments"][param])
        if not planned["calls"]:
            return f"Could you {planned['request']}?"
        clauses = []
        for index, call in enumerate(planned["calls"]):
            tool = self.tools[call["name"]]
            withheld = None if "user_leaks" in self.faults else planned["withhold"]
            values = {
                s.name: (
                    None
                    if tool.param_names.get(s.name) == withheld
                    else call["arguments"].get(tool.param_names[s.name])
                )
                for s in tool.slots
            }
            opener = None if index == 0 else "Also {action}"
            clauses.append(render_clause(Request(tool, values), rng, opener))
        return " ".join(clauses)

    def assistant(self, messages: list[dict[str, str]]) -> str:
        names = [
            json.loads(line)["function"]["name"]
            for line in _block(messages[0]["content"], "tools").splitlines()
        ]
        history = _history(messages[1:])
        if history[-1].role == "tool":
            return summarise({"results": "; ".join(m.content for m in history if m.role == "tool")})
        truth = self._truth(names, history)
        if not truth.calls:
            return render_action(truth)
        call = truth.calls[0]
        tool = self.tools[call.name]
        if "assistant_unparseable" in self.faults:
            return '<tool_call>\n{"name": "' + call.name + '", "arguments": {\n</tool_call>'
        if "assistant_unknown_tool" in self.faults:
            call = call.model_copy(update={"name": "teleport_user"})
        if "assistant_bad_type" in self.faults:
            param, value = next(iter(call.arguments.items()))
            bad = str(value) if not isinstance(value, str) else 7
            call = call.model_copy(update={"arguments": {**call.arguments, param: bad}})
        if "assistant_placeholder" in self.faults:
            param = next((p for p, v in call.arguments.items() if isinstance(v, str)), None)
            if param is not None:
                call = call.model_copy(update={"arguments": {**call.arguments, param: "<" + param + ">"}})
        if "assistant_swap" in self.faults:
            call = _swapped(call, tool)
        return render_action(Action(calls=[call, *truth.calls[1:]]))

    def _truth(self, names: list[str], history: list[Message]) -> Action:
        # The oracle takes the first tool whose verb a clause contains: try the longest verbs first, so
        # "show the exchange rate movement" is not read as the converter's "exchange".
        names = sorted(names, key=lambda n: -max(map(len, self.tools[n].specialisation.verbs)))
        return Oracle(list(self.tools.values())).truth(names, history)

    def tool(self, messages: list[dict[str, str]]) -> str:
        if "tool_garbage" in self.faults:
            return "The function ran successfully."
        parsed = parse_output(_block(messages[1]["content"], "call"))
        assert parsed.action is not None, parsed.error
        call = parsed.action.calls[0]
        tool = self.tools[call.name]
        values = {slot: call.arguments.get(param) for slot, param in tool.param_names.items()}
        return json.dumps(execute(Request(tool, values)))

    def verifier(self, messages: list[dict[str, str]]) -> str:
        if "verifier_garbage" in self.faults:
            return "Hmm, hard to say."
        system, user = messages[0]["content"], messages[1]["content"]
        names = [json.loads(line)["function"]["name"] for line in _block(system, "tools").splitlines()]
        sample = parse_expansion(
            f"INPUT: {_block(user, 'conversation')}\nOUTPUT: {_block(user, 'candidate')}"
        )
        assert sample.action is not None, sample.error
        truth = self._truth(names, sample.messages)
        tools = [self.tools[name].spec for name in names]
        if tool_match(sample.action, truth, tools).matched:
            return "CORRECT\nReason: the step does what the user asked with the right arguments."
        return "INCORRECT\nReason: the arguments do not match the user's request."


def _fit_profile(spec: ToolSpec, naming: str, profile: str) -> ToolSpec:
    """Add the optional parameter a constraint profile needs where the world's leaf has none."""
    properties = dict(spec.parameters.properties)
    required = set(spec.parameters.required)
    if profile == "with_enum" and not any(p.enum for p in properties.values()):
        properties[render_param(naming, "detail_level")] = ParamSchema.model_validate(
            {
                "type": "string",
                "description": "How much detail",
                "enum": ["brief", "full"],
                "default": "brief",
            }
        )
    if profile == "with_optional" and all(p in required for p in properties):
        properties[render_param(naming, "language")] = ParamSchema.model_validate(
            {"type": "string", "description": "Answer language", "default": "en"}
        )
    return load_tool(
        {
            "name": spec.name,
            "description": spec.description,
            "parameters": {
                "type": "object",
                "properties": {k: v.to_json_schema() for k, v in properties.items()},
                "required": list(spec.parameters.required),
            },
        }
    )


def _history(chat: list[dict[str, str]]) -> list[Message]:
    """The policy prompt's turns back as messages (tool results arrive as <tool_response> user turns)."""
    history: list[Message] = []
    for turn in chat:
        content = turn["content"]
        if turn["role"] == "assistant":
            action = parse_output(content).action
            assert action is not None
            history.append(
                Message(role="assistant", content=action.text or "", tool_calls=list(action.calls))
            )
        elif content.startswith("<tool_response>"):
            for result in re.findall(r"<tool_response>\n(.*?)\n</tool_response>", content, re.DOTALL):
                history.append(Message(role="tool", content=result))
        else:
            history.append(Message(role="user", content=content))
    return history


def _swapped(call: ToolCall, tool: SynthesisedTool) -> ToolCall:
    """The same call with one value changed to another valid value of its slot."""
    rng = random.Random(json.dumps(call.arguments, sort_keys=True))
    for slot in tool.slots:
        param = tool.param_names[slot.name]
        if param in call.arguments and (slot.kind != "enum" or len(slot.choices) > 1):
            value = call.arguments[param]
            while value == call.arguments[param]:
                value = sample_value(slot, rng)
            return call.model_copy(update={"arguments": {**call.arguments, param: value}})
    raise AssertionError(f"no value of {call.name} can be swapped")


@asynccontextmanager
async def serve_fake_seed_llm(fake: FakeSeedLLM | None = None) -> AsyncIterator[FakeSeedLLM]:
    fake = fake or FakeSeedLLM()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.chat)
    async with serve_app(app) as port:
        fake.port = port
        yield fake
