"""The judge, expand and verify stages on the broker against an endpoint that answers like reasoning models.

A real HTTP server (tests/streams/reasoning_endpoint.py) serves three judges, a generator and (the
first judge doubling as) the verifier. They think at length (a trace in ``reasoning_content``, inline
``<think>``, or one the chat template opened), write Markdown, header and "Final Answer:" verdicts,
sometimes hedge, sometimes think past the first budget, sometimes never stop, err, and one of them
blames whichever response comes first. Probes of world samples with a stand-in policy's predictions go
onto the probes topic; the judge (a panel of 3 with two-order judging), relabel, expand and verify
stages run as faust agents on the embedded broker. The test accounts for every probe, error seed and
candidate, checks that every answer cut off twice is a TruncatedAnswer dead letter and that every
hedge was re-asked with a hotter, seeded sampling, and prints the UNPARSEABLE share, the truncations
per stage and each judge's agreement and position-flip rates.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from typing import Any

import pytest

from benchmarks.label_wrong_precision import predicted
from bus.kafka import EventProducer, ensure_topics, replay, run_log
from bus.worker import run_stages
from looptool.config import Settings
from looptool.wiring import build_stages
from schemas.events import Event, ProbeResult, Producer, derived_event_id, make_event
from streams.config import GeneratorSettings, JudgeSettings
from tests.streams.reasoning_endpoint import Persona, ReasoningEndpoint, serve_reasoning
from toolcall.match import tool_match
from toolcall.prompts import quote_data, render_conversation
from views.analytics import load_stats, tables_text
from world import World

K = 2
BUDGET = 1024  # every role's first budget; the truncation retry gets 2048
JUDGES = {
    "qwen3-32b": Persona(
        layout="parser",
        style="markdown",
        error_rate=0.05,
        hedge_rate=0.15,
        stubborn_rate=0.05,
        long_rate=0.1,
        runaway_rate=0.03,
    ),
    "r1-distill-32b": Persona(
        layout="opened", style="header", error_rate=0.1, long_rate=0.1, runaway_rate=0.03
    ),
    "llama-3.3-70b": Persona(
        layout="inline", style="final_answer", error_rate=0.05, position_bias=0.3, trace_words=(40, 200)
    ),
}
GENERATOR = Persona(
    layout="parser", defect_rate=0.2, long_rate=0.1, runaway_rate=0.05, long_words=(1100, 1900)
)
TOPICS = ("probes", "verdicts", "labels", "candidates", "verifications", "samples", "deadletter")
PRODUCER = Producer(stage="test", version="0")
ORIGIN = "01J0000000000000000000000A"


def _with_long_words(persona: Persona) -> Persona:
    from dataclasses import replace

    return replace(persona, long_words=(BUDGET + 100, 2 * BUDGET - 150))


async def _probes(settings: Settings) -> tuple[list[Event[ProbeResult]], dict[str, Any], dict[str, Any]]:
    """Mismatched probes of world samples, the truth by conversation block, and each probe's sample."""
    items = await World(0).samples(40, noise_rate=0.3, seed="reasoning-endpoint")
    probes, truth, by_probe = [], {}, {}
    for index, item in enumerate(items):
        raw, action = predicted(
            item, {"truth": 0.3, "wrong_call": 0.4, "refusal": 0.15, "unparsed": 0.15}, index
        )
        sample = item.sample
        if action is not None and tool_match(action, sample.label, sample.tools).matched:
            continue
        truth[quote_data(render_conversation(sample.messages))] = item.truth
        probe = make_event(
            ProbeResult(
                sample_id=f"s{index}",
                round=1,
                label_event_id=f"l{index}",
                tools=sample.tools,
                messages=sample.messages,
                label=sample.label,
                raw_output=raw,
                prediction=action,
                parse_error=None if action is not None else "unclosed <tool_call>",
                matched=False,
                conversation_time="2025-06-01 10:00:00" if index % 3 == 0 else None,
            ),
            run_id=settings.run_id,
            producer=PRODUCER,
            checkpoint_id="ckpt-r1",
            event_id=derived_event_id([ORIGIN], "probe", str(index)),  # the same draws on every run
        )
        probes.append(probe)
        by_probe[probe.event_id] = item
    return probes, truth, by_probe


async def _events(settings: Settings) -> list[Event[Any]]:
    found: dict[str, Event[Any]] = {}
    async for batch in replay(settings.kafka, settings.run_id, TOPICS):
        for delivered in batch:
            found.setdefault(delivered.event.event_id, delivered.event)
    return list(found.values())


def _outstanding(probes: list[Event[ProbeResult]], events: list[Event[Any]]) -> list[str]:
    """What is not accounted for yet: probes without a verdict, seeds short of candidates, candidates
    without a result, LABEL_WRONG verdicts without a correction. Empty: nothing is lost."""
    kinds: dict[str, list[Event[Any]]] = defaultdict(list)
    for event in events:
        kinds[event.event_type].append(event)
    letters = {
        (e.payload.stage, e.payload.source_ref)
        for e in kinds["DeadLetter"]
        if e.payload.error_type != "TruncatedAnswer"
    }
    verdicts = {e.payload.probe_event_id: e for e in kinds["Verdict"]}
    missing = [
        f"verdict of {p.event_id}"
        for p in probes
        if p.event_id not in verdicts and ("judge", p.event_id) not in letters
    ]
    candidates = Counter(e.payload.verdict_event_id for e in kinds["ExpansionCandidate"])
    fixes = {e.payload.verdict_event_id for e in kinds["LabelCorrected"]}
    for verdict in verdicts.values():
        v = verdict.payload
        if v.verdict not in ("PRED_WRONG", "LABEL_WRONG"):
            continue
        correct = v.label if v.verdict == "PRED_WRONG" else v.prediction
        if (
            correct is not None
            and candidates[verdict.event_id] != K
            and ("expand", verdict.event_id) not in letters
        ):
            missing.append(f"{K} candidates of {verdict.event_id} (have {candidates[verdict.event_id]})")
        if v.verdict == "LABEL_WRONG" and verdict.event_id not in fixes:
            missing.append(f"relabel of {verdict.event_id}")
    results = {e.payload.candidate_id for e in kinds["VerificationResult"]}
    for candidate in kinds["ExpansionCandidate"]:
        if candidate.payload.candidate_id not in results and ("verify", candidate.event_id) not in letters:
            missing.append(f"verification of {candidate.payload.candidate_id}")
    return missing


@pytest.mark.timeout(600)
async def test_stages_on_the_broker_against_reasoning_models(settings: Settings) -> None:
    probes, truth, by_probe = await _probes(settings)
    personas = {model: _with_long_words(p) for model, p in JUDGES.items()} | {"qwen3-32b-gen": GENERATOR}
    async with serve_reasoning(ReasoningEndpoint(personas=personas, truth=truth)) as endpoint:
        common = {"base_url": endpoint.base_url, "timeout_s": 30, "max_retries": 1, "max_tokens": BUDGET}
        settings = settings.model_copy(
            update={
                "loop": settings.loop.model_copy(update={"expansions_per_seed": K}),
                "judge": JudgeSettings(
                    **common,
                    model="qwen3-32b",
                    chat_template_kwargs={"enable_thinking": True},
                    panel=[
                        {"model": "r1-distill-32b", "template_opens_trace": True},
                        {"model": "llama-3.3-70b"},
                    ],
                    two_order=True,
                ),
                "generator": GeneratorSettings(**common, model="qwen3-32b-gen"),
            }
        )
        await ensure_topics(settings.kafka, settings.run_id)
        async with EventProducer(settings.kafka) as producer:
            await producer.send_all(probes)
        stop = asyncio.Event()
        stages = build_stages(settings, ["judge", "relabel", "expand", "verify"], log=run_log(settings))
        worker = asyncio.create_task(run_stages(settings, stages, stop))
        deadline = time.monotonic() + 420
        try:
            while True:
                await asyncio.sleep(2)
                if worker.done():
                    worker.result()
                events = await _events(settings)
                missing = _outstanding(probes, events)
                if not missing:
                    break
                assert time.monotonic() < deadline, f"not accounted for after 420 s: {missing[:10]}"
        finally:
            stop.set()
            await worker
        served = list(endpoint.served)

    kinds: dict[str, list[Event[Any]]] = defaultdict(list)
    for event in events:
        kinds[event.event_type].append(event)
    verdicts = kinds["Verdict"]
    assert {v.payload.probe_event_id for v in verdicts} == {p.event_id for p in probes}  # every probe judged
    assert all(len(v.payload.votes) == 6 and v.payload.quorum == 2 for v in verdicts)  # 3 judges x 2 orders

    # Truncation: each answer cut off at the first budget was asked once more at the larger one; each
    # cut off there too is a TruncatedAnswer dead letter of its stage, and nothing else is.
    first_cut = [s for s in served if s.finish_reason == "length" and s.max_tokens == BUDGET]
    retried = [s for s in served if s.max_tokens == 2 * BUDGET]
    assert first_cut and len(retried) == len(first_cut)
    cut_twice = Counter(s.role for s in retried if s.finish_reason == "length")
    letters = [e.payload for e in kinds["DeadLetter"] if e.payload.error_type == "TruncatedAnswer"]
    stage_of = {"judge": "judge", "generator": "expand", "verifier": "verify"}
    assert Counter(letter.stage for letter in letters) == Counter(
        {stage_of[r]: n for r, n in cut_twice.items()}
    )
    assert all(s.runaway for s in retried if s.finish_reason == "length")
    assert {e.payload.error_type for e in kinds["DeadLetter"]} <= {"TruncatedAnswer", "UnparseableVerdict"}

    # Every hedged (greedy) answer that came out whole was asked again hotter, with a seed.
    hedged = [s for s in served if s.hedged and s.finish_reason == "stop"]
    assert hedged
    for hedge in hedged:
        assert any(
            s.prompt == hedge.prompt and s.model == hedge.model and s.temperature > 0 and s.seed is not None
            for s in served
        ), "a hedge was not re-asked with a changed sampling"
    judge_requests = [s for s in served if s.role == "judge"]
    assert all(s.chat_template_kwargs == {"enable_thinking": True} for s in judge_requests)
    dated = {p.event_id for p in probes if p.payload.conversation_time}
    assert dated and sum(
        "The time of the conversation is 2025-06-01 10:00:00" in s.prompt for s in judge_requests
    ) >= len(dated)

    # EDDE saw the text of predictions that did not parse.
    unparsed_seeds = [
        v for v in verdicts if v.payload.verdict == "PRED_WRONG" and v.payload.prediction is None
    ]
    generator_prompts = [s.prompt for s in served if s.role == "generator"]
    assert unparsed_seeds and any("did not parse as a tool call" in prompt for prompt in generator_prompts)
    assert not any("<incorrect_response>\n(no response)" in prompt for prompt in generator_prompts)

    # The biased judge flips with the order; the others never do (their errors do not depend on it).
    stats = load_stats(events)
    agreement = stats.judge_agreement()
    assert agreement.loc["llama-3.3-70b", "flip_rate"] > 0
    assert agreement.loc["qwen3-32b", "flip_rate"] == agreement.loc["r1-distill-32b", "flip_rate"] == 0

    mix = Counter(v.payload.verdict for v in verdicts)
    unparseable = mix["UNPARSEABLE"] / len(verdicts)
    relabels = [v for v in verdicts if v.payload.verdict == "LABEL_WRONG"]
    right = sum(
        not tool_match(v.payload.label, by_probe[v.payload.probe_event_id].truth, v.payload.tools).matched
        for v in relabels
    )
    results = kinds["VerificationResult"]
    passed = sum(r.payload.passed for r in results)
    unread = Counter(
        r.payload.llm_verdict for r in results if r.payload.llm_verdict in ("UNPARSEABLE", "TRUNCATED")
    )
    print(
        f"\n{len(probes)} probes judged by 3 reasoning judges in 2 orders ({len(judge_requests)} judge "
        f"requests, {len(served)} in all); verdicts {dict(mix)}; UNPARSEABLE share {unparseable:.1%}; "
        f"answers cut off at the first budget {len(first_cut)}, dead-lettered as truncated "
        f"{dict(Counter(letter.stage for letter in letters))}; hedges re-asked {len(hedged)}; "
        f"LABEL_WRONG {len(relabels)} ({right} with a truly wrong label); "
        f"candidates {len(kinds['ExpansionCandidate'])}, passed {passed}/{len(results)}, "
        f"verifier answers unread {dict(unread)}"
    )
    print(tables_text(stats, tables=["judges", "truncations"]))
    assert unparseable <= 0.1
