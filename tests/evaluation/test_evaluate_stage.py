"""A tiny model is evaluated on 22 BFCL items end to end on CPU, by the evaluate stage on the embedded broker.

The path: CheckpointPublished on the checkpoints topic → the stage (a faust agent) loads the
checkpoint into a transformers backend → Figure 7 prompts for 2 items of each of the 11 categories →
greedy decoding → our parser → BFCL's checker → CheckpointEvaluated on the evaluations topic, and the
per-item results file. The random tiny model scores near zero on AST items; the test checks the
plumbing and the bookkeeping, not the score.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bus.kafka import EventProducer, ensure_topics, follow
from bus.worker import run_stages
from evaluation.runner import EvalRun, write_results
from evaluation.scoring import ItemResult, summarise
from evaluation.suite import CATEGORIES, SUITE_NAME
from looptool.config import Settings
from schemas.events import CheckpointEvaluated, CheckpointPublished, Event, Producer, make_event
from streams.evaluate import EvalPolicy, EvaluateStage, evaluation_event

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


@pytest.mark.timeout(900)
async def test_tiny_model_is_evaluated_through_the_broker(
    settings: Settings, long_context_tiny_policy: Path, tmp_path: Path
) -> None:
    from inference.transformers_backend import TransformersBackend

    await ensure_topics(settings.kafka, settings.run_id)
    backend = TransformersBackend(long_context_tiny_policy, "initial", batch_size=4)
    policy = EvalPolicy(limit=2, max_new_tokens=12, batch_size=4, results_dir=tmp_path / "eval")
    stage = EvaluateStage(settings.run_id, backend, policy)
    published = checkpoint(settings.run_id, str(long_context_tiny_policy), step=10, final=True)

    async def first_evaluation() -> Event[CheckpointEvaluated]:
        async for batch in follow(settings.kafka, settings.run_id, ["evaluations"]):
            for delivered in batch:
                if isinstance(delivered.event.payload, CheckpointEvaluated):
                    return delivered.event
        raise AssertionError("the evaluations topic ended")

    stop = asyncio.Event()
    worker = asyncio.create_task(run_stages(settings, [stage], stop))
    try:
        async with EventProducer(settings.kafka) as producer:
            await producer.send_all([published])
        evaluated = await asyncio.wait_for(first_evaluation(), timeout=600)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=60)

    payload = evaluated.payload
    assert evaluated.parent_ids == [published.event_id]
    assert (payload.checkpoint_id, payload.round, payload.step, payload.final) == ("ckpt-r1", 1, 10, True)
    assert (payload.suite, payload.suite_version, payload.limit) == (SUITE_NAME, "2026.3.23", 2)
    assert payload.categories == list(CATEGORIES)
    assert payload.total == dict.fromkeys(CATEGORIES, 2) and sum(payload.total.values()) == 22
    assert all(0 <= payload.correct[c] <= 2 for c in CATEGORIES)
    assert payload.accuracy == {c: payload.correct[c] / 2 for c in CATEGORIES}
    assert set(payload.summary) == {"non_live_ast", "live_ast", "irrelevance", "relevance", "overall"}
    assert payload.wall_time_s > 0
    rows = [json.loads(line) for line in Path(payload.results_uri).read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 22 and {r["category"] for r in rows} == set(CATEGORIES)
    assert sum(r["correct"] for r in rows) == sum(payload.correct.values())
    assert all(isinstance(r["raw_output"], str) for r in rows)


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
