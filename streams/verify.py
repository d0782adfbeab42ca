"""verify: the two-tier verification of Section 3.2 applied to expansion candidates.

Tier 1 (rules): the candidate parsed, has a user turn, the calls of its INPUT's assistant turns and its
next step are valid against the seed's tools (calls that pass every schema rule, or a non-empty
plain-text answer when no call is right), and its next step makes no call twice with the same
arguments (a generation looping, as in the paper's Figure 15; parallel calls differ in their arguments).
Tier 2 (LLM): the judge model is asked whether the next step is correct and appropriate for the
input. A candidate that passes both becomes a SampleAdded (origin=expansion) with lineage to the
candidate and its error seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inference.base import Chat
from schemas.events import (
    Event,
    ExpansionCandidate,
    RuleViolation,
    VerificationResult,
    derived_event_id,
    make_event,
)
from streams.ingest import sample_added
from streams.registry import StageClients, StageSettings, register
from streams.roles import (
    Answer,
    LLMRole,
    RoleSampling,
    VerificationCase,
    Verifier,
    ask_until_parsed,
    truncation_letter,
)
from streams.stage import Stage
from toolcall.prompts import VERIFICATION_REGEX, render_verification_prompt
from toolcall.rules import Violation, empty_required_strings, repeated_calls, validate_action
from toolcall.specs import ToolSpec
from toolcall.types import Action, Sample
from toolcall.verdicts import ParsedVerification, read_verification


class LLMVerifier(LLMRole[VerificationCase]):
    """Tier 2: the verifier as an LLM behind an inference backend (the judge's endpoint by default)."""

    role = "verifier"
    default_sampling = RoleSampling(max_tokens=4096)
    answer_regex = VERIFICATION_REGEX

    def render(self, case: VerificationCase) -> Chat:
        return render_verification_prompt(
            tools=case.sample.tools,
            messages=case.sample.messages,
            action=case.sample.label,
            current_time=self.time_of(case.sample.conversation_time),
        )


def read_verifier_answer(answer: Answer) -> ParsedVerification:
    return read_verification(answer.text, reasoning=answer.reasoning, trace_opened=answer.trace_opened)


def settled_verification(case: VerificationCase, answer: Answer) -> tuple[bool, str] | None:
    parsed = read_verifier_answer(answer)
    if parsed.passed is None or not answer.settles(
        from_statements=parsed.from_statements, reconsidered=parsed.reconsidered
    ):
        return None
    return parsed.passed, parsed.reason


def rule_tier(candidate: ExpansionCandidate) -> list[RuleViolation]:
    """Tier 1: everything a rule can refuse (pure)."""
    if candidate.parse_error is not None or candidate.label is None:
        return [RuleViolation(code="unparseable", message=candidate.parse_error or "no OUTPUT section")]
    problems = []
    if not any(m.role == "user" for m in candidate.messages):
        problems.append(RuleViolation(code="no_user_turn", message="the INPUT has no user turn"))
    # The INPUT's own calls are trained on as context: a tool the generator made up there (a
    # "lookup_user_id" before the real call) teaches calling tools that are not offered, and a call
    # written twice in one turn teaches conditioning on a degenerate loop.
    for turn, message in enumerate(candidate.messages):
        if not message.tool_calls:
            continue
        turn_action = Action(calls=list(message.tool_calls))
        for violation in _call_rule_violations(turn_action, candidate.tools):
            path = f"messages[{turn}].tool_calls[{violation.call_index}]"
            problems.append(
                RuleViolation(
                    code=violation.code,
                    message=f"INPUT turn {turn + 1}: {violation.message}",
                    path=f"{path}.{violation.path}" if violation.path else path,
                )
            )
    # A call written again with the same arguments is the generator looping, not the next step.
    for violation in _call_rule_violations(candidate.label, candidate.tools):
        problems.append(
            RuleViolation(
                code=violation.code,
                message=violation.message,
                call_index=violation.call_index,
                path=violation.path,
            )
        )
    return problems


def _call_rule_violations(action: Action, tools: Sequence[ToolSpec]) -> list[Violation]:
    """The schema rules, and the rules a generated sample must keep on top of them: no call repeated
    (a generation looping), no required string left empty (a call that names nothing)."""
    return [
        *validate_action(action, tools),
        *repeated_calls(action),
        *empty_required_strings(action, tools),
    ]


@register()
class VerifyStage(Stage):
    """Two-tier verification of expansion candidates: schema rules, then the LLM check."""

    first_batch_size = 32  # endpoint-bound: start at about a server's concurrency (inference/latency.py)
    name = "verify"
    input_topics = ("candidates",)
    input_types = ("ExpansionCandidate",)

    def __init__(self, run_id: str, verifier: Verifier, *, max_attempts: int = 3, batch_size: int = 8):
        super().__init__(run_id)
        self.verifier = verifier
        self.max_attempts = max_attempts
        self.batch_size = batch_size

    @classmethod
    def from_settings(cls, settings: StageSettings, clients: StageClients) -> VerifyStage:
        return cls(settings.run_id, clients.verifier(), max_attempts=settings.loop.verify_max_attempts)

    def _result(
        self,
        candidate: Event[ExpansionCandidate],
        passed: bool,
        *,
        tier: str | None = None,
        violations: Sequence[RuleViolation] = (),
        llm_verdict: str | None = None,
        reason: str = "",
    ) -> Event[VerificationResult]:
        c = candidate.payload
        return make_event(
            VerificationResult(
                candidate_id=c.candidate_id,
                seed_sample_id=c.seed_sample_id,
                round=c.round,
                passed=passed,
                failed_tier=tier,  # type: ignore[arg-type]
                rule_violations=list(violations),
                llm_verdict=llm_verdict,
                reason=reason,
                verifier_model=self.verifier.model_name if tier != "rules" else "",
            ),
            run_id=candidate.run_id,
            producer=self.producer,
            event_id=derived_event_id([candidate.event_id], self.name),
            parent_ids=[candidate.event_id],
            checkpoint_id=candidate.checkpoint_id,
        )

    async def handle(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        outputs: list[Event[Any]] = []
        pending: list[tuple[Event[ExpansionCandidate], VerificationCase]] = []
        for candidate in events:
            violations = rule_tier(candidate.payload)
            if violations:
                reason = "; ".join(v.message for v in violations[:3])
                outputs.append(
                    self._result(candidate, False, tier="rules", violations=violations, reason=reason)
                )
                continue
            c = candidate.payload
            assert c.label is not None
            sample = Sample(
                tools=c.tools, messages=c.messages, label=c.label, conversation_time=c.conversation_time
            )
            pending.append((candidate, VerificationCase(c.candidate_id, c.seed_sample_id, sample)))
        asked = await ask_until_parsed(
            self.verifier, [case for _, case in pending], settled_verification, self.max_attempts
        )
        for (candidate, case), answer in zip(pending, asked, strict=True):
            if answer.truncated:
                result = self._result(
                    candidate,
                    False,
                    tier="llm",
                    llm_verdict="TRUNCATED",
                    reason=answer.answer.truncation_reason(),
                )
                outputs.append(result)
                outputs.append(
                    truncation_letter(
                        answer.answer,
                        stage=self.name,
                        producer=self.producer,
                        source_ref=candidate.event_id,
                        key=candidate.key,
                        parent_id=result.event_id,
                        checkpoint_id=candidate.checkpoint_id,
                        run_id=candidate.run_id,
                        who=f"verifier {self.verifier.model_name}",
                    )
                )
                continue
            if answer.parsed is None:
                outputs.append(
                    self._result(
                        candidate,
                        False,
                        tier="llm",
                        llm_verdict="UNPARSEABLE",
                        reason=read_verifier_answer(answer.answer).problem or answer.raw[:300],
                    )
                )
                continue
            passed, reason = answer.parsed
            if passed:
                result = self._result(candidate, True, llm_verdict="CORRECT", reason=reason)
                outputs.append(result)
                outputs.append(self._accepted_sample(candidate, case.sample, result))
            else:
                outputs.append(
                    self._result(
                        candidate,
                        False,
                        tier="llm",
                        llm_verdict="INCORRECT",
                        reason=reason or answer.raw[:300],
                    )
                )
        return outputs

    def _accepted_sample(
        self, candidate: Event[ExpansionCandidate], sample: Sample, result: Event[Any]
    ) -> Event[Any]:
        c = candidate.payload
        return sample_added(
            sample,
            run_id=candidate.run_id,
            origin="expansion",
            round_=c.round,
            source_format="edde",
            seed_sample_id=c.seed_sample_id,
            metadata={"candidate_id": c.candidate_id, "scenario": c.scenario.model_dump()},
            parent_ids=[candidate.event_id, result.event_id],
            checkpoint_id=candidate.checkpoint_id,
            producer=self.producer,
            event_id=derived_event_id([result.event_id], self.name, "sample"),
        )
