"""judge: Judgement-Guided Label Verification (Section 4.3) of every probe mismatch.

Every mismatch goes to the judge(s); the rules never decide a verdict. What the schema rules find
(the label's ``days`` is a string where the tool wants an integer; the model's output did not parse
as a call) is handed to the judge as checked facts about the response it concerns, and the judge
decides: a schema-breaking label under a refusal or a call for the wrong city is BOTH_WRONG, not a
label to replace. An unparsed output is shown as the model's text answer and can never be right.

Which side is "Response 1" is drawn per probe from a generator seeded by the probe's event id (no
position bias, and the same draw on redelivery) and recorded. With ``two_order`` every judge is also
asked with the sides swapped, and a judge whose two answers disagree does not vote.

Several judges (a panel) vote; the verdict is the verdict of at least ``quorum`` counted votes
(default: a majority of the panel, 2 of 3) that no other verdict ties. Every answer is recorded in the
Verdict's ``votes``. Without a quorum the Verdict says NO_QUORUM and, by the panel's setting, the
sample is dropped from the next round or deferred (it returns to the pool to be probed and judged
again later). An answer the reader cannot take is asked again (a hotter sampling, a new seed) up to
``max_attempts`` times; when no judge's answer can be read the Verdict says UNPARSEABLE (so the
round's accounting can finish) and a DeadLetter keeps the raw text. An answer cut off by its token
budget twice (the role retries once with a larger one) is dead-lettered as truncated, unless it
stated its decision outright before the cut (:meth:`streams.roles.Answer.settles`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from common.logs import get_logger
from common.seeding import seeded_rng
from inference.base import Chat
from schemas.events import (
    DeadLetter,
    Event,
    JudgeVote,
    ProbeResult,
    Verdict,
    derived_event_id,
    make_event,
)
from streams.registry import StageClients, StageSettings, register
from streams.roles import (
    Answer,
    Asked,
    JudgeCase,
    JudgeClient,
    JudgePanel,
    LLMRole,
    RoleSampling,
    ask_until_parsed,
    truncation_letter,
)
from streams.stage import PublishedIds, Stage
from toolcall.prompts import render_judge_prompt
from toolcall.rules import validate_action
from toolcall.types import Action
from toolcall.verdicts import VERDICT_REGEX, ParsedVerdict, parse_verdict

log = get_logger(__name__)

MAX_FACTS = 3  # schema problems shown per response
VOTE_TEXT_CHARS = 4000  # of each vote's answer text kept on the Verdict (its end: the decision is there)


class LLMJudge(LLMRole[JudgeCase]):
    """The judge as an LLM behind an inference backend (an OpenAI-compatible endpoint in production)."""

    role = "judge"
    default_sampling = RoleSampling(max_tokens=4096)
    answer_regex = VERDICT_REGEX

    def render(self, case: JudgeCase) -> Chat:
        return render_judge_prompt(
            tools=case.tools,
            messages=case.messages,
            label=case.label,
            prediction=case.prediction,
            label_position=case.label_position,
            current_time=self.time_of(case.conversation_time),
            label_facts=case.label_facts,
            prediction_facts=case.prediction_facts,
        )


def read_judge_answer(case: JudgeCase, answer: Answer) -> ParsedVerdict:
    return parse_verdict(
        answer.text, case.label_position, reasoning=answer.reasoning, trace_opened=answer.trace_opened
    )


def settled_verdict(case: JudgeCase, answer: Answer) -> ParsedVerdict | None:
    parsed = read_judge_answer(case, answer)
    if parsed.verdict == "UNPARSEABLE" or not answer.settles(
        from_statements=parsed.from_statements, reconsidered=parsed.reconsidered
    ):
        return None
    return parsed


@dataclass(frozen=True)
class RuleFacts:
    """What the schema rules found wrong with each side of a mismatch (never a verdict)."""

    label: tuple[str, ...] = ()
    prediction: tuple[str, ...] = ()


def rule_facts(probe: ProbeResult) -> RuleFacts:
    """The schema problems of the label and of the prediction, for the judge prompt (pure)."""
    label = tuple(v.message for v in validate_action(probe.label, probe.tools)[:MAX_FACTS])
    if probe.prediction is None:
        detail = f" ({probe.parse_error})" if probe.parse_error else ""
        prediction: tuple[str, ...] = (f"the output does not parse as a tool call{detail}",)
    else:
        prediction = tuple(v.message for v in validate_action(probe.prediction, probe.tools)[:MAX_FACTS])
    return RuleFacts(label=label, prediction=prediction)


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


def label_position_of(probe_event_id: str) -> int:
    """Which response shows the label (1 or 2): a fair draw, the same on every redelivery."""
    return 1 if seeded_rng(probe_event_id, "label-position").random() < 0.5 else 2


def _tail(text: str, limit: int = VOTE_TEXT_CHARS) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


def answer_vote(judge_model: str, asked: Asked[JudgeCase, ParsedVerdict], probe: ProbeResult) -> JudgeVote:
    """One answer as a vote record (not yet counted)."""
    case, answer = asked.case, asked.answer
    if asked.parsed is not None:
        return JudgeVote(
            judge_model=judge_model,
            label_position=case.label_position,
            verdict=for_unparsed_output(asked.parsed.verdict, probe),  # type: ignore[arg-type]
            status="read",
            attempts=asked.attempts,
            raw_response=_tail(answer.text),
        )
    if asked.truncated:
        status, reason = "truncated", answer.truncation_reason()
    else:
        status, reason = "unparseable", read_judge_answer(case, answer).reason or "unreadable"
    return JudgeVote(
        judge_model=judge_model,
        label_position=case.label_position,
        status=status,  # type: ignore[arg-type]
        attempts=asked.attempts,
        reason=reason,
        raw_response=_tail(answer.text),
    )


def judge_vote(answers: Sequence[JudgeVote]) -> tuple[str | None, list[JudgeVote]]:
    """A judge's vote from its answers (one per order shown), and the answers marked counted or not.

    The judge votes when every answer was read and they agree; answers that disagree are a
    position flip, and the judge does not vote.
    """
    read = [vote for vote in answers if vote.status == "read"]
    if not read:
        return None, list(answers)
    if len(read) < len(answers):
        why = "its answer in the other order could not be read"
        return None, [v if v.status != "read" else v.model_copy(update={"reason": why}) for v in answers]
    if len({vote.verdict for vote in read}) > 1:
        why = "its answers in the two orders disagree (position flip)"
        return None, [vote.model_copy(update={"reason": why}) for vote in answers]
    return read[0].verdict, [vote.model_copy(update={"counted": True}) for vote in answers]


def majority(votes: Sequence[str], required: int) -> str | None:
    """The verdict of at least ``required`` votes that no other verdict ties, or None (no quorum)."""
    ranked = Counter(votes).most_common()
    if not ranked or ranked[0][1] < required:
        return None
    if len(ranked) > 1 and ranked[1][1] == ranked[0][1]:
        return None
    return ranked[0][0]


@register()
class JudgeStage(Stage):
    """JGLV: every probe mismatch judged (PRED_WRONG / LABEL_WRONG / BOTH_CORRECT / BOTH_WRONG)."""

    first_batch_size = 32  # endpoint-bound: start at about a server's concurrency (inference/latency.py)
    name = "judge"
    input_topics = ("probes",)
    input_types = ("ProbeResult",)

    def __init__(
        self,
        run_id: str,
        judges: JudgeClient | Sequence[JudgeClient] | JudgePanel,
        *,
        max_attempts: int = 3,
        batch_size: int = 8,
        published: PublishedIds | None = None,
    ):
        super().__init__(run_id)
        # The verdicts already on the log: a judge may answer a redelivered probe otherwise.
        self.published = published or PublishedIds(None, ())
        if isinstance(judges, JudgePanel):
            panel = judges
        elif isinstance(judges, Sequence):
            panel = JudgePanel(judges=list(judges))
        else:
            panel = JudgePanel(judges=[judges])
        if not panel.judges:
            raise ValueError("the judge stage needs at least one judge")
        if panel.required_votes() > len(panel.judges):
            raise ValueError(f"quorum {panel.required_votes()} is more than the {len(panel.judges)} judges")
        self.panel = panel
        self.client = panel.judges[0]
        self.max_attempts = max_attempts
        self.batch_size = batch_size

    @classmethod
    def from_settings(cls, settings: StageSettings, clients: StageClients) -> JudgeStage:
        return cls(
            settings.run_id,
            clients.judge_panel(),
            max_attempts=settings.loop.judge_max_attempts,
            published=PublishedIds(clients.event_log(), ("verdicts",)),
        )

    async def start(self) -> None:
        await self.published.start()

    async def close(self) -> None:
        await self.published.close()

    def verdict_id(self, probe: Event[Any]) -> str:
        return derived_event_id([probe.event_id], self.name)

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
        judge_model: str | None = None,
        votes: Sequence[JudgeVote] = (),
        quorum: int | None = None,
        deferred: bool = False,
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
                judge_model=self.client.model_name if judge_model is None else judge_model,
                attempts=attempts,
                prediction_text=p.raw_output if p.prediction is None else "",
                votes=list(votes),
                quorum=quorum,
                deferred=deferred,
                conversation_time=p.conversation_time,
            ),
            run_id=probe.run_id,
            producer=self.producer,
            event_id=self.verdict_id(probe),
            parent_ids=[probe.event_id],
            checkpoint_id=probe.checkpoint_id,
        )

    def _cases(self, probe: Event[ProbeResult]) -> list[JudgeCase]:
        """The cases one judge is asked about this probe: the drawn order, and the swapped one too."""
        p = probe.payload
        facts = rule_facts(p)
        position = label_position_of(probe.event_id)
        orders = (position, 3 - position) if self.panel.two_order else (position,)
        return [
            JudgeCase(
                probe.event_id,
                p.sample_id,
                p.tools,
                p.messages,
                p.label,
                judged_prediction(p),
                order,
                label_facts=facts.label,
                prediction_facts=facts.prediction,
                conversation_time=p.conversation_time,
            )
            for order in orders
        ]

    async def _ask_panel(self, cases: list[JudgeCase]) -> list[list[Asked[JudgeCase, ParsedVerdict]]]:
        """Every judge's answers to every case (judges in parallel; each judge's failure surfaces)."""
        results = await asyncio.gather(
            *(
                ask_until_parsed(judge, cases, settled_verdict, self.max_attempts)
                for judge in self.panel.judges
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results  # type: ignore[return-value]

    async def handle(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        # A probe whose verdict is on the log already (redelivered after a crash) is not judged again:
        # a re-ask, or a server's batch-dependent numerics, could give the same id another decision.
        await self.published.caught_up()
        events = [probe for probe in events if self.verdict_id(probe) not in self.published.ids]
        per_probe = [(probe, self._cases(probe)) for probe in events]
        cases = [case for _, probe_cases in per_probe for case in probe_cases]
        answers = await self._ask_panel(cases)
        outputs: list[Event[Any]] = []
        start = 0
        for probe, probe_cases in per_probe:
            end = start + len(probe_cases)
            outputs.extend(self._decide(probe, [judge_answers[start:end] for judge_answers in answers]))
            start = end
        return outputs

    def _decide(
        self, probe: Event[ProbeResult], answers: list[list[Asked[JudgeCase, ParsedVerdict]]]
    ) -> list[Event[Any]]:
        """The Verdict of one probe from every judge's answers (``answers[judge][order]``)."""
        judges = self.panel.judges
        votes: list[JudgeVote] = []
        counted: dict[int, str] = {}
        for index, (judge, asked) in enumerate(zip(judges, answers, strict=True)):
            vote, records = judge_vote([answer_vote(judge.model_name, a, probe.payload) for a in asked])
            votes.extend(records)
            if vote is not None:
                counted[index] = vote
        required = self.panel.required_votes()
        decided = majority(list(counted.values()), required)
        quorum = required if len(judges) > 1 else None
        primary = answers[0][0]  # the first judge, the drawn order
        letters = self._truncation_letters(probe, answers)
        if decided is not None:
            index = next(i for i, vote in counted.items() if vote == decided)
            shown = answers[index][0]
            assert shown.parsed is not None
            verdict = self._verdict(
                probe,
                decided,
                "judge",
                position=shown.case.label_position,
                analysis=shown.parsed.error_analysis,
                approach=shown.parsed.correct_approach,
                raw=shown.raw,
                attempts=shown.attempts,
                judge_model=judges[index].model_name,
                votes=votes,
                quorum=quorum,
            )
            return [verdict, *letters]
        if any(vote.status == "read" for vote in votes):
            deferred = self.panel.no_quorum == "defer"
            log.info("judge.no_quorum", probe=probe.event_id, votes=list(counted.values()), deferred=deferred)
            verdict = self._verdict(
                probe,
                "NO_QUORUM",
                "judge",
                position=primary.case.label_position,
                raw=primary.raw,
                attempts=primary.attempts,
                votes=votes,
                quorum=quorum,
                deferred=deferred,
            )
            return [verdict, *letters]
        verdict = self._verdict(
            probe,
            "UNPARSEABLE",
            "judge",
            position=primary.case.label_position,
            raw=primary.raw,
            attempts=primary.attempts,
            votes=votes,
            quorum=quorum,
        )
        if all(vote.status == "truncated" for vote in votes):
            return [verdict, *letters]
        return [verdict, self._unparseable_letter(verdict, primary.raw), *letters]

    def _truncation_letters(
        self, probe: Event[ProbeResult], answers: list[list[Asked[JudgeCase, ParsedVerdict]]]
    ) -> list[Event[DeadLetter]]:
        """A DeadLetter for every answer its token budget cut off twice (reason "truncated: ...")."""
        verdict_id = self.verdict_id(probe)
        letters = []
        for index, judge_answers in enumerate(answers):
            for asked in judge_answers:
                if not asked.truncated:
                    continue
                model = self.panel.judges[index].model_name
                letters.append(
                    truncation_letter(
                        asked.answer,
                        stage=self.name,
                        producer=self.producer,
                        source_ref=probe.event_id,
                        key=probe.key,
                        parent_id=verdict_id,
                        checkpoint_id=probe.checkpoint_id,
                        run_id=probe.run_id,
                        discriminator=f"{index}:{asked.case.label_position}",
                        who=f"judge {model}",
                    )
                )
        return letters

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
            event_id=derived_event_id([verdict.event_id], self.name, "unparseable"),
            parent_ids=[verdict.event_id],
            checkpoint_id=verdict.checkpoint_id,
        )
