"""The LLM roles' one base (streams/roles.py): sampling per attempt, reasoning, truncated answers.

A scripted backend stands in for the endpoint and records every request's sampling, so each test
checks what the role really asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from inference.base import Chat, Generation, InferenceError, SamplingConfig
from streams.expand import LLMGenerator, read_expansion
from streams.judge import JudgeStage, LLMJudge, settled_verdict
from streams.roles import Answer, JudgeCase, RoleSampling, VerificationCase, ask_until_parsed
from streams.verify import LLMVerifier, VerifyStage
from tests.streams.test_stage_logic import PREDICTION, candidate, probe_event
from toolcall.parsing import render_action
from toolcall.prompts import VERIFICATION_REGEX
from toolcall.types import Sample
from toolcall.verdicts import VERDICT_REGEX


class ScriptedBackend:
    """Answers each request with ``reply(chat, sampling)``; records the sampling of every request."""

    name = "openai"

    def __init__(self, reply: Callable[[Chat, SamplingConfig], Generation], model_id: str = "scripted"):
        self.reply = reply
        self.model_id = model_id
        self.requests: list[SamplingConfig] = []

    async def generate(self, prompts: Sequence[Chat], sampling: SamplingConfig) -> list[list[Generation]]:
        out = []
        for chat in prompts:
            self.requests.append(sampling)
            out.append([self.reply(chat, sampling)])
        return out


def test_first_asks_follow_the_role_and_retries_sample_hotter_with_a_new_seed() -> None:
    judge = LLMJudge(ScriptedBackend(lambda c, s: Generation("x")), current_time="t")  # type: ignore[arg-type]
    case = judge_case()
    first, second, third = (judge.sampling(case, attempt) for attempt in (1, 2, 3))
    assert first.greedy and first.seed is None and first.max_tokens == 4096  # judge default: greedy, 4096
    assert not second.greedy and second.temperature == 0.7 and second.seed is not None
    assert third.seed not in (None, second.seed)
    assert judge.sampling(case, 2) == second  # reproducible
    generator = LLMGenerator(ScriptedBackend(lambda c, s: Generation("x")), current_time="t")  # type: ignore[arg-type]
    assert generator.max_tokens == 8192 and generator.settings.temperature == 0.7
    hot = RoleSampling(max_tokens=100, temperature=1.2, retry_temperature=0.7)
    assert hot.temperature_of(1) == 1.2 and hot.temperature_of(2) == 1.2  # never cooler on a retry


def test_constrain_holds_the_judge_and_the_verifier_to_their_grammar_and_nothing_else() -> None:
    backend = ScriptedBackend(lambda c, s: Generation("x"))
    case = judge_case()
    assert LLMJudge(backend, current_time="t").sampling(case, 1).regex is None  # type: ignore[arg-type]
    judge = LLMJudge(backend, current_time="t", constrain=True)  # type: ignore[arg-type]
    assert judge.sampling(case, 1).regex == VERDICT_REGEX
    assert judge.sampling(case, 2).regex == VERDICT_REGEX  # the retries too
    verifier = LLMVerifier(backend, current_time="t", constrain=True)  # type: ignore[arg-type]
    assert verifier.sampling(verification_case(), 1).regex == VERIFICATION_REGEX
    with pytest.raises(ValueError, match="generator role has no answer grammar"):
        LLMGenerator(backend, current_time="t", constrain=True)  # type: ignore[arg-type]


def judge_case() -> JudgeCase:
    """The case the judge stage builds for a probe (in its drawn order)."""
    return JudgeStage("r", _Silent())._cases(probe_event(PREDICTION))[0]


class _Silent:
    model_name = "silent"

    async def ask(self, cases: Sequence[object], attempt: int = 1) -> list[str]:
        return ["" for _ in cases]


async def test_a_truncated_answer_is_asked_once_more_with_a_larger_budget() -> None:
    def reply(chat: Chat, sampling: SamplingConfig) -> Generation:
        if sampling.max_tokens < 300:  # needs 300 tokens to finish thinking
            return Generation("<think>still thinking", finish_reason="length")
        return Generation("<think>done</think>\nBOTH_CORRECT\nError Analysis: fine.\nCorrect Approach: -.")

    backend = ScriptedBackend(reply)
    judge = LLMJudge(backend, current_time="t", sampling=RoleSampling(max_tokens=200))  # type: ignore[arg-type]
    [answer] = await judge.ask([judge_case()])
    assert not answer.truncated and answer.budget_retried and answer.max_tokens == 400
    assert [r.max_tokens for r in backend.requests] == [200, 400]
    # Cut off on the retry too: the answer comes back truncated, and is not asked again.
    tight = LLMJudge(
        ScriptedBackend(reply),
        current_time="t",
        sampling=RoleSampling(max_tokens=50, truncated_retry_max_tokens=100),
    )  # type: ignore[arg-type]
    asked = await ask_until_parsed(tight, [judge_case()], lambda case, a: None, max_attempts=3)
    assert asked[0].truncated and asked[0].attempts == 1
    assert "cut off at 100 tokens on its retry" in asked[0].answer.truncation_reason()


async def test_a_larger_budget_the_context_refuses_leaves_the_answer_truncated() -> None:
    class Refusing(ScriptedBackend):
        async def generate(self, prompts: Sequence[Chat], sampling: SamplingConfig) -> list[list[Generation]]:
            if sampling.max_tokens > 100:
                raise InferenceError(
                    "HTTP 400: max_tokens too large for the context", retryable=False, input_fault=True
                )
            return await super().generate(prompts, sampling)

    judge = LLMJudge(
        Refusing(lambda c, s: Generation("<think>…", finish_reason="length")),
        current_time="t",
        sampling=RoleSampling(max_tokens=100),
    )  # type: ignore[arg-type]
    [answer] = await judge.ask([judge_case()])
    assert answer.truncated and answer.budget_retried and answer.max_tokens == 100


async def test_reasoning_both_ways_reaches_the_readers() -> None:
    # vLLM's reasoning parser: the trace in its own field, the answer alone in the content.
    split = ScriptedBackend(lambda c, s: Generation("CORRECT\nReason: fine.", reasoning="INCORRECT? no."))
    [answer] = await LLMVerifier(split, current_time="t").ask([verification_case()])  # type: ignore[arg-type]
    assert answer.reasoning == "INCORRECT? no." and answer.text.startswith("CORRECT")
    # A template that opens the trace itself: the content starts inside it and ends it with </think>.
    opened = ScriptedBackend(lambda c, s: Generation("Hmm, INCORRECT maybe.\n</think>\nCORRECT\nReason: ok."))
    verifier = LLMVerifier(opened, current_time="t", sampling=RoleSampling(template_opens_trace=True))  # type: ignore[arg-type]
    outputs = await VerifyStage("r", verifier).process([candidate()])
    assert outputs[0].payload.llm_verdict == "CORRECT"
    generated = Answer(
        text="plan: INPUT: x\n</think>\nINPUT: USER: hi\nOUTPUT: " + render_action(PREDICTION),
        trace_opened=True,
    )
    parsed = read_expansion(generated)
    assert parsed.error is None and parsed.messages[0].content == "hi"
    cut = read_expansion(
        Answer(text="thinking about INPUT:", trace_opened=True, truncated=True, max_tokens=8)
    )
    assert cut.error is not None and cut.error.startswith("truncated")


def verification_case() -> VerificationCase:
    c = candidate().payload
    assert c.label is not None
    return VerificationCase(
        c.candidate_id, c.seed_sample_id, Sample(tools=c.tools, messages=c.messages, label=c.label)
    )


async def test_a_truncated_verification_is_a_failed_result_and_a_dead_letter() -> None:
    cut = ScriptedBackend(lambda c, s: Generation("", reasoning="so long " * 30, finish_reason="length"))
    verifier = LLMVerifier(cut, current_time="t", sampling=RoleSampling(max_tokens=10))  # type: ignore[arg-type]
    result, letter = await VerifyStage("r", verifier).process([candidate()])
    assert not result.payload.passed and result.payload.llm_verdict == "TRUNCATED"
    assert letter.payload.error_type == "TruncatedAnswer" and letter.payload.stage == "verify"
    assert len(cut.requests) == 2  # the first ask and its one larger-budget retry


@pytest.mark.parametrize("time", [None, "2024-03-01 08:00:00"])
def test_prompts_use_the_conversation_time_else_the_default(time: str | None) -> None:
    import dataclasses

    judge = LLMJudge(ScriptedBackend(lambda c, s: Generation("")), current_time="2026-01-01 09:00:00")  # type: ignore[arg-type]
    case = dataclasses.replace(judge_case(), conversation_time=time)
    user = judge.render(case)[1]["content"]
    assert f"The time of the conversation is {time or '2026-01-01 09:00:00'}." in user


async def test_a_sampled_case_keeps_its_seed_whatever_batch_it_comes_in() -> None:
    # The worker sizes batches by timing and retries a failed batch one input at a time: a case's
    # answer (its seed) must not depend on which other cases shared its batch.
    backend = ScriptedBackend(lambda c, s: Generation("x"))
    judge = LLMJudge(backend, current_time="t", sampling=RoleSampling(temperature=0.6))  # type: ignore[arg-type]
    first, second, third = (JudgeStage("r", _Silent())._cases(probe_event(PREDICTION))[0] for _ in range(3))
    await judge.ask([first])
    await judge.ask([second, first])
    await judge.ask([third, second, first])
    seeds = [request.seed for request in backend.requests]
    assert seeds[0] == seeds[2] == seeds[5] and seeds[1] == seeds[4]  # `first` alone, second, third
    assert len({seeds[0], seeds[1], seeds[3]}) == 3  # three cases, three seeds


async def test_one_input_the_endpoint_refuses_fails_alone_and_the_others_are_not_asked_again() -> None:
    verdict = "RESPONSE 2 INCORRECT\nError Analysis: wrong city.\nCorrect Approach: use Paris."
    poisoned = "a prompt the server finds too long"

    class Refusing(ScriptedBackend):
        """As an HTTP endpoint: every prompt is its own request; the batch fails if one of them did."""

        async def generate(self, prompts: Sequence[Chat], sampling: SamplingConfig) -> list[list[Generation]]:
            answers = await super().generate(prompts, sampling)
            if any(poisoned in message["content"] for chat in prompts for message in chat):
                raise InferenceError(
                    "HTTP 400: maximum context length exceeded", retryable=False, input_fault=True
                )
            return answers

    backend = Refusing(lambda c, s: Generation(verdict))
    probes = [probe_event(PREDICTION) for _ in range(4)]
    bad = probes[2]
    bad_messages = [bad.payload.messages[0].model_copy(update={"content": poisoned})]
    probes[2] = bad.model_copy(update={"payload": bad.payload.model_copy(update={"messages": bad_messages})})
    outputs = await JudgeStage("r", LLMJudge(backend, current_time="t")).process(probes)  # type: ignore[arg-type]
    letters = [e for e in outputs if e.event_type == "DeadLetter"]
    verdicts = [e for e in outputs if e.event_type == "Verdict"]
    assert [letter.payload.source_ref for letter in letters] == [probes[2].event_id]
    assert "maximum context length" in letters[0].payload.reason
    assert sorted(v.parent_ids[0] for v in verdicts) == sorted(
        p.event_id for p in probes if p is not probes[2]
    )
    # 4 asks in the batch, then only the culprit again on its own: the 3 answers were kept.
    assert len(backend.requests) == 5


def test_a_generator_answer_left_in_the_reasoning_field_says_so() -> None:
    # An older vLLM reasoning parser with thinking off puts the whole answer in reasoning_content.
    parsed = read_expansion(Answer(text="", reasoning="INPUT: USER: weather in Rome?\nOUTPUT: [...]"))
    assert parsed.error is not None and "only reasoning" in parsed.error
    assert read_expansion(Answer(text="")).error == "empty answer"


def test_a_generator_answer_cut_off_by_its_budget_is_refused_even_when_it_reads() -> None:
    # Cut after the first of two calls: "Rome and Oslo" labelled with the Rome call only.
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>\n'
    text = "INPUT: USER: Weather in Rome and Oslo?\nOUTPUT: " + call
    assert read_expansion(Answer(text=text)).error is None
    cut = read_expansion(Answer(text=text, truncated=True, max_tokens=64, budget_retried=True))
    assert cut.error is not None and cut.error.startswith("truncated") and "missing calls" in cut.error


def test_generator_sections_as_markdown_headings_are_read() -> None:
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
    parsed = read_expansion(Answer(text=f"### INPUT\nUSER: Weather in Rome?\n\n### OUTPUT\n{call}"))
    assert parsed.error is None and parsed.messages[0].content == "Weather in Rome?"
    assert parsed.action is not None and parsed.action.calls[0].arguments == {"city": "Rome"}


JUDGE_CUT_MID_REASONING = (
    "Let me compare the two responses.\n\nResponse 1 is incorrect because the user may mean Paris, "
    "Texas. Hmm, wait, there is no hint of Texas, so let me reconsider whether"
)
VERIFIER_CUT_MID_REASONING = (
    "The call is correct. Now the date: the user said tomorrow, which is 2024-05-02, but the call"
)


async def test_an_answer_cut_off_in_its_reasoning_is_dead_lettered_even_when_a_sentence_reads() -> None:
    """A cut-off answer whose decision came from the claims of its sentences relabelled the sample
    (and passed a candidate), though the reasoning the budget cut was turning."""
    cut = ScriptedBackend(lambda c, s: Generation(JUDGE_CUT_MID_REASONING, finish_reason="length"))
    judge = LLMJudge(cut, current_time="t", sampling=RoleSampling(max_tokens=64))  # type: ignore[arg-type]
    [asked] = await ask_until_parsed(judge, [judge_case()], settled_verdict, max_attempts=3)
    assert asked.parsed is None and asked.truncated and len(cut.requests) == 2
    # The same text, finished: its statements are its verdict.
    whole = ScriptedBackend(lambda c, s: Generation(JUDGE_CUT_MID_REASONING + " it matters. It does not."))
    judge = LLMJudge(whole, current_time="t")  # type: ignore[arg-type]
    [asked] = await ask_until_parsed(judge, [judge_case()], settled_verdict, max_attempts=3)
    assert asked.parsed is not None and asked.parsed.from_statements
    # Cut off after an outright decision (the format's first line): the decision stands.
    first_line = "RESPONSE 1 INCORRECT\nError Analysis: Response 1 passes Paris where the user"
    decided = ScriptedBackend(lambda c, s: Generation(first_line, finish_reason="length"))
    judge = LLMJudge(decided, current_time="t", sampling=RoleSampling(max_tokens=64))  # type: ignore[arg-type]
    [asked] = await ask_until_parsed(judge, [judge_case()], settled_verdict, max_attempts=3)
    assert asked.parsed is not None and not asked.truncated

    verifier_cut = ScriptedBackend(
        lambda c, s: Generation(VERIFIER_CUT_MID_REASONING, finish_reason="length")
    )
    verifier = LLMVerifier(verifier_cut, current_time="t", sampling=RoleSampling(max_tokens=64))  # type: ignore[arg-type]
    result, letter = await VerifyStage("r", verifier).process([candidate()])
    assert not result.payload.passed and result.payload.llm_verdict == "TRUNCATED"
    assert letter.payload.error_type == "TruncatedAnswer"


async def test_a_larger_budget_the_endpoint_refuses_as_a_setting_leaves_the_answer_truncated() -> None:
    """The retry's budget over the model's whole context is refused as the settings' fault (no input
    fits), which paused the stage over every cut-off answer; the first answer stays cut off."""

    class SettingRefused(ScriptedBackend):
        async def generate(self, prompts: Sequence[Chat], sampling: SamplingConfig) -> list[list[Generation]]:
            if sampling.max_tokens > 100:
                raise InferenceError("HTTP 400: max_tokens alone fills the context", retryable=False)
            return await super().generate(prompts, sampling)

    judge = LLMJudge(
        SettingRefused(lambda c, s: Generation("<think>…", finish_reason="length")),
        current_time="t",
        sampling=RoleSampling(max_tokens=100),
    )  # type: ignore[arg-type]
    [answer] = await judge.ask([judge_case()])
    assert answer.truncated and answer.budget_retried and answer.max_tokens == 100


async def test_an_answer_cut_off_while_it_reconsidered_its_decision_is_dead_lettered() -> None:
    """A decision line, then a second thought the budget cut ("Wait, let me re-check …"):
    the decision relabelled the sample (or passed a candidate), though the judge was taking it back."""
    judged = (
        "RESPONSE 1 INCORRECT\nError Analysis: Response 1 asks for Paris.\nCorrect Approach: Ask for Lyon."
        "\n\nWait, let me re-check the user's second message: it"
    )
    cut = ScriptedBackend(lambda c, s: Generation(judged, finish_reason="length"))
    judge = LLMJudge(cut, current_time="t", sampling=RoleSampling(max_tokens=64))  # type: ignore[arg-type]
    [asked] = await ask_until_parsed(judge, [judge_case()], settled_verdict, max_attempts=3)
    assert asked.parsed is None and asked.truncated
    # Finished the same way, with no other claim, the decision stands.
    whole = ScriptedBackend(
        lambda c, s: Generation(judged + " names Lyon, so Response 1 is still incorrect.")
    )
    judge = LLMJudge(whole, current_time="t")  # type: ignore[arg-type]
    [asked] = await ask_until_parsed(judge, [judge_case()], settled_verdict, max_attempts=3)
    assert asked.parsed is not None and asked.parsed.decision == "RESPONSE 1 INCORRECT"

    verified = "CORRECT\nReason: the call passes Paris.\n\nHold on, let me re-check the date the user"
    verifier_cut = ScriptedBackend(lambda c, s: Generation(verified, finish_reason="length"))
    verifier = LLMVerifier(verifier_cut, current_time="t", sampling=RoleSampling(max_tokens=64))  # type: ignore[arg-type]
    result, letter = await VerifyStage("r", verifier).process([candidate()])
    assert not result.payload.passed and result.payload.llm_verdict == "TRUNCATED"
    assert letter.payload.error_type == "TruncatedAnswer"
