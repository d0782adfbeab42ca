"""Tables, the per-round plot, checkpoint resolution and the ``looptool eval`` command."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from bus.kafka import EventProducer, ensure_topics
from common.logs import LogSettings, configure_logging
from evaluation.report import by_round, category_table, plot_by_round, rounds_table, summary_table
from evaluation.scoring import CategoryScore, summary_from_scores
from looptool.cli.evaluate import CheckpointNotFoundError, load_evaluations, resolve_checkpoint
from looptool.config import Settings, load_settings
from schemas.events import CheckpointEvaluated, CheckpointPublished, Producer, make_event

PRODUCER = Producer(stage="test", version="0")


def evaluated(round_: int, step: int, final: bool, correct: int) -> CheckpointEvaluated:
    total = {"multiple": 4, "live_simple": 4, "irrelevance": 4, "live_relevance": 2}
    right = {"multiple": correct, "live_simple": correct, "irrelevance": 4 - correct, "live_relevance": 1}
    summary = summary_from_scores({c: CategoryScore(c, right[c], n) for c, n in total.items()})
    return CheckpointEvaluated(
        checkpoint_id=f"r{round_}-s{step}",
        round=round_,
        step=step,
        final=final,
        suite="bfcl-v4-single-turn",
        suite_version="2026.3.23",
        categories=list(total),
        correct=right,
        total=total,
        accuracy=summary.accuracy(),
        summary=summary.columns(),
        wall_time_s=1.0,
    )


def rendered(table: object) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_tables_show_bfcls_summary_columns_and_counts() -> None:
    summary = summary_from_scores(
        {"multiple": CategoryScore("multiple", 3, 4), "irrelevance": CategoryScore("irrelevance", 1, 2)}
    )
    text = rendered(summary_table(summary, model="ckpt-7"))
    for header in (
        "Non-Live AST",
        "Live AST",
        "Irrelevance",
        "Relevance",
        "Multi-Turn",
        "Overall (no agentic)",
        "Items",
    ):
        assert header in text
    assert "75.00*" in text and "50.00*" in text and "n/a" in text and "ckpt-7" in text
    assert "computed from only some" in text
    per_category = rendered(category_table(summary))
    assert "multiple" in per_category and "3" in per_category and "75.00" in per_category


def test_rounds_table_and_plot_follow_the_final_checkpoint_of_each_round(tmp_path: Path) -> None:
    evaluations = [evaluated(2, 40, True, 3), evaluated(1, 10, False, 1), evaluated(1, 20, True, 2)]
    text = rendered(rounds_table(evaluations))
    assert text.index("r1-s10") < text.index("r1-s20 (final)") < text.index("r2-s40 (final)")
    rounds = by_round(evaluations)
    assert list(rounds) == [1, 2]
    assert rounds[1]["non_live_ast"] == pytest.approx(0.5) and rounds[2]["non_live_ast"] == pytest.approx(
        0.75
    )
    png = plot_by_round(evaluations, tmp_path / "fig" / "bfcl.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no evaluation"):
        plot_by_round([], tmp_path / "empty.png")


async def test_checkpoints_resolve_from_folders_and_published_ids(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "model-a"
    folder.mkdir()
    assert (await resolve_checkpoint(str(folder), settings)).uri == str(folder.resolve())
    await ensure_topics(settings.kafka, settings.run_id)
    published = CheckpointPublished(
        new_checkpoint_id="ckpt-9", round=2, step=90, final=True, uri="/models/ckpt-9", backend="t"
    )
    evaluation = evaluated(2, 90, True, 2)
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all(
            [
                make_event(published, run_id=settings.run_id, producer=PRODUCER),
                make_event(evaluation, run_id=settings.run_id, producer=PRODUCER),
            ]
        )
    resolved = await resolve_checkpoint("ckpt-9", settings)
    assert (resolved.uri, resolved.round, resolved.step) == ("/models/ckpt-9", 2, 90)
    with pytest.raises(CheckpointNotFoundError, match="latest published: ckpt-9"):
        await resolve_checkpoint("ckpt-404", settings)
    assert await load_evaluations(settings) == [evaluation]
    offline = load_settings(None, run_id="x")
    with pytest.raises(CheckpointNotFoundError, match="no Kafka is configured"):
        await resolve_checkpoint("ckpt-9", offline)


def test_eval_command_on_a_model_folder(long_context_tiny_policy: Path, tmp_path: Path) -> None:
    """``looptool eval`` end to end: resolve the folder, decode, score, print both tables, write parquet."""
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from looptool.cli import app

    output = tmp_path / "results.parquet"
    args = ["--run-id", "cli-eval", "eval", "--checkpoint", str(long_context_tiny_policy)]
    categories = "multiple,irrelevance,live_relevance,multi_turn_base"
    options = ["--categories", categories, "--limit", "1", "--max-new-tokens", "8"]
    try:
        result = CliRunner().invoke(app, [*args, *options, "--output", str(output)], env={"COLUMNS": "200"})
        bad = CliRunner().invoke(app, [*args, "--categories", "simple_java"])
    finally:
        configure_logging(LogSettings())  # the CLI bound logging to the runner's (now closed) stream
    assert result.exit_code == 0, result.output
    assert "Overall (no agentic)" in result.output and "Per category" in result.output
    assert f"per-item results: {output}" in result.output
    rows = pq.read_table(output).to_pylist()
    assert [r["id"] for r in rows] == [
        "multiple_0",
        "irrelevance_0",
        "live_relevance_0-0-0",
        "multi_turn_base_0",
    ]
    assert "Multi-Turn" in result.output and "Model outputs" in result.output
    assert rows[-1]["steps"] >= 4  # the conversation's four turns, one model output at least each
    assert bad.exit_code == 2 and "unknown BFCL category" in bad.output


def test_a_manual_eval_never_overwrites_the_evaluate_stages_results(tmp_path: Path) -> None:
    """`looptool eval --checkpoint X --limit 5` wrote the very file X's CheckpointEvaluated points to."""
    from looptool.cli.evaluate import default_results_path
    from looptool.config import load_settings
    from streams.evaluate import eval_policy

    settings = load_settings(None, run_id="run-1", eval={"results_dir": tmp_path})
    stage_file = eval_policy(settings).results_dir / "ckpt-r2-step40.jsonl"  # type: ignore[operator]
    manual = default_results_path(settings, "ckpt-r2-step40")
    assert manual.parent == stage_file.parent and manual != stage_file
