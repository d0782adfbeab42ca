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
    # Both ingests dead-lettered line 2, with one event id (ids are deterministic): listed once.
    assert len(by_source.stdout.strip().splitlines()) == 1
    table = runner.invoke(app, [*base, "deadletters"], env={"COLUMNS": "200"})
    assert "Dead letters by reason" in table.stdout and "bfcl relevance record" in table.stdout
    # A mistyped run id: empty tables, and a line that says why.
    typo = ["--run-id", settings.run_id + "-typo", "--bootstrap-servers", settings.kafka.bootstrap_servers]
    for command in ("deadletters", "stats"):
        empty = runner.invoke(app, [*typo, command], env={"COLUMNS": "200"})
        assert empty.exit_code == 0 and "has no events" in empty.output and "mistyped" in empty.output
    assert "has no events" not in runner.invoke(app, [*base, "stats"], env={"COLUMNS": "200"}).output


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


# --- every record lands or is dead-lettered; limits; deterministic ids -----------------------------

WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _paper(city: str, **fields: Any) -> dict[str, Any]:
    call = {"name": "get_weather", "arguments": {"city": city}}
    question = [{"role": "user", "content": f"Weather in {city}?"}]
    return {"tools": [WEATHER], "messages": question, "label": [call], **fields}


def _dialogue(steps: int, words: int = 40) -> dict[str, Any]:
    """One openai record of ``steps`` user turns, each answered by a call: ``steps`` samples."""
    messages: list[dict[str, Any]] = []
    for step in range(steps):
        messages.append({"role": "user", "content": f"Step {step}: " + "weather please " * words})
        arguments = json.dumps({"city": f"City {step}"})
        call = {"function": {"name": "get_weather", "arguments": arguments}}
        messages.append({"role": "assistant", "tool_calls": [call]})
    return {"tools": [{"type": "function", "function": WEATHER}], "messages": messages}


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def test_bad_records_are_dead_lettered_and_the_rest_of_the_file_lands(settings, tmp_path: Path) -> None:
    import hashlib

    from schemas.codec import default_codec

    huge = json.dumps(_paper("Oslo", note="x" * 9_000_000))  # over the producer's 8 MiB request limit
    deep = _paper("Rome")
    deep["label"][0]["arguments"]["city"] = _nested(300)  # "Maximum serialization depth exceeded"
    lines = {
        1: json.dumps(_paper("Paris")),
        2: huge,
        3: json.dumps(_paper("Lima")).replace("Lima?", "Lima? \\ud83d"),  # a lone surrogate
        4: json.dumps(deep),
        5: json.dumps(_paper("Kyiv", ordered="false")),
        6: json.dumps(_dialogue(80, words=2)),  # 80 samples, over max_samples_per_record (64)
        7: json.dumps(_paper("Quito")),
    }
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(lines[n] for n in sorted(lines)) + "\n", encoding="utf-8")

    report = await ingest_file(path, settings, show_progress=False, limits=settings.ingest)

    assert (report.records, report.samples, report.dead_lettered) == (7, 2, 5)
    events = await _events(settings, ["samples", "deadletter"])
    added = [e for e in events if isinstance(e.payload, SampleAdded)]
    assert sorted(e.payload.source_ref for e in added) == ["seeds.jsonl:1", "seeds.jsonl:7"]
    letters = {int(e.payload.source_ref.rsplit(":", 1)[1]): e.payload for e in events if e not in added}
    assert {n: letter.category for n, letter in letters.items()} == {
        2: "record over ingest.max_record_bytes",
        3: "text is not valid Unicode (a lone surrogate)",
        4: "call arguments nested too deeply",
        5: "'ordered' is not a boolean",
        6: "record over ingest.max_samples_per_record",
    }
    oversize = letters[2]  # a prefix, the size and a hash: never the whole 9 MB line
    assert oversize.raw == huge.encode()[:4096]
    assert str(len(huge)) in oversize.reason and hashlib.sha256(huge.encode()).hexdigest() in oversize.reason
    assert "\\ud83d" in letters[3].reason and letters[3].raw == lines[3].encode()
    assert "'ordered' must be true or false" in letters[5].reason
    assert "80 samples" in letters[6].reason and "64" in letters[6].reason
    assert all(len(default_codec().encode(e)) < 64_000 for e in events)


async def test_ingesting_the_same_file_again_adds_no_new_event_ids(settings, tmp_path: Path) -> None:
    source = EXAMPLES / "openai.jsonl"
    path = tmp_path / "seeds.jsonl"
    path.write_text(source.read_text() + "{not json\n", encoding="utf-8")
    first = await ingest_file(path, settings, show_progress=False)
    again = tmp_path / "copy" / "seeds.jsonl"  # the same source from elsewhere: the same ids
    again.parent.mkdir()
    again.write_bytes(path.read_bytes())
    second = await ingest_file(again, settings, show_progress=False)
    events = await _events(settings, ["samples", "deadletter"])
    assert first.samples == second.samples > 0 and first.dead_lettered == second.dead_lettered == 1
    assert len(events) == 2 * (first.samples + 1)  # both runs were sent ...
    assert len({e.event_id for e in events}) == first.samples + 1  # ... and consumers keep one of each
    # The place is part of the id: the same record on another line is another event of the same sample.
    moved = tmp_path / "moved" / "seeds.jsonl"
    moved.parent.mkdir()
    moved.write_text("\n" + path.read_text(), encoding="utf-8")
    await ingest_file(moved, settings, show_progress=False)
    later = await _events(settings, ["samples"])
    assert len({e.event_id for e in later}) == 2 * first.samples
    assert len({e.payload.sample_id for e in later}) == first.samples


def test_the_ingest_limits_are_configurable_and_bound_a_long_dialogue(tmp_path: Path, monkeypatch) -> None:
    from looptool.config import load_settings
    from streams.config import IngestSettings
    from streams.ingest import IngestReport, read_records

    record = json.dumps(_dialogue(400, words=12))  # 137 kB: 400 samples, 19.7 MB of events unbounded
    path = tmp_path / "long.jsonl"
    path.write_text(record + "\n" + json.dumps(_paper("Paris")) + "\n", encoding="utf-8")

    def letters_of(limits: IngestSettings) -> tuple[list[str], int]:
        report = IngestReport(str(path))
        events = list(read_records(path, "r", "auto", report, limits=limits))
        return [e.payload.reason for e in events if isinstance(e.payload, DeadLetter)], report.samples

    default, samples = letters_of(IngestSettings())
    assert samples == 1 and len(default) == 1 and "400 samples" in default[0]
    by_bytes, _ = letters_of(IngestSettings(max_samples_per_record=1000))
    assert "ingest.max_record_event_bytes (8000000)" in by_bytes[0]
    unbounded = IngestSettings(max_samples_per_record=1000, max_record_event_bytes=10**9)
    by_event, _ = letters_of(unbounded.model_copy(update={"max_event_bytes": 65_536}))
    assert "ingest.max_event_bytes (65536)" in by_event[0]
    by_record, _ = letters_of(IngestSettings(max_record_bytes=100_000))
    assert f"record of {len(record)} bytes is over ingest.max_record_bytes (100000)" in by_record[0]
    # One config object: the [ingest] section of the file, overridden by the environment.
    config = tmp_path / "looptool.toml"
    config.write_text("[ingest]\nmax_samples_per_record = 500\nmax_event_bytes = 70000\n")
    monkeypatch.setenv("LOOPTOOL_INGEST__MAX_SAMPLES_PER_RECORD", "450")
    loaded = load_settings(config).ingest
    assert (loaded.max_samples_per_record, loaded.max_event_bytes) == (450, 70_000)
    assert len(letters_of(loaded)[0]) == 1


def test_ingest_checks_the_format_first_and_fails_when_nothing_landed(settings, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from common.logs import LogSettings, configure_logging
    from looptool.cli import app

    runner = CliRunner()
    base = ["--run-id", settings.run_id, "--bootstrap-servers", settings.kafka.bootstrap_servers]
    try:
        unknown = runner.invoke(app, [*base, "ingest", str(tmp_path / "missing.jsonl"), "--format", "foo"])
        assert unknown.exit_code == 2 and "unknown format 'foo'" in unknown.output
        assert "missing.jsonl" not in unknown.output  # nothing was read
        empty = tmp_path / "empty.jsonl"
        empty.write_text("\n\n")
        ran = runner.invoke(app, [*base, "ingest", str(empty), "--json"])
        assert ran.exit_code == 1 and f"looptool: error: no records in {empty}" in ran.stderr
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"foo": 1}\n{not json\n' + json.dumps(_paper("Paris", ordered="no")) + "\n")
        ran = runner.invoke(app, [*base, "ingest", str(bad), "--json"])
        assert ran.exit_code == 1 and json.loads(ran.stdout.strip().splitlines()[-1])["dead_letters"] == 3
        [error] = [line for line in ran.stderr.splitlines() if line.startswith("looptool: error:")]
        assert "nothing landed" in error and "3 records read, 0 samples landed, 3 dead-lettered" in error
        good = runner.invoke(app, [*base, "ingest", str(EXAMPLES / "paper.jsonl"), "--json"])
        assert good.exit_code == 0, good.output
    finally:
        configure_logging(LogSettings())  # the CLI bound logging to the runner's (now closed) stream
