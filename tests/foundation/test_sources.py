"""Seed sources as published: JSON arrays, JSON Lines, gzip, folders, saved datasets, BFCL's layout.

Every record lands (SampleAdded) or is dead-lettered with its place and reason; nothing is lost.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

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
    assert len(multi) == 4 and all(len(a.tools) == 32 for a in multi)
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
