"""Exports of D_J: byte-identical across rebuilds, and every format loads back to the same samples."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from streams.sources import iter_records
from tests.analytics.conftest import LiveRun
from toolcall.formats import RecordError, convert_record, record_to_samples
from toolcall.prompts import build_chat
from toolcall.reward import ground_truth_json
from toolcall.specs import load_tools
from toolcall.types import Action, Message, Sample, ToolCall
from views.export import (
    EXPORT_FORMATS,
    ExportError,
    export_dataset,
    export_round,
    read_export,
    run_export,
)
from views.replay import Cut, DatasetMember, RoundDataset, dataset_at


def _files(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {
            p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
        }
    return {path.name: path.read_bytes()}


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
async def test_rebuilding_a_round_twice_gives_byte_identical_exports(
    live_run: LiveRun, tmp_path: Path, fmt: str
) -> None:
    first = await export_round(live_run.settings, Cut(round=2), fmt, tmp_path / "a" / f"d2.{fmt}")
    second = await export_round(live_run.settings, Cut(round=2), fmt, tmp_path / "b" / f"d2.{fmt}")
    assert first.rows == second.rows == live_run.run.round_closed(2).payload.total
    assert first.content_hash == live_run.run.round_closed(2).payload.content_hash
    assert _files(first.path) == _files(second.path)
    assert not list(tmp_path.rglob("*.partial"))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
async def test_exports_load_back_to_the_curated_samples(live_run: LiveRun, tmp_path: Path, fmt: str) -> None:
    dataset = await dataset_at(live_run.settings, Cut(round=2))
    result = export_dataset(dataset, fmt, tmp_path / f"d2.{fmt}")
    loaded = list(read_export(result.path, fmt))
    assert [sample_id for sample_id, _ in loaded] == [m.sample_id for m in dataset.members]
    assert [s.content_hash() for _, s in loaded] == [m.content_hash for m in dataset.members]
    assert [s.label for _, s in loaded] == [m.label for m in dataset.members]


async def test_parquet_and_hf_exports_hold_the_curation_columns(live_run: LiveRun, tmp_path: Path) -> None:
    import datasets

    dataset = await dataset_at(live_run.settings, Cut(round=3))
    parquet = export_dataset(dataset, "parquet", tmp_path / "d3.parquet").path
    table = pq.read_table(parquet)
    assert table.column_names[:5] == ["sample_id", "round", "source", "origin", "seed_sample_id"]
    rows = table.to_pylist()
    assert {r["round"] for r in rows} == {3}
    assert [r["source"] for r in rows] == [m.source for m in dataset.members]
    expansions = [r for r in rows if r["origin"] == "expansion"]
    assert expansions and all(r["seed_sample_id"] for r in expansions)
    folder = export_dataset(dataset, "hf", tmp_path / "d3.hf").path
    hf = datasets.load_from_disk(str(folder))
    assert isinstance(hf, datasets.Dataset) and len(hf) == len(dataset.members)
    assert hf["sample_id"] == [m.sample_id for m in dataset.members]
    assert hf[0]["messages"][0]["role"] in ("system", "user")


async def test_jsonl_export_is_compact_and_ingestible_again(live_run: LiveRun, tmp_path: Path) -> None:
    dataset = await dataset_at(live_run.settings, Cut(round=1))
    path = export_dataset(dataset, "jsonl", tmp_path / "d1.jsonl").path
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(dataset.members)
    for line, member in zip(lines, dataset.members, strict=True):
        record = json.loads(line)
        assert line == json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        [sample] = record_to_samples(record)  # the ingest path, format auto-detected
        assert sample.content_hash() == member.content_hash == record["content_hash"]
        assert record["source"] == "SEED" and record["round"] == 1


async def test_every_export_shows_the_model_the_runs_own_prompts(live_run: LiveRun, tmp_path: Path) -> None:
    """Exports once sorted each tool's parameters and each call's arguments (the order is part of the
    prompt) and dropped a sample's own conversation time (the prompts' current time)."""
    run_time = "2026-01-01 09:00:00"
    dataset = await dataset_at(live_run.settings, Cut(round=2))
    members = tuple(
        dataclasses.replace(member, conversation_time="2024-03-05 10:00") if index % 2 else member
        for index, member in enumerate(dataset.members)
    )
    dataset = dataclasses.replace(dataset, members=members)
    unsorted = [
        m
        for m in members
        for tool in m.tools
        if list(tool.parameters.properties) != sorted(tool.parameters.properties)
    ]
    assert unsorted  # the run holds parameters in an order sorting would change

    def prompt(sample: Any) -> Any:
        return build_chat(sample.tools, sample.messages, sample.conversation_time or run_time)

    for fmt in ("jsonl", "parquet", "hf"):
        path = export_dataset(dataset, fmt, tmp_path / f"d2.{fmt}").path
        for (sample_id, sample), member in zip(read_export(path, fmt), members, strict=True):
            assert sample_id == member.sample_id and sample.conversation_time == member.conversation_time
            assert prompt(sample) == prompt(member.sample), (fmt, sample_id)
    verl = export_dataset(dataset, "verl", tmp_path / "d2.verl.parquet", current_time=run_time).path
    for row, member in zip(pq.read_table(verl).to_pylist(), members, strict=True):
        assert row["prompt"] == prompt(member.sample)


async def test_verl_export_is_the_trainers_parquet(live_run: LiveRun, tmp_path: Path) -> None:
    dataset = await dataset_at(live_run.settings, Cut(round=2))
    path = export_dataset(
        dataset, "verl", tmp_path / "d2.verl.parquet", current_time="2026-01-01 09:00:00"
    ).path
    rows = pq.read_table(path).to_pylist()
    assert [r["extra_info"]["sample_id"] for r in rows] == [m.sample_id for m in dataset.members]
    assert {r["extra_info"]["round"] for r in rows} == {2}
    for row, member in zip(rows, dataset.members, strict=True):
        assert row["reward_model"]["ground_truth"] == ground_truth_json(member.tools, member.label)
        assert row["prompt"][0]["role"] == "system" and row["prompt"][-1]["role"] != "assistant"


async def test_export_refuses_a_dataset_that_fails_its_manifest(live_run: LiveRun, tmp_path: Path) -> None:
    dataset = await dataset_at(live_run.settings, Cut(round=1))
    broken = dataclasses.replace(
        dataset, members=dataset.members[1:], problems=("manifest lists 40 members",)
    )
    with pytest.raises(ExportError, match="does not match its manifest"):
        export_dataset(broken, "jsonl", tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()
    with pytest.raises(ExportError, match="unknown export format 'csv'"):
        export_dataset(dataset, "csv", tmp_path / "x.csv")


def test_run_export_defaults_to_the_latest_round(live_run: LiveRun) -> None:
    console = Console(record=True, width=200)
    result = run_export(live_run.settings, round_=None, until=None, fmt="parquet", out=None, console=console)
    assert result.round == 3
    assert (
        result.path
        == live_run.settings.store.path.parent / "exports" / live_run.settings.run_id / "round-3.parquet"
    )
    assert pq.read_table(result.path).num_rows == result.rows
    assert f"wrote D_3 ({result.rows} samples" in console.export_text()


async def test_verl_export_names_a_row_verl_cannot_train_on(live_run: LiveRun, tmp_path: Path) -> None:
    dataset = await dataset_at(live_run.settings, Cut(round=1))
    member = dataset.members[0]
    answered = dataclasses.replace(
        member, messages=[*member.messages, Message(role="assistant", content="Done.")]
    )
    broken = dataclasses.replace(dataset, members=(answered, *dataset.members[1:]))
    with pytest.raises(ExportError, match=f"cannot be written as verl parquet: .*{member.sample_id}"):
        export_dataset(broken, "verl", tmp_path / "x.parquet", force=True)
    assert not (tmp_path / "x.parquet").exists()


# --- export never deletes (issue 19) --------------------------------------------------------------


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


async def test_hf_export_refuses_a_folder_it_did_not_write_and_leaves_it_whole(
    live_run: LiveRun, tmp_path: Path
) -> None:
    dataset = await dataset_at(live_run.settings, Cut(round=1))
    folder = tmp_path / "work"
    (folder / "src").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "src" / "main.py").write_text("print(1)")
    before = _tree(folder)
    with pytest.raises(ExportError, match="non-empty folder that no export wrote"):
        export_dataset(dataset, "hf", folder)
    assert _tree(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # nothing left beside it

    # An empty folder, and then the export's own folder, are replaced without asking.
    empty = tmp_path / "empty"
    empty.mkdir()
    first = _tree(export_dataset(dataset, "hf", empty).path)
    assert _tree(export_dataset(dataset, "hf", empty).path) == first
    # --force replaces the folder nobody exported, and only once the new one is complete.
    export_dataset(dataset, "hf", folder, force=True)
    assert _tree(folder) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "work"]


async def test_export_never_replaces_the_current_folder_or_a_folder_with_a_file(
    live_run: LiveRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = await dataset_at(live_run.settings, Cut(round=1))
    (tmp_path / "keep.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    for force in (False, True):
        with pytest.raises(ExportError, match="holds the current folder"):
            export_dataset(dataset, "hf", Path("."), force=force)
    with pytest.raises(ExportError, match="is a folder; jsonl exports to a file"):
        export_dataset(dataset, "jsonl", Path("."))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
async def test_a_failed_export_leaves_the_previous_one_and_no_partial_files(
    live_run: LiveRun, tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = await dataset_at(live_run.settings, Cut(round=1))
    target = tmp_path / f"d1.{fmt}"
    before = _files(export_dataset(dataset, fmt, target).path)

    def fail_half_way(table: object, where: object, *args: object, **kwargs: object) -> None:
        Path(str(where)).write_bytes(b"half a file")
        raise OSError("disk full")

    import datasets

    monkeypatch.setattr(pq, "write_table", fail_half_way)
    monkeypatch.setattr(
        datasets.Dataset, "save_to_disk", lambda self, where, **_: fail_half_way(self, Path(where) / "x")
    )
    if fmt in ("jsonl", "openai"):
        monkeypatch.setattr(f"views.export.{fmt}_record", lambda *_: 1 / 0)
    with pytest.raises((OSError, ZeroDivisionError)):
        export_dataset(dataset, fmt, target)
    assert _files(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


async def test_exporting_a_run_with_no_events_says_so(live_run: LiveRun, tmp_path: Path) -> None:
    """A mistyped run id read "no round had closed by the cut", as for a run in its first round."""
    from views.replay import ReplayError

    mistyped = live_run.settings.model_copy(update={"run_id": "nosuchrun"})
    with pytest.raises(ReplayError, match=r"'nosuchrun' has no events.*mistyped"):
        await export_round(mistyped, Cut(), "jsonl", tmp_path / "d.jsonl")


def test_export_says_how_many_records_it_could_not_decode(
    kafka_bootstrap: str, world: Any, tmp_path: Path
) -> None:
    """A member's SampleAdded that does not decode (a newer release wrote it) left the member's origin
    null in the export without a word; D_J still matches its manifest, so the export is written, but
    stderr now says how many records were left out, as `stats` and `lineage` do."""
    import asyncio

    from typer.testing import CliRunner

    from bus.config import KafkaSettings
    from bus.kafka import EventProducer, ensure_topics
    from bus.topics import topic_name
    from common.logs import LogSettings, configure_logging
    from looptool.cli import app
    from world.simulated_run import simulate_run

    run_id = "t-undecodable-" + os.urandom(4).hex()
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)

    async def publish() -> str:
        seeds = await world.samples(4, noise_rate=0.0, seed="undecodable")
        run = await simulate_run(run_id, world, seeds, rounds=1, target_size=3, k=1)
        member = run.members(1)[0].payload.sample_id
        unreadable = next(e for e in run.of_type("SampleAdded") if e.payload.sample_id == member)
        await ensure_topics(kafka, run_id)
        async with EventProducer(kafka) as producer:
            await producer.send_all([e for e in run.events if e.event_id != unreadable.event_id])
            await producer.send_raw(
                topic_name(run_id, "samples"), b"\x00\x01 from a newer writer", member.encode()
            )
        return member

    member = asyncio.run(publish())
    out = tmp_path / "d1.jsonl"
    try:
        result = CliRunner().invoke(
            app,
            [
                "--bootstrap-servers",
                kafka_bootstrap,
                "--run-id",
                run_id,
                "export",
                "--round",
                "1",
                "--out",
                str(out),
            ],
        )
    finally:
        configure_logging(LogSettings())  # the CLI bound logging to the runner's (now closed) stream
    assert result.exit_code == 0, result.output
    rows = {row["sample_id"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert rows[member]["origin"] is None  # what the unreadable record held is missing
    warned = " ".join(result.stderr.split())
    assert (
        "1 record(s) of the run could not be decoded and are left out of what this export was rebuilt from"
        in warned
    )


# --- exports are ingestible again, on the samples that are hard to keep -----------------------------

_SEARCH = {
    "name": "search_flights",
    "description": "Flights between two cities.",
    "parameters": {
        "type": "object",
        "properties": {"to": {"type": "string"}, "from": {"type": "string"}, "date": {"type": "string"}},
        "required": ["to", "from"],
    },
}
_NOW = {"name": "current_weather", "description": "Weather now.", "parameters": {"type": "object"}}


def _edge_samples() -> list[Sample]:
    """Samples whose details an export format could lose: unicode, parallel and empty-argument calls,
    a text answer, a system turn, earlier calls and their results, arguments not in sorted order."""
    tools = load_tools([_SEARCH, _NOW])
    ask = Message(role="user", content="Flüge nach 東京 🛫, morgen?")
    asked_twice = Action(
        calls=[
            ToolCall(name="search_flights", arguments={"to": "東京", "from": "Zürich", "date": "2026-03-06"}),
            ToolCall(name="search_flights", arguments={"to": "Ōsaka", "from": "Zürich"}),
        ]
    )
    earlier = [
        Message(role="system", content="Answer in German. Heute ist Donnerstag."),
        ask,
        Message(role="assistant", tool_calls=asked_twice.calls),
        Message(role="tool", content='{"flights": ["LX160"]}', name="search_flights"),
        Message(role="tool", content='{"flights": []}', name="search_flights"),
        Message(role="assistant", content="LX160 fliegt nach 東京; nach Ōsaka nichts."),
        Message(role="user", content="Und das Wetter dort?"),
    ]
    return [
        Sample(tools=tools, messages=[ask], label=asked_twice, conversation_time="2026-03-05 09:00"),
        Sample(
            tools=tools,
            messages=[Message(role="user", content="Wie ist das Wetter?")],
            label=Action(calls=[ToolCall(name="current_weather")]),
        ),
        Sample(
            tools=tools,
            messages=[Message(role="user", content="Erzähl mir einen Witz 😀")],
            label=Action(text="Dafür habe ich kein passendes Werkzeug."),
        ),
        Sample(
            tools=tools,
            messages=earlier,
            label=Action(
                calls=[
                    ToolCall(name="current_weather"),
                    ToolCall(name="search_flights", arguments={"to": "a"}),
                ],
                ordered=True,
            ),
        ),
    ]


def _edge_dataset() -> RoundDataset:
    members = tuple(
        DatasetMember(
            sample_id=f"s{index}",
            round=1,
            source="SEED",
            tools=sample.tools,
            messages=sample.messages,
            label=sample.label,
            label_event_id=f"label-{index}",
            content_hash=sample.content_hash(),
            event_id=f"event-{index}",
            origin="seed",
            conversation_time=sample.conversation_time,
        )
        for index, sample in enumerate(_edge_samples())
    )
    return RoundDataset(
        round=1, members=members, manifest=None, manifest_event_id=None, content_hash="edge", problems=()
    )


def _ingested(path: Path) -> list[Sample]:
    """The samples ``looptool ingest`` reads from ``path`` (its reader and converter), refusing none."""
    samples = []
    for record in iter_records(path):
        assert record.error is None, record.error
        samples.extend(convert_record(record.value, "auto", record.context).samples)
    return samples


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf", "openai"])
def test_an_export_ingested_again_gives_the_same_samples(tmp_path: Path, fmt: str) -> None:
    """Parquet and hf exports once dead-lettered every call label: they write call arguments as JSON
    strings, and the label reader took only objects (the context's calls took both)."""
    dataset = _edge_dataset()
    path = export_dataset(dataset, fmt, tmp_path / f"d1.{fmt}", force=True).path
    ingested = _ingested(path)
    assert [s.content_hash() for s in ingested] == [m.content_hash for m in dataset.members]
    assert ingested == [m.sample for m in dataset.members]  # time, order and ``ordered`` kept too
    arguments = ingested[0].label.calls[0].arguments
    assert list(arguments) == ["to", "from", "date"]


def test_a_label_that_is_not_an_action_names_the_field_on_one_line() -> None:
    label = {"calls": [{"name": "current_weather", "arguments": "[1]"}], "ordered": "yes"}
    with pytest.raises(RecordError) as refused:
        record_to_samples({"tools": [_NOW], "messages": [{"role": "user", "content": "?"}], "label": label})
    assert str(refused.value) == "arguments of current_weather must be an object"
    label = {"calls": [], "text": 3, "ordered": "yes"}
    with pytest.raises(RecordError) as refused:
        record_to_samples({"tools": [_NOW], "messages": [{"role": "user", "content": "?"}], "label": label})
    message = str(refused.value)
    assert "\n" not in message and "validation error" not in message
    assert message.startswith("label is not an action: text: Input should be a valid string; ordered: ")
    assert refused.value.reason == "label is not an action: text, ordered"


# --- --out that is no plain file: a FIFO, a symlink, standard output --------------------------------


def test_an_export_into_a_fifo_is_written_through_to_its_reader(tmp_path: Path) -> None:
    """An export once renamed a plain file over the FIFO: its reader got nothing, the FIFO was gone."""
    dataset = _edge_dataset()
    expected = export_dataset(dataset, "jsonl", tmp_path / "plain.jsonl", force=True).path.read_bytes()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    export_dataset(dataset, "jsonl", fifo, force=True)
    reader.join(timeout=30)
    assert received == [expected]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "plain.jsonl"]  # nothing beside it
    # A link to a stream (as /dev/stdout links to a pipe) is written through too, the link kept.
    link = tmp_path / "stdout"
    link.symlink_to(fifo)
    received.clear()
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    export_dataset(dataset, "jsonl", link, force=True)
    reader.join(timeout=30)
    assert received == [expected] and link.is_symlink() and stat.S_ISFIFO(fifo.lstat().st_mode)
    with pytest.raises(ExportError, match="an hf export is a folder"):
        export_dataset(dataset, "hf", fifo, force=True)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_an_export_to_a_symlink_replaces_the_file_it_names(tmp_path: Path, fmt: str) -> None:
    """An export once replaced the link itself with a plain file, leaving the file it named stale."""
    dataset = _edge_dataset()
    expected = export_dataset(dataset, fmt, tmp_path / f"plain.{fmt}", force=True).path.read_bytes()
    (tmp_path / "data").mkdir()
    real = tmp_path / "data" / f"d1.{fmt}"
    real.write_bytes(b"the previous export")
    link = tmp_path / f"latest.{fmt}"
    link.symlink_to(Path("data") / real.name)
    result = export_dataset(dataset, fmt, link, force=True)
    assert link.is_symlink() and os.readlink(link) == str(Path("data") / real.name)
    assert real.read_bytes() == expected and result.path == real
    assert sorted(p.name for p in real.parent.iterdir()) == [real.name]  # no temporary left


async def test_export_to_dash_writes_the_data_alone_to_standard_output(
    live_run: LiveRun, tmp_path: Path
) -> None:
    """``--out -`` once wrote a file named ``-`` (and the summary went to standard output)."""
    dataset = await dataset_at(live_run.settings, Cut(round=1))
    expected = export_dataset(dataset, "jsonl", tmp_path / "d1.jsonl").path.read_bytes()
    command = ["--run-id", live_run.settings.run_id, "export", "--round", "1", "--out", "-"]
    done = subprocess.run(
        [sys.executable, "-m", "looptool.cli", *command],
        capture_output=True,
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            "LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS": live_run.settings.kafka.bootstrap_servers or "",
            "LOOPTOOL_STORE__PATH": str(live_run.store_path),
        },
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == expected
    assert b"wrote D_1" in done.stderr and b"standard output" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d1.jsonl"]  # no file named "-"


def test_openai_export_is_the_chat_fine_tuning_format(tmp_path: Path) -> None:
    """No export was what OpenAI fine-tuning, TRL or LLaMA-Factory read: ``messages`` ending with the
    label as an assistant turn, ``tools`` as typed functions, calls with ids their results answer."""
    dataset = _edge_dataset()
    path = export_dataset(dataset, "openai", tmp_path / "d1.openai.jsonl", force=True).path
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == len(dataset.members)
    assert all(set(r) <= {"messages", "tools", "ordered", "current_time"} for r in records)
    assert "null" not in path.read_text(encoding="utf-8") and '""' not in path.read_text(encoding="utf-8")
    first, weather, joke, dialogue = records
    assert first["tools"][0] == {"type": "function", "function": _SEARCH}
    assert first["current_time"] == "2026-03-05 09:00" and "current_time" not in weather
    assert first["messages"][0] == {"role": "user", "content": "Flüge nach 東京 🛫, morgen?"}
    [label] = first["messages"][1:]
    assert label["role"] == "assistant" and "content" not in label and "weight" not in label
    assert [c["function"] for c in label["tool_calls"]] == [
        {"name": "search_flights", "arguments": '{"to":"東京","from":"Zürich","date":"2026-03-06"}'},
        {"name": "search_flights", "arguments": '{"to":"Ōsaka","from":"Zürich"}'},
    ]
    assert all(
        c["type"] == "function" and c["id"].isalnum() and len(c["id"]) == 9 for c in label["tool_calls"]
    )
    assert weather["messages"][-1]["tool_calls"][0]["function"] == {
        "name": "current_weather",
        "arguments": "{}",
    }
    assert joke["messages"][-1] == {"role": "assistant", "content": "Dafür habe ich kein passendes Werkzeug."}
    roles = [m["role"] for m in dialogue["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool", "assistant", "user", "assistant"]
    asked, *results = dialogue["messages"][2:5]
    assert asked["weight"] == 0 and "content" not in asked
    assert [r["tool_call_id"] for r in results] == [c["id"] for c in asked["tool_calls"]]
    assert all("name" not in r for r in results)  # the id names the tool
    assert dialogue["ordered"] is True and "ordered" not in first
    ids = [c["id"] for m in dialogue["messages"] for c in m.get("tool_calls", [])]
    assert len(ids) == len(set(ids)) == 4
    # The same ids in every export: they are derived from the sample, turn and call.
    again = export_dataset(dataset, "openai", tmp_path / "again.jsonl", force=True).path
    assert again.read_bytes() == path.read_bytes()
    loaded = [s for _, s in read_export(path, "openai")]
    assert [s.content_hash() for s in loaded] == [m.content_hash for m in dataset.members]


async def test_openai_export_of_a_run_reads_back_to_its_samples(live_run: LiveRun, tmp_path: Path) -> None:
    dataset = await dataset_at(live_run.settings, Cut(round=2))
    path = export_dataset(dataset, "openai", tmp_path / "d2.openai.jsonl").path
    assert [s.content_hash() for s in _ingested(path)] == [m.content_hash for m in dataset.members]


# A tool-call turn as Hugging Face chat templates write it (Llama 3.x, Qwen2.5, Hermes): the arguments
# go through ``tojson``, which Transformers defines as JSON without ASCII escapes or key sorting.
_HF_CALL_TEMPLATE = (
    "{%- for m in messages %}{%- for c in m.tool_calls or [] %}"
    '{{ \'{"name": "\' + c.function.name + \'", "arguments": \' + (c.function.arguments | tojson) + "}\\n" }}'
    "{%- endfor %}{%- endfor %}"
)


def _render_calls(record: dict[str, Any]) -> list[Any]:
    import jinja2

    environment = jinja2.Environment()
    environment.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)
    text = environment.from_string(_HF_CALL_TEMPLATE).render(messages=record["messages"])
    return [json.loads(line)["arguments"] for line in text.splitlines()]


def test_openai_export_can_write_call_arguments_as_objects_for_chat_templates(tmp_path: Path) -> None:
    """The openai export wrote call arguments only as JSON strings: a Hugging Face chat template renders
    ``arguments | tojson``, so a model trained on it was shown every call's arguments as one quoted,
    escaped string. ``call_arguments="object"`` writes them as objects, in the run's key order."""
    dataset = _edge_dataset()
    strings = export_dataset(dataset, "openai", tmp_path / "strings.jsonl", force=True).path
    objects = export_dataset(
        dataset, "openai", tmp_path / "objects.jsonl", force=True, call_arguments="object"
    ).path
    first_strings, *_ = [json.loads(line) for line in strings.read_text(encoding="utf-8").splitlines()]
    first, weather, _joke, dialogue = [
        json.loads(line) for line in objects.read_text(encoding="utf-8").splitlines()
    ]
    [label] = first["messages"][1:]
    assert [c["function"]["arguments"] for c in label["tool_calls"]] == [
        {"to": "東京", "from": "Zürich", "date": "2026-03-06"},
        {"to": "Ōsaka", "from": "Zürich"},
    ]
    assert list(label["tool_calls"][0]["function"]["arguments"]) == ["to", "from", "date"]  # the run's order
    assert weather["messages"][-1]["tool_calls"][0]["function"]["arguments"] == {}
    # The template shows the model the calls themselves, context turns included ...
    member_calls = [
        call.arguments for message in dataset.members[3].messages for call in message.tool_calls
    ] + [call.arguments for call in dataset.members[3].label.calls]
    assert _render_calls(dialogue) == member_calls
    assert _render_calls(first) == [call.arguments for call in dataset.members[0].label.calls]
    # ... where string arguments come out as strings (what the export wrote before).
    assert all(isinstance(arguments, str) for arguments in _render_calls(first_strings))
    # Everything else is the same record, and ingest reads it back to the same samples.
    assert [c["id"] for c in label["tool_calls"]] == [
        c["id"] for c in first_strings["messages"][-1]["tool_calls"]
    ]
    loaded = [s for _, s in read_export(objects, "openai")]
    assert [s.content_hash() for s in loaded] == [m.content_hash for m in dataset.members]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf", "verl"])
def test_call_arguments_as_objects_is_refused_outside_the_openai_format(fmt: str, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="openai format only"):
        export_dataset(_edge_dataset(), fmt, tmp_path / "out", force=True, call_arguments="object")
    with pytest.raises(ExportError, match="string or object"):
        export_dataset(_edge_dataset(), "openai", tmp_path / "out", force=True, call_arguments="dict")
    assert list(tmp_path.iterdir()) == []
