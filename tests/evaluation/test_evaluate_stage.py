"""A tiny model is evaluated on BFCL end to end on CPU, by the evaluate stage on the embedded broker.

The path: CheckpointPublished on the checkpoints topic → the stage (a faust agent) loads the
checkpoint into a transformers backend → Figure 7 prompts for one item of each of the 11 single-turn
categories, and one multi-turn conversation (its calls executed on BFCL's simulated APIs, turn by turn)
→ greedy decoding → our parser → BFCL's checkers → CheckpointEvaluated on the evaluations topic (with
the held-out ToolMatch figures), the per-item results file, and the promotion gate's decision on the
promotions topic. The random tiny model scores near zero; the test checks the plumbing and the
bookkeeping, not the score.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bus.kafka import EventProducer, ensure_topics, follow, run_log
from bus.worker import run_stages
from evaluation.gate import PromoteSettings
from evaluation.runner import EvalRun, write_results
from evaluation.scoring import ItemResult, summarise
from evaluation.suite import SINGLE_TURN, SUITE_NAME
from looptool.config import Settings
from schemas.events import (
    CheckpointEvaluated,
    CheckpointPublished,
    Event,
    PolicyPromoted,
    Producer,
    make_event,
)
from streams.evaluate import EvalPolicy, EvaluateStage, evaluation_event
from streams.promote import PromoteStage

PRODUCER = Producer(stage="trainer", version="test")


def checkpoint(
    run_id: str, uri: str, *, step: int, final: bool, checkpoint_id: str = "ckpt-r1"
) -> Event[Any]:
    return make_event(
        CheckpointPublished(
            new_checkpoint_id=checkpoint_id, round=1, step=step, final=final, uri=uri, backend="transformers"
        ),
        run_id=run_id,
        producer=PRODUCER,
    )


class UnusedBackend:
    """A backend the selection logic must never call."""

    name = "none"
    model_id = "none"

    async def load(self, model_path: str, model_id: str) -> None:
        raise AssertionError("a skipped checkpoint was loaded")

    async def generate(self, prompts: Any, sampling: Any) -> Any:
        raise AssertionError("a skipped checkpoint was evaluated")


async def test_unselected_checkpoints_are_skipped() -> None:
    stage = EvaluateStage("r", UnusedBackend(), EvalPolicy(every_n_steps=10, limit=1))  # type: ignore[arg-type]
    assert await stage.process([checkpoint("r", "/nowhere", step=15, final=False)]) == []
    assert EvalPolicy(every_n_steps=10).selects(checkpoint("r", "x", step=20, final=False).payload)
    assert EvalPolicy(every_n_steps=0).selects(checkpoint("r", "x", step=7, final=True).payload)
    assert not EvalPolicy(every_n_steps=0).selects(checkpoint("r", "x", step=20, final=False).payload)
    with pytest.raises(ValueError, match="unknown BFCL category"):
        EvalPolicy(categories=("simple_java",))


def test_event_ids_are_derived_from_the_checkpoint_and_the_selection() -> None:
    published = checkpoint("r", "x", step=5, final=True)
    results = [ItemResult(id="multiple_0", category="multiple", correct=True, made_call=True, raw_output="")]
    run = EvalRun("ckpt-r1", SUITE_NAME, "2026.3.23", ["multiple"], 1, results, summarise(results), 1.5)
    first = evaluation_event(published, run, EvalPolicy(limit=1), None)
    again = evaluation_event(published, run, EvalPolicy(limit=1), None)
    other = evaluation_event(published, run, EvalPolicy(limit=2), None)
    assert first.event_id == again.event_id != other.event_id
    assert first.parent_ids == [published.event_id] and first.checkpoint_id == "ckpt-r1"
    assert first.payload.accuracy == {"multiple": 1.0} and first.payload.summary["non_live_ast"] == 1.0


def test_the_event_records_how_bfcl_outputs_were_read() -> None:
    published = checkpoint("r", "x", step=5, final=True)
    results = [ItemResult(id="multiple_0", category="multiple", correct=True, made_call=True, raw_output="")]
    run = EvalRun("ckpt-r1", SUITE_NAME, "2026.3.23", ["multiple"], 1, results, summarise(results), 1.5)
    as_bfcl = evaluation_event(published, run, EvalPolicy(limit=1), None)
    repaired = evaluation_event(published, run, EvalPolicy(limit=1, reading="repair"), None)
    assert (as_bfcl.payload.output_reading, repaired.payload.output_reading) == ("bfcl", "repair")
    assert as_bfcl.event_id != repaired.event_id  # two readings of one checkpoint are two evaluations


class HeldoutOnlyBackend:
    """Answers every prompt with the held-out record's call; counts the prompts it saw."""

    name = "scripted"
    model_id = "scripted"

    def __init__(self) -> None:
        self.prompts = 0
        self.loaded: list[str] = []

    async def load(self, model_path: str, model_id: str) -> None:
        self.loaded.append(model_id)

    async def generate(self, prompts: Any, sampling: Any) -> Any:
        from inference.base import Generation

        self.prompts += len(prompts)
        text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
        return [[Generation(text=text)] for _ in prompts]


async def test_bfcl_off_scores_the_heldout_set_only(tmp_path: Path) -> None:
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text(json.dumps(HELDOUT_RECORD) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="nothing to evaluate"):
        EvalPolicy(bfcl=False)
    backend = HeldoutOnlyBackend()
    policy = EvalPolicy(bfcl=False, heldout_path=heldout, results_dir=tmp_path / "eval")
    stage = EvaluateStage("r", backend, policy)  # type: ignore[arg-type]
    [event] = await stage.process([checkpoint("r", "/ckpt", step=9, final=True)])
    payload = event.payload
    assert backend.prompts == 1 and backend.loaded == ["ckpt-r1"]  # no BFCL item was generated for
    assert (payload.categories, payload.total, payload.summary, payload.output_reading) == ([], {}, {}, None)
    assert (payload.heldout_correct, payload.heldout_total) == (1, 1)
    with_bfcl = EvalPolicy(limit=1, heldout_path=heldout)
    assert policy.selection_key("h") != with_bfcl.selection_key("h")


HELDOUT_RECORD = {
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather of a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ],
    "messages": [{"role": "user", "content": "Weather in Oslo?"}],
    "label": {"calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
}


@pytest.mark.timeout(900)
async def test_tiny_model_is_evaluated_through_the_broker(
    settings: Settings, long_context_tiny_policy: Path, tmp_path: Path
) -> None:
    from inference.transformers_backend import TransformersBackend

    await ensure_topics(settings.kafka, settings.run_id)
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text(
        "\n".join(
            json.dumps({**HELDOUT_RECORD, "messages": [{"role": "user", "content": f"Weather in city {i}?"}]})
            for i in range(2)
        ),
        encoding="utf-8",
    )
    backend = TransformersBackend(long_context_tiny_policy, "initial", batch_size=4)
    categories = ("single_turn", "multi_turn_base")
    policy = EvalPolicy(
        categories=categories,
        limit=1,
        max_new_tokens=12,
        batch_size=4,
        results_dir=tmp_path / "eval",
        heldout_path=heldout,
    )
    stages = [
        EvaluateStage(settings.run_id, backend, policy),
        PromoteStage(settings.run_id, PromoteSettings(bfcl=["overall", "multi_turn"]), run_log(settings)),
    ]
    published = checkpoint(settings.run_id, str(long_context_tiny_policy), step=10, final=True)

    async def first(topic: str, kind: type) -> Event[Any]:
        async for batch in follow(settings.kafka, settings.run_id, [topic]):
            for delivered in batch:
                if isinstance(delivered.event.payload, kind):
                    return delivered.event
        raise AssertionError(f"the {topic} topic ended")

    stop = asyncio.Event()
    worker = asyncio.create_task(run_stages(settings, stages, stop))
    try:
        async with EventProducer(settings.kafka) as producer:
            await producer.send_all([published])
        evaluated = await asyncio.wait_for(first("evaluations", CheckpointEvaluated), timeout=800)
        promoted = await asyncio.wait_for(first("promotions", PolicyPromoted), timeout=60)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=60)

    payload = evaluated.payload
    expected = [*SINGLE_TURN, "multi_turn_base"]
    assert evaluated.parent_ids == [published.event_id]
    assert (payload.checkpoint_id, payload.round, payload.step, payload.final) == ("ckpt-r1", 1, 10, True)
    assert (payload.suite, payload.suite_version, payload.limit) == (SUITE_NAME, "2026.3.23", 1)
    assert payload.categories == expected and payload.uri == str(long_context_tiny_policy)
    assert payload.total == dict.fromkeys(expected, 1) and sum(payload.total.values()) == 12
    assert all(0 <= payload.correct[c] <= 1 for c in expected)
    assert payload.accuracy == {c: float(payload.correct[c]) for c in expected}
    assert set(payload.summary) == {
        "non_live_ast",
        "live_ast",
        "irrelevance",
        "relevance",
        "multi_turn",
        "overall",
    }
    # The conversation ran turn by turn: at least one model output per turn of the entry (4 turns).
    assert payload.max_steps == 20 and payload.steps["multi_turn_base"] >= 4
    assert payload.steps["multiple"] == 1
    assert sum(sum(kinds.values()) for kinds in payload.error_types.values()) == 12 - sum(
        payload.correct.values()
    )
    assert (payload.heldout_total, payload.heldout_source.split("@")[0]) == (2, "heldout.jsonl")  # type: ignore[union-attr]
    assert 0 <= payload.heldout_correct <= 2  # type: ignore[operator]
    assert payload.wall_time_s > 0
    rows = [json.loads(line) for line in Path(payload.results_uri).read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 12 and {r["category"] for r in rows} == set(expected)
    assert sum(r["correct"] for r in rows) == sum(payload.correct.values())
    conversation = next(r for r in rows if r["category"] == "multi_turn_base")
    assert conversation["error_type"] != "multi_turn:inference_error"  # the model answered every step
    turns = json.loads(conversation["raw_output"])
    assert len(turns) >= 1 and all(isinstance(step, str) for turn in turns for step in turn)
    # The gate decided on the evaluation: the first checkpoint is promoted, with its figures.
    decision = promoted.payload
    assert promoted.parent_ids == [evaluated.event_id] and decision.checkpoint_id == "ckpt-r1"
    assert set(decision.figures) == {"heldout_toolmatch", "overall", "multi_turn"}
    assert decision.figures["multi_turn"] == payload.summary["multi_turn"]


def test_results_files_round_trip_as_jsonl_and_parquet(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    results = [
        ItemResult(
            id="a",
            category="multiple",
            correct=True,
            made_call=True,
            raw_output="x",
            decoded=[{"f": {"a": 1}}],
        ),
        ItemResult(
            id="b", category="irrelevance", correct=False, made_call=True, raw_output="y", parse_error=None
        ),
    ]
    jsonl = write_results(results, tmp_path / "r.jsonl")
    parquet = write_results(results, tmp_path / "r.parquet")
    rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert rows == pq.read_table(parquet).to_pylist()
    assert json.loads(rows[0]["decoded"]) == [{"f": {"a": 1}}]
    with pytest.raises(ValueError, match=r"\.jsonl or \.parquet"):
        write_results(results, tmp_path / "r.csv")
