"""Curation (Eq. 5) as a pure fold over events: completeness, sources, dedup, determinism, dead letters."""

from __future__ import annotations

import dataclasses
import gc
import random
import types
from typing import Any

from pydantic import BaseModel

from schemas.events import (
    DeadLetter,
    Event,
    ExpansionCandidate,
    LabelCorrected,
    ProbeResult,
    Scenario,
    Verdict,
    VerificationResult,
    derived_event_id,
)
from streams.curate import CurationPolicy, Ledger, initial_round_events, next_round_events
from streams.ingest import sample_added
from tests.foundation.events_factory import FLUCTUATION, event_of
from toolcall.types import Action, Message, Sample, ToolCall

RUN = "cur"
POLICY = CurationPolicy(target_size=30, hppl_quantile=0.5, max_round=3, expansions_per_seed=2)


def call(value: str) -> Action:
    return Action(calls=[ToolCall(name="get_exchange_fluctuation", arguments={"base": value})])


def seed(index: int) -> Event[Any]:
    sample = Sample(
        tools=[FLUCTUATION],
        messages=[Message(role="user", content=f"question {index}")],
        label=call(f"v{index}"),
    )
    return sample_added(sample, run_id=RUN, origin="seed", round_=0, source_format="paper")


def derive(payload: Any, parent: Event[Any], stage: str, extra: str = "") -> Event[Any]:
    return event_of(
        payload, RUN, parent_ids=[parent.event_id], event_id=derived_event_id([parent.event_id], stage, extra)
    )


class RoundScript:
    """Drives round 1 of a small run through every kind of outcome."""

    def __init__(self, seeds: int = 60):
        self.ledger = Ledger()
        self.seeds = [seed(i) for i in range(seeds)]
        for event in self.seeds:
            self.ledger.add(event)
        self.round1 = initial_round_events(self.ledger, POLICY, RUN)
        for event in self.round1:
            self.ledger.add(event)
        self.members = [e for e in self.round1 if e.event_type == "CuratedSample"]
        self.events: list[Event[Any]] = []

    def emit(self, event: Event[Any]) -> Event[Any]:
        self.events.append(event)
        return event

    def probe(self, member: Event[Any], matched: bool, ppl: float) -> Event[Any]:
        p = member.payload
        return self.emit(
            derive(
                ProbeResult(
                    sample_id=p.sample_id,
                    round=1,
                    label_event_id=p.label_event_id,
                    tools=p.tools,
                    messages=p.messages,
                    label=p.label,
                    raw_output="",
                    prediction=p.label if matched else call("model"),
                    matched=matched,
                    ppl=ppl,
                ),
                member,
                "probe",
            )
        )

    def verdict(self, probe: Event[Any], verdict: str) -> Event[Any]:
        p = probe.payload
        return self.emit(
            derive(
                Verdict(
                    sample_id=p.sample_id,
                    round=1,
                    probe_event_id=probe.event_id,
                    tools=p.tools,
                    messages=p.messages,
                    label=p.label,
                    prediction=p.prediction,
                    ppl=p.ppl,
                    verdict=verdict,
                    decided_by="judge",
                ),
                probe,
                "judge",
            )
        )

    def correction(self, verdict: Event[Any]) -> Event[Any]:
        v = verdict.payload
        fix = LabelCorrected(
            sample_id=v.sample_id,
            round=1,
            verdict_event_id=verdict.event_id,
            old_label=v.label,
            new_label=v.prediction,
            reason="judge",
        )
        return self.emit(derive(fix, verdict, "relabel"))

    def expansions(self, verdict: Event[Any], passed: list[bool]) -> None:
        v = verdict.payload
        for index, ok in enumerate(passed):
            candidate = self.emit(
                derive(
                    ExpansionCandidate(
                        candidate_id=f"{v.sample_id}-x{index}",
                        seed_sample_id=v.sample_id,
                        round=1,
                        verdict_event_id=verdict.event_id,
                        index=index,
                        count=len(passed),
                        scenario=Scenario(focus="f", parameters="p"),
                        tools=v.tools,
                        messages=[Message(role="user", content=f"new {v.sample_id} {index}")],
                        label=call(f"new-{v.sample_id}-{index}"),
                    ),
                    verdict,
                    "expand",
                    str(index),
                )
            )
            result = self.emit(
                derive(
                    VerificationResult(
                        candidate_id=candidate.payload.candidate_id,
                        seed_sample_id=v.sample_id,
                        round=1,
                        passed=ok,
                        failed_tier=None if ok else "llm",
                    ),
                    candidate,
                    "verify",
                )
            )
            if ok:
                c = candidate.payload
                sample = Sample(tools=c.tools, messages=c.messages, label=c.label)
                self.emit(
                    sample_added(
                        sample,
                        run_id=RUN,
                        origin="expansion",
                        round_=1,
                        source_format="edde",
                        seed_sample_id=v.sample_id,
                        metadata={"candidate_id": c.candidate_id},
                        parent_ids=[candidate.event_id, result.event_id],
                        event_id=derived_event_id([result.event_id], "verify", "sample"),
                    )
                )

    def play(self) -> dict[str, list[str]]:
        """Outcome per member (the i-th has PPL i+1): 8 matched, 4 PRED_WRONG, 3 LABEL_WRONG,
        3 BOTH_CORRECT (PPL 16-18), 2 BOTH_WRONG, 10 matched (PPL 21-30)."""
        kinds: dict[str, list[str]] = {}
        plan = (
            ["match"] * 8
            + ["PRED_WRONG"] * 4
            + ["LABEL_WRONG"] * 3
            + ["BOTH_CORRECT"] * 3
            + ["BOTH_WRONG"] * 2
        )
        plan += ["match"] * 10
        for index, (member, kind) in enumerate(zip(self.members, plan, strict=True)):
            kinds.setdefault(kind, []).append(member.payload.sample_id)
            probe = self.probe(member, kind == "match", ppl=float(index + 1))
            if kind == "match":
                continue
            verdict = self.verdict(probe, kind)
            if kind == "LABEL_WRONG":
                self.correction(verdict)
            if kind in ("PRED_WRONG", "LABEL_WRONG"):
                self.expansions(verdict, [True, index % 2 == 0])
        return kinds


def test_round_one_is_a_seed_subset() -> None:
    script = RoundScript()
    manifest = script.round1[-1].payload
    assert manifest.round == 1 and manifest.total == 30 == len(script.members)
    assert manifest.counts == {"SEED": 30}
    assert initial_round_events(script.ledger, POLICY, RUN) == []  # opening twice does nothing


def test_round_closes_only_when_every_piece_is_in() -> None:
    script = RoundScript()
    script.play()
    for event in script.events[:-1]:
        script.ledger.add(event)
        assert next_round_events(script.ledger, POLICY, RUN) == []
    script.ledger.add(script.events[-1])
    status = script.ledger.status(1, POLICY.expansions_per_seed)
    assert status.complete and status.verdicts == {
        "PRED_WRONG": 4,
        "LABEL_WRONG": 3,
        "BOTH_CORRECT": 3,
        "BOTH_WRONG": 2,
    }
    assert next_round_events(script.ledger, POLICY, RUN)


def test_next_round_follows_equation_5() -> None:
    script = RoundScript()
    kinds = script.play()
    for event in script.events:
        script.ledger.add(event)
    events = next_round_events(script.ledger, POLICY, RUN)
    members, manifest = events[:-1], events[-1].payload
    by_source: dict[str, list[Any]] = {}
    for member in members:
        by_source.setdefault(member.payload.source, []).append(member.payload)
    # ES: PRED_WRONG as they were, LABEL_WRONG with the corrected label.
    es = {m.sample_id: m for m in by_source["ES"]}
    assert set(es) == set(kinds["PRED_WRONG"]) | set(kinds["LABEL_WRONG"])
    assert all(es[s].label == call("model") for s in kinds["LABEL_WRONG"])
    assert all(es[s].label != call("model") for s in kinds["PRED_WRONG"])
    # EE: every verified expansion (7 seeds: 7 + 4 passed) while there is room.
    assert len(by_source["EE"]) == 7 + 4
    # HPPL candidates: the upper half by PPL of matched and BOTH_CORRECT samples (PPL >= 18 of 21 values).
    outcome = script.ledger.outcome(1, POLICY)
    ppl = {m.payload.sample_id: float(i + 1) for i, m in enumerate(script.members)}
    assert sorted(ppl[s.sample_id] for s in outcome.high_ppl) == [18.0, *map(float, range(21, 31))]
    # Seed-new keeps round(30.8% of 30) = 9 places; the remaining room goes to the highest PPL first.
    assert manifest.counts == {"ES": 7, "EE": 11, "HPPL": 3, "SEED_NEW": 9}
    assert sorted(ppl[m.sample_id] for m in by_source["HPPL"]) == [28.0, 29.0, 30.0]
    assert not set(kinds["BOTH_WRONG"]) & {m.payload.sample_id for m in members}
    assert manifest.round == 2 and manifest.total == len(members) == POLICY.target_size
    trained = {m.payload.sample_id for m in script.members}
    assert not {m.sample_id for m in by_source["SEED_NEW"]} & trained
    assert len({m.payload.content_hash for m in members}) == len(members)  # exact dedup


def test_the_no_hppl_ablation_draws_as_many_correct_samples_at_random() -> None:
    script = RoundScript()
    kinds = script.play()
    for event in script.events:
        script.ledger.add(event)
    by_ppl = script.ledger.outcome(1, POLICY).high_ppl
    at_random = dataclasses.replace(POLICY, hppl_selection="random")
    drawn = script.ledger.outcome(1, at_random).high_ppl
    correct = set(kinds["match"]) | set(kinds["BOTH_CORRECT"])
    assert len(drawn) == len(by_ppl) == 11
    assert {s.sample_id for s in drawn} <= correct
    assert {s.sample_id for s in drawn} != {s.sample_id for s in by_ppl}
    assert script.ledger.outcome(1, at_random).high_ppl == drawn  # deterministic


def test_an_error_seed_cap_leaves_room_for_expansions_and_high_ppl() -> None:
    script = RoundScript()
    kinds = script.play()
    for event in script.events:
        script.ledger.add(event)
    capped = dataclasses.replace(POLICY, max_error_seed_share=0.1)  # 3 of 30 places
    events = next_round_events(script.ledger, capped, RUN)
    members, manifest = events[:-1], events[-1].payload
    es = {m.payload.sample_id for m in members if m.payload.source == "ES"}
    # 3 of the 7 error seeds; the 4 places they leave go to high-PPL samples (EE is already all in).
    assert len(es) == 3 and es <= set(kinds["PRED_WRONG"]) | set(kinds["LABEL_WRONG"])
    assert manifest.counts == {"ES": 3, "EE": 11, "HPPL": 7, "SEED_NEW": 9}
    assert next_round_events(script.ledger, capped, RUN)[-1].payload.counts == manifest.counts


def test_curation_is_deterministic_whatever_the_arrival_order() -> None:
    script = RoundScript()
    script.play()
    outcomes = []
    for shuffle_seed in range(3):
        ledger = Ledger()
        pool = [*script.seeds, *script.round1, *script.events]
        random.Random(shuffle_seed).shuffle(pool)
        for event in pool:
            ledger.add(event)
            ledger.add(event)  # redelivery
        outcomes.append([(e.event_id, e.payload) for e in next_round_events(ledger, POLICY, RUN)])
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_a_curator_killed_while_emitting_a_round_composes_the_same_round_again() -> None:
    """Killed after some of D_2's members were published but before its RoundClosed, the restarted
    curator counted those members as already trained, drew other fresh seeds in their place, and
    the round held 190 members for a manifest of 160 (a fault test's random kill)."""
    script = RoundScript()
    script.play()
    for event in script.events:
        script.ledger.add(event)
    whole = next_round_events(script.ledger, POLICY, RUN)
    members = whole[:-1]
    for member in members[len(members) // 3 :]:  # published, then the kill: no RoundClosed
        script.ledger.add(member)
    again = next_round_events(script.ledger, POLICY, RUN)
    assert [(e.event_id, e.payload) for e in again] == [(e.event_id, e.payload) for e in whole]


def test_dead_lettered_work_is_accounted_for() -> None:
    script = RoundScript()
    kinds = script.play()
    poisoned_probe = next(
        e
        for e in script.events
        if e.event_type == "ProbeResult" and e.payload.sample_id == kinds["PRED_WRONG"][0]
    )
    victim = kinds["PRED_WRONG"][0]
    # The judge never answered that probe, so nothing downstream of it exists.
    kept = [
        e
        for e in script.events
        if poisoned_probe.event_id not in e.parent_ids
        and getattr(e.payload, "seed_sample_id", None) != victim
    ]
    for event in kept:
        script.ledger.add(event)
    assert next_round_events(script.ledger, POLICY, RUN) == []  # the judge has not answered that probe
    letter = event_of(
        DeadLetter(
            stage="judge",
            reason="ValueError: poison",
            error_type="ValueError",
            source_ref=poisoned_probe.event_id,
            raw=b"",
        ),
        RUN,
    )
    script.ledger.add(letter)
    events = next_round_events(script.ledger, POLICY, RUN)
    assert events and victim not in {e.payload.sample_id for e in events[:-1] if e.payload.source == "ES"}


def test_max_round_stops_curation() -> None:
    script = RoundScript()
    script.play()
    for event in script.events:
        script.ledger.add(event)
    policy = CurationPolicy(target_size=30, max_round=1, expansions_per_seed=2)
    assert next_round_events(script.ledger, policy, RUN) == []


def test_replaying_round_one_after_refused_seeds_recomputes_the_same_members() -> None:
    """``looptool replay --round 1`` once curate refused seeds (eval overlap): the refusals are
    DeadLetters among the curator's events, not members (this used to raise AttributeError)."""
    from streams.curate import refusals
    from views.replay import dataset_from_ledger, recompute_round

    def overlaps(sample: Any) -> str | None:
        index = int(sample.messages[0].content.split()[-1])
        return f"question {index} is an evaluation item" if index % 3 == 0 else None

    policy = CurationPolicy(target_size=10, exclude=overlaps)
    upstream = Ledger()
    for event in [seed(i) for i in range(30)]:
        upstream.add(event)
    opened = initial_round_events(upstream, policy, RUN)
    refused = refusals(opened)
    assert len(refused) == 10 and all(e.payload.category for e in refused)
    logged = Ledger()
    for event in [*upstream.samples.values(), *opened]:
        logged.add(event)
    dataset = dataset_from_ledger(logged, 1)
    assert dataset.verified and len(dataset.members) == 10
    check = recompute_round(upstream, dataset, policy, RUN)
    assert check.matches, check.differences


def test_no_quorum_drops_a_sample_or_defers_it_to_the_pool() -> None:
    outcomes = {}
    for deferred in (False, True):
        script = RoundScript(seeds=31)  # D_1 takes 30: one fresh seed is left for round 2
        kinds = script.play()
        both_wrong = set(kinds["BOTH_WRONG"])
        for event in script.events:
            if event.event_type == "Verdict" and event.payload.sample_id in both_wrong:
                payload = event.payload.model_copy(update={"verdict": "NO_QUORUM", "deferred": deferred})
                event = event.model_copy(update={"payload": payload})
            script.ledger.add(event)
        assert script.ledger.status(1, POLICY.expansions_per_seed).verdicts["NO_QUORUM"] == 2
        pool = {sample.sample_id for sample in script.ledger.fresh_seeds()}
        members = next_round_events(script.ledger, POLICY, RUN)[:-1]
        outcomes[deferred] = (pool, {m.payload.sample_id for m in members})
        assert (pool >= both_wrong) if deferred else not (pool & both_wrong)
    dropped_pool, dropped_members = outcomes[False]
    deferred_pool, deferred_members = outcomes[True]
    assert len(dropped_pool) == 1 and len(deferred_pool) == 3  # the fresh seed, and the two deferred
    assert not dropped_members & set(deferred_pool - dropped_pool)
    assert deferred_members >= deferred_pool - dropped_pool  # the fill takes them back into D_2


def test_status_kept_up_to_date_equals_a_status_counted_from_scratch() -> None:
    """The ledger recounts only the members whose chains gained an event since the last status: after
    every event, in any arrival order (redeliveries and dead letters included), its status equals the
    status of a ledger that folded the same events and counts every member for the first time."""
    script = RoundScript()
    kinds = script.play()
    judged = next(
        e
        for e in script.events
        if e.event_type == "Verdict" and e.payload.sample_id == kinds["PRED_WRONG"][1]
    )
    letters = [
        event_of(
            DeadLetter(
                stage=stage, reason="ValueError: poison", error_type="ValueError", source_ref=ref, raw=b""
            ),
            RUN,
        )
        for stage, ref in (("probe", script.members[-1].event_id), ("expand", judged.event_id))
    ]
    for shuffle_seed in range(4):
        pool = [*script.events, *letters, *script.events[:5]]  # the first five arrive twice
        random.Random(shuffle_seed).shuffle(pool)
        ledger, folded = Ledger(), [*script.seeds, *script.round1]
        for event in folded:
            ledger.add(event)
        for step, event in enumerate(pool):
            ledger.add(event)
            folded.append(event)
            for k in (POLICY.expansions_per_seed, None) if step % 3 else (POLICY.expansions_per_seed,):
                fresh = Ledger()
                for seen in folded:
                    fresh.add(seen)
                assert ledger.status(1, k) == fresh.status(1, k), (shuffle_seed, step, event.event_type)
        assert ledger.status(1, POLICY.expansions_per_seed).complete


async def test_the_curator_says_once_that_no_round_is_open_yet() -> None:
    """Seeds ingested, `curate --initial` forgotten: every stage waits; the log says why, once."""
    import asyncio
    from contextlib import asynccontextmanager

    from structlog.testing import capture_logs

    from streams.curate import CurateService, CurationPolicy

    class Log:
        run_id = "r"

        async def follow(self, topics: Any) -> Any:
            for _ in range(3):
                yield []  # caught up, three times over

        @asynccontextmanager
        async def publisher(self) -> Any:
            yield None

    with capture_logs() as logs:
        await asyncio.wait_for(CurateService(Log(), CurationPolicy()).run(asyncio.Event()), 5)  # type: ignore[arg-type]
    waiting = [entry for entry in logs if entry["event"] == "curate.waiting"]
    assert len(waiting) == 1 and "looptool curate --initial" in waiting[0]["reason"]


def _expansion_ids(script: RoundScript, verdict: Event[Any]) -> set[str]:
    return {
        script.ledger.expansions[c.candidate_id].sample_id
        for c in script.ledger.candidates[verdict.event_id].values()
        if c.candidate_id in script.ledger.expansions
    }


def test_a_label_wrong_sample_whose_relabel_failed_is_not_trained_on_its_wrong_label() -> None:
    """The relabel stage dead-lettered the correction: the sample went into D_2 as an error seed
    with the label the judge called wrong, beside expansions built from the judge's call."""
    script = RoundScript()
    wrong = script.play()["LABEL_WRONG"][0]
    verdict = next(e for e in script.events if e.event_type == "Verdict" and e.payload.sample_id == wrong)
    for event in script.events:
        if not (event.event_type == "LabelCorrected" and event.payload.sample_id == wrong):
            script.ledger.add(event)
    failed = DeadLetter(
        stage="relabel", reason="boom", error_type="ValueError", source_ref=verdict.event_id, raw=b""
    )
    script.ledger.add(event_of(failed, RUN))
    events = next_round_events(script.ledger, POLICY, RUN)
    members = {e.payload.sample_id: e.payload for e in events if e.event_type == "CuratedSample"}
    assert wrong not in members
    assert script.ledger.outcome(1, POLICY).dropped.get("LABEL_WRONG_UNCORRECTED") == 1


def test_expansions_of_a_reverted_relabel_stay_out_and_the_sample_keeps_its_label() -> None:
    from schemas.events import Producer
    from streams.relabel import REVERT_STAGE, revert_correction

    script = RoundScript()
    wrong = script.play()["LABEL_WRONG"][0]
    correction = next(
        e for e in script.events if e.event_type == "LabelCorrected" and e.payload.sample_id == wrong
    )
    verdict = next(e for e in script.events if e.event_type == "Verdict" and e.payload.sample_id == wrong)
    revert = revert_correction(
        correction, correction.event_id, "the judge was fooled", Producer(stage=REVERT_STAGE, version="1")
    )
    for event in [*script.events, revert]:
        script.ledger.add(event)
    events = next_round_events(script.ledger, POLICY, RUN)
    members = {e.payload.sample_id: e.payload for e in events if e.event_type == "CuratedSample"}
    assert members[wrong].source == "ES" and members[wrong].label == verdict.payload.label
    built_on_the_overruled_call = _expansion_ids(script, verdict)
    assert built_on_the_overruled_call and not built_on_the_overruled_call & set(members)


def test_duplicate_expansions_never_cost_a_place_a_distinct_one_could_take() -> None:
    """Expansions were subsampled to the free room before duplicates were removed: with 28 verified
    expansions of 14 contents and 14 places, 10 got in and HPPL took the rest."""
    from streams.curate import PoolSample, RoundOutcome, compose_round

    def pool(name: str, content: int) -> PoolSample:
        sample = seed(content).payload
        return PoolSample(name, sample.tools, sample.messages, sample.label, f"e-{name}")

    expansions = [pool(f"x{i}", 100 + i // 2) for i in range(28)]  # each content twice
    high_ppl = [pool(f"h{i}", 200 + i) for i in range(10)]
    policy = dataclasses.replace(POLICY, seed_new_schedule=(1.0, 0.0), max_error_seed_share=None)
    outcome = RoundOutcome([], expansions, high_ppl, {}, [])
    members = compose_round(2, outcome, [], dataclasses.replace(policy, target_size=14), RUN)
    assert [source for _, source in members] == ["EE"] * 14
    assert len({sample.content_hash() for sample, _ in members}) == 14


def test_the_runs_held_out_set_is_never_trained_on(tmp_path: Any) -> None:
    """[eval] heldout_path's samples are "a set no round trains on", but a seed asking one of its
    questions went into D_1: the gate's held-out figure then measured recall."""
    import json

    from looptool.config import load_settings
    from toolcall.types import Sample

    asked = seed(0).payload
    heldout = tmp_path / "heldout.jsonl"
    sample = Sample(tools=asked.tools, messages=asked.messages, label=call("other"))  # same question
    heldout.write_text(json.dumps(sample.model_dump(mode="json")) + "\n")
    settings = load_settings(
        None, run_id=RUN, eval={"heldout_path": heldout, "decontaminate": False}, loop={"target_size": 5}
    )
    ledger = Ledger()
    for index in range(8):
        ledger.add(seed(index))
    events = initial_round_events(ledger, CurationPolicy.from_settings(settings), RUN)
    members = {e.payload.sample_id for e in events if e.event_type == "CuratedSample"}
    refused = [e.payload for e in events if e.event_type == "DeadLetter"]
    assert asked.sample_id not in members and len(members) == 5
    assert len(refused) == 1 and "held-out set heldout.jsonl" in refused[0].reason


def test_the_next_round_does_not_depend_on_which_of_two_identical_adds_arrived_first() -> None:
    """A fresh seed and a verified expansion of the same content (one sample id): the first to
    arrive decided its origin, so whether it was a fresh seed, so D_2 and its manifest hash."""
    script = RoundScript(seeds=40)
    script.play()
    trained = {m.payload.sample_id for m in script.members}
    twin_seed = next(e for e in script.seeds if e.payload.sample_id not in trained)
    content = Sample(
        tools=twin_seed.payload.tools, messages=twin_seed.payload.messages, label=twin_seed.payload.label
    )
    twin = sample_added(
        content,
        run_id=RUN,
        origin="expansion",
        round_=1,
        source_format="edde",
        seed_sample_id="s_other",
        metadata={"candidate_id": "twin"},
        event_id=derived_event_id([twin_seed.event_id], "verify", "twin"),
    )
    assert twin.payload.sample_id == twin_seed.payload.sample_id

    def next_round(first: list[Event[Any]]) -> Any:
        ledger = Ledger()
        for event in [
            *first,
            *(e for e in script.seeds if e is not twin_seed),
            *script.round1,
            *script.events,
        ]:
            ledger.add(event)
        return next_round_events(ledger, POLICY, RUN)[-1].payload.content_hash

    assert next_round([twin_seed, twin]) == next_round([twin, twin_seed])


def held_by(*roots: Any) -> list[Any]:
    """Every object reachable from ``roots`` (classes, modules and functions are not followed)."""
    seen: set[int] = set()
    found, stack = [], list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(obj))
        found.append(obj)
        stack.extend(gc.get_referents(obj))
    return found


def test_the_ledger_keeps_what_curation_reads_of_a_chain_not_its_events() -> None:
    """A probe, verdict or candidate carries the sample's tools, context and label, and the model's or
    judge's whole answer: kilobytes, a copy per event, none of which a decision reads. The ledger keeps
    a record of the fields its decisions read (figures in docs/performance.md), and decides as before
    (the other tests of this file)."""
    script = RoundScript()
    script.play()
    letter = event_of(
        DeadLetter(stage="probe", reason="poison", error_type="ValueError", source_ref="x", raw=b"{" * 4096),
        RUN,
    )
    for event in [*script.events, letter]:
        script.ledger.add(event)
    ledger = script.ledger
    chain = (
        ledger.probes,
        ledger.verdicts,
        ledger.corrections,
        ledger.candidates,
        ledger.verifications,
        ledger.expansions,
        ledger.dead,
    )
    assert all(chain)  # every kind of chain entry was folded
    models = [obj for obj in held_by(*chain) if isinstance(obj, BaseModel)]
    assert not models, f"the chain holds {len(models)} models, e.g. {type(models[0]).__name__}"
    assert not [obj for obj in held_by(*chain) if isinstance(obj, bytes) and len(obj) >= 4096]
    assert ledger.status(1, POLICY.expansions_per_seed).complete
