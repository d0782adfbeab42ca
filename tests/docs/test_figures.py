"""Every figure the docs quote between ``fig`` markers equals its results file (rounded as quoted)."""

from __future__ import annotations

import json

import pytest

from scripts import docs_figures


def test_quoted_figures_match_their_results_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert docs_figures.main(["--check"]) == 0, (
        "stale figures (run `python -m scripts.docs_figures` after a benchmark):\n" + capsys.readouterr().err
    )


def test_the_check_names_a_figure_that_drifted() -> None:
    problems: list[str] = []
    text = "x <!-- fig grpo_cpu.json grpo_steps_per_s {:.2f} -->99.99<!-- /fig --> y"
    rendered = docs_figures.render(text, "doc", problems)
    assert problems and "the text says 99.99" in problems[0]
    assert "99.99" not in rendered and rendered.startswith("x <!-- fig grpo_cpu.json")


def test_an_unknown_key_is_an_error_not_a_silent_pass() -> None:
    problems: list[str] = []
    docs_figures.render("<!-- fig grpo_cpu.json no/such/key -->1<!-- /fig -->", "doc", problems)
    assert problems and "no 'no/such/key'" in problems[0]


def test_a_table_block_is_rendered_from_its_results_file_and_checked(tmp_path, monkeypatch) -> None:
    report = {
        "sft_accuracy": 0.5,
        "rounds": [
            {
                "round": 1,
                "size": 4,
                "sources": {"SEED": 4},
                "label_noise": 0.25,
                "probed": 4,
                "mismatched": 2,
                "verdicts": {"PRED_WRONG": 2},
                "relabels": 0,
                "candidates": 8,
                "expansions_passed": 7,
                "heldout_accuracy": 0.625,
                "reward_mean": 0.4,
                "mixed_groups": 0.5,
                "promotion": "refused",
                "promotion_delta": -0.025,
            }
        ],
    }
    (tmp_path / "demo_report.json").write_text(json.dumps(report), encoding="utf-8")
    monkeypatch.setattr(docs_figures, "RESULTS", tmp_path)
    docs_figures._results.cache_clear()
    stale = "<!-- table demo_report.json demo_rounds -->\n| old |\n<!-- /table -->"
    problems: list[str] = []
    rendered = docs_figures.render(stale, "doc", problems)
    docs_figures._results.cache_clear()
    assert problems and "differs from the file" in problems[0]
    row = "| round 1 | 4 | SEED 4 | 25.0% | 2/4 | PRED_WRONG 2 | 0 | 7/8 | 0.40 (50%) | 62.5% "
    row += "| refused (-2.5 pts) |"
    assert row in rendered
    again: list[str] = []
    assert docs_figures.render(rendered, "doc", again) == rendered and again == []


def render_against(tmp_path, monkeypatch, results: dict, text: str) -> tuple[str, list[str]]:
    """``text`` rendered against a results file ``run.json`` holding ``results``; and the problems."""
    (tmp_path / "run.json").write_text(json.dumps(results), encoding="utf-8")
    monkeypatch.setattr(docs_figures, "RESULTS", tmp_path)
    docs_figures._results.cache_clear()
    problems: list[str] = []
    try:
        return docs_figures.render(text, "doc", problems), problems
    finally:
        docs_figures._results.cache_clear()


def test_a_true_or_false_figure_is_quoted_as_its_label(tmp_path, monkeypatch) -> None:
    text = "<!-- fig run.json machine/contended quiet|contended -->quiet<!-- /fig -->"
    rendered, problems = render_against(tmp_path, monkeypatch, {"machine": {"contended": True}}, text)
    assert "-->contended<!--" in rendered and "the text says quiet" in problems[0]


def test_a_key_with_spaces_is_written_with_percent_twenty(tmp_path, monkeypatch) -> None:
    marker = "<!-- fig run.json a%20row/per_s {:,.0f} -->0<!-- /fig -->"
    rendered, problems = render_against(tmp_path, monkeypatch, {"a row": {"per_s": 1234.5}}, marker)
    assert "-->1,234<!--" in rendered and "the text says 0" in problems[0]
