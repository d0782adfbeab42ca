"""Eq. (3) perplexity and the high-PPL selection rule."""

from __future__ import annotations

import math

import pytest

from toolcall.perplexity import perplexity, select_high_ppl


def test_perplexity_definition() -> None:
    assert perplexity([math.log(0.5)] * 4) == pytest.approx(2.0)
    assert perplexity([0.0, 0.0]) == 1.0
    assert perplexity([math.log(0.25), math.log(1.0)]) == pytest.approx(2.0)
    assert perplexity([-math.inf, 0.0]) == math.inf


def test_perplexity_rejects_empty_and_nan() -> None:
    with pytest.raises(ValueError, match="empty"):
        perplexity([])
    with pytest.raises(ValueError, match="invalid"):
        perplexity([float("nan")])


def test_select_by_quantile() -> None:
    pool = [(f"s{i}", float(i)) for i in range(10)]
    assert select_high_ppl(pool, quantile=0.5) == ["s9", "s8", "s7", "s6", "s5"]
    assert select_high_ppl(pool, quantile=0.8) == ["s9", "s8"]
    assert select_high_ppl(pool, quantile=1.0) == ["s9"]
    assert select_high_ppl(pool, quantile=0.5, max_count=2) == ["s9", "s8"]


def test_select_by_threshold_and_ties() -> None:
    pool = [("b", 3.0), ("a", 3.0), ("c", 1.0)]
    assert select_high_ppl(pool, threshold=2.0) == ["a", "b"]
    assert select_high_ppl([], quantile=0.5) == []
    with pytest.raises(ValueError):
        select_high_ppl(pool, quantile=0.0)
