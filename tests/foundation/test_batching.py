"""Adaptive batches: sizes and waits learnt from how long a stage takes (bus/batching.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from bus.batching import AdaptiveBatching


def _settle(batching: AdaptiveBatching, cycle: Callable[[int], float], batches: int = 40) -> int:
    """Feed full batches (there is always more input) costing ``cycle(n)`` seconds; the final size."""
    for _ in range(batches):
        n = batching.size
        batching.observe(n, process_s=cycle(n), cycle_s=cycle(n))
    return batching.size


def test_a_fixed_cost_per_batch_grows_the_batches() -> None:
    """10 ms per batch (publish and acknowledge) + 0.1 ms per event: larger batches pay until the
    fixed cost is small, and the size stays below the cap the stage sets."""
    batching = AdaptiveBatching(min_size=8, max_size=1024, max_wait_s=0.5)
    size = _settle(batching, lambda n: 0.010 + 0.0001 * n)
    assert 256 <= size <= 1024
    capped = AdaptiveBatching(min_size=8, max_size=64, max_wait_s=0.5)
    assert _settle(capped, lambda n: 0.010 + 0.0001 * n) == 64


def test_an_endpoint_bound_stage_grows_to_the_endpoints_concurrency() -> None:
    """A call answers up to 64 requests at once in 5 s: batches grow to 64 (one doubling past it costs
    no more per event) and no further."""
    batching = AdaptiveBatching(min_size=8, max_size=1024, max_wait_s=0.5)
    assert _settle(batching, lambda n: 5.0 * math.ceil(n / 64)) in (64, 128)


def test_work_that_grows_with_the_batch_keeps_the_stages_size() -> None:
    batching = AdaptiveBatching(min_size=8, max_size=1024, max_wait_s=0.5)
    assert _settle(batching, lambda n: 0.001 * n) <= 16  # one doubling tried, no more


def test_a_size_that_costs_clearly_more_is_left() -> None:
    """Per-event cost rises past 32 (e.g. a backend that slows down with larger batches): back to 32."""
    batching = AdaptiveBatching(min_size=8, max_size=1024, max_wait_s=0.5)
    assert _settle(batching, lambda n: 0.010 + 0.001 * n if n <= 32 else 0.004 * n) == 32


def test_partial_batches_say_nothing_about_size_and_the_linger_follows_the_stage() -> None:
    fast = AdaptiveBatching(min_size=8, max_size=1024, max_wait_s=0.5)
    for _ in range(5):
        fast.observe(3, process_s=0.001, cycle_s=0.004)  # the input ran out: no size learnt
    assert fast.size == 8 and fast.cost == {}
    assert fast.linger_s == pytest.approx(fast.min_linger_s)  # a fast stage takes what is there
    slow = AdaptiveBatching(min_size=8, max_size=1024, max_wait_s=0.5)
    slow.observe(8, process_s=4.0, cycle_s=4.1)
    assert slow.linger_s == pytest.approx(0.2)  # 5% of a 4-second call
    slow.observe(8, process_s=40.0, cycle_s=40.1)
    assert slow.linger_s == 0.5  # never beyond the stage's batch_within_s


def test_sizes_are_checked() -> None:
    with pytest.raises(ValueError):
        AdaptiveBatching(min_size=8, max_size=4, max_wait_s=0.5)


def test_an_endpoint_bound_stage_starts_at_its_first_batch_size() -> None:
    """Starting at 32 (a server's concurrency) skips the ramp from 8; it may still go back to where the
    larger batches cost clearly more, and never below the stage's own size."""
    batching = AdaptiveBatching(min_size=8, max_size=128, max_wait_s=0.5, size=32)
    assert batching.size == 32
    assert _settle(batching, lambda n: 5.0 * math.ceil(n / 32)) in (32, 64)  # flat up to 32 requests
    with pytest.raises(ValueError):
        AdaptiveBatching(min_size=8, max_size=128, max_wait_s=0.5, size=256)
