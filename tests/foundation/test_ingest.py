"""Ingest on the embedded broker: every format in, SampleAdded per sample, DeadLetter per bad line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bus.ingest import ingest_file
from bus.kafka import replay
from schemas.events import DeadLetter, SampleAdded

EXAMPLES = Path(__file__).parents[2] / "examples" / "seeds"


async def _events(settings, topics):
    found = []
    async for batch in replay(settings.kafka, settings.run_id, topics):
        found.extend(delivered.event for delivered in batch)
    return found


async def test_ingest_of_every_format_with_bad_lines(settings, tmp_path: Path) -> None:
    lines: list[str] = []
    expected_formats: dict[str, int] = {}
    for path in sorted(EXAMPLES.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            lines.append(line)
            expected_formats[path.stem] = expected_formats.get(path.stem, 0) + 1
    bad = {
        "{not json": "JSONDecodeError",
        '{"foo": 1}': "RecordError",
        '{"query": "q", "tools": "[{bad", "answers": "[]"}': "RecordError",
        "[1, 2, 3]": "RecordError",
    }
    bad_lines = {}
    mixed = []
    for index, line in enumerate(lines):
        mixed.append(line)
        if index % 7 == 3 and bad:
            raw, _ = bad.popitem()
            mixed.append(raw)
            bad_lines[len(mixed)] = raw  # 1-based line number
    mixed.append(lines[0])  # a duplicate of the first record: sent once
    seed_file = tmp_path / "mixed.jsonl"
    seed_file.write_text("\n".join(mixed) + "\n\n")

    report = await ingest_file(seed_file, settings, show_progress=False)

    assert report.dead_lettered == len(bad_lines) == 4
    first_format = sorted(EXAMPLES.glob("*.jsonl"))[0].stem
    assert dict(report.by_format) == {**expected_formats, first_format: expected_formats[first_format] + 1}
    assert report.duplicates >= 1
    events = await _events(settings, ["samples", "deadletter"])
    added = [e for e in events if isinstance(e.payload, SampleAdded)]
    letters = [e for e in events if isinstance(e.payload, DeadLetter)]
    assert len(added) == report.samples and len({e.payload.sample_id for e in added}) == len(added)
    assert {e.payload.source_format for e in added} == set(expected_formats)
    assert all(e.payload.origin == "seed" and e.payload.round == 0 for e in added)
    assert all(e.payload.source_ref.startswith("mixed.jsonl:") for e in added)
    # Every bad line is dead-lettered with its line number, its reason and its raw bytes.
    by_line = {int(e.payload.source_ref.split(":")[1]): e.payload for e in letters}
    assert set(by_line) == set(bad_lines)
    for number, raw in bad_lines.items():
        letter = by_line[number]
        assert letter.stage == "ingest" and letter.reason.startswith(f"line {number}:")
        assert letter.raw.decode() == raw
        assert letter.category and f"mixed.jsonl:{number}" in report.reason_examples[letter.category]
    assert sum(report.reasons.values()) == 4 and "unrecognised record format" in report.reasons


async def test_ingested_samples_round_trip_their_content(settings, tmp_path: Path) -> None:
    source = EXAMPLES / "paper.jsonl"
    report = await ingest_file(source, settings, show_progress=False)
    events = await _events(settings, ["samples"])
    assert len(events) == report.samples == len(source.read_text().splitlines())
    first = json.loads(source.read_text().splitlines()[0])
    names = {tool["function"]["name"] for tool in first["tools"]}
    assert any({t.name for t in e.payload.tools} == names for e in events)
    for event in events:
        assert event.payload.content_hash == event.payload.model_copy().content_hash
        assert event.parent_ids == [] and event.checkpoint_id is None and event.schema_version >= 1


PUBLISHED = Path(__file__).parents[1] / "toolcall" / "data" / "published"


def test_ingest_and_deadletters_commands_say_what_happened(settings) -> None:
    from typer.testing import CliRunner

    from common.logs import LogSettings, configure_logging

    try:
        _commands(CliRunner(), settings)
    finally:
        configure_logging(LogSettings())  # the CLI bound logging to the runner's (now closed) stream


def _commands(runner: Any, settings: Any) -> None:
    from looptool.cli import app

    base = ["--run-id", settings.run_id, "--bootstrap-servers", settings.kafka.bootstrap_servers]
    hermes = str(PUBLISHED / "hermes" / "hermes-function-calling-v1.card.jsonl")
    result = runner.invoke(app, [*base, "ingest", hermes, str(PUBLISHED / "bfcl"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["records"] == 4 + 15 and summary["dead_letters"] == 3
    assert summary["reasons"] == {
        "assistant turn does not parse": 1,
        "bfcl agentic record: no call to learn": 1,
        "bfcl relevance record: no reference call": 1,
    }
    assert summary["samples"] + summary["duplicates"] > 0
    human = runner.invoke(app, [*base, "ingest", hermes], env={"COLUMNS": "200"})
    assert human.exit_code == 0 and "assistant turn does not parse" in human.stdout
    assert "hermes-function-calling-v1.card.jsonl:2" in human.stdout  # an example place
    listed = runner.invoke(app, [*base, "deadletters", "--json", "--reason", "agentic"])
    rows = [json.loads(line) for line in listed.stdout.strip().splitlines()]
    assert [row["source_ref"] for row in rows] == ["BFCL_v4_memory.json:1"]
    assert rows[0]["category"] == "bfcl agentic record: no call to learn" and rows[0]["raw"].startswith("{")
    by_source = runner.invoke(app, [*base, "deadletters", "--json", "--source", "hermes"])
    assert len(by_source.stdout.strip().splitlines()) == 2  # both ingests dead-lettered line 2
    table = runner.invoke(app, [*base, "deadletters"], env={"COLUMNS": "200"})
    assert "Dead letters by reason" in table.stdout and "bfcl relevance record" in table.stdout


def test_ingest_keeps_the_conversation_time_on_the_sample_added(tmp_path: Path) -> None:
    from streams.ingest import IngestReport, read_records

    tools = [
        {"name": "get_weather", "parameters": {"type": "object", "properties": {"day": {"type": "string"}}}}
    ]
    label = '<tool_call>\n{"name": "get_weather", "arguments": {"day": "2025-03-02"}}\n</tool_call>'
    records = [
        {"tools": tools, "messages": [{"role": "user", "content": "Weather tomorrow?"}], "label": label},
        {
            "tools": tools,
            "messages": [{"role": "user", "content": "And the day after?"}],
            "label": label,
            "current_time": "2025-03-01 10:00:00",
        },
    ]
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    events = list(read_records(path, "r", "auto", IngestReport(str(path))))
    assert [e.payload.conversation_time for e in events] == [None, "2025-03-01 10:00:00"]
