"""expand: Error-Driven Data Expansion (Section 4.4): k new samples per error seed.

Error seeds are PRED_WRONG verdicts (the label is the correct call, the prediction the wrong one)
and LABEL_WRONG verdicts (the other way round: the model's call is the corrected label). For each,
k generation requests with the Figures 13-14 prompts, each with a different scenario-diversification
constraint drawn from the configured list by a generator seeded with the verdict's id. The answer's
``INPUT:``/``OUTPUT:`` is parsed into a candidate sample with lineage to its seed; a candidate that
does not parse is still emitted (with ``parse_error``) so verification can account for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from common.seeding import seeded_rng
from inference.base import Chat
from schemas.events import Event, ExpansionCandidate, Scenario, Verdict, derived_event_id, make_event
from streams.registry import StageClients, StageSettings, register
from streams.roles import (
    Answer,
    ExpansionRequest,
    Generator,
    LLMRole,
    RoleSampling,
    answer_of,
    truncation_letter,
)
from streams.stage import Stage
from toolcall.expansion import ParsedExpansion, parse_expansion
from toolcall.prompts import DEFAULT_SCENARIOS, render_expansion_prompt
from toolcall.specs import ToolSpec
from toolcall.verdicts import empty_answer_reason

ERROR_SEED_VERDICTS = ("PRED_WRONG", "LABEL_WRONG")
_TRACE_CLOSE = "</think>"


class LLMGenerator(LLMRole[ExpansionRequest]):
    """The generator as an LLM behind an inference backend (sampled, for diversity)."""

    role = "generator"
    default_sampling = RoleSampling(max_tokens=8192, temperature=0.7)

    def render(self, case: ExpansionRequest) -> Chat:
        return render_expansion_prompt(
            tools=case.tools,
            messages=case.messages,
            correct=case.correct,
            wrong=case.wrong,
            error_analysis=case.error_analysis,
            focus=case.scenario.focus,
            parameters=case.scenario.parameters,
            current_time=self.time_of(case.conversation_time),
            wrong_unparsed=case.wrong_unparsed,
        )


def read_expansion(answer: Answer, tools: Sequence[ToolSpec] = ()) -> ParsedExpansion:
    """The generator's answer as a candidate; the reasoning trace, inline or opened by the template, is
    not part of it, and an answer its budget cut off says so. ``tools``: the seed's, which type the
    values of XML-argument calls."""
    text = answer.text
    if not text.strip() and not answer.truncated:  # say why there is nothing, as the judge's reader does
        return ParsedExpansion(error=empty_answer_reason(answer.reasoning))
    if answer.trace_opened and not text.lstrip().lower().startswith("<think>"):
        _, closed, after = text.partition(_TRACE_CLOSE)
        if not closed:
            reason = answer.truncation_reason() if answer.truncated else "reasoning trace never closed"
            return ParsedExpansion(error=reason)
        text = after
    parsed = parse_expansion(text, tools)
    if parsed.error is not None and answer.truncated:
        return ParsedExpansion(error=f"{answer.truncation_reason()} ({parsed.error})")
    if answer.truncated:  # it reads, but the budget may have cut a call off its OUTPUT: no label to trust
        return ParsedExpansion(error=f"{answer.truncation_reason()} (its OUTPUT may be missing calls)")
    return parsed


def expansion_requests(
    verdict: Event[Verdict], scenarios: Sequence[Scenario], k: int
) -> list[ExpansionRequest]:
    """The k requests an error seed calls for (pure; the same draws on every redelivery)."""
    v = verdict.payload
    if v.verdict not in ERROR_SEED_VERDICTS or not scenarios:
        return []
    correct, wrong = (v.label, v.prediction) if v.verdict == "PRED_WRONG" else (v.prediction, v.label)
    if correct is None:
        return []
    # An unparsed output is the error itself: the generator sees its text, not "(no response)".
    wrong_unparsed = v.prediction_text if wrong is None else ""
    rng = seeded_rng(verdict.event_id, "scenarios")
    # Distinct scenarios while there are enough; then cycle through a fresh shuffle.
    order = rng.sample(list(scenarios), len(scenarios))
    chosen = [order[i % len(order)] for i in range(k)]
    return [
        ExpansionRequest(
            request_id=f"{verdict.event_id}:{index}",
            seed_sample_id=v.sample_id,
            tools=v.tools,
            messages=v.messages,
            correct=correct,
            wrong=wrong,
            error_analysis=v.error_analysis,
            scenario=scenario,
            index=index,
            conversation_time=v.conversation_time,
            wrong_unparsed=wrong_unparsed,
        )
        for index, scenario in enumerate(chosen)
    ]


def candidate_event(
    verdict: Event[Verdict],
    request: ExpansionRequest,
    answer: str | Answer,
    k: int,
    model_name: str,
    producer: Any,
) -> Event[ExpansionCandidate]:
    answer = answer_of(answer)
    v = verdict.payload
    parsed = read_expansion(answer, v.tools)
    return make_event(
        ExpansionCandidate(
            candidate_id=f"{v.sample_id}-r{v.round}-x{request.index}",
            seed_sample_id=v.sample_id,
            round=v.round,
            verdict_event_id=verdict.event_id,
            index=request.index,
            count=k,
            scenario=request.scenario,
            tools=v.tools,
            messages=list(parsed.messages) if parsed.error is None else [],
            label=parsed.action if parsed.error is None else None,
            parse_error=parsed.error,
            raw_response=answer.text,
            generator_model=model_name,
            conversation_time=v.conversation_time,
        ),
        run_id=verdict.run_id,
        producer=producer,
        event_id=derived_event_id([verdict.event_id], "expand", str(request.index)),
        parent_ids=[verdict.event_id],
        checkpoint_id=verdict.checkpoint_id,
    )


@register()
class ExpandStage(Stage):
    """EDDE: k new samples per error seed, each under a scenario-diversification constraint."""

    first_batch_size = 8  # endpoint-bound: start at about 8 seeds: k requests each
    name = "expand"
    input_topics = ("verdicts",)
    input_types = ("Verdict",)

    def __init__(
        self,
        run_id: str,
        generator: Generator,
        scenarios: Sequence[Scenario],
        *,
        k: int = 4,
        batch_size: int = 4,
    ):
        super().__init__(run_id)
        self.generator = generator
        self.scenarios = list(scenarios)
        self.k = k
        self.batch_size = batch_size

    @classmethod
    def from_settings(cls, settings: StageSettings, clients: StageClients) -> ExpandStage:
        loop = settings.loop
        scenarios = [Scenario(focus=s.focus, parameters=s.parameters) for s in (loop.scenarios or [])] or [
            Scenario(focus=s["focus"], parameters=s["parameters"]) for s in DEFAULT_SCENARIOS
        ]
        return cls(settings.run_id, clients.generator(), scenarios, k=loop.expansions_per_seed)

    def relevant(self, event: Event[Any]) -> bool:
        return super().relevant(event) and event.payload.verdict in ERROR_SEED_VERDICTS

    async def handle(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        work = [
            (verdict, request)
            for verdict in events
            for request in expansion_requests(verdict, self.scenarios, self.k)
        ]
        if not work:
            return []
        answers = await self.generator.ask([request for _, request in work])
        outputs: list[Event[Any]] = []
        for (verdict, request), value in zip(work, answers, strict=True):
            answer = answer_of(value)
            candidate = candidate_event(
                verdict, request, answer, self.k, self.generator.model_name, self.producer
            )
            outputs.append(candidate)
            if answer.truncated and candidate.payload.parse_error is not None:
                outputs.append(
                    truncation_letter(
                        answer,
                        stage=self.name,
                        producer=self.producer,
                        source_ref=candidate.event_id,
                        key=candidate.key,
                        parent_id=candidate.event_id,
                        checkpoint_id=candidate.checkpoint_id,
                        run_id=candidate.run_id,
                        who=f"generator {self.generator.model_name}",
                    )
                )
        return outputs
