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
from inference.base import Chat, InferenceBackend, SamplingConfig
from schemas.events import Event, ExpansionCandidate, Scenario, Verdict, derived_event_id, make_event
from streams.registry import StageClients, StageSettings, register
from streams.roles import ExpansionRequest, Generator, LLMRole
from streams.stage import Stage
from toolcall.expansion import parse_expansion
from toolcall.prompts import DEFAULT_SCENARIOS, render_expansion_prompt

ERROR_SEED_VERDICTS = ("PRED_WRONG", "LABEL_WRONG")


class LLMGenerator(LLMRole[ExpansionRequest]):
    """The generator as an LLM behind an inference backend (sampled, for diversity)."""

    role = "generator"

    def __init__(
        self,
        backend: InferenceBackend,
        *,
        current_time: str,
        temperature: float = 0.7,
        max_tokens: int = 1024,
    ):
        super().__init__(backend, current_time=current_time, max_tokens=max_tokens)
        self.temperature = temperature

    def render(self, case: ExpansionRequest) -> Chat:
        return render_expansion_prompt(
            tools=case.tools,
            messages=case.messages,
            correct=case.correct,
            wrong=case.wrong,
            error_analysis=case.error_analysis,
            focus=case.scenario.focus,
            parameters=case.scenario.parameters,
            current_time=self.current_time,
        )

    def sampling(self, cases: Sequence[ExpansionRequest], attempt: int) -> SamplingConfig:
        # Seeded by the batch's first request: a run is reproducible. (A redelivered batch may differ;
        # its candidates keep their derived ids, and every consumer keeps the first copy of an id.)
        seed = seeded_rng(cases[0].request_id, "sampling", str(attempt)).randrange(2**31)
        return SamplingConfig(
            greedy=False, temperature=self.temperature, max_tokens=self.max_tokens, seed=seed
        )


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
        )
        for index, scenario in enumerate(chosen)
    ]


def candidate_event(
    verdict: Event[Verdict], request: ExpansionRequest, raw: str, k: int, model_name: str, producer: Any
) -> Event[ExpansionCandidate]:
    parsed = parse_expansion(raw)
    v = verdict.payload
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
            raw_response=raw,
            generator_model=model_name,
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
        return [
            candidate_event(verdict, request, raw, self.k, self.generator.model_name, self.producer)
            for (verdict, request), raw in zip(work, answers, strict=True)
        ]
