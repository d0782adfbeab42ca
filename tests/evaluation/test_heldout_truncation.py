"""The held-out ToolMatch figure counts a cut-off output as the probe and the reward do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from evaluation.heldout import heldout_toolmatch
from inference.base import Generation, SamplingConfig
from tests.trainer.toy import WEATHER
from toolcall.parsing import render_action
from toolcall.types import Action, Message, Sample, ToolCall


class Answers:
    """A backend that answers each prompt with the next of ``outputs`` (text, finish reason)."""

    name, model_id = "answers", "answers"

    def __init__(self, outputs: Sequence[tuple[str, str]]) -> None:
        self.outputs = list(outputs)

    async def generate(self, prompts: Sequence[object], sampling: SamplingConfig) -> list[list[Generation]]:
        answered, self.outputs = self.outputs[: len(prompts)], self.outputs[len(prompts) :]
        return [
            [Generation(text=text, token_ids=[], token_logprobs=[], finish_reason=end)]
            for text, end in answered
        ]


async def test_a_cut_off_text_answer_is_not_a_correct_clarification() -> None:
    context = [Message(role="user", content="What is the weather?")]
    asks = Sample(tools=[WEATHER], messages=context, label=Action(text="Which city?"))
    paris = Action(calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})])
    calls = Sample(tools=[WEATHER], messages=context, label=paris)
    backend = Answers(
        [
            ("helpful " * 40, "length"),  # cut off: no answer
            ("Which city do you mean?", "stop"),
            (render_action(paris), "length"),  # the whole call was written before the cut
        ]
    )
    score = await heldout_toolmatch(backend, [asks, asks, calls], batch_size=8)  # type: ignore[arg-type]
    assert (score.correct, score.total) == (2, 3)


async def test_a_call_drafted_in_a_trace_the_prompt_opened_is_not_correct() -> None:
    """The backend rendered a prompt ending in "<think>\n" (trace_opened): the output starts inside the
    trace, and one the budget cut there never answered, whatever call it drafted."""
    context = [Message(role="user", content="What is the weather in Paris?")]
    paris = Action(calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})])
    calls = Sample(tools=[WEATHER], messages=context, label=paris)

    class OpenedTrace(Answers):
        async def generate(
            self, prompts: Sequence[object], sampling: SamplingConfig
        ) -> list[list[Generation]]:
            answered = await super().generate(prompts, sampling)
            return [
                [replace(generation, trace_opened=True) for generation in options] for options in answered
            ]

    backend = OpenedTrace(
        [
            (f"Plan: {render_action(paris)} then I", "length"),  # cut inside the trace
            (f"Plan: Paris.</think>\n\n{render_action(paris)}", "stop"),
        ]
    )
    score = await heldout_toolmatch(backend, [calls, calls], batch_size=8)  # type: ignore[arg-type]
    assert (score.correct, score.total, score.unparseable) == (1, 2, 1)
