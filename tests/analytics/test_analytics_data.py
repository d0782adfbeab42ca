"""Analytics as data: the public API (looptool.analytics), `stats --format json|csv|parquet`, and the
snippets of docs/analytics.md, each run against the session's simulated three-round run
(world/simulated_run.py, published to the embedded broker and materialised live; conftest.py), not
the quick demo's store."""

from __future__ import annotations

import asyncio
import base64
import doctest
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from rich.console import Console
from typer.testing import CliRunner

import looptool.analytics
from common.logs import LogSettings, configure_logging
from looptool import analytics
from looptool.cli import app
from looptool.cli.views import run_stats
from tests.analytics.conftest import LiveRun
from tests.analytics.test_analytics import distinct, expected_counts, of
from views.analytics.frames import VERDICT_LABELS
from views.analytics.tables import DEFAULT_TABLES, TABLES, schema_markdown
from views.store import SampleStore

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "analytics.md"
REGISTRY = ROOT / "schemas" / "avro" / "registry.json"

# The public schema, pinned: a change here is a change for every consumer (docs/analytics.md).
PINNED_COLUMNS = {
    "verdict_mix": [
        "round", "members", "probed", "matched", "accuracy", "mismatched", "pred_wrong", "label_wrong",
        "both_correct", "both_wrong", "unparseable", "no_quorum", "unjudged", "relabels", "reverts",
    ],
    "verdict_mix_by_checkpoint": [
        "checkpoint_id", "round", "step", "probed", "matched", "accuracy", "mismatched", "pred_wrong",
        "label_wrong", "both_correct", "both_wrong", "unparseable", "no_quorum", "unjudged", "relabels",
        "reverts",
    ],
    "expansion": [
        "round", "error_seeds", "candidates", "parsed", "verified", "passed", "pass_rate", "added",
        "new_samples",
    ],
    "expansion_outcomes": ["round", "outcome", "candidates", "share"],
    "curation": [
        "round", "members", "seed", "es", "ee", "hppl", "seed_new", "expansion_members", "seed_new_share",
        "seed_new_target", "closed", "content_hash",
    ],
    "accuracy_by_tool": ["round", "tool", "probed", "matched", "accuracy"],
    "error_types": [
        "round", "error_type", "mismatched", "share_of_probes", "share_of_mismatches", "pred_wrong",
        "label_wrong", "both_correct", "both_wrong", "unparseable", "no_quorum",
    ],
    "bfcl": [
        "checkpoint_id", "round", "step", "final", "suite", "suite_version", "non_live_ast", "live_ast",
        "irrelevance", "relevance", "multi_turn", "overall", "heldout_toolmatch", "items", "correct",
        "wall_time_s",
    ],
    "promotions": [
        "round", "step", "checkpoint_id", "final", "decision", "baseline_checkpoint_id",
        "evaluation_event_id", "reason", "figures_json", "baseline_figures_json", "deltas_json",
    ],
    "dead_letters": ["event_id", "stage", "error_type", "reason", "source_ref"],
    "judges": [
        "judge_model", "verdicts", "counted", "agreed", "agreement", "two_order", "flipped", "flip_rate",
        "answers", "unparseable", "truncated",
    ],
    "truncations": ["stage", "truncated"],
    "votes": [
        "verdict_event_id", "round", "judge_model", "answers", "read", "unparseable", "truncated", "counted",
        "vote", "verdict", "flipped",
    ],
    "verdicts": [
        "event_id", "sample_id", "round", "checkpoint_id", "probe_event_id", "verdict", "decided_by",
        "judge_model", "attempts",
    ],
    "relabels": ["event_id", "sample_id", "round", "checkpoint_id", "verdict_event_id", "revert", "reason"],
}  # fmt: skip


def doc_block(name: str) -> str:
    """The Python snippet of docs/analytics.md marked ``<!-- tested: NAME -->``."""
    found = re.findall(rf"<!-- tested: {re.escape(name)} -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(found) == 1, f"docs/analytics.md has {len(found)} snippets marked {name!r}"
    return found[0]


def substitute(code: str, **values: str) -> str:
    """Point a snippet at the test's run: each literal (keyword: the placeholder) must occur once."""
    for placeholder, value in values.items():
        literal = json.dumps(placeholder)
        assert code.count(literal) == 1, f"{literal} should occur once in the snippet"
        code = code.replace(literal, json.dumps(value))
    return code


def run_snippet(code: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "snippet"}
    exec(compile(code, "docs/analytics.md", "exec"), namespace)
    return namespace


# --- the API -------------------------------------------------------------------------------------


def test_api_tables_have_the_pinned_schema_and_the_numbers(live_run: LiveRun) -> None:
    events = live_run.run.events
    want = expected_counts(events)
    stats = analytics.load(live_run.store_path)
    assert {name: list(analytics.schema(name).names) for name in analytics.TABLE_NAMES} == PINNED_COLUMNS
    details = ("verdicts", "relabels", "votes")
    assert tuple(n for n in PINNED_COLUMNS if n not in details) == analytics.SUMMARY_TABLES
    for name in analytics.TABLE_NAMES:
        table = analytics.table(name, stats)
        assert table.schema.equals(analytics.schema(name), check_metadata=True), name
        frame = analytics.frame(name, stats)
        assert list(frame.columns) == PINNED_COLUMNS[name]
        assert isinstance(frame.index, pd.RangeIndex)
        for field in table.schema:  # every column documented, in the schema itself
            assert field.metadata[b"doc"], (name, field.name)

    mix = analytics.verdict_mix(stats)
    assert list(mix["round"]) == [1, 2, 3]
    for row in mix.itertuples():
        assert row.probed == want["probed"][row.round] and row.matched == want["matched"][row.round]
        for label in VERDICT_LABELS:
            assert getattr(row, label.lower()) == want["verdict"][(row.round, label)]
        assert row.relabels == want["relabels"][row.round]
    assert str(mix["probed"].dtype) == "Int64" and str(mix["accuracy"].dtype) == "float64"
    by_checkpoint = analytics.verdict_mix(stats, by="checkpoint")
    assert dict(zip(by_checkpoint["checkpoint_id"], by_checkpoint["probed"], strict=True)) == dict(
        want["ckpt_probed"]
    )
    accuracy = analytics.accuracy(stats)
    assert list(accuracy.columns) == ["round", "probed", "matched", "accuracy"]
    assert accuracy["accuracy"].tolist() == pytest.approx(
        [want["matched"][r] / want["probed"][r] for r in (1, 2, 3)]
    )
    assert list(analytics.accuracy(stats, by="checkpoint")["round"]) == [1, 2, 3]
    tools = analytics.accuracy(stats, by="tool")
    assert {(r.round, r.tool): r.probed for r in tools.itertuples()} == dict(want["tool"])

    verdicts = analytics.verdicts(stats)
    assert sorted(verdicts["event_id"]) == sorted(e.event_id for e in of(distinct(events), "Verdict"))
    relabels = analytics.relabels(stats)
    assert sorted(relabels["event_id"]) == sorted(e.event_id for e in of(distinct(events), "LabelCorrected"))
    assert not relabels["revert"].any()
    dead = analytics.dead_letters(stats)
    assert sorted(dead["event_id"]) == sorted(e.event_id for e in of(distinct(events), "DeadLetter"))
    assert len(dead) > 0  # the simulated run's flaky judge leaves some

    outcomes = analytics.expansion_outcomes(stats)
    assert {(r.round, r.outcome): r.candidates for r in outcomes.itertuples()} == dict(want["outcome"])
    expansion = analytics.expansion(stats)
    assert list(expansion["added"]) == [want["added"][r] for r in (1, 2, 3)]
    curation = analytics.curation(stats)
    for (round_, source), n in want["source"].items():
        assert curation.loc[curation["round"] == round_, source.lower()].item() == n
    assert curation["closed"].all()
    errors = analytics.error_types(stats)
    assert {(r.round, r.error_type): r.mismatched for r in errors.itertuples()} == dict(want["error"])
    assert analytics.frame("bfcl", stats).empty and analytics.frame("promotions", stats).empty


async def test_every_source_gives_the_same_tables(live_run: LiveRun) -> None:
    settings = live_run.settings
    reference = analytics.tables(live_run.store_path, analytics.TABLE_NAMES)
    run = analytics.topics(settings.run_id, settings.kafka.bootstrap_servers or "")
    sources: dict[str, Any] = {
        "str path": str(live_run.store_path),
        "SampleStore": SampleStore(live_run.store_path),
        "events": live_run.run.events,
        "RunStats": analytics.load(live_run.run.events),
        "topics (async)": await analytics.load_async(run),
        "Settings (async)": await analytics.load_async(settings),
        # the sync API inside a running event loop (a notebook): load() runs the replay in a thread
        "topics (sync in a loop)": analytics.load(run),
    }
    for label, source in sources.items():
        got = analytics.tables(source, analytics.TABLE_NAMES)
        for name, table in reference.items():
            left, right = _sorted(table), _sorted(got[name])
            assert left.equals(right), (label, name)


def _sorted(table: pa.Table) -> pa.Table:
    # Per-event tables come in event-id order from every source; summary tables in key order.
    return table.sort_by([(name, "ascending") for name in table.column_names if name != "share"])


def test_api_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown table 'nope'"):
        analytics.table("nope", [])
    with pytest.raises(FileNotFoundError, match="no sample store"):
        analytics.verdicts(tmp_path)
    with pytest.raises(ValueError, match="run id"):
        analytics.topics("bad id!", "localhost:9092")
    with pytest.raises(ValueError, match="by must be"):
        analytics.accuracy([], by="sample")  # type: ignore[arg-type]
    # An empty run: every table, no rows, the same schema.
    for name in analytics.TABLE_NAMES:
        table = analytics.table(name, [])
        assert table.num_rows == 0 and table.schema.equals(analytics.schema(name))


def test_docstring_examples_run(live_run: LiveRun) -> None:
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs = {"analytics": analytics, "asyncio": asyncio, "store": str(live_run.store_path)}
    tests = [t for t in finder.find(looptool.analytics, globs=globs) if t.examples]
    documented = {t.name.rsplit(".", 1)[-1] for t in tests}
    public_functions = {
        name for name in looptool.analytics.__all__ if callable(getattr(looptool.analytics, name))
    } - {"RunStats", "RunTopics", "schema_markdown"}
    assert public_functions - {"follow"} <= documented  # follow's example is a loop (tested below)
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


# --- stats --format --------------------------------------------------------------------------------


def test_stats_json_csv_parquet_hold_the_api_tables(live_run: LiveRun, tmp_path: Path) -> None:
    reference = analytics.tables(live_run.store_path)
    assert list(reference) == list(DEFAULT_TABLES)

    def stats(fmt: str, out: Path | None = None, tables: list[str] | None = None) -> str:
        console = Console(file=io.StringIO(), width=200)
        run_stats(
            live_run.settings,
            follow=False,
            plot=None,
            console=console,
            store_path=live_run.store_path,
            fmt=fmt,
            out=out,
            tables=tables,
        )
        return console.file.getvalue()  # type: ignore[attr-defined]

    document = json.loads(stats("json"))
    assert (document["format"], document["version"], document["run_id"]) == ("looptool-stats", 1, None)
    assert document["events"] == len(distinct(live_run.run.events))
    assert list(document["tables"]) == list(DEFAULT_TABLES)
    for name, table in reference.items():
        entry = document["tables"][name]
        assert [c["name"] for c in entry["columns"]] == PINNED_COLUMNS[name]
        assert entry["rows"] == table.to_pylist(), name
    rows = document["tables"]["verdict_mix"]["rows"]
    want = expected_counts(live_run.run.events)
    assert [row["label_wrong"] for row in rows] == [want["verdict"][(r, "LABEL_WRONG")] for r in (1, 2, 3)]
    assert all(isinstance(row["probed"], int) for row in rows)

    only = json.loads(stats("json", tables=["verdicts", "relabels"]))
    assert list(only["tables"]) == ["verdicts", "relabels"]
    assert len(only["tables"]["verdicts"]["rows"]) == len(of(distinct(live_run.run.events), "Verdict"))
    stats("json", out=tmp_path / "stats.json")
    assert json.loads((tmp_path / "stats.json").read_text())["tables"] == document["tables"]

    stats("csv", out=tmp_path / "csv")
    stats("parquet", out=tmp_path / "parquet")
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == sorted(f"{n}.csv" for n in DEFAULT_TABLES)
    for name, table in reference.items():
        from_parquet = pq.read_table(tmp_path / "parquet" / f"{name}.parquet")
        assert from_parquet.equals(table, check_metadata=True), name
        assert from_parquet.schema.field(PINNED_COLUMNS[name][0]).metadata[b"doc"]
        convert = pa_csv.ConvertOptions(column_types=table.schema, strings_can_be_null=True)
        from_csv = pa_csv.read_csv(tmp_path / "csv" / f"{name}.csv", convert_options=convert)
        assert from_csv.column_names == PINNED_COLUMNS[name]
        assert _nullify_empty(from_csv).equals(_nullify_empty(table.replace_schema_metadata(None))), name
    header = (tmp_path / "csv" / "verdict_mix.csv").read_text().splitlines()[0]
    assert header.replace('"', "").split(",") == PINNED_COLUMNS["verdict_mix"]

    text_out = tmp_path / "stats.txt"
    stats("table", out=text_out)
    assert text_out.read_text().startswith("Rounds: probing")


def _nullify_empty(table: pa.Table) -> pa.Table:
    """CSV cannot tell an empty string from a null: compare with both as null."""
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type):
            column = pa.array([None if v in ("", None) else v for v in column.to_pylist()], pa.string())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def test_stats_command_line_options(live_run: LiveRun, tmp_path: Path) -> None:
    try:
        runner = CliRunner()
        store = str(live_run.store_path)
        result = runner.invoke(app, ["stats", "--store", store, "--format", "json", "--table", "curation"])
        assert result.exit_code == 0, result.output
        assert list(json.loads(result.stdout)["tables"]) == ["curation"]
        settings = live_run.settings
        run = ["--bootstrap-servers", settings.kafka.bootstrap_servers or "", "--run-id", settings.run_id]
        from_topics = runner.invoke(app, [*run, "stats", "--format", "json"])
        assert from_topics.exit_code == 0, from_topics.output
        document = json.loads(from_topics.stdout)  # progress went to stderr: stdout is the document alone
        assert document["run_id"] == settings.run_id
        assert (
            document["tables"]
            == json.loads(runner.invoke(app, ["stats", "--store", store, "--format", "json"]).stdout)[
                "tables"
            ]
        )
        result = runner.invoke(
            app, ["stats", "--store", store, "--format", "csv", "--out", str(tmp_path / "c")]
        )
        assert result.exit_code == 0, result.output
        assert (tmp_path / "c" / "expansion_outcomes.csv").exists()
        for args, message in (
            (["--format", "csv"], "--out FOLDER"),
            (["--format", "xml"], "unknown format"),
            (["--format", "json", "--table", "nope"], "unknown table"),
            (["--table", "curation"], "--table picks tables"),
        ):
            result = runner.invoke(app, ["stats", "--store", store, *args])
            assert result.exit_code == 2 and message in result.output, (args, result.output)
        (tmp_path / "file").write_text("x")
        result = runner.invoke(
            app, ["stats", "--store", store, "--format", "parquet", "--out", str(tmp_path / "file")]
        )
        assert result.exit_code == 2 and "must be a folder" in result.output
    finally:
        configure_logging(LogSettings())  # the CLI bound logging to the runner's (now closed) stream


def test_stats_of_an_empty_run_and_of_empty_tables_is_one_line_each(
    live_run: LiveRun, tmp_path: Path
) -> None:
    """A store with no events: one line as text (not eight header rows with nothing under them, one
    of them a made-up "(none) 0" dead letter), the full document as json (every table's columns,
    no rows), and a note on stderr either way. A run with events but nothing probed yet: each empty
    table is its title and "none yet"."""
    from views.analytics import load_stats, tables_text

    SampleStore(tmp_path / "empty").counts()  # a store with its tables and no events
    try:
        runner = CliRunner()
        text = runner.invoke(app, ["stats", "--store", str(tmp_path / "empty")])
        assert text.exit_code == 0, text.output
        assert text.stdout.strip() == "No events yet: every table is empty."
        assert "holds no events" in text.stderr
        data = runner.invoke(app, ["stats", "--store", str(tmp_path / "empty"), "--format", "json"])
        assert data.exit_code == 0, data.output
        document = json.loads(data.stdout)
        assert document["events"] == 0 and list(document["tables"]) == list(DEFAULT_TABLES)
        for name, table in document["tables"].items():
            assert table["rows"] == [] and [c["name"] for c in table["columns"]] == next(
                t.column_names for t in TABLES if t.name == name
            )
        assert "holds no events" in data.stderr
    finally:
        configure_logging(LogSettings())  # the CLI bound logging to the runner's (now closed) stream

    seeds_only = load_stats([e for e in live_run.run.events if e.event_type == "SampleAdded"
                             and e.payload.origin == "seed"])  # fmt: skip
    assert seeds_only.events > 0
    shown = tables_text(seeds_only)
    for title in (
        "Rounds: probing, verdicts, relabels, expansion, curation",
        "Verdict mix by checkpoint",
        "Curation (Eq. 5): D_j by source",
        "Expansion candidates by failing rule (count, share of the round's candidates)",
        "ToolMatch accuracy by tool (accuracy, probes)",
        "Probe errors by type (mismatched probes, share of mismatches)",
        "Dead letters by reason",
    ):
        assert f"{title}: none yet" in shown, shown
    assert "┏" not in shown and "(none)" not in shown


@pytest.mark.parametrize("tables", [[], ["--table", "verdict_mix", "--table", "verdicts"]])
def test_stats_follow_writes_json_lines(live_run: LiveRun, tables: list[str]) -> None:
    """Once caught up, the followed tables (running counts for the summary tables, every row for a
    per-event one) are those of ``stats --store`` on the same run."""
    from views.analytics import load_stats
    from views.analytics.tables import stats_document

    settings = live_run.settings
    command = [
        sys.executable, "-m", "looptool.cli", "--bootstrap-servers", settings.kafka.bootstrap_servers or "",
        "--run-id", settings.run_id, "stats", "--follow", "--format", "json", *tables,
    ]  # fmt: skip
    names = tables[1::2] or None
    want = json.loads(json.dumps(stats_document(load_stats(live_run.store_path), names)["tables"]))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    documents = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # one document per line; the last, once caught up, has every event
            documents.append(json.loads(line))
            if documents[-1]["tables"] == want:
                break
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, errors = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert documents and documents[-1]["tables"] == want, errors[-2000:]
    assert documents[-1]["run_id"] == settings.run_id
    assert process.returncode == 0, errors[-2000:]


async def test_deadletters_of_a_run_without_any_closes_its_reader(kafka_bootstrap: str, world: Any) -> None:
    """``deadletters`` on a run with events but no dead letter asks whether the run has any event and
    leaves the replay at its first batch: the reader is closed there, not left to the garbage
    collector (whose close ran in a task asyncio.run destroyed: "Task was destroyed but it is
    pending!" on stderr)."""
    from bus.config import KafkaSettings
    from bus.kafka import EventProducer, ensure_topics
    from world.simulated_run import simulate_run

    run_id = "t-no-letters-" + os.urandom(4).hex()
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    await ensure_topics(kafka, run_id)
    seeds = await world.samples(3, noise_rate=0.0, seed="no-letters")
    run = await simulate_run(run_id, world, seeds, rounds=1, target_size=2, k=1)
    async with EventProducer(kafka) as producer:
        await producer.send_all([e for e in run.events if e.event_type == "SampleAdded"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPTOOL_")}
    done = subprocess.run(
        [sys.executable, "-m", "looptool.cli", "--bootstrap-servers", kafka_bootstrap, "--run-id", run_id,
         "deadletters"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env | {"PYTHONWARNINGS": "default", "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "No dead letters."  # not a table with a made-up "(none) 0" row
    assert done.stderr == ""  # no warning of an empty run (it has events), nothing left unclosed


def _stats_follow_until_it_waits(kafka_bootstrap: str, run_id: str, fmt: str) -> subprocess.Popen[str]:
    """``stats --follow`` on a run with no topics, once it said that it waits: the first line of its
    messages (stderr for json; stdout, above the tables, for table)."""
    command = [
        sys.executable, "-m", "looptool.cli", "--bootstrap-servers", kafka_bootstrap, "--run-id", run_id,
        "stats", "--follow", "--format", fmt,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPTOOL_")} | {"COLUMNS": "200"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )
    messages = process.stderr if fmt == "json" else process.stdout
    assert messages is not None
    said = messages.readline()  # "" at once if it ended instead of waiting
    assert said.startswith(f"waiting for run {run_id}: it has no topics"), (said, process.poll())
    return process


def _interrupt(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def test_stats_follow_started_before_the_run_waits_for_it(kafka_bootstrap: str) -> None:
    """``stats --follow`` on a run with no topics yet says it waits for the run, and follows it once its
    topics and events come; stopped by Ctrl-C before that, it ends as ``stats`` does on an empty run
    (json: the document with every table and no row; a warning about a mistyped run id on stderr)."""
    from bus.config import KafkaSettings
    from bus.kafka import EventProducer, ensure_topics
    from schemas.events import make_event
    from tests.foundation.events_factory import PRODUCER, sample_added

    run_id = "t-later-" + os.urandom(4).hex()
    process = _stats_follow_until_it_waits(kafka_bootstrap, run_id, "json")
    try:
        time.sleep(1.5)  # more than one look for the topics
        assert process.poll() is None  # still waiting

        async def start_the_run() -> None:
            kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
            await ensure_topics(kafka, run_id)
            async with EventProducer(kafka) as producer:
                await producer.send_all(
                    [make_event(sample_added(f"s_{i}"), run_id=run_id, producer=PRODUCER) for i in range(3)]
                )

        asyncio.run(start_the_run())
        assert process.stdout is not None
        document = json.loads(process.stdout.readline())  # the first update: the run's events
        assert document["run_id"] == run_id and document["events"] == 3
    finally:
        _, errors = _interrupt(process)
    assert process.returncode == 0, errors[-2000:]
    assert "has no events" not in errors

    for fmt in ("json", "table"):
        run_id = "t-never-" + os.urandom(4).hex()
        output, errors = _interrupt(_stats_follow_until_it_waits(kafka_bootstrap, run_id, fmt))
        assert "has no events" in errors and "mistyped --run-id" in errors, errors
        if fmt == "json":
            (line,) = output.splitlines()
            document = json.loads(line)
            assert document["events"] == 0 and list(document["tables"]) == list(DEFAULT_TABLES)
            assert all(table["rows"] == [] for table in document["tables"].values())
        else:
            assert output.strip() == "No events yet: every table is empty."


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_stats_follow_stopped_by_ctrl_c_closes_its_consumer(live_run: LiveRun, fmt: str) -> None:
    """Ctrl-C ends ``stats --follow`` with its Kafka reader closed: no ResourceWarning about an unclosed
    connection, socket or transport (it once came from the reader's generator left to the garbage
    collector, its consumer then stopped by a task asyncio.run cancelled). Warnings are shown here."""
    settings = live_run.settings
    command = [
        sys.executable, "-m", "looptool.cli", "--bootstrap-servers", settings.kafka.bootstrap_servers or "",
        "--run-id", settings.run_id, "stats", "--follow", "--format", fmt,
    ]  # fmt: skip
    # FORCE_COLOR: the live table draws on a pipe as on a terminal, so the test sees it catch up.
    env = {**os.environ, "PYTHONWARNINGS": "default", "COLUMNS": "200", "FORCE_COLOR": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )
    try:
        assert process.stdout is not None
        if fmt == "json":
            json.loads(process.stdout.readline())  # caught up once: the consumer is reading
        else:
            for line in process.stdout:  # drawn once caught up: the consumer is reading
                if "Curation (Eq. 5)" in line:
                    break
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, errors = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, errors[-2000:]
    assert "Unclosed" not in errors and "unclosed" not in errors and "ResourceWarning" not in errors, errors


async def test_api_follow_yields_as_the_run_goes_on(live_run: LiveRun) -> None:
    settings = live_run.settings
    run = analytics.topics(settings.run_id, settings.kafka.bootstrap_servers or "")
    want = analytics.verdict_mix(live_run.store_path)
    seen = 0
    async with asyncio.timeout(60):
        async for stats in analytics.follow(run, refresh_s=0.2):
            seen += 1
            if stats.events == len(distinct(live_run.run.events)):
                pd.testing.assert_frame_equal(analytics.verdict_mix(stats), want)
                break
    assert seen >= 1
    with pytest.raises(TypeError, match="follow reads a run's topics"):
        async for _ in analytics.follow(live_run.store_path):  # type: ignore[arg-type]
            pass


# --- docs/analytics.md ---------------------------------------------------------------------------


def test_the_docs_list_every_table_and_column() -> None:
    text = DOC.read_text()
    block = text.split("<!-- stats-tables:begin -->\n", 1)[1].split("<!-- stats-tables:end -->", 1)[0]
    assert block == schema_markdown(), (
        "docs/analytics.md's table section is stale: replace it with looptool.analytics.schema_markdown()"
    )
    for table in TABLES:
        assert f"#### `{table.name}`" in block
    for name in ("events", "samples", "probes", "verdicts", "curated", "rounds", "checkpoints"):
        assert f"#### `{name}`:" in text, f"the store's {name} table is not documented"
    from views.store import EVENTS_SCHEMA, PER_EVENT_TABLES, SAMPLES_SCHEMA

    schemas = {
        "events": EVENTS_SCHEMA,
        "samples": SAMPLES_SCHEMA,
        **{s.name: s.schema for s in PER_EVENT_TABLES},
    }
    for name, schema in schemas.items():
        section = text.split(f"#### `{name}`:", 1)[1].split("####", 1)[0]
        for column in schema.names:
            assert f"`{column}`" in section, f"store table {name}: column {column} is not documented"


def test_doc_api_snippet(live_run: LiveRun, capsys: pytest.CaptureFixture[str]) -> None:
    names = run_snippet(substitute(doc_block("api"), **{"data/store": str(live_run.store_path)}))
    assert "probed" in capsys.readouterr().out
    assert len(names["weakest"]) == 5 and isinstance(names["arrow"], pa.Table)


def test_doc_store_queries_lancedb_duckdb_polars(live_run: LiveRun) -> None:
    events = distinct(live_run.run.events)
    want = expected_counts(events)
    store = {"data/store": str(live_run.store_path)}

    lance = run_snippet(substitute(doc_block("lancedb"), **store))
    assert len(lance["label_wrong"]) == want["verdict"][(2, "LABEL_WRONG")] > 0
    relabelled = {e.payload.sample_id for e in of(events, "LabelCorrected")}
    assert set(lance["relabelled"]["sample_id"]) == relabelled

    duck = run_snippet(substitute(doc_block("duckdb"), **store))
    mix = duck["mix"]
    assert list(mix["probed"]) == [want["probed"][r] for r in (1, 2, 3)]
    assert list(mix["accuracy"]) == pytest.approx([want["matched"][r] / want["probed"][r] for r in (1, 2, 3)])
    assert list(mix["label_wrong"]) == [want["verdict"][(r, "LABEL_WRONG")] for r in (1, 2, 3)]
    dead = Counter((e.payload.stage, e.payload.error_type) for e in of(events, "DeadLetter"))
    assert {(r.stage, r.error_type): r.n for r in duck["dead_letters"].itertuples()} == dict(dead)

    polars = run_snippet(substitute(doc_block("polars"), **store))
    rows = polars["by_source"].to_dicts()
    assert {(r["round"], r["source"]): r["members"] for r in rows} == dict(want["source"])
    curation = analytics.curation(live_run.store_path)
    for round_ in (1, 2, 3):
        expansions = sum(r["expansions"] for r in rows if r["round"] == round_)
        assert expansions == curation.loc[curation["round"] == round_, "expansion_members"].item()


def test_doc_dashboard_snippet(live_run: LiveRun, capsys: pytest.CaptureFixture[str]) -> None:
    settings = live_run.settings
    code = substitute(
        doc_block("dashboard"),
        demo=settings.run_id,
        **{"127.0.0.1:9092": settings.kafka.bootstrap_servers or ""},
    )
    run_snippet(code)  # returns only once the run's three rounds are closed
    columns = ["round", "probed", "accuracy", "pred_wrong", "label_wrong"]
    final = analytics.verdict_mix(live_run.store_path)[columns].to_string(index=False)
    assert capsys.readouterr().out.rstrip().endswith(final)


# --- an outside consumer -------------------------------------------------------------------------

_DUMP_DECODED = """
import base64, datetime, json, sys
def plain(value):
    if isinstance(value, datetime.datetime):
        return {"$time": value.isoformat()}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    raise TypeError(type(value))
ours = sorted(m for m in sys.modules if m.split(".")[0] in {
    "fastavro", "aiokafka", "schemas", "bus", "views", "looptool", "streams", "toolcall", "common"})
print("@@" + json.dumps({"events": events, "ours": ours}, default=plain))
"""


def _expected(value: Any) -> Any:
    """Our event as the outside reader sees it: times and bytes tagged, tuples as lists."""
    if isinstance(value, datetime):
        return {"$time": value}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {key: _expected(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_expected(item) for item in value]
    return value


def _times(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$time"}:
        time = value["$time"]
        return {"$time": datetime.fromisoformat(time) if isinstance(time, str) else time}
    if isinstance(value, dict):
        return {key: _times(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_times(item) for item in value]
    return value


def test_an_outside_consumer_decodes_the_run_with_only_the_registry(
    live_run: LiveRun, tmp_path: Path
) -> None:
    """librdkafka and the Apache avro package, in an interpreter that imports nothing of ours (-I: no
    current folder on the path, no user site, no PYTHON* variables), with registry.json only."""
    settings = live_run.settings
    code = substitute(
        doc_block("outside-consumer"),
        **{
            "127.0.0.1:9092": settings.kafka.bootstrap_servers or "",
            "demo": settings.run_id,
            "schemas/avro/registry.json": str(REGISTRY),
        },
    )
    script = tmp_path / "outside.py"
    script.write_text(code + _DUMP_DECODED)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LOOPTOOL"))}
    result = subprocess.run(
        [sys.executable, "-I", str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    dump = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("@@"))[2:])
    assert dump["ours"] == []  # neither our packages nor our Avro and Kafka libraries were loaded
    decoded = {event["event_id"]: _times(event) for event in dump["events"]}
    published = {event.event_id: event for event in distinct(live_run.run.events)}
    assert set(decoded) == set(published)
    for event_id, event in published.items():
        assert decoded[event_id] == _times(_expected(event.model_dump(mode="python"))), event.event_type
    assert Counter(e["event_type"] for e in decoded.values()) == Counter(
        e.event_type for e in published.values()
    )


def test_no_dead_letters_is_one_line_saying_whether_filters_chose_none() -> None:
    from rich.console import Console

    from views.deadletters import render_dead_letters

    for filtered, expected in ((False, "No dead letters."), (True, "No dead letters match the filters.")):
        console = Console(record=True, width=80, file=io.StringIO(), color_system=None)
        render_dead_letters([], console, filtered=filtered)
        assert console.export_text().strip() == expected
