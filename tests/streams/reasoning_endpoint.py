"""An OpenAI-compatible HTTP server (aiohttp, loopback) that answers the way reasoning models do.

Each served model is a :class:`Persona`: how it lays out its reasoning (vLLM's reasoning parser puts
the trace in ``reasoning_content``; without a parser the trace sits inline as ``<think>…</think>``;
some chat templates open the trace themselves, so the content starts inside it), how it writes its
decision (Markdown, a ``## Judgment`` header, a ``Final Answer:`` line after an analysis), how long
it thinks, how often it errs, and how often it favours a position. It reads the prompts the roles
send (judge, generator, verifier) and decides from a ground truth the test gives it:
``truth[conversation block] = the right next step``.

A token is a word here. An answer longer than the request's ``max_tokens`` is cut there with
``finish_reason: "length"``, as a server does: a long trace is cut off at the first budget and fits
the retry's larger one; a runaway trace (``runaway_rate``) never ends. A greedy request is sometimes
answered with a hedge no careful reader can take (``hedge_rate``); a sampled retry (temperature > 0,
with a seed) is answered properly, so a retry that does not change the sampling would get the hedge
again. A few cases are hedged however they are asked (``stubborn_rate``). Every request is recorded
(model, budget, temperature, seed, template switches, the prompt) with how it was answered, so a
test can account for every answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from inference.latency import EndpointLatency, SimulatedServer
from tests.http_server import serve_app
from toolcall.match import tool_match
from toolcall.parsing import parse_output, render_action
from toolcall.specs import ToolSpec, load_tools
from toolcall.types import Action

Layout = Literal["parser", "inline", "opened"]  # where the reasoning trace goes
Style = Literal["markdown", "header", "final_answer"]  # how the decision is written


@dataclass(frozen=True)
class Persona:
    layout: Layout = "parser"
    style: Style = "markdown"
    error_rate: float = 0.0  # answers a wrong decision
    position_bias: float = 0.0  # blames whichever response is shown first, whatever they say
    hedge_rate: float = 0.0  # greedy answers that decide nothing
    stubborn_rate: float = 0.0  # answers that decide nothing however they are sampled
    trace_words: tuple[int, int] = (200, 900)
    long_rate: float = 0.0  # traces of ``long_words`` (over the first budget, within the retry's)
    long_words: tuple[int, int] = (2500, 3500)
    runaway_rate: float = 0.0  # traces that never end
    defect_rate: float = 0.0  # generator: writes a wrong OUTPUT


@dataclass
class Served:
    """One request and how it was answered."""

    model: str
    role: str
    max_tokens: int
    temperature: float
    seed: int | None
    chat_template_kwargs: dict[str, Any]
    prompt: str
    finish_reason: str = "stop"
    runaway: bool = False
    hedged: bool = False


def _draw(*parts: object) -> float:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _block(text: str, tag: str) -> str | None:
    match = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.DOTALL)
    return match.group(1).replace("&lt;", "<") if match else None


def _parsed(text: str | None) -> Action | None:
    if text is None or text == "(no response)":
        return None
    result = parse_output(text)
    return result.action if result.error is None else None


_THOUGHT = (
    "Let me check the user's request against each response, argument by argument. The tool schema "
    "says which parameters are required; the conversation gives the values. Hmm, wait, let me re-read "
    "the request once more to be sure nothing was missed."
)
THINKING = tuple(_THOUGHT.split(" "))


@dataclass
class ReasoningEndpoint:
    personas: dict[str, Persona]
    truth: dict[str, Action]  # conversation block (as the prompts quote it) -> the right next step
    port: int = 0
    served: list[Served] = field(default_factory=list)
    generated: dict[str, Action] = field(default_factory=dict)  # new user turn -> its truth
    # With a latency model, each served model answers as late as its vLLM server would (one queue per
    # model): first token, then every word of the trace and the answer decoded (inference/latency.py).
    latency: EndpointLatency | None = None
    time_scale: float = 1.0
    servers: dict[str, SimulatedServer] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def truth_of(self, conversation: str) -> Action | None:
        """The right next step of a conversation block, as quoted or with its white space normalised."""
        found = self.truth.get(conversation)
        if found is None:
            wanted = " ".join(conversation.split())
            found = next((a for block, a in self.truth.items() if " ".join(block.split()) == wanted), None)
        return found

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": m, "object": "model"} for m in self.personas]}
        )

    async def chat(self, request: web.Request) -> web.Response:
        payload = await request.json()
        model = payload.get("model", "")
        persona = self.personas.get(model)
        if persona is None:
            return web.json_response({"error": {"message": f"model {model!r} is not served"}}, status=404)
        if "max_tokens" not in payload:
            return web.json_response({"error": {"message": "this server needs max_tokens"}}, status=400)
        messages = payload["messages"]
        system, user = messages[0]["content"], messages[-1]["content"]
        role = (
            "judge"
            if "expert evaluator" in system
            else "generator"
            if "data engineer" in system
            else "verifier"
            if "strict reviewer" in system
            else "other"
        )
        served = Served(
            model=model,
            role=role,
            max_tokens=int(payload["max_tokens"]),
            temperature=float(payload.get("temperature", 1.0)),
            seed=payload.get("seed"),
            chat_template_kwargs=dict(payload.get("chat_template_kwargs") or {}),
            prompt=system + "\n" + user,
        )
        self.served.append(served)
        key = (model, role, user)
        sampled = served.temperature > 0
        tools_block = _block(system, "tools") or ""
        tools = load_tools([json.loads(line) for line in tools_block.splitlines() if line.strip()])
        answer = {"judge": self._judge, "generator": self._generator, "verifier": self._verifier}.get(
            role, lambda *a: "I can only judge, generate and verify."
        )(persona, user, key, tools)
        hedges = _draw(*key, "hedge") < persona.hedge_rate and not sampled
        if role in ("judge", "verifier") and (
            hedges or _draw(*key[:2], user, "stubborn") < persona.stubborn_rate
        ):
            served.hedged = True
            answer = "It is hard to say: Response 1 may be incorrect, but so might Response 2, or neither."
            if role == "verifier":
                answer = "The candidate might be correct, or it might not; I cannot tell."
        trace = self._trace(persona, key, served)
        content, reasoning, finish = self._lay_out(persona, trace, answer, served.max_tokens)
        served.finish_reason = finish
        if self.latency is not None:
            server = self.servers.setdefault(model, SimulatedServer(self.latency, self.time_scale))
            await server.request(len(((reasoning or "") + " " + (content or "")).split()))
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if persona.layout == "parser":
            message["reasoning_content"] = reasoning
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.served)}",
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            }
        )

    # --- thinking and its layout ------------------------------------------------------------------

    def _trace(self, persona: Persona, key: tuple[str, str, str], served: Served) -> list[str]:
        draw = _draw(*key, "length")
        if draw < persona.runaway_rate:
            served.runaway = True
            words = 10 * served.max_tokens + 10  # never ends within any budget
        elif draw < persona.runaway_rate + persona.long_rate:
            low, high = persona.long_words
            words = low + int(_draw(*key, "words") * (high - low))
        else:
            low, high = persona.trace_words
            words = low + int(_draw(*key, "words") * (high - low))
        return [THINKING[i % len(THINKING)] for i in range(words)]

    def _lay_out(
        self, persona: Persona, trace: list[str], answer: str, budget: int
    ) -> tuple[str | None, str | None, str]:
        """(content, reasoning_content, finish_reason) of a trace and an answer within ``budget`` words."""
        answer_words = answer.split(" ")
        if len(trace) + len(answer_words) <= budget:
            thought, said, finish = " ".join(trace), answer, "stop"
        else:
            kept = trace[:budget]
            thought = " ".join(kept)
            said = " ".join(answer_words[: max(0, budget - len(trace))]) if len(kept) == len(trace) else None
            finish = "length"
        if persona.layout == "parser":
            return (said or None), thought, finish
        closing = "\n</think>\n\n" + said if said is not None else ""
        opening = "<think>\n" if persona.layout == "inline" else ""
        return opening + thought + closing, None, finish

    # --- the roles -----------------------------------------------------------------------------------

    def _judge(self, persona: Persona, user: str, key: tuple[str, str, str], tools: list[ToolSpec]) -> str:
        conversation = _block(user, "conversation") or ""
        truth = self.truth_of(conversation)
        if truth is None:
            return "I cannot find the conversation to judge."
        shown = [_block(user, tag) or "" for tag in ("response_1", "response_2")]
        ok = {}
        for text in shown:
            action = _parsed(text)
            ok[text] = action is not None and tool_match(action, truth, tools).matched
        case = (key[0], conversation)  # the same case in either order
        if _draw(*case, "error") < persona.error_rate:
            # It misjudges one of the responses (the same one in either order), or both.
            misjudged = sorted(set(shown)) if _draw(*case, "both") < 0.3 else [min(shown)]
            for text in misjudged:
                ok[text] = not ok[text]
        decisions = {
            (True, False): "RESPONSE 2 INCORRECT",
            (False, True): "RESPONSE 1 INCORRECT",
            (True, True): "BOTH_CORRECT",
            (False, False): "BOTH_INCORRECT",
        }
        decision = decisions[(ok[shown[0]], ok[shown[1]])]
        if _draw(*case, "bias") < persona.position_bias:
            decision = "RESPONSE 1 INCORRECT"  # whatever is shown first
        analysis = "The arguments of the incorrect response differ from what the user asked for."
        approach = "Call the tool with the values the user gave."
        if persona.style == "markdown":
            return f"**Verdict:** {decision}\n\n**Error Analysis:** {analysis}\n\n**Correct Approach:** -"
        if persona.style == "header":
            return f"## Judgment\n\n{decision}\n\nError Analysis: {analysis}\nCorrect Approach: {approach}"
        return (
            "I compared both responses with the request, parameter by parameter.\n\n"
            f"Final Answer: {decision}\nError Analysis: {analysis}\nCorrect Approach: {approach}"
        )

    def _generator(
        self, persona: Persona, user: str, key: tuple[str, str, str], tools: list[ToolSpec]
    ) -> str:
        conversation = _block(user, "original_sample") or ""
        truth = self.truth_of(conversation)
        correct = _parsed(_block(user, "correct_response"))
        last_user = [line for line in conversation.splitlines() if line.startswith("USER: ")]
        if truth is None or correct is None or not last_user:
            return "I cannot build a sample from this."
        variant = int(_draw(*key, "variant") * 10_000)
        request = f"{last_user[-1].removeprefix('USER: ')} (case {variant})"
        self.generated[request] = truth
        output = correct
        if _draw(*key, "defect") < persona.defect_rate:
            output = Action(text="I will look into that for you.")  # a plain answer where a call is due
        return f"INPUT: USER: {request}\nOUTPUT: {render_action(output)}"

    def _verifier(self, persona: Persona, user: str, key: tuple[str, str, str], tools: list[ToolSpec]) -> str:
        conversation = _block(user, "conversation") or ""
        request = conversation.removeprefix("USER: ")
        truth = self.generated.get(request)
        candidate = _parsed(_block(user, "candidate"))
        if truth is None or candidate is None:
            return "Decision: INCORRECT\nReason: I cannot match the candidate to the request."
        ok = tool_match(candidate, truth, tools).matched
        if _draw(*key, "error") < persona.error_rate:
            ok = not ok
        if ok:
            return "**CORRECT**\n\n**Reason:** The calls match the user's request."
        return "Decision: INCORRECT\nReason: The next step does not do what the user asked."


@asynccontextmanager
async def serve_reasoning(endpoint: ReasoningEndpoint) -> AsyncIterator[ReasoningEndpoint]:
    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/chat/completions", endpoint.chat)
    app.router.add_get("/v1/models", endpoint.models)
    async with serve_app(app) as port:
        endpoint.port = port
        yield endpoint


@contextmanager
def served_in_thread(endpoint: ReasoningEndpoint) -> Iterator[ReasoningEndpoint]:
    """The endpoint on an event loop of its own in a thread, for tests whose own thread blocks
    (on a subprocess, or a command that runs its own event loop)."""
    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), asyncio.Event()

    async def serve() -> None:
        async with serve_reasoning(endpoint):
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the test endpoint did not start")
    try:
        yield endpoint
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
