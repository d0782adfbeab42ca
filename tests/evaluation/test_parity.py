"""ToolMatch vs bfcl-eval's checker on a sample of BFCL ground truth and its perturbations.

The full table (all AST items) lives in docs/toolmatch.md; the last test fails when it is stale.
"""

from __future__ import annotations

import pytest

from benchmarks.toolmatch_parity import main
from evaluation.parity import (
    PERTURBATIONS,
    KindSummary,
    parity_pairs,
    possible_answer_from_label,
    summarise_parity,
)
from evaluation.suite import ground_truth_label, load_suite

BOTH_ACCEPT = (
    "identity",
    "string_case",
    "string_spacing",
    "string_punctuation",
    "int_for_float",
    "parallel_reorder",
)
BOTH_REJECT = (
    "float_for_int",
    "int_off_by_one",
    "numeric_string",
    "boolean_string",
    "list_reorder",
    "optional_added",
    "unknown_param",
    "wrong_function",
    "missing_call",
    "duplicated_call",
)


@pytest.fixture(scope="module")
def summaries() -> dict[str, KindSummary]:
    items = load_suite("ast", 12)  # 96 items, 12 from each AST category
    return summarise_parity(parity_pairs(items), items)


def test_every_kind_was_exercised_by_the_sample(summaries: dict[str, KindSummary]) -> None:
    assert set(summaries) == set(PERTURBATIONS)
    assert summaries["identity"].pairs == 96


@pytest.mark.parametrize("kind", BOTH_ACCEPT)
def test_both_sides_accept(summaries: dict[str, KindSummary], kind: str) -> None:
    s = summaries[kind]
    assert s.bfcl_accepts == s.ours_accepts == s.pairs > 0, s.examples


@pytest.mark.parametrize("kind", BOTH_REJECT)
def test_both_sides_reject(summaries: dict[str, KindSummary], kind: str) -> None:
    s = summaries[kind]
    assert s.bfcl_accepts == s.ours_accepts == 0 < s.pairs, s.examples


def test_toolmatch_never_rejects_what_bfcl_accepts(summaries: dict[str, KindSummary]) -> None:
    """Where they differ, ToolMatch is the lenient side (defaults; see docs/toolmatch.md)."""
    assert sum(s.only_bfcl for s in summaries.values()) == 0
    assert summaries["default_added"].only_ours > 0  # the documented, deliberate difference is visible


def test_possible_answer_from_label_wraps_dict_values_one_level() -> None:
    item = next(i for i in load_suite("live_multiple") if i.id == "live_multiple_121-46-0")
    label = ground_truth_label(item)
    (answer,) = possible_answer_from_label(item, label)
    ego = answer["get_headway"]["ego_info"]
    assert ego == [{"position": [{"lateral": 10.5, "longitudinal": 50}], "orientation": [30]}]
    assert answer["get_headway"]["bounding_boxes"] == [[{"x": [60.2], "y": [12.3]}]]


def test_script_prints_the_table_on_a_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sample", "2"]) == 0
    out = capsys.readouterr().out
    assert "ToolMatch vs bfcl-eval 2026.3.23 AST checker" in out
    assert "16 items" in out and "default_added" in out


def test_docs_hold_the_current_full_table() -> None:
    assert main(["--check-docs"]) == 0, "run: python -m benchmarks.toolmatch_parity --write-docs"
