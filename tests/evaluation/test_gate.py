"""The promotion gate: decisions on scripted evaluations, its events, the stage (alone and restarted on the
broker), and what the probe and the trainer follow in their promoted modes."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from bus.kafka import EventProducer, ensure_topics, replay, run_log
from evaluation.gate import (
    HELDOUT,
    Figure,
    PromoteSettings,
    PromotionLedger,
    decide,
    gate_figures,
    promoted_parent,
)
from looptool.config import Settings, load_settings
from schemas.codec import EventCodec, default_codec
from schemas.events import (
    CheckpointEvaluated,
    CheckpointPublished,
    Event,
    PolicyPromoted,
    Producer,
    PromotionRefused,
    make_event,
)
from schemas.registry import SchemaRegistry, load_frozen
from streams.promote import PromotedCheckpointWatcher, PromoteStage
from trainer.service import TrainerLedger

EVALUATOR = Producer(stage="evaluate", version="1")
TRAINER = Producer(stage="train", version="1")
MULTI = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")
SINGLE = ("simple_python", "multiple", "parallel", "parallel_multiple", "live_simple", "irrelevance")


def evaluation(
    checkpoint: str,
    round_: int,
    *,
    correct: dict[str, int],
    total: int = 10,
    heldout: tuple[int, int] | None = (50, 100),
    final: bool = True,
    run_id: str = "r",
) -> Event[CheckpointEvaluated]:
    """A scripted CheckpointEvaluated: ``correct`` per category out of ``total`` each."""
    totals = dict.fromkeys(correct, total)
    return make_event(
        CheckpointEvaluated(
            checkpoint_id=checkpoint,
            round=round_,
            step=10 * round_,
            final=final,
            suite="bfcl-v4",
            suite_version="2026.3.23",
            categories=list(correct),
            correct=correct,
            total=totals,
            accuracy={c: k / total for c, k in correct.items()},
            uri=f"/models/{checkpoint}",
            heldout_correct=heldout[0] if heldout else None,
            heldout_total=heldout[1] if heldout else None,
            heldout_source="heldout.jsonl@abc" if heldout else None,
        ),
        run_id=run_id,
        producer=EVALUATOR,
        checkpoint_id=checkpoint,
    )


def scores(single: int, multi: int) -> dict[str, int]:
    return {**dict.fromkeys(SINGLE, single), **dict.fromkeys(MULTI, multi)}


# --- the pure rule --------------------------------------------------------------------------------


def test_figures_are_read_from_an_evaluation() -> None:
    figures = gate_figures(
        evaluation("a", 1, correct=scores(5, 2)).payload, [HELDOUT, "overall", "multi_turn", *MULTI[:1]]
    )
    assert (figures[HELDOUT].value, figures[HELDOUT].items) == (0.5, 100)
    assert figures[HELDOUT].basis == "held-out heldout.jsonl@abc"
    assert (figures["multi_turn"].value, figures["multi_turn"].items) == (pytest.approx(0.2), 40)
    assert (figures["multi_turn_base"].value, figures["multi_turn_base"].items) == (0.2, 10)
    assert "2026.3.23" in figures["overall"].basis and "multi_turn_base:10" in figures["overall"].basis
    # BFCL's weights: (10 non-live + 10 live + 10 irrelevance) at 0.5, 30 multi-turn at 0.2
    assert figures["overall"].value == pytest.approx((30 * 0.5 + 30 * 0.2) / 60)
    assert figures["overall"].items == 100
    assert HELDOUT not in gate_figures(
        evaluation("a", 1, correct=scores(5, 2), heldout=None).payload, [HELDOUT]
    )


def test_figures_measured_differently_are_not_compared_even_with_equal_counts() -> None:
    """A held-out file of the same size, another reading of BFCL outputs, other categories with the
    same item count: each was promoted as a gain of 20-30 points."""
    settings = PromoteSettings(bfcl=["overall"])
    base = evaluation("a", 1, correct=scores(5, 5)).payload
    other_file = base.model_copy(update={"heldout_correct": 80, "heldout_source": "other.jsonl@def"})
    repaired = base.model_copy(update={"output_reading": "repair", "correct": scores(9, 9)})
    for candidate, figure in ((other_file, HELDOUT), (repaired, "overall")):
        decision = decide(
            gate_figures(candidate, settings.gated()), gate_figures(base, settings.gated()), settings
        )
        assert not decision.promote and decision.incomparable == [figure], decision.reason
        assert "measured on other items" in decision.reason


def test_tolerances_for_unknown_figures_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown figures \['heldout'\]"):
        PromoteSettings(tolerances={"heldout": 0.05})
    assert PromoteSettings(tolerances={HELDOUT: 0.05, "overall": 0.02}).tolerance_of(HELDOUT) == 0.05


def test_a_refusal_never_prints_a_drop_beyond_the_tolerance_as_equal_to_it() -> None:
    settings = PromoteSettings(bfcl=[])
    decision = decide({HELDOUT: Figure(197 / 299, 299)}, {HELDOUT: Figure(200 / 299, 299)}, settings)
    assert not decision.promote and "-1.003 pts (tolerance 1.00)" in decision.reason


async def test_a_failing_evaluation_in_a_batch_does_not_swallow_the_others_decision() -> None:
    """Decided together with a malformed evaluation, a good one was marked decided before the batch
    failed, so deciding the batch again one by one skipped it: its decision was never published."""
    stage = PromoteStage("r", PromoteSettings(bfcl=["overall"]))
    good = evaluation("a", 1, correct=scores(5, 5))
    broken = evaluation("x", 2, correct=scores(5, 5))
    broken.payload.correct.pop("multi_turn_base")  # a total with no correct count
    outputs = await stage.process([good, broken])
    kinds = sorted(type(event.payload).__name__ for event in outputs)
    assert kinds == ["DeadLetter", "PolicyPromoted"]
    assert stage.ledger.promoted is not None and stage.ledger.promoted.checkpoint_id == "a"


async def test_the_promoted_policy_evaluated_again_becomes_the_baseline() -> None:
    """After [eval] limit changed, every later checkpoint (and the promoted one itself) was refused as
    not comparable, for good."""
    stage = PromoteStage("r", PromoteSettings(bfcl=["overall"]))
    await stage.process([evaluation("a", 1, correct=scores(5, 5))])
    again = evaluation("a", 1, correct=scores(10, 10), total=20, heldout=(50, 100))
    (rebased,) = await stage.process([again])
    assert isinstance(rebased.payload, PolicyPromoted) and rebased.payload.checkpoint_id == "a"
    (next_one,) = await stage.process([evaluation("b", 2, correct=scores(10, 10), total=20)])
    assert isinstance(next_one.payload, PolicyPromoted), next_one.payload.reason


@pytest.mark.parametrize(
    ("candidate", "baseline", "promote", "regressions"),
    [
        ({HELDOUT: 0.50, "overall": 0.40}, {HELDOUT: 0.50, "overall": 0.40}, True, []),
        ({HELDOUT: 0.55, "overall": 0.39}, {HELDOUT: 0.50, "overall": 0.40}, True, []),  # -1 pt: tolerated
        (
            {HELDOUT: 0.49, "overall": 0.40},
            {HELDOUT: 0.50, "overall": 0.40},
            True,
            [],
        ),  # exactly the tolerance
        ({HELDOUT: 0.48, "overall": 0.45}, {HELDOUT: 0.50, "overall": 0.40}, False, [HELDOUT]),
        ({HELDOUT: 0.50, "overall": 0.30}, {HELDOUT: 0.50, "overall": 0.40}, False, ["overall"]),
        ({HELDOUT: 0.40, "overall": 0.30}, {HELDOUT: 0.50, "overall": 0.40}, False, [HELDOUT, "overall"]),
    ],
)
def test_decisions_on_scripted_figures(
    candidate: dict[str, float], baseline: dict[str, float], promote: bool, regressions: list[str]
) -> None:
    settings = PromoteSettings(tolerance=0.01)
    decision = decide(
        {n: Figure(v, 100) for n, v in candidate.items()},
        {n: Figure(v, 100) for n, v in baseline.items()},
        settings,
    )
    assert decision.promote is promote and decision.regressions == regressions
    assert decision.figures == candidate and decision.baseline_figures == baseline
    assert decision.deltas == pytest.approx({n: candidate[n] - baseline[n] for n in candidate})
    assert ("regressed" in decision.reason) is not promote


def test_first_decision_missing_figures_incomparable_sets_and_per_figure_tolerances() -> None:
    settings = PromoteSettings(bfcl=["overall", "multi_turn"], tolerance=0.0, tolerances={"multi_turn": 0.05})
    first = decide(
        {HELDOUT: Figure(0.1, 10), "overall": Figure(0.1, 10), "multi_turn": Figure(0.0, 4)}, None, settings
    )
    assert first.promote and first.reason == "no promoted policy yet"
    missing = decide({"overall": Figure(0.9, 10), "multi_turn": Figure(0.9, 4)}, None, settings)
    assert not missing.promote and missing.missing == [HELDOUT] and "heldout_path" in missing.reason
    base = {HELDOUT: Figure(0.5, 10), "overall": Figure(0.5, 10), "multi_turn": Figure(0.5, 4)}
    other_items = decide({**base, "overall": Figure(0.9, 20)}, base, settings)
    assert (
        not other_items.promote
        and other_items.incomparable == ["overall"]
        and "20 vs 10" in other_items.reason
    )
    tolerated = decide({**base, "multi_turn": Figure(0.46, 4)}, base, settings)
    assert tolerated.promote  # multi_turn may drop 5 points
    strict = decide({**base, "overall": Figure(0.49, 10)}, base, settings)
    assert not strict.promote and strict.regressions == ["overall"]  # tolerance 0 elsewhere
    with pytest.raises(ValueError, match="unknown BFCL figures"):
        PromoteSettings(bfcl=["overal"])
    assert load_settings(None, promote={"bfcl": ["multi_turn_base"], "tolerance": 0.02}).promote.gated() == [
        HELDOUT,
        "multi_turn_base",
    ]


# --- the stage and its events -----------------------------------------------------------------------


async def test_the_stage_promotes_holds_and_refuses_on_a_scripted_run() -> None:
    stage = PromoteStage("r", PromoteSettings(bfcl=["overall", "multi_turn"], tolerance=0.02))
    run = [
        evaluation("c1", 1, correct=scores(4, 1)),  # first: promoted
        evaluation("c2-mid", 2, correct=scores(0, 0), final=False),  # not final: no decision
        evaluation("c2", 2, correct=scores(5, 2), heldout=(55, 100)),  # better everywhere: promoted
        evaluation("c3", 3, correct=scores(7, 0), heldout=(60, 100)),  # multi-turn collapses: refused
        evaluation("c4", 4, correct=scores(5, 2), heldout=(54, 100)),  # held-out -1 pt vs c2: promoted
    ]
    outputs = await stage.process(run)
    assert [type(e.payload).__name__ for e in outputs] == [
        "PolicyPromoted",
        "PolicyPromoted",
        "PromotionRefused",
        "PolicyPromoted",
    ]
    first, second, refused, fourth = (e.payload for e in outputs)
    assert first.previous_checkpoint_id is None and first.uri == "/models/c1"
    assert second.previous_checkpoint_id == "c1" and second.previous_figures == first.figures
    assert isinstance(refused, PromotionRefused)
    assert refused.promoted_checkpoint_id == "c2" and refused.regressions == ["multi_turn"]
    assert refused.figures["multi_turn"] == 0.0 and refused.promoted_figures["multi_turn"] == pytest.approx(
        0.2
    )
    assert refused.deltas[HELDOUT] == pytest.approx(0.05)  # both sets of figures, and their differences
    assert fourth.previous_checkpoint_id == "c2" and fourth.deltas[HELDOUT] == pytest.approx(-0.01)
    assert all(e.parent_ids == [run[i].event_id] for e, i in zip(outputs, (0, 2, 3, 4), strict=True))
    # Redelivery decides nothing again; the events survive the codec.
    assert await PromoteStage("r").process([]) == []
    assert await stage.process(run) == []
    codec = default_codec()
    assert [codec.decode(codec.encode(e)) for e in outputs] == outputs
    # Ids derive from the evaluation and the gate's configuration.
    again = await PromoteStage("r", PromoteSettings(bfcl=["overall", "multi_turn"], tolerance=0.02)).process(
        run[:1]
    )
    other = await PromoteStage("r", PromoteSettings(tolerance=0.05)).process(run[:1])
    assert again[0].event_id == outputs[0].event_id != other[0].event_id


async def test_a_restarted_gate_continues_from_the_promotions_topic(settings: Settings) -> None:
    await ensure_topics(settings.kafka, settings.run_id)
    run = [
        evaluation("c1", 1, correct=scores(4, 1), run_id=settings.run_id),
        evaluation("c2", 2, correct=scores(2, 0), heldout=(40, 100), run_id=settings.run_id),
    ]
    first = PromoteStage(settings.run_id, settings.promote, run_log(settings))
    await first.start()
    decided = await first.process(run[:1])
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all(decided)
    restarted = PromoteStage(settings.run_id, settings.promote, run_log(settings))
    await restarted.start()
    assert restarted.ledger.promoted is not None and restarted.ledger.promoted.checkpoint_id == "c1"
    assert await restarted.process(run[:1]) == []  # decided before the restart
    (refusal,) = await restarted.process(run[1:])
    assert isinstance(refusal.payload, PromotionRefused) and refusal.payload.promoted_checkpoint_id == "c1"
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all([refusal])
    found = [
        d.event async for batch in replay(settings.kafka, settings.run_id, ["promotions"]) for d in batch
    ]
    assert [e.event_id for e in found] == [decided[0].event_id, refusal.event_id]


def test_version_1_evaluations_still_decode_and_are_gated_on_bfcl() -> None:
    """Events written before v2 (no uri, steps, error types or held-out figures) read with defaults."""
    frozen = load_frozen()["CheckpointEvaluated"]
    old_registry = SchemaRegistry({"CheckpointEvaluated": frozen[:1]})
    event = evaluation("old", 1, correct=scores(3, 0), heldout=None)
    written = EventCodec(old_registry).encode(event)
    decoded = default_codec().decode(written)
    assert decoded.schema_version == 1
    assert (
        decoded.payload.uri is None and decoded.payload.steps == {} and decoded.payload.heldout_total is None
    )
    assert decoded.payload.correct == event.payload.correct
    figures = gate_figures(decoded.payload, PromoteSettings(heldout=False, bfcl=["overall"]).gated())
    assert set(figures) == {"overall"}


# --- consumers that follow the promoted policy --------------------------------------------------------


def published(checkpoint: str, round_: int, *, final: bool = True) -> Event[CheckpointPublished]:
    return make_event(
        CheckpointPublished(
            new_checkpoint_id=checkpoint,
            round=round_,
            step=10 * round_,
            final=final,
            uri=f"/models/{checkpoint}",
            backend="cpu",
        ),
        run_id="r",
        producer=TRAINER,
    )


async def decisions(*run: Event[CheckpointEvaluated]) -> list[Event[Any]]:
    return await PromoteStage("r", PromoteSettings(heldout=False, bfcl=["overall"])).process(list(run))


async def test_the_probe_follows_the_promoted_policy() -> None:
    watcher = PromotedCheckpointWatcher(None, "r")
    for event in (published("c1", 1), published("c2-mid", 2, final=False), published("c2", 2)):
        await watcher.publish(event)
    assert watcher.current(1, "promoted") is None  # round 1 not decided yet
    made = await decisions(
        evaluation("c1", 1, correct=scores(5, 5)), evaluation("c2", 2, correct=scores(1, 1))
    )
    waiter = asyncio.create_task(watcher.wait_for(1, "promoted"))
    await asyncio.sleep(0)
    assert not waiter.done()
    await watcher.publish(made[0])
    assert (await asyncio.wait_for(waiter, 1)).payload.new_checkpoint_id == "c1"
    await watcher.publish(made[1])  # c2 regressed: D_2 is probed with c1, not with round 2's final
    assert isinstance(made[1].payload, PromotionRefused)
    assert watcher.current(2, "promoted").payload.new_checkpoint_id == "c1"  # type: ignore[union-attr]
    assert watcher.current(2, "final").payload.new_checkpoint_id == "c2"  # type: ignore[union-attr]
    assert watcher.current(2, "latest").payload.new_checkpoint_id == "c2"  # type: ignore[union-attr]


async def test_the_trainer_continues_from_the_promoted_policy() -> None:
    checkpoints = [published("c1", 1), published("c2", 2)]
    made = await decisions(
        evaluation("c1", 1, correct=scores(5, 5)), evaluation("c2", 2, correct=scores(1, 1))
    )
    ledger = PromotionLedger()
    assert promoted_parent(ledger, checkpoints, 2) == (False, None)  # waits for round 1's decision
    for event in made:
        ledger.add(event.event_id, event.payload)
    assert promoted_parent(ledger, checkpoints, 2) == (True, checkpoints[0])
    assert promoted_parent(ledger, checkpoints, 3) == (True, checkpoints[0])  # c2 refused: c1 again
    assert promoted_parent(ledger, checkpoints[1:], 3) == (False, None)  # c1's event not read yet

    trainer = TrainerLedger(promotions=PromotionLedger())
    for event in checkpoints:
        trainer.add(event)
    assert trainer.parent(3) == (False, None)
    for event in made:
        trainer.add(event)
    assert trainer.parent(3) == (True, checkpoints[0])
    plain = TrainerLedger()  # start_from = "previous": round j-1's final checkpoint, no gate involved
    for event in [*checkpoints, *made]:
        plain.add(event)
    assert plain.parent(3) == (True, checkpoints[1])
    refused_first = PromotionLedger()
    (only,) = await PromoteStage("r", PromoteSettings()).process(
        [evaluation("c1", 1, correct=scores(5, 5), heldout=None)]
    )
    assert isinstance(only.payload, PromotionRefused) and only.payload.missing == [HELDOUT]
    refused_first.add(only.event_id, only.payload)
    assert promoted_parent(refused_first, checkpoints, 2) == (
        True,
        None,
    )  # nothing promoted: the initial policy
    assert isinstance(made[0].payload, PolicyPromoted)


async def test_the_trainer_service_starts_a_round_from_the_promoted_policy(
    settings: Settings, long_context_tiny_policy: Path, tmp_path: Path
) -> None:
    """Round 2's checkpoint regressed and was refused: round 3 trains from round 1's, the promoted one."""
    from tests.trainer import toy
    from tests.trainer.test_service import RecordingBackend, final_of, publish, run_until_idle, with_policy
    from trainer.config import TrainerSettings

    regressed = tmp_path / "round-2-model"
    shutil.copytree(long_context_tiny_policy, regressed)
    first, second = (
        final_of(1, str(long_context_tiny_policy), settings.run_id),
        final_of(2, str(regressed), settings.run_id),
    )
    gate = PromoteStage(settings.run_id, PromoteSettings(heldout=False))
    made = await gate.process(
        [
            evaluation(first.payload.new_checkpoint_id, 1, correct=scores(5, 5), run_id=settings.run_id),
            evaluation(second.payload.new_checkpoint_id, 2, correct=scores(1, 1), run_id=settings.run_id),
        ]
    )
    assert [type(e.payload).__name__ for e in made] == ["PolicyPromoted", "PromotionRefused"]
    rounds = [toy.round_events(settings.run_id, ("Paris",), round_=r) for r in (1, 2, 3)]
    await publish(settings, [*rounds[0], first, *rounds[1], second, *rounds[2]])
    promoted = TrainerSettings(output_dir=tmp_path / "checkpoints", start_from="promoted")
    recorder = RecordingBackend()
    # Without the gate's decisions round 3 waits: nothing is trained.
    assert await run_until_idle(with_policy(settings, long_context_tiny_policy), promoted, recorder) == []
    await publish(settings, made)
    (event,) = await run_until_idle(with_policy(settings, long_context_tiny_policy), promoted, recorder)
    assert recorder.calls == [(3, long_context_tiny_policy, 1)]
    assert event.payload.round == 3 and event.payload.parent_checkpoint_id == first.payload.new_checkpoint_id
    # The default (start_from = "previous") would have started from round 2's final checkpoint.
    ledger = TrainerLedger()
    for item in [*rounds[0], first, *rounds[1], second, *rounds[2]]:
        ledger.add(item)
    assert ledger.parent(3) == (True, second)


async def test_stats_show_bfcl_figures_and_the_gates_decisions(tmp_path: Path) -> None:
    from evaluation.report import plot_by_round
    from views.analytics import StatsCollector, tables_text

    run = [evaluation("c1", 1, correct=scores(5, 5)), evaluation("c2", 2, correct=scores(1, 1))]
    made = await PromoteStage("r", PromoteSettings(bfcl=["multi_turn"])).process(run)
    collector = StatsCollector()
    assert tables_text(collector.stats()).count("Promotion gate") == 0  # no such tables in a run without them
    collector.add_all([*run, *made, *made])
    stats = collector.stats()
    assert len(stats.evaluations) == 2 and len(stats.promotions) == 2  # redelivered decisions count once
    text = tables_text(stats, width=260)
    assert "Checkpoint evaluations" in text and "Multi-Turn" in text and "Held-out ToolMatch" in text
    assert "Promotion gate" in text and "promoted" in text and "refused" in text
    assert "multi_turn 10.00 vs 50.00" in text and "regressed beyond tolerance" in text
    png = plot_by_round(stats.evaluations, tmp_path / "bfcl.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


class MemoryLog:
    """The run's evaluations and promotions topics in memory (what a gate worker reads back)."""

    run_id = "r"

    def __init__(self) -> None:
        self.events: list[Event[Any]] = []

    async def replay(self, topics: Any) -> Any:
        yield list(self.events)


async def test_a_standby_gate_taking_over_decides_against_what_was_decided_meanwhile() -> None:
    """A standby started before A was promoted took over and promoted C (50 against A's 70) as if
    nothing had been promoted yet."""
    log = MemoryLog()
    active, standby = (
        PromoteStage("r", PromoteSettings(bfcl=[]), log),
        PromoteStage("r", PromoteSettings(bfcl=[]), log),
    )
    await active.start()
    await standby.start()  # before any decision
    strong = evaluation("a", 1, correct=scores(5, 5), heldout=(70, 100))
    log.events.append(strong)
    log.events += await active.process([strong])  # the active gate promotes A, then stops
    weak = evaluation("c", 2, correct=scores(5, 5), heldout=(50, 100))
    log.events.append(weak)
    (decision,) = await standby.process([weak])
    assert isinstance(decision.payload, PromotionRefused), decision.payload.reason
    assert decision.payload.promoted_checkpoint_id == "a"
