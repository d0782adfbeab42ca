"""The OpenAI backend against a server that answers like a reasoning model: the trace comes back apart,
the template switches and the budget go out as set, and a cut-off answer says so."""

from __future__ import annotations

from inference.base import SamplingConfig
from inference.openai_backend import OpenAIBackend
from tests.streams.reasoning_endpoint import Persona, ReasoningEndpoint, serve_reasoning

CHAT = [
    {"role": "system", "content": "You are an expert evaluator. <tools>\n</tools>"},
    {"role": "user", "content": "Which is right?"},
]


async def test_reasoning_content_template_switches_and_budget() -> None:
    personas = {"parsed": Persona(layout="parser"), "inline": Persona(layout="inline")}
    async with serve_reasoning(ReasoningEndpoint(personas=personas, truth={})) as endpoint:
        backend = OpenAIBackend(
            endpoint.base_url,
            "parsed",
            chat_template_kwargs={"enable_thinking": True},
            extra_body={"top_k": 20},
        )
        try:
            [[answer]] = await backend.generate([CHAT], SamplingConfig(greedy=True, max_tokens=2000))
            assert (
                answer.reasoning
                and answer.reasoning.startswith("Let me check")
                and answer.finish_reason == "stop"
            )
            assert "<think>" not in answer.text and answer.text
            [[cut]] = await backend.generate([CHAT], SamplingConfig(greedy=True, max_tokens=50))
            assert (
                cut.finish_reason == "length" and cut.text == "" and len((cut.reasoning or "").split()) == 50
            )
            backend.model = "inline"
            [[inline]] = await backend.generate([CHAT], SamplingConfig(greedy=True, max_tokens=2000))
            assert inline.reasoning is None and inline.text.startswith("<think>\nLet me check")
        finally:
            await backend.close()
        sent = endpoint.served
        assert [s.max_tokens for s in sent] == [2000, 50, 2000]
        assert all(s.chat_template_kwargs == {"enable_thinking": True} for s in sent)
