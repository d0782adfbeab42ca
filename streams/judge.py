"""judge: Judgement-Guided Label Verification (Section 4.3) of every probe mismatch.

First the rule tier: a label that breaks the tool schema while the prediction keeps it is
LABEL_WRONG without an LLM call (``decided_by="rules"``). A prediction that breaks the schema, or did
not parse, is wrong, but that says nothing about the label (a swapped argument or a wrong value keeps
the schema): those go to the judge too, the unparsed output shown as the model's text answer, so a
wrong label under a wrong prediction is found (BOTH_WRONG) instead of kept as an error seed. The
rest go to the judge with the Figure 10 prompt; which side is "Response 1" is drawn per probe from a
generator seeded by the probe's event id (no position bias, and the same draw on redelivery) and
recorded. Verdicts the grammar cannot read are asked again up to ``max_attempts`` times; after that
the Verdict says UNPARSEABLE (so the round's accounting can finish) and a DeadLetter keeps the raw
text for inspection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from common.logs import get_logger
from inference.base import InferenceBackend, InferenceError, SamplingConfig
from schemas.events import DeadLetter, Event, ProbeResult, Verdict, derived_event_id, make_event
from streams.stage import Stage, TransientError, seeded_rng
from toolcall.prompts import render_judge_prompt
from toolcall.rules import validate_action
from toolcall.specs import ToolSpec
from toolcall.types import Action, Message
from toolcall.verdicts import VERDICT_REGEX, parse_verdict

log = get_logger(__name__)


@dataclass(frozen=True)
class JudgeCase:
    """What the judge sees: the tools, the dialogue, both responses, and which one is the label."""

    case_id: str  # the probe event id
    sample_id: str
    tools: list[ToolSpec]
    messages: list[Message]
    label: Action
    prediction: Action
    label_position: int  # 1 or 2
    attempt: int = 1


class JudgeClient(Protocol):
    """Answers judge cases with raw judge text in the Figure 10 output format."""

    model_name: str

    async def judge(self, cases: Sequence[JudgeCase]) -> list[str]: ...


class LLMJudge:
    """The judge as an LLM behind an inference backend (an OpenAI-compatible endpoint in production)."""

    def __init__(
        self, backend: InferenceBackend, *, current_time: str, max_tokens: int = 512, constrain: bool = False
    ):
        self.backend = backend
        self.current_time = current_time
        self.max_tokens = max_tokens
        self.regex = VERDICT_REGEX if constrain else None

    @property
    def model_name(self) -> str:
        return self.backend.model_id

    async def judge(self, cases: Sequence[JudgeCase]) -> list[str]:
        chats = [
            render_judge_prompt(
                tools=case.tools,
                messages=case.messages,
                label=case.label,
                prediction=case.prediction,
                label_position=case.label_position,
                current_time=self.current_time,
            )
            for case in cases
        ]
        try:
            generations = await self.backend.generate(
                chats, SamplingConfig(greedy=True, max_tokens=self.max_tokens, regex=self.regex)
            )
        except InferenceError as error:
            if error.input_fault:  # this input (e.g. a prompt too long for the context), not the endpoint
                raise ValueError(f"judge endpoint rejected this input: {error}") from error
            raise TransientError(f"judge endpoint unavailable: {error}") from error
        return [options[0].text for options in generations]


def rule_verdict(probe: ProbeResult) -> tuple[str, str] | None:
    """(verdict, analysis) when the schema rules alone decide, else None.

    Only a schema-breaking label under a schema-keeping prediction is decided here: a wrong
    prediction alone cannot tell whether the label is right too (PRED_WRONG or BOTH_WRONG).
    """
    if probe.prediction is None:
        return None
    label_violations = validate_action(probe.label, probe.tools)
    if label_violations and not validate_action(probe.prediction, probe.tools):
        return "LABEL_WRONG", "The label breaks the tool schema: " + "; ".join(
            v.message for v in label_violations[:3]
        )
    return None


def for_unparsed_output(verdict: str, probe: ProbeResult) -> str:
    """An output that did not parse is never right: the judge's verdict with that side fixed as wrong."""
    if probe.prediction is not None:
        return verdict
    return {"LABEL_WRONG": "BOTH_WRONG", "BOTH_CORRECT": "PRED_WRONG"}.get(verdict, verdict)


def judged_prediction(probe: ProbeResult) -> Action:
    """What the judge is shown as the model's answer: its call, or its output as text if it did not parse."""
    if probe.prediction is not None:
        return probe.prediction
    return Action(text=probe.raw_output.strip() or "(empty output)")


class JudgeStage(Stage):
    name = "judge"
    input_topics = ("probes",)
    input_types = ("ProbeResult",)

    def __init__(self, run_id: str, client: JudgeClient, *, max_attempts: int = 3, batch_size: int = 8):
        super().__init__(run_id)
        self.client = client
        self.max_attempts = max_attempts
        self.batch_size = batch_size

    def relevant(self, event: Event[Any]) -> bool:
        return super().relevant(event) and not event.payload.matched

    def _verdict(
        self,
        probe: Event[ProbeResult],
        verdict: str,
        decided_by: str,
        *,
        position: int | None = None,
        analysis: str = "",
        approach: str = "",
        raw: str = "",
        attempts: int = 0,
    ) -> Event[Verdict]:
        p = probe.payload
        return make_event(
            Verdict(
                sample_id=p.sample_id,
                round=p.round,
                probe_event_id=probe.event_id,
                tools=p.tools,
                messages=p.messages,
                label=p.label,
                prediction=p.prediction,
                ppl=p.ppl,
                verdict=verdict,  # type: ignore[arg-type]
                decided_by=decided_by,  # type: ignore[arg-type]
                label_position=position,
                error_analysis=analysis,
                correct_approach=approach,
                raw_response=raw,
                judge_model=self.client.model_name if decided_by != "rules" else "",
                attempts=attempts,
            ),
            run_id=probe.run_id,
            producer=self.producer,
            event_id=derived_event_id([probe.event_id], self.name),
            parent_ids=[probe.event_id],
            checkpoint_id=probe.checkpoint_id,
        )

    async def handle(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        outputs: list[Event[Any]] = []
        pending: list[tuple[Event[ProbeResult], JudgeCase]] = []
        for probe in events:
            decided = rule_verdict(probe.payload)
            if decided is not None:
                outputs.append(self._verdict(probe, decided[0], "rules", analysis=decided[1]))
                continue
            position = 1 if seeded_rng(probe.event_id, "label-position").random() < 0.5 else 2
            p = probe.payload
            case = JudgeCase(
                probe.event_id, p.sample_id, p.tools, p.messages, p.label, judged_prediction(p), position
            )
            pending.append((probe, case))
        for attempt in range(1, self.max_attempts + 1):
            if not pending:
                break
            cases = [
                JudgeCase(**{**case.__dict__, "attempt": attempt})
                for _, case in pending  # type: ignore[arg-type]
            ]
            answers = await self.client.judge(cases)
            still_pending = []
            for (probe, case), raw in zip(pending, answers, strict=True):
                parsed = parse_verdict(raw, case.label_position)  # type: ignore[arg-type]
                if parsed.verdict != "UNPARSEABLE":
                    outputs.append(
                        self._verdict(
                            probe,
                            for_unparsed_output(parsed.verdict, probe.payload),
                            "judge",
                            position=case.label_position,
                            analysis=parsed.error_analysis,
                            approach=parsed.correct_approach,
                            raw=raw,
                            attempts=attempt,
                        )
                    )
                elif attempt == self.max_attempts:
                    verdict = self._verdict(
                        probe, "UNPARSEABLE", "judge", position=case.label_position, raw=raw, attempts=attempt
                    )
                    outputs.append(verdict)
                    outputs.append(self._unparseable_letter(verdict, raw))
                else:
                    still_pending.append((probe, case))
            pending = still_pending
        return outputs

    def _unparseable_letter(self, verdict: Event[Verdict], raw: str) -> Event[DeadLetter]:
        return make_event(
            DeadLetter(
                stage=self.name,
                reason=f"judge answer unparseable after {self.max_attempts} attempts",
                error_type="UnparseableVerdict",
                source_ref=verdict.payload.probe_event_id,
                key=verdict.key.encode("utf-8"),
                raw=raw.encode("utf-8"),
            ),
            run_id=verdict.run_id,
            producer=self.producer,
            parent_ids=[verdict.event_id],
            checkpoint_id=verdict.checkpoint_id,
        )


async def gather_limited(coroutines: Sequence[Any], limit: int) -> list[Any]:
    """Run coroutines with at most ``limit`` at once, keeping order."""
    semaphore = asyncio.Semaphore(limit)

    async def bounded(coroutine: Any) -> Any:
        async with semaphore:
            return await coroutine

    return await asyncio.gather(*(bounded(c) for c in coroutines))
