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

from collections.abc import Sequence
from typing import Any

from common.logs import get_logger
from common.seeding import seeded_rng
from inference.base import Chat, InferenceBackend, SamplingConfig
from schemas.events import DeadLetter, Event, ProbeResult, Verdict, derived_event_id, make_event
from streams.registry import StageClients, StageSettings, register
from streams.roles import JudgeCase, JudgeClient, LLMRole, ask_until_parsed
from streams.stage import Stage
from toolcall.prompts import render_judge_prompt
from toolcall.rules import validate_action
from toolcall.types import Action
from toolcall.verdicts import VERDICT_REGEX, ParsedVerdict, parse_verdict

log = get_logger(__name__)


class LLMJudge(LLMRole[JudgeCase]):
    """The judge as an LLM behind an inference backend (an OpenAI-compatible endpoint in production)."""

    role = "judge"

    def __init__(
        self, backend: InferenceBackend, *, current_time: str, max_tokens: int = 512, constrain: bool = False
    ):
        super().__init__(backend, current_time=current_time, max_tokens=max_tokens)
        self.regex = VERDICT_REGEX if constrain else None

    def render(self, case: JudgeCase) -> Chat:
        return render_judge_prompt(
            tools=case.tools,
            messages=case.messages,
            label=case.label,
            prediction=case.prediction,
            label_position=case.label_position,
            current_time=self.current_time,
        )

    def sampling(self, cases: Sequence[JudgeCase], attempt: int) -> SamplingConfig:
        return SamplingConfig(greedy=True, max_tokens=self.max_tokens, regex=self.regex)


def _parsed(case: JudgeCase, raw: str) -> ParsedVerdict | None:
    parsed = parse_verdict(raw, case.label_position)
    return None if parsed.verdict == "UNPARSEABLE" else parsed


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


@register()
class JudgeStage(Stage):
    """JGLV: every probe mismatch judged (PRED_WRONG / LABEL_WRONG / BOTH_CORRECT / BOTH_WRONG)."""

    name = "judge"
    input_topics = ("probes",)
    input_types = ("ProbeResult",)

    def __init__(self, run_id: str, client: JudgeClient, *, max_attempts: int = 3, batch_size: int = 8):
        super().__init__(run_id)
        self.client = client
        self.max_attempts = max_attempts
        self.batch_size = batch_size

    @classmethod
    def from_settings(cls, settings: StageSettings, clients: StageClients) -> JudgeStage:
        return cls(settings.run_id, clients.judge(), max_attempts=settings.loop.judge_max_attempts)

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
        asked = await ask_until_parsed(self.client, [case for _, case in pending], _parsed, self.max_attempts)
        for (probe, case), answer in zip(pending, asked, strict=True):
            if answer.parsed is not None:
                outputs.append(
                    self._verdict(
                        probe,
                        for_unparsed_output(answer.parsed.verdict, probe.payload),
                        "judge",
                        position=case.label_position,
                        analysis=answer.parsed.error_analysis,
                        approach=answer.parsed.correct_approach,
                        raw=answer.raw,
                        attempts=answer.attempts,
                    )
                )
                continue
            verdict = self._verdict(
                probe,
                "UNPARSEABLE",
                "judge",
                position=case.label_position,
                raw=answer.raw,
                attempts=answer.attempts,
            )
            outputs.append(verdict)
            outputs.append(self._unparseable_letter(verdict, answer.raw))
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
