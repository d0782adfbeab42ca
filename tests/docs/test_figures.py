"""Every figure the docs quote between ``fig`` markers equals its results file (rounded as quoted)."""

from __future__ import annotations

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
