"""Each stage's decision logic, without Kafka: probe, judge, relabel, expand, verify, stage isolation."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from inference.base import Generation
from schemas.codec import default_codec
from schemas.events import (
    MAX_EVENT_BYTES,
    CheckpointPublished,
    CuratedSample,
    DeadLetter,
    Event,
    ExpansionCandidate,
    LabelCorrected,
    ProbeResult,
    SampleAdded,
    Scenario,
    Verdict,
    VerificationResult,
)
from streams.expand import ExpandStage, expansion_requests
from streams.judge import JudgeStage, majority, rule_facts
from streams.probe import CheckpointWatcher, ProbeStage, probe_result
from streams.relabel import RelabelStage, correction_for
from streams.roles import ExpansionRequest, JudgeCase, VerificationCase
from streams.stage import PublishedIds, Stage, TransientError
from streams.verify import VerifyStage, rule_tier
from tests.foundation.events_factory import CONTEXT, FLUCTUATION, LABEL, PREDICTION, event_of
from toolcall.parsing import render_action
from toolcall.specs import ToolSpec
from toolcall.types import Action, ToolCall

RUN = "r"


def member(label: Action = LABEL, sample_id: str = "s_1", round_: int = 1) -> Event[CuratedSample]:
    return event_of(
        CuratedSample(
            round=round_,
            sample_id=sample_id,
            source="SEED",
            tools=[FLUCTUATION],
            messages=CONTEXT,
            label=label,
            label_event_id="01JABCDEFGHJKMNPQRSTVWXYZ0",
            content_hash="h",
        ),
        RUN,
    )


def checkpoint(round_: int = 1, final: bool = True) -> Event[CheckpointPublished]:
    return event_of(
        CheckpointPublished(
            new_checkpoint_id=f"ckpt-r{round_}", round=round_, step=10, final=final, uri="/x", backend="cpu"
        ),
        RUN,
    )


# --- probe -----------------------------------------------------------------------------------------


def test_probe_result_match_ppl_and_lineage() -> None:
    m, c = member(), checkpoint()
    logprobs = [math.log(0.5)] * 8
    event = probe_result(m, c, "<think>x</think>" + render_action(LABEL), logprobs, high_ppl_threshold=1.5)
    p = event.payload
    assert p.matched and p.diffs == [] and p.prediction == LABEL
    assert p.ppl == pytest.approx(2.0) and p.num_tokens == 8 and p.high_ppl
    assert event.parent_ids == [m.event_id, c.event_id] and event.checkpoint_id == "ckpt-r1"
    # Same member probed again (redelivery): same id, whatever the checkpoint.
    again = probe_result(m, checkpoint(final=False), render_action(PREDICTION), [], high_ppl_threshold=None)
    assert again.event_id == event.event_id


def test_probe_result_mismatch_and_unparseable() -> None:
    mismatch = probe_result(
        member(), checkpoint(), render_action(PREDICTION), [-0.1], high_ppl_threshold=None
    )
    assert not mismatch.payload.matched
    assert {d.kind for d in mismatch.payload.diffs} == {"wrong_argument"}
    assert not mismatch.payload.high_ppl  # only matched samples are marked for D^HPPL
    broken = probe_result(member(), checkpoint(), "<tool_call>{oops", [-0.1], high_ppl_threshold=None)
    assert broken.payload.prediction is None and broken.payload.parse_error
    assert [d.kind for d in broken.payload.diffs] == ["unparseable_output"]


def test_a_probe_output_cut_off_by_the_budget_never_becomes_a_label() -> None:
    """A policy cut off at max_new_tokens ("helpful helpful ..." x 24) once went on to be judged
    LABEL_WRONG and became the sample's gold label. Cut off and mismatched, it is no prediction."""
    rambling = " ".join(["helpful"] * 24)
    cut = probe_result(member(), checkpoint(), rambling, [-0.1] * 24, high_ppl_threshold=None, truncated=True)
    assert cut.payload.prediction is None and not cut.payload.matched
    assert "cut off at the token budget" in (cut.payload.parse_error or "")
    assert [d.kind for d in cut.payload.diffs] == ["unparseable_output"]
    ended = probe_result(member(), checkpoint(), rambling, [-0.1] * 24, high_ppl_threshold=None)
    assert ended.payload.prediction is not None  # the same text, ended by the model: a text answer
    # A call the budget cut short of a second one (Rome written, Oslo not): no prediction either.
    partial = probe_result(
        member(), checkpoint(), render_action(PREDICTION), [-0.1], high_ppl_threshold=None, truncated=True
    )
    assert partial.payload.prediction is None
    # Cut off after writing exactly the label's calls: it matched, and it stands.
    whole = probe_result(
        member(), checkpoint(), render_action(LABEL), [-0.1], high_ppl_threshold=None, truncated=True
    )
    assert whole.payload.matched and whole.payload.prediction == LABEL


def test_a_text_answer_cut_off_by_the_budget_matches_no_clarification_label() -> None:
    """Two no-call answers match whatever their text, so a cut-off text (or a reasoning trace the
    template opened, cut mid-way) matched every clarification label and could be marked high-PPL."""
    asks = member(Action(text="Which currency pair?"))
    for output in (
        " ".join(["helpful"] * 24),
        "Let me think whether the user wants EUR or",
        "<think>Hmm, the",
    ):
        cut = probe_result(asks, checkpoint(), output, [-3.0] * 24, high_ppl_threshold=1.0, truncated=True)
        assert not cut.payload.matched and not cut.payload.high_ppl and cut.payload.prediction is None
        assert (cut.payload.parse_error or "").startswith("cut off at the token budget")
    ended = probe_result(asks, checkpoint(), "Which pair do you mean?", [-3.0], high_ppl_threshold=1.0)
    assert ended.payload.matched and ended.payload.high_ppl  # finished, it is an answer as before


# --- judge -----------------------------------------------------------------------------------------


class RecordingPolicy:
    """A policy backend that answers the label's call and records which checkpoint each prompt met."""

    name = "recording"

    def __init__(self) -> None:
        self.model_id = "initial"
        self.loads: list[str] = []
        self.answered: list[str] = []  # the checkpoint loaded when each prompt was decoded

    async def load(self, model_path: str, model_id: str) -> None:
        self.loads.append(model_id)
        self.model_id = model_id

    async def generate(self, prompts: Sequence[Any], sampling: Any) -> list[list[Generation]]:
        self.answered.extend(self.model_id for _ in prompts)
        return [[Generation(text=render_action(LABEL), token_logprobs=[-0.1])] for _ in prompts]

    async def close(self) -> None: ...


def published(
    round_: int, step: int, final: bool, produced: int, attempt: str = "a"
) -> Event[CheckpointPublished]:
    event = event_of(
        CheckpointPublished(
            new_checkpoint_id=f"ckpt-r{round_}-{attempt}-s{step}",
            round=round_,
            step=step,
            final=final,
            uri=f"/ckpt/{attempt}/{step}",
            backend="cpu",
        ),
        RUN,
    )
    return event.model_copy(update={"produced_at": datetime(2026, 1, 1, 9, 0, produced, tzinfo=UTC)})


async def test_latest_mode_probes_each_batch_with_the_newest_checkpoint_of_its_round() -> None:
    """The online overlap the demo runs: members are probed with whatever checkpoint of their round is
    newest when their batch is decoded, and each ProbeResult names that checkpoint."""
    policy = RecordingPolicy()
    watcher = CheckpointWatcher(None, RUN)
    stage = ProbeStage(RUN, policy, watcher, mode="latest")  # type: ignore[arg-type]
    first, second, third = (member(sample_id=f"s_{n}") for n in (1, 2, 3))
    await watcher.publish(published(1, 5, final=False, produced=1))
    [early] = await stage.process([first])
    await watcher.publish(published(1, 10, final=False, produced=2))
    await watcher.publish(published(1, 20, final=True, produced=3))
    [late] = await stage.process([second])
    # A retried round: the newer attempt's checkpoint wins even at a lower step.
    await watcher.publish(published(1, 2, final=False, produced=4, attempt="b"))
    [retried] = await stage.process([third])
    assert [early.checkpoint_id, late.checkpoint_id, retried.checkpoint_id] == [
        "ckpt-r1-a-s5",
        "ckpt-r1-a-s20",
        "ckpt-r1-b-s2",
    ]
    assert early.parent_ids[1] != late.parent_ids[1]  # lineage names the checkpoint event too
    assert policy.loads == ["ckpt-r1-a-s5", "ckpt-r1-a-s20", "ckpt-r1-b-s2"]
    assert policy.answered == policy.loads  # each prompt decoded by the checkpoint its result names


async def test_latest_mode_follows_the_log_not_the_trainers_clock() -> None:
    """A trainer restarted on a machine whose clock is behind (or after NTP stepped it back) publishes
    the retried round's checkpoints with earlier time stamps than the dead attempt's: the probe still
    takes the newest attempt, the one published last on the (one-partition) checkpoints topic."""
    policy = RecordingPolicy()
    watcher = CheckpointWatcher(None, RUN)
    stage = ProbeStage(RUN, policy, watcher, mode="latest")  # type: ignore[arg-type]
    await watcher.publish(published(1, 20, final=False, produced=50))  # the attempt that died
    await watcher.publish(published(1, 2, final=False, produced=10, attempt="b"))  # clock 40 s behind
    [probe] = await stage.process([member()])
    assert probe.checkpoint_id == "ckpt-r1-b-s2"
    await watcher.publish(published(1, 4, final=True, produced=11, attempt="b"))
    assert watcher.current(1, "final") is not None
    assert watcher.current(1, "final").payload.new_checkpoint_id == "ckpt-r1-b-s4"  # type: ignore[union-attr]


async def test_a_member_redelivered_after_a_crash_is_not_probed_again_by_a_newer_checkpoint() -> None:
    """latest mode: the probe of a member was published by checkpoint s5, then the worker died before
    acknowledging its input. Started again, with s20 out, it must not publish the same id with s20's
    content (views keep the first copy, the judge acted on the second)."""
    first, second = member(sample_id="s_1"), member(sample_id="s_2")
    early = published(1, 5, final=False, produced=1)
    watcher = CheckpointWatcher(None, RUN)
    await watcher.publish(early)
    before_crash = ProbeStage(RUN, RecordingPolicy(), watcher, mode="latest")  # type: ignore[arg-type]
    [published_probe] = await before_crash.process([first])

    class Log:
        """The run's log after the crash: both checkpoints, the probe already published."""

        run_id = RUN

        async def follow(self, topics: Sequence[str]) -> Any:
            if tuple(topics) == ("probes",):
                yield [published_probe]
            else:
                assert tuple(topics) == ("checkpoints",)
                yield [early, published(1, 20, final=True, produced=2)]
            yield []  # caught up
            await asyncio.Event().wait()

    restarted = CheckpointWatcher(Log(), RUN)  # type: ignore[arg-type]
    policy = RecordingPolicy()
    stage = ProbeStage(
        RUN,
        policy,  # type: ignore[arg-type]
        restarted,
        mode="latest",
        published=PublishedIds(Log(), ("probes",)),  # type: ignore[arg-type]
    )
    await stage.start()
    try:
        outputs = await asyncio.wait_for(stage.process([first, second]), 5)
    finally:
        await stage.close()
    assert [o.payload.sample_id for o in outputs] == ["s_2"]  # s_1's probe stands as published
    assert policy.answered == ["ckpt-r1-a-s20"]  # only the new member was decoded


async def test_final_mode_waits_for_the_rounds_final_checkpoint() -> None:
    policy = RecordingPolicy()
    watcher = CheckpointWatcher(None, RUN)
    stage = ProbeStage(RUN, policy, watcher, mode="final")  # type: ignore[arg-type]
    await watcher.publish(published(1, 5, final=False, produced=1))
    waiting = asyncio.create_task(stage.process([member()]))
    await asyncio.sleep(0.05)
    assert not waiting.done() and policy.loads == []  # an intermediate checkpoint does not probe
    await watcher.publish(published(1, 20, final=True, produced=2))
    [result] = await asyncio.wait_for(waiting, 5)
    assert result.checkpoint_id == "ckpt-r1-a-s20" and policy.loads == ["ckpt-r1-a-s20"]


def probe_event(
    prediction: Action | None, label: Action = LABEL, matched: bool = False
) -> Event[ProbeResult]:
    return event_of(
        ProbeResult(
            sample_id="s_1",
            round=1,
            label_event_id="l",
            tools=[FLUCTUATION],
            messages=CONTEXT,
            label=label,
            raw_output=render_action(prediction) if prediction else "garbage",
            prediction=prediction,
            parse_error=None if prediction else "not a call",
            matched=matched,
        ),
        RUN,
        checkpoint_id="ckpt-r1",
    )


BROKEN = Action(
    calls=[ToolCall(name="get_exchange_fluctuation", arguments={"base": "eur"})]
)  # misses 3 required


def test_the_rules_hand_facts_to_the_judge_and_never_decide() -> None:
    facts = rule_facts(probe_event(PREDICTION, label=BROKEN).payload)
    assert len(facts.label) == 3 and all("is missing" in fact for fact in facts.label)
    assert facts.prediction == ()
    assert rule_facts(probe_event(PREDICTION).payload) == type(facts)()  # both valid: nothing to say
    unparsed = rule_facts(probe_event(None).payload)
    assert unparsed.label == () and unparsed.prediction == (
        "the output does not parse as a tool call (not a call)",
    )
    assert rule_facts(probe_event(BROKEN).payload).prediction == facts.label


async def test_a_schema_breaking_label_goes_to_the_judge_with_the_facts() -> None:
    # The old rule tier made this LABEL_WRONG without asking: the refusal would have become the label.
    refusal = Action(text="Sorry, I cannot help with that.")
    judge = ScriptedJudge(["BOTH_INCORRECT\nError Analysis: both wrong.\nCorrect Approach: call it."])
    [verdict] = await JudgeStage(RUN, judge).process([probe_event(refusal, label=BROKEN)])
    assert verdict.payload.verdict == "BOTH_WRONG" and verdict.payload.decided_by == "judge"
    [case] = judge.seen
    assert case.label_facts and case.prediction_facts == ()
    from streams.judge import LLMJudge

    chat = LLMJudge(_NoBackend(), current_time="2026-01-01").render(case)  # type: ignore[arg-type]
    user = chat[1]["content"]
    assert "## Schema Check" in user and f"Response {case.label_position}: required parameter" in user
    assert "label" not in user.split("## Schema Check")[1].split("## Output Format")[0].lower()


class _NoBackend:
    name, model_id = "none", "none"


async def test_an_unparsed_output_is_judged_as_text_and_never_right() -> None:
    answers = {
        "RESPONSE 1 INCORRECT\nError Analysis: x.": None,  # mapped per the drawn position below
        "BOTH_INCORRECT\nError Analysis: the label swaps base and symbols.": "BOTH_WRONG",
        "BOTH_CORRECT": "PRED_WRONG",  # the judge cannot make an unparsed output right
    }
    for answer, expected in answers.items():
        judge = ScriptedJudge([answer])
        [verdict] = await JudgeStage(RUN, judge).process([probe_event(None)])
        [case] = judge.seen
        assert case.prediction == Action(text="garbage")  # the model's raw output, as its answer
        if expected is None:  # RESPONSE 1 is wrong: the label (LABEL_WRONG -> BOTH_WRONG) or the output
            expected = "BOTH_WRONG" if case.label_position == 1 else "PRED_WRONG"
        assert verdict.payload.verdict == expected and verdict.payload.decided_by == "judge"
        assert verdict.payload.prediction is None  # nothing for relabel to take as a new label


class ScriptedJudge:
    model_name = "scripted"

    def __init__(self, answers: Sequence[str]):
        self.answers = list(answers)
        self.seen: list[JudgeCase] = []
        self.attempts: list[int] = []

    async def ask(self, cases: Sequence[JudgeCase], attempt: int = 1) -> list[str]:
        self.seen.extend(cases)
        self.attempts.extend(attempt for _ in cases)
        return [self.answers.pop(0) for _ in cases]


async def test_judge_maps_positions_and_skips_matches() -> None:
    answer = "RESPONSE 1 INCORRECT\nError Analysis: base swapped.\nCorrect Approach: swap."
    judge = ScriptedJudge([answer, answer])
    stage = JudgeStage(RUN, judge)
    broken_label, llm_case = probe_event(PREDICTION, label=BROKEN), probe_event(PREDICTION)
    outputs = await stage.process([broken_label, llm_case, probe_event(LABEL, matched=True)])
    assert len(outputs) == 2 and len(judge.seen) == 2  # matches are not judged; every mismatch is
    assert {e.payload.decided_by for e in outputs} == {"judge"}
    judged = next(e for e in outputs if e.parent_ids == [llm_case.event_id])
    position = next(c.label_position for c in judge.seen if c.case_id == llm_case.event_id)
    expected = "LABEL_WRONG" if position == 1 else "PRED_WRONG"
    assert judged.payload.verdict == expected and judged.payload.label_position == position
    assert judged.payload.error_analysis == "base swapped." and judged.checkpoint_id == "ckpt-r1"
    assert judged.payload.votes[0].counted and judged.payload.quorum is None


async def test_a_probe_redelivered_after_a_crash_is_not_judged_again() -> None:
    """The judge's verdict on a probe was published, then its worker died before acknowledging the
    probe. Started again, the judge would answer anew (a re-ask samples hotter, a server's numerics
    depend on its batch), under the verdict's id but maybe with another decision: views keep the first
    copy while relabel and expand act on the second (a LABEL_WRONG second copy relabelled a sample
    whose kept verdict said BOTH_CORRECT). The restarted judge publishes no second copy."""
    redelivered, fresh = probe_event(PREDICTION), probe_event(PREDICTION.model_copy(update={"text": "b"}))
    [before_crash] = await JudgeStage(RUN, ScriptedJudge(["BOTH_CORRECT"] * 2)).process([redelivered])

    class Log:
        """The run's verdicts after the crash."""

        run_id = RUN

        async def follow(self, topics: Sequence[str]) -> Any:
            assert tuple(topics) == ("verdicts",)
            yield [before_crash]
            yield []  # caught up
            await asyncio.Event().wait()

    judge = ScriptedJudge(["RESPONSE 1 INCORRECT\nError Analysis: x.\nCorrect Approach: y."] * 4)
    restarted = JudgeStage(RUN, judge, published=PublishedIds(Log(), ("verdicts",)))  # type: ignore[arg-type]
    await restarted.start()
    try:
        outputs = await asyncio.wait_for(restarted.process([redelivered, fresh]), 5)
    finally:
        await restarted.close()
    assert [verdict.parent_ids for verdict in outputs] == [[fresh.event_id]]
    assert [case.case_id for case in judge.seen] == [fresh.event_id]  # only the new probe was asked


async def test_a_judge_whose_verdict_follower_fails_retries_and_dead_letters_nothing() -> None:
    class BrokenLog:
        run_id = RUN

        async def follow(self, topics: Sequence[str]) -> Any:
            raise ConnectionError("broker gone")
            yield []

    judge = ScriptedJudge(["BOTH_CORRECT"] * 2)
    stage = JudgeStage(RUN, judge, published=PublishedIds(BrokenLog(), ("verdicts",)))  # type: ignore[arg-type]
    probe = probe_event(PREDICTION)
    with pytest.raises(TransientError, match="broker gone"):
        await stage.process([probe])
    assert probe.event_id not in stage.seen and judge.seen == []


async def test_label_position_is_random_but_reproducible() -> None:
    positions = []
    for index in range(40):
        probe = probe_event(PREDICTION.model_copy(update={"text": str(index)}))
        judge = ScriptedJudge(["BOTH_CORRECT"] * 2)
        await JudgeStage(RUN, judge).process([probe])
        await JudgeStage(RUN, judge).process([probe])  # a second worker sees the same draw
        assert judge.seen[0].label_position == judge.seen[1].label_position
        positions.append(judge.seen[0].label_position)
    assert 8 < positions.count(1) < 32


async def test_unparseable_verdicts_are_retried_then_dead_lettered() -> None:
    judge = ScriptedJudge(["maybe?", "RESPONSE 9", "no idea"])
    outputs = await JudgeStage(RUN, judge, max_attempts=3).process([probe_event(PREDICTION)])
    verdict, letter = outputs
    assert verdict.payload.verdict == "UNPARSEABLE" and verdict.payload.attempts == 3
    assert isinstance(letter.payload, DeadLetter) and letter.payload.raw == b"no idea"
    assert judge.attempts == [1, 2, 3]
    # A later parseable answer is used.
    judge = ScriptedJudge(["??", "BOTH_INCORRECT\nError Analysis: both wrong."])
    [verdict] = await JudgeStage(RUN, judge, max_attempts=3).process([probe_event(PREDICTION)])
    assert verdict.payload.verdict == "BOTH_WRONG" and verdict.payload.attempts == 2


class PositionalJudge:
    """Answers by the position of the label: ``by_position[label_position]`` (a judge with a side bias)."""

    def __init__(self, model_name: str, by_position: dict[int, str]):
        self.model_name = model_name
        self.by_position = by_position
        self.seen: list[JudgeCase] = []

    async def ask(self, cases: Sequence[JudgeCase], attempt: int = 1) -> list[str]:
        self.seen.extend(cases)
        return [self.by_position[case.label_position] for case in cases]


def says(verdict: str, label_position: int) -> str:
    """The Figure 10 answer that means ``verdict`` when the label is shown as ``label_position``."""
    from world.simulation import judge_text

    return judge_text(verdict, label_position, "because.", "do it right.")


def steady(model: str, verdict: str) -> PositionalJudge:
    return PositionalJudge(model, {1: says(verdict, 1), 2: says(verdict, 2)})


def test_majority_needs_the_quorum_and_no_tie() -> None:
    assert majority(["PRED_WRONG", "PRED_WRONG", "LABEL_WRONG"], 2) == "PRED_WRONG"
    assert majority(["PRED_WRONG", "LABEL_WRONG", "BOTH_WRONG"], 2) is None
    assert majority(["PRED_WRONG", "LABEL_WRONG"], 1) is None  # a tie decides nothing
    assert majority(["PRED_WRONG"], 2) is None and majority([], 1) is None


async def test_a_panel_votes_and_every_vote_is_recorded() -> None:
    from streams.roles import JudgePanel

    judges = [steady("a", "LABEL_WRONG"), steady("b", "LABEL_WRONG"), steady("c", "PRED_WRONG")]
    [verdict] = await JudgeStage(RUN, JudgePanel(judges)).process([probe_event(PREDICTION)])
    v = verdict.payload
    assert v.verdict == "LABEL_WRONG" and v.quorum == 2 and v.judge_model == "a"
    assert [(vote.judge_model, vote.verdict, vote.counted) for vote in v.votes] == [
        ("a", "LABEL_WRONG", True),
        ("b", "LABEL_WRONG", True),
        ("c", "PRED_WRONG", True),
    ]
    # Three different answers: no quorum; the setting says whether the sample is dropped or deferred.
    split = [steady("a", "LABEL_WRONG"), steady("b", "PRED_WRONG"), steady("c", "BOTH_WRONG")]
    for no_quorum in ("drop", "defer"):
        panel = JudgePanel(split, no_quorum=no_quorum)  # type: ignore[arg-type]
        [verdict] = await JudgeStage(RUN, panel).process([probe_event(PREDICTION)])
        assert verdict.payload.verdict == "NO_QUORUM" and verdict.payload.deferred == (no_quorum == "defer")
        assert len(verdict.payload.votes) == 3
    # A judge that cannot be read does not vote: 1 of 3 readable answers is no quorum either.
    unread = [steady("a", "LABEL_WRONG"), ScriptedJudge(["??"] * 3), ScriptedJudge(["??"] * 3)]
    [verdict] = await JudgeStage(RUN, JudgePanel(unread), max_attempts=1).process([probe_event(PREDICTION)])
    assert verdict.payload.verdict == "NO_QUORUM"
    assert [vote.status for vote in verdict.payload.votes] == ["read", "unparseable", "unparseable"]


async def test_two_order_judging_discounts_a_judge_that_flips() -> None:
    from streams.roles import JudgePanel

    # "RESPONSE 2 INCORRECT" whatever is shown: the label is wrong when it is second, right when first.
    biased = PositionalJudge("biased", {1: says("PRED_WRONG", 1), 2: says("LABEL_WRONG", 2)})
    panel = JudgePanel([biased, steady("b", "PRED_WRONG"), steady("c", "PRED_WRONG")], two_order=True)
    [verdict] = await JudgeStage(RUN, panel).process([probe_event(PREDICTION)])
    v = verdict.payload
    assert v.verdict == "PRED_WRONG"
    assert sorted(case.label_position for case in biased.seen) == [1, 2]  # asked in both orders
    flips = [vote for vote in v.votes if vote.judge_model == "biased"]
    assert len(flips) == 2 and not any(vote.counted for vote in flips)
    assert all("position flip" in vote.reason for vote in flips)
    assert all(vote.counted for vote in v.votes if vote.judge_model != "biased")
    # Alone, the flipping judge leaves no quorum (it spoke, but inconsistently): NO_QUORUM, not UNPARSEABLE.
    [alone] = await JudgeStage(RUN, JudgePanel([biased], two_order=True)).process([probe_event(PREDICTION)])
    assert alone.payload.verdict == "NO_QUORUM"


async def test_a_truncated_answer_is_dead_lettered_as_truncated() -> None:
    from streams.roles import Answer

    class CutOff:
        model_name = "long-thinker"

        async def ask(self, cases: Sequence[JudgeCase], attempt: int = 1) -> list[Answer]:
            return [
                Answer(
                    text="",
                    reasoning="Let me think " * 50,
                    truncated=True,
                    max_tokens=64,
                    budget_retried=True,
                )
            ]

    probe = probe_event(PREDICTION)
    outputs = await JudgeStage(RUN, CutOff(), max_attempts=3).process([probe])
    verdict, letter = outputs
    assert verdict.payload.verdict == "UNPARSEABLE" and verdict.payload.attempts == 1  # not asked again
    assert verdict.payload.votes[0].status == "truncated"
    assert letter.payload.error_type == "TruncatedAnswer" and letter.payload.reason.startswith("truncated")
    assert letter.payload.raw.startswith(b"Let me think")  # the cut-off trace is kept
    again = await JudgeStage(RUN, CutOff(), max_attempts=3).process([probe])
    assert [e.event_id for e in again] == [e.event_id for e in outputs]  # redelivery: the same ids


async def test_the_judge_reads_a_reasoning_answer_with_its_trace_apart() -> None:
    from streams.roles import Answer

    class Thinker:
        model_name = "thinker"

        async def ask(self, cases: Sequence[JudgeCase], attempt: int = 1) -> list[Answer]:
            wrong = 3 - cases[0].label_position  # the prediction's side
            answer = f"**Verdict:** RESPONSE {wrong} INCORRECT\n\nError Analysis: base swapped."
            return [Answer(text=answer, reasoning="Response 1 is incorrect? No. " * 20)]

    [verdict] = await JudgeStage(RUN, Thinker()).process([probe_event(PREDICTION)])
    assert verdict.payload.verdict == "PRED_WRONG" and verdict.payload.error_analysis == "base swapped."


# --- relabel ---------------------------------------------------------------------------------------


def verdict_event(verdict: str, prediction: Action | None = PREDICTION) -> Event[Verdict]:
    return event_of(
        Verdict(
            sample_id="s_1",
            round=1,
            probe_event_id="p",
            tools=[FLUCTUATION],
            messages=CONTEXT,
            label=LABEL,
            prediction=prediction,
            verdict=verdict,
            decided_by="judge",
            error_analysis="base and symbols reversed",
        ),
        RUN,
        checkpoint_id="ckpt-r1",
    )


async def test_relabel_only_label_wrong() -> None:
    stage = RelabelStage(RUN)
    outputs = await stage.process(
        [verdict_event(v) for v in ("PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG", "UNPARSEABLE")]
    )
    [fix] = outputs
    assert isinstance(fix.payload, LabelCorrected)
    assert fix.payload.old_label == LABEL and fix.payload.new_label == PREDICTION
    assert fix.payload.verdict_event_id == fix.parent_ids[0]
    assert correction_for(verdict_event("LABEL_WRONG", prediction=None), stage.producer) is None


# --- expand ----------------------------------------------------------------------------------------

SCENARIOS = [Scenario(focus=f"focus {i}", parameters=f"params {i}") for i in range(6)]


def test_expansion_requests_k_distinct_scenarios_reproducibly() -> None:
    verdict = verdict_event("PRED_WRONG")
    requests = expansion_requests(verdict, SCENARIOS, 4)
    assert [r.index for r in requests] == [0, 1, 2, 3]
    assert len({r.scenario for r in requests}) == 4
    assert requests == expansion_requests(verdict, SCENARIOS, 4)
    assert requests[0].correct == LABEL and requests[0].wrong == PREDICTION
    label_wrong = expansion_requests(verdict_event("LABEL_WRONG"), SCENARIOS, 2)
    assert label_wrong[0].correct == PREDICTION and label_wrong[0].wrong == LABEL
    assert len(expansion_requests(verdict, SCENARIOS[:2], 5)) == 5  # cycles when k > scenarios
    assert expansion_requests(verdict_event("BOTH_WRONG"), SCENARIOS, 4) == []


class ScriptedGenerator:
    model_name = "gen"

    def __init__(self, answer: str):
        self.answer = answer
        self.requests: list[ExpansionRequest] = []

    async def ask(self, requests: Sequence[ExpansionRequest], attempt: int = 1) -> list[str]:
        self.requests.extend(requests)
        return [self.answer if r.index % 2 == 0 else "no format here" for r in requests]


async def test_edde_sees_the_raw_text_of_an_unparsed_prediction_and_the_conversation_time() -> None:
    from streams.expand import LLMGenerator
    from tests.streams.test_roles import ScriptedBackend

    garbled = '<tool_call>{"name": "get_exchange_fluctuation", "arguments": {"base": "EUR"'
    probe = probe_event(None).payload.model_copy(
        update={"raw_output": garbled, "conversation_time": "2025-05-04"}
    )
    payload = verdict_event("PRED_WRONG", prediction=None).payload.model_copy(
        update={"prediction_text": garbled, "conversation_time": probe.conversation_time}
    )
    verdict = event_of(payload, RUN)
    [request] = expansion_requests(verdict, SCENARIOS, 1)
    assert (
        request.wrong is None
        and request.wrong_unparsed == garbled
        and request.conversation_time == "2025-05-04"
    )
    generator = LLMGenerator(ScriptedBackend(lambda c, s: None), current_time="2026-01-01 09:00:00")  # type: ignore[arg-type]
    system, user = (m["content"] for m in generator.render(request))
    assert "Current Date: 2025-05-04" in system
    incorrect = user.split("<incorrect_response>")[1].split("</incorrect_response>")[0]
    assert "get_exchange_fluctuation" in incorrect and "(no response)" not in user
    assert "did not parse as a tool call" in user
    # The judge stage stores that text on the verdict it writes for such a probe.
    [judged] = await JudgeStage(RUN, ScriptedJudge(["BOTH_INCORRECT"])).process(
        [event_of(probe, RUN, checkpoint_id="ckpt-r1")]
    )
    assert judged.payload.prediction_text == garbled and judged.payload.conversation_time == "2025-05-04"


async def test_expand_emits_k_candidates_with_lineage() -> None:
    answer = "INPUT: USER: How did GBP move against JPY in 2019?\nOUTPUT: " + render_action(PREDICTION)
    verdict = verdict_event("PRED_WRONG")
    outputs = await ExpandStage(RUN, ScriptedGenerator(answer), SCENARIOS, k=4).process([verdict])
    assert len(outputs) == 4 and all(isinstance(e.payload, ExpansionCandidate) for e in outputs)
    assert all(e.parent_ids == [verdict.event_id] and e.payload.count == 4 for e in outputs)
    ok, broken = outputs[0].payload, outputs[1].payload
    assert ok.parse_error is None and ok.label == PREDICTION and ok.messages[0].role == "user"
    assert broken.parse_error and broken.label is None
    assert len({e.event_id for e in outputs}) == 4


# --- verify ----------------------------------------------------------------------------------------


def candidate(label: Action | None = PREDICTION, parse_error: str | None = None) -> Event[ExpansionCandidate]:
    return event_of(
        ExpansionCandidate(
            candidate_id=f"c-{id(label)}-{parse_error}",
            seed_sample_id="s_1",
            round=1,
            verdict_event_id="v",
            index=0,
            count=4,
            scenario=SCENARIOS[0],
            tools=[FLUCTUATION],
            messages=CONTEXT if label else [],
            label=label,
            parse_error=parse_error,
        ),
        RUN,
    )


def test_rule_tier() -> None:
    assert rule_tier(candidate().payload) == []
    assert rule_tier(candidate(Action(text="Which dates?")).payload) == []  # a clarification is a valid step
    assert [v.code for v in rule_tier(candidate(None, "no OUTPUT").payload)] == ["unparseable"]
    assert [v.code for v in rule_tier(candidate(BROKEN).payload)] == ["missing_required"] * 3


class ScriptedVerifier:
    model_name = "verifier"

    def __init__(self, answers: Sequence[str]):
        self.answers = list(answers)
        self.cases: list[VerificationCase] = []
        self.attempts: list[int] = []

    async def ask(self, cases: Sequence[VerificationCase], attempt: int = 1) -> list[str]:
        self.cases.extend(cases)
        self.attempts.extend(attempt for _ in cases)
        return [self.answers.pop(0) for _ in cases]


async def test_verify_two_tiers_and_accepted_sample() -> None:
    good, broken = candidate(), candidate(BROKEN)
    verifier = ScriptedVerifier(["hmm", "CORRECT\nReason: fine."])
    outputs = await VerifyStage(RUN, verifier).process([good, broken])
    results = {e.payload.candidate_id: e for e in outputs if isinstance(e.payload, VerificationResult)}
    assert results[broken.payload.candidate_id].payload.failed_tier == "rules"
    accepted = results[good.payload.candidate_id]
    assert accepted.payload.passed and accepted.payload.llm_verdict == "CORRECT"
    assert len(verifier.cases) == 2 and verifier.attempts[1] == 2  # the unreadable answer was retried
    [added] = [e for e in outputs if isinstance(e.payload, SampleAdded)]
    assert added.payload.origin == "expansion" and added.payload.seed_sample_id == "s_1"
    assert added.parent_ids == [good.event_id, accepted.event_id]
    refused = await VerifyStage(RUN, ScriptedVerifier(["INCORRECT\nReason: wrong dates."])).process(
        [candidate()]
    )
    assert refused[0].payload.failed_tier == "llm" and refused[0].payload.reason == "wrong dates."


# --- stage isolation ---------------------------------------------------------------------------------


class Picky(Stage):
    name = "picky"
    input_topics = ("verdicts",)
    input_types = ("Verdict",)

    def __init__(self) -> None:
        super().__init__(RUN)
        self.calls = 0

    async def handle(self, events: Sequence[Event]) -> list[Event]:
        self.calls += 1
        if any(e.payload.verdict == "BOTH_WRONG" for e in events):
            raise ValueError("poison")
        if any(e.payload.verdict == "UNPARSEABLE" for e in events):
            raise TransientError("endpoint down")
        return [correction_for(e, self.producer) or e for e in events]


async def test_poison_input_is_dead_lettered_and_the_rest_goes_on() -> None:
    stage = Picky()
    good, poison = verdict_event("LABEL_WRONG"), verdict_event("BOTH_WRONG")
    outputs = await stage.process([good, poison])
    letters = [e for e in outputs if isinstance(e.payload, DeadLetter)]
    assert len(outputs) == 2 and len(letters) == 1
    assert letters[0].payload.source_ref == poison.event_id and "poison" in letters[0].payload.reason
    assert await stage.process([good, poison]) == []  # already processed: deduplicated


async def test_a_poison_input_redelivered_after_a_crash_gets_the_same_dead_letter() -> None:
    # A worker killed after publishing its outputs but before committing its input offset: the next
    # worker (a fresh process, so nothing is deduplicated in memory) processes the same batch again.
    good, poison = verdict_event("LABEL_WRONG"), verdict_event("BOTH_WRONG")
    first = await Picky().process([good, poison])
    again = await Picky().process([good, poison])
    assert [e.event_id for e in again] == [e.event_id for e in first]
    assert [e.payload for e in again] == [e.payload for e in first]
    # Another failure of the same input (a redriven event failing anew) is a letter of its own.
    [letter] = [e for e in first if isinstance(e.payload, DeadLetter)]
    other = Picky().dead_letter(poison, ValueError("another cause"))
    assert other.event_id != letter.event_id and other.parent_ids == letter.parent_ids


class Runaway(Picky):
    """Passes verdicts on; a BOTH_WRONG one with an answer too big for any message (a runaway endpoint)."""

    async def handle(self, events: Sequence[Event]) -> list[Event]:
        outputs = []
        for event in events:
            if event.payload.verdict == "BOTH_WRONG":
                answer = "again " * (MAX_EVENT_BYTES // 6 + 1)
                event = event.model_copy(
                    update={"payload": event.payload.model_copy(update={"raw_response": answer})}
                )
            outputs.append(event)
        return outputs


async def test_an_output_too_big_to_send_dead_letters_its_input_instead_of_halting_the_stage() -> None:
    good, runaway = verdict_event("LABEL_WRONG"), verdict_event("BOTH_WRONG")
    outputs = await Runaway().process([good, runaway])
    sizes = [len(default_codec().encode(event)) for event in outputs]
    assert max(sizes) <= MAX_EVENT_BYTES  # every output can be sent: the worker goes on
    [letter] = [e for e in outputs if isinstance(e.payload, DeadLetter)]
    assert letter.payload.source_ref == runaway.event_id and letter.parent_ids == [runaway.event_id]
    assert "Verdict encodes to" in letter.payload.reason and "bytes, over the" in letter.payload.reason
    assert [e.event_id for e in outputs if not isinstance(e.payload, DeadLetter)] == [good.event_id]


async def test_transient_errors_propagate_and_nothing_is_marked_done() -> None:
    stage = Picky()
    down = verdict_event("UNPARSEABLE")
    with pytest.raises(TransientError):
        await stage.process([down])
    assert down.event_id not in stage.seen


async def test_expand_types_a_qwen3_coder_generators_xml_arguments_by_the_seeds_tools() -> None:
    """A generator that writes its calls as Qwen3-Coder does (``<parameter=days>3``): the seed's tools say
    ``days`` is an integer and ``zip`` a string; without them every such call was a parse error."""
    forecast = ToolSpec.from_openai(
        {
            "name": "get_forecast",
            "parameters": {
                "type": "object",
                "properties": {"zip": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["zip", "days"],
            },
        }
    )

    def qwen3_coder_call(zip_code: str, days: int) -> str:
        return (
            f"<tool_call>\n<function=get_forecast>\n<parameter=zip>\n{zip_code}\n</parameter>\n"
            f"<parameter=days>\n{days}\n</parameter>\n</function>\n</tool_call>"
        )

    answer = (
        f"INPUT:\nUSER: Forecast for 75001, next 2 days.\nASSISTANT: {qwen3_coder_call('75001', 2)}\n"
        'TOOL: <tool_response>{"days": []}</tool_response>\n'
        f"USER: Now Berlin's 10115 for three days.\nOUTPUT:\n{qwen3_coder_call('10115', 3)}"
    )
    payload = verdict_event("PRED_WRONG").payload.model_copy(update={"tools": [forecast]})
    outputs = await ExpandStage(RUN, ScriptedGenerator(answer), SCENARIOS, k=1).process(
        [event_of(payload, RUN)]
    )
    [candidate_] = [e.payload for e in outputs]
    assert candidate_.parse_error is None, candidate_.parse_error
    assert candidate_.label == Action(
        calls=[ToolCall(name="get_forecast", arguments={"zip": "10115", "days": 3})]
    )
    assert candidate_.messages[1].tool_calls == [
        ToolCall(name="get_forecast", arguments={"zip": "75001", "days": 2})
    ]
    assert rule_tier(candidate_) == []


def _fluctuation_block(base: str, symbols: str) -> str:
    arguments = {"start_date": "2020-01-01", "end_date": "2021-01-01", "base": base, "symbols": symbols}
    return render_action(Action(calls=[ToolCall(name="get_exchange_fluctuation", arguments=arguments)]))


async def test_a_candidate_whose_output_repeats_a_call_is_refused_by_the_rules() -> None:
    """The degenerate loop of the paper's Figure 15: the generator wrote the same call again and again.
    Every copy was schema-valid, so the rule tier passed it and the verifier's CORRECT let it in."""
    looping = "INPUT: USER: How did the Euro move against the Dollar in 2020?\nOUTPUT: " + "\n".join(
        [_fluctuation_block("eur", "usd")] * 3
    )
    [expanded] = await ExpandStage(RUN, ScriptedGenerator(looping), SCENARIOS, k=1).process(
        [verdict_event("PRED_WRONG")]
    )
    assert expanded.payload.parse_error is None and expanded.payload.label is not None
    assert len(expanded.payload.label.calls) == 3
    violations = rule_tier(expanded.payload)
    assert [(v.code, v.call_index) for v in violations] == [("repeated_call", 1), ("repeated_call", 2)]
    assert "call 2 repeats call 1: get_exchange_fluctuation" in violations[0].message
    [result] = await VerifyStage(RUN, ScriptedVerifier(["CORRECT\nReason: fine."])).process([expanded])
    assert result.payload.failed_tier == "rules" and not result.payload.passed
    assert "repeats call 1" in result.payload.reason
    # Parallel calls that differ in their arguments are no loop.
    parallel = "INPUT: USER: How did the Euro and the Pound move against the Dollar in 2020?\nOUTPUT: " + (
        _fluctuation_block("usd", "eur") + "\n" + _fluctuation_block("usd", "gbp")
    )
    [expanded] = await ExpandStage(RUN, ScriptedGenerator(parallel), SCENARIOS, k=1).process(
        [verdict_event("PRED_WRONG")]
    )
    assert expanded.payload.label is not None and len(expanded.payload.label.calls) == 2
    assert rule_tier(expanded.payload) == []


async def test_a_candidate_whose_input_turn_repeats_a_call_is_refused_by_the_rules() -> None:
    """An INPUT assistant turn that writes the same call twice is the loop the OUTPUT is refused for:
    the model learns to condition on it. Only the OUTPUT was checked, so the verifier's CORRECT let it in."""
    answer = (
        "INPUT:\nUSER: How did the Euro move against the Dollar in 2020?\n"
        f"ASSISTANT: {_fluctuation_block('eur', 'usd')}\n{_fluctuation_block('eur', 'usd')}\n"
        'TOOL: <tool_response>{"change": -0.02}</tool_response>\n'
        'TOOL: <tool_response>{"change": -0.02}</tool_response>\n'
        "USER: And the Pound?\n"
        "OUTPUT: " + _fluctuation_block("gbp", "usd")
    )
    [expanded] = await ExpandStage(RUN, ScriptedGenerator(answer), SCENARIOS, k=1).process(
        [verdict_event("PRED_WRONG")]
    )
    assert expanded.payload.parse_error is None
    assert len(expanded.payload.messages[1].tool_calls or []) == 2
    [violation] = rule_tier(expanded.payload)
    assert violation.code == "repeated_call"
    assert violation.message == (
        "INPUT turn 2: call 2 repeats call 1: get_exchange_fluctuation with the same arguments"
    )
    assert violation.path == "messages[1].tool_calls[1]" and violation.call_index is None
    [result] = await VerifyStage(RUN, ScriptedVerifier(["CORRECT\nReason: fine."])).process([expanded])
    assert result.payload.failed_tier == "rules" and not result.payload.passed
    assert "INPUT turn 2: call 2 repeats call 1" in result.payload.reason


async def test_a_candidate_whose_input_calls_a_tool_not_offered_is_refused_by_the_rules() -> None:
    """The generator invented a lookup tool for the INPUT's first step (the seed offers one tool): the
    sample would teach calling it. It was only checked in the OUTPUT, so the verifier's CORRECT let it in."""
    answer = (
        "INPUT:\nUSER: How did the Pound move against the Yen in 2019?\n"
        "ASSISTANT: <tool_call>\n"
        '{"name": "lookup_currency_code", "arguments": {"currency": "Pound"}}\n</tool_call>\n'
        'TOOL: <tool_response>{"code": "GBP"}</tool_response>\n'
        "OUTPUT: " + render_action(PREDICTION)
    )
    [expanded] = await ExpandStage(RUN, ScriptedGenerator(answer), SCENARIOS, k=1).process(
        [verdict_event("PRED_WRONG")]
    )
    assert expanded.payload.parse_error is None
    [violation] = rule_tier(expanded.payload)
    assert violation.code == "unknown_function" and "lookup_currency_code" in violation.message
    assert violation.path == "messages[1].tool_calls[0]" and violation.call_index is None
    outputs = await VerifyStage(RUN, ScriptedVerifier(["CORRECT\nReason: fine."])).process([expanded])
    assert [e.payload.failed_tier for e in outputs] == ["rules"]
