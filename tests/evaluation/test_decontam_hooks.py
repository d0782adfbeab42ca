"""Decontamination where it acts: ingest reports overlapping seeds, curate dead-letters them (with why)."""

from __future__ import annotations

import json
from pathlib import Path

from evaluation.decontam import Decontaminator
from evaluation.suite import load_suite
from schemas.events import CuratedSample, DeadLetter, RoundClosed
from streams.curate import CurationPolicy, Ledger, initial_round_events
from streams.ingest import IngestReport, read_records, sample_added
from toolcall.specs import ToolSpec
from toolcall.types import Action, Message, Sample, ToolCall

RUN = "decontam-test"


def bfcl_seed_record() -> dict:
    """simple_python_0 as a seed in the bfcl format (question, function, ground_truth)."""
    item = load_suite("simple_python", 1)[0]
    return {
        "id": item.id,
        "question": item.question,
        "function": item.functions,
        "ground_truth": item.possible_answer,
    }


def clean_sample() -> Sample:
    return Sample(
        tools=[
            ToolSpec.from_openai(
                {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                }
            )
        ],
        messages=[Message(role="user", content="Weather in Oslo tomorrow?")],
        label=Action(calls=[ToolCall(name="get_weather", arguments={"city": "Oslo"})]),
    )


def test_ingest_counts_and_names_overlapping_seeds(tmp_path: Path) -> None:
    path = tmp_path / "seeds.jsonl"
    clean = {
        "query": "Weather in Oslo tomorrow?",
        "tools": [{"name": "get_weather", "description": "", "parameters": {"city": {"type": "str"}}}],
        "answers": [{"name": "get_weather", "arguments": {"city": "Oslo"}}],
    }
    path.write_text(json.dumps(clean) + "\n" + json.dumps(bfcl_seed_record()) + "\n", encoding="utf-8")
    report = IngestReport(path=str(path))
    events = list(read_records(path, RUN, "auto", report, Decontaminator.from_suite()))
    assert report.samples == 2 and len(events) == 2  # overlapping seeds are still ingested ...
    assert report.overlapping_eval == 1  # ... and reported
    assert report.overlap_examples[0].startswith("seeds.jsonl:2: overlaps evaluation suite bfcl-v4@")
    assert "simple_python_0" in report.overlap_examples[0]
    without = IngestReport(path=str(path))
    list(read_records(path, RUN, "auto", without))
    assert without.overlapping_eval == 0


def test_curate_dead_letters_overlapping_samples_with_the_reason(tmp_path: Path) -> None:
    item = load_suite("simple_python", 1)[0]
    contaminated = Sample(tools=item.tools(), messages=item.messages(), label=Action(text="no"))
    ledger = Ledger()
    for sample in (clean_sample(), contaminated):
        ledger.add(sample_added(sample, run_id=RUN, origin="seed", round_=0, source_format="test"))
    policy = CurationPolicy(target_size=10, exclude=Decontaminator.from_suite().overlaps)
    events = initial_round_events(ledger, policy, RUN)
    letters = [e for e in events if isinstance(e.payload, DeadLetter)]
    members = [e for e in events if isinstance(e.payload, CuratedSample)]
    assert isinstance(events[-1].payload, RoundClosed) and events[-1].payload.total == 1
    assert [m.payload.messages[0].content for m in members] == ["Weather in Oslo tomorrow?"]
    (letter,) = letters
    assert letter.payload.stage == "curate" and letter.payload.error_type == "EvalSuiteOverlap"
    assert "simple_python_0" in letter.payload.reason
    # The same refusal in a later composition has the same id (consumers keep one).
    again = initial_round_events(ledger, policy, RUN)
    assert [e.event_id for e in again if isinstance(e.payload, DeadLetter)] == [letter.event_id]
    # Without the check, both seeds are members.
    plain = initial_round_events(ledger, CurationPolicy(target_size=10), RUN)
    assert plain[-1].payload.total == 2 and not any(isinstance(e.payload, DeadLetter) for e in plain)
