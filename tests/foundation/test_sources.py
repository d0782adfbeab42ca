"""Seed sources as published: JSON arrays, JSON Lines, gzip, folders, saved datasets, BFCL's layout.

Every record lands (SampleAdded) or is dead-lettered with its place and reason; nothing is lost.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from schemas.events import DeadLetter, SampleAdded
from streams.ingest import IngestReport, read_records
from streams.sources import SourceError, iter_records

PUBLISHED = Path(__file__).parents[1] / "toolcall" / "data" / "published"
GLAIVE = PUBLISHED / "llamafactory" / "glaive_toolcall_en_demo.json"


def read(*paths: Path, fmt: str = "auto", answers: Path | None = None) -> tuple[IngestReport, list, list]:
    report = IngestReport(path="test")
    events = list(read_records(list(paths), "r", fmt, report, answers=answers))
    added = [e.payload for e in events if isinstance(e.payload, SampleAdded)]
    letters = [e.payload for e in events if isinstance(e.payload, DeadLetter)]
    assert len(added) + len(letters) == len(events)
    return report, added, letters


def test_a_json_array_is_read_element_by_element_with_lines() -> None:
    report, added, letters = read(GLAIVE)
    assert report.records == 4 and not letters  # the whole array, not 'Extra data' per line
    assert {a.source_ref for a in added} >= {
        "glaive_toolcall_en_demo.json[0]",
        "glaive_toolcall_en_demo.json[3]",
    }
    places = [source.location for source in iter_records(GLAIVE)]
    assert places[0] == "element 0 (line 2)" and places[1].startswith("element 1 (line ")


def test_a_broken_array_element_is_dead_lettered_with_its_place(tmp_path: Path) -> None:
    first, second = json.loads(GLAIVE.read_text())[:2]
    broken = json.dumps(second).replace('"conversations"', '"conversations" oops', 1)  # not JSON
    (tmp_path / "seeds.json").write_text("[\n" + json.dumps(first) + ",\n" + broken + "\n]\n")
    report, added, letters = read(tmp_path / "seeds.json")
    assert report.records == 2 and len(letters) == 1 and added[0].source_ref == "seeds.json[0]"
    [letter] = letters
    assert letter.source_ref == "seeds.json[1]" and letter.reason.startswith("element 1 (line 3): ")
    assert letter.category == "invalid JSON" and letter.raw


def test_jsonl_gzip_and_a_pretty_printed_single_record(tmp_path: Path) -> None:
    lines = (PUBLISHED / "hermes" / "hermes-function-calling-v1.card.jsonl").read_bytes()
    with gzip.open(tmp_path / "hermes.jsonl.gz", "wb") as handle:
        handle.write(lines)
    report, added, letters = read(tmp_path / "hermes.jsonl.gz")
    assert report.records == 4 and len(letters) == 1  # the card's malformed extraction record
    assert (
        letters[0].source_ref == "hermes.jsonl.gz:2"
        and letters[0].category == "assistant turn does not parse"
    )
    assert {a.source_ref for a in added} == {"hermes.jsonl.gz:1", "hermes.jsonl.gz:3", "hermes.jsonl.gz:4"}
    report, added, _ = read(PUBLISHED / "xlam" / "xlam-function-calling-60k.card.json")
    assert report.records == 1 and added[0].source_format == "xlam"


def test_a_folder_joins_bfcl_answers_and_docs_and_accounts_for_every_record() -> None:
    report, added, _ = read(PUBLISHED)
    files = [
        p
        for p in PUBLISHED.rglob("*.json*")
        if "possible_answer" not in p.parts and "multi_turn_func_doc" not in p.parts
    ]
    assert report.records == 32  # every record of every file (answers and docs are context, not records)
    assert report.records == report.dead_lettered + sum(report.by_format.values())
    assert "bfcl record has no ground truth" not in report.reasons  # the possible_answer/ folder was joined
    assert report.reasons == {
        "bfcl agentic record: no call to learn": 1,
        "bfcl relevance record: no reference call": 1,
        "assistant turn does not parse": 1,
    }
    assert report.reason_examples["bfcl agentic record: no call to learn"] == ["bfcl/BFCL_v4_memory.json:1"]
    assert len(files) == 17
    multi = [a for a in added if a.source_ref == "bfcl/BFCL_v4_multi_turn_base.json:1"]
    assert len(multi) == 4 and all(len(a.tools) == 31 for a in multi)  # both classes, less "cp" (excluded)
    summary = report.summary()
    assert set(summary) >= {"records", "samples", "dead_letters", "duplicates", "reasons"}
    assert summary["dead_letters"] == 3 and summary["samples"] == len(added)


def test_answers_file_for_questions_laid_out_elsewhere(tmp_path: Path) -> None:
    questions = tmp_path / "questions.json"
    shutil.copy(PUBLISHED / "bfcl" / "BFCL_v4_simple_python.json", questions)
    report, _, letters = read(questions)
    assert report.reasons == {"bfcl record has no ground truth": 2}
    assert "possible_answer/" in letters[0].reason
    report, added, letters = read(
        questions, answers=PUBLISHED / "bfcl" / "possible_answer" / "BFCL_v4_simple_python.json"
    )
    assert not letters and len(added) == 2


def test_a_dataset_saved_to_disk_is_read_row_by_row(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    records = json.loads(GLAIVE.read_text())
    datasets.Dataset.from_list(records).save_to_disk(str(tmp_path / "glaive"))
    report, added, letters = read(tmp_path / "glaive")
    assert report.records == 4 and not letters
    assert {a.source_ref for a in added} >= {"glaive#0", "glaive#3"}
    split = datasets.DatasetDict({"train": datasets.Dataset.from_list(records[:2])})
    split.save_to_disk(str(tmp_path / "split"))
    report, added, _ = read(tmp_path / "split")
    assert report.records == 2 and all(a.source_ref.startswith("split[train]#") for a in added)


def test_forced_format_and_missing_paths(tmp_path: Path) -> None:
    report, _, letters = read(GLAIVE, fmt="xlam")
    assert len(letters) == 4 and report.reasons == {"xlam 'query' must be a non-empty string": 4}
    with pytest.raises(SourceError, match="not found"):
        read(tmp_path / "nothing.jsonl")


# Tools as a Hugging Face dataset stores them: nested structs, which Arrow merges across rows.
def _tool(name: str, parameter: str, *, enum: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "description": parameter}
    if enum is not None:
        schema["enum"] = enum
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": name,
            "parameters": {"type": "object", "properties": {parameter: schema}, "required": [parameter]},
        },
    }


def _chat(question: str, tool: dict[str, Any], arguments: str) -> dict[str, Any]:
    name = tool["function"]["name"]
    call = {"id": "c", "type": "function", "function": {"name": name, "arguments": arguments}}
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": "", "tool_calls": [call]},
        ],
        "tools": [tool],
    }


HF_ROWS = [
    _chat(
        "Weather in Paris?", _tool("get_weather", "location", enum=["Paris", "Oslo"]), '{"location": "Paris"}'
    ),
    _chat("AAPL price?", _tool("get_stock", "symbol"), '{"symbol": "AAPL"}'),
]


def test_a_saved_dataset_with_merged_tool_structs_lands_with_each_tools_own_parameters(
    tmp_path: Path,
) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(HF_ROWS).save_to_disk(str(tmp_path / "hf"))
    report, added, letters = read(tmp_path / "hf")
    assert not letters and report.samples == 2  # each row used to be "a schema must be an object"
    weather, stock = (a.tools[0].parameters.to_json_schema() for a in added)
    assert weather == {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "location", "enum": ["Paris", "Oslo"]}},
        "required": ["location"],
    }
    assert stock["properties"] == {"symbol": {"type": "string", "description": "symbol"}}


def test_a_parquet_file_is_read_row_by_row(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    pq.write_table(pa.Table.from_pylist(HF_ROWS), tmp_path / "train.parquet", row_group_size=1)
    report, added, letters = read(tmp_path / "train.parquet")
    assert not letters and report.records == 2
    assert [a.source_ref for a in added] == ["train.parquet#0", "train.parquet#1"]
    assert list(added[1].tools[0].parameters.properties) == ["symbol"]
    (tmp_path / "folder").mkdir()
    shutil.copy(tmp_path / "train.parquet", tmp_path / "folder" / "train.parquet")
    report, added, _ = read(tmp_path / "folder")  # a folder's .parquet files are records too
    assert report.samples == 2
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not parquet")
    report, _, [letter] = read(tmp_path / "broken.parquet")
    assert letter.source_ref == "broken.parquet" and letter.reason.startswith("file: ")


@pytest.mark.parametrize("name", ["seeds.csv", "seeds.xlsx", "data.arrow", "seeds.csv.gz"])
def test_an_unsupported_file_type_is_refused_up_front(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"query,answers\nq,a\n")
    with pytest.raises(SourceError, match=r"unsupported file type \.(csv|xlsx|arrow); give \.jsonl, \.json"):
        read(tmp_path / name)


def test_a_utf8_bom_is_dropped_from_json_files_and_answers(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    records = json.loads(GLAIVE.read_text())[:2]
    (tmp_path / "array.json").write_bytes(bom + json.dumps(records, indent=2).encode())
    (tmp_path / "one.json").write_bytes(bom + json.dumps(records[0], indent=2).encode())
    (tmp_path / "line.json").write_bytes(bom + json.dumps(records).encode())
    for name, count in (("array.json", 2), ("one.json", 1), ("line.json", 2)):
        report, added, letters = read(tmp_path / name)
        assert not letters and report.records == count, name  # not JSON Lines, each "line" dead-lettered
    questions = tmp_path / "questions.json"
    shutil.copy(PUBLISHED / "bfcl" / "BFCL_v4_simple_python.json", questions)
    answers = PUBLISHED / "bfcl" / "possible_answer" / "BFCL_v4_simple_python.json"
    entries = [json.loads(line) for line in answers.read_text().splitlines() if line.strip()]
    (tmp_path / "answers.json").write_bytes(bom + json.dumps(entries).encode())
    _, added, letters = read(questions, answers=tmp_path / "answers.json")
    assert not letters and len(added) == 2


def test_a_utf16_or_utf32_file_is_read_as_its_bom_says(tmp_path: Path) -> None:
    # PowerShell's `>` writes UTF-16: once its first line landed and every other was "not UTF-8 text".
    records = json.loads(GLAIVE.read_text())[:2]
    text = "\r\n".join(json.dumps(record, ensure_ascii=False) for record in records) + "\r\n"
    for encoding in ("utf-16", "utf-16-be", "utf-32"):
        data = text.encode(encoding)
        if encoding == "utf-16-be":
            data = b"\xfe\xff" + data  # the codec writes no BOM for an explicit byte order
        path = tmp_path / f"{encoding}.jsonl"
        path.write_bytes(data)
        report, added, letters = read(path)
        assert not letters and report.records == 2 and added, encoding


def test_unreadable_bfcl_answer_and_doc_lines_dead_letter_only_the_records_needing_them(
    tmp_path: Path,
) -> None:
    bfcl = tmp_path / "bfcl"
    shutil.copytree(PUBLISHED / "bfcl", bfcl)
    answers = bfcl / "possible_answer" / "BFCL_v4_simple_python.json"
    first, second = answers.read_text().splitlines()[:2]
    answers.write_text(first + "\n" + second[:36] + "\n")  # the second answer cut short
    docs = bfcl / "multi_turn_func_doc" / "posting_api.json"
    docs.write_text(docs.read_text() + '{"name": oops\n')  # line 15: the docs of TwitterAPI
    report, added, letters = read(bfcl)
    assert report.records == read(PUBLISHED / "bfcl")[0].records  # the file went on, and the others
    assert "BFCL_v4_simple_python.json:1" in {a.source_ref for a in added}
    [simple] = [d for d in letters if d.source_ref == "BFCL_v4_simple_python.json:2"]
    assert "possible_answer/BFCL_v4_simple_python.json line 2: not valid JSON" in simple.reason
    assert simple.category == "bfcl record has no ground truth: possible answers unreadable"
    multi = [d for d in letters if "multi_turn" in d.source_ref]
    assert len(multi) == 3 and not [a for a in added if "multi_turn" in a.source_ref]
    assert all("multi_turn_func_doc/posting_api.json line 15: not valid JSON" in d.reason for d in multi)
    bad = tmp_path / "answers.jsonl"
    bad.write_text(first + "\n{oops\n")
    with pytest.raises(SourceError, match=r"answers\.jsonl line 2: not valid JSON"):
        read(PUBLISHED / "bfcl" / "BFCL_v4_simple_python.json", answers=bad)


def test_a_json_lines_file_is_read_line_by_line_not_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 376 MiB JSON Lines file took 0.78 GiB before its first record (read whole, then split)."""
    import codecs
    import gzip

    import streams.sources as sources

    def whole(path: Path) -> bytes:
        raise AssertionError(f"{path} was read whole")

    monkeypatch.setattr(sources, "_read_bytes", whole)
    lines = [json.dumps({"n": n, "text": "a\rb"}).encode() for n in range(3)]
    plain = tmp_path / "seeds.jsonl"
    plain.write_bytes(codecs.BOM_UTF8 + b"\r\n".join(lines) + b"\n\n")
    packed = tmp_path / "seeds.jsonl.gz"
    packed.write_bytes(gzip.compress(b"\n".join(lines)))
    for path in (plain, packed):
        records = list(sources.iter_records(path))
        assert [r.location for r in records] == ["line 1", "line 2", "line 3"]
        assert [r.value["n"] for r in records] == [0, 1, 2] and all(r.error is None for r in records)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(b"\n".join(lines * 2000))[:-40])  # a download cut short
    records = list(sources.iter_records(cut))
    assert records[0].value == {"n": 0, "text": "a\rb"} and records[-1].error is not None
