"""Dead letters listed: a consumer's dead letter (an undecodable record on a topic) says where it sits,
and reasons with brackets are shown as written (views/deadletters.py)."""

from __future__ import annotations

import io

from rich.console import Console

from schemas.events import DeadLetter, Producer, make_event
from views.deadletters import render_dead_letters, row_of, select


def letter(**fields: object) -> object:
    fields = {"reason": "corrupt: bad magic", **fields}
    payload = DeadLetter(stage="relabel", error_type="CorruptEventError", **fields)
    return make_event(payload, run_id="r", producer=Producer(stage="relabel", version="0"))


def test_an_undecodable_records_place_is_its_topic_partition_and_offset() -> None:
    on_topic = row_of(letter(source_topic="r.verdicts", source_partition=2, source_offset=41, raw=b"\x00"))
    from_file = row_of(letter(source_ref="seeds.jsonl:3", raw=b"{}"))
    assert on_topic.place == "r.verdicts[2]@41" and from_file.place == "seeds.jsonl:3"
    assert on_topic.to_json()["place"] == "r.verdicts[2]@41" and on_topic.to_json()["source_offset"] == 41
    assert select([on_topic, from_file], source="verdicts") == [on_topic]  # --source finds it
    console = Console(record=True, width=200, file=io.StringIO())
    render_dead_letters([on_topic], console)
    assert "r.verdicts[2]@41" in console.export_text()


def test_a_reason_with_brackets_is_listed_as_written() -> None:
    row = row_of(
        letter(source_ref="[v2]/seeds.jsonl:1", reason="invalid tools: [bold]x[/bold] [ingest]", raw=b"{}")
    )
    console = Console(record=True, width=300, file=io.StringIO())
    render_dead_letters([row], console)
    text = console.export_text()
    assert "invalid tools: [bold]x[/bold] [ingest]" in text and "[v2]/seeds.jsonl:1" in text
