"""The warm-start spread benchmark builds the demo's warm start per seed, as the demo does, and scores it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def spread(cache: Path, out: Path) -> dict[str, object]:
    command = [sys.executable, "-m", "benchmarks.warm_start_spread", "--scale", "quick", "--seeds", "0", "1"]
    done = subprocess.run(
        [*command, "--parallel", "2", "--cache", str(cache), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.mark.timeout(900)
def test_each_seed_is_built_in_the_demo_cache_scored_and_found_there_again(tmp_path: Path) -> None:
    first = spread(tmp_path / "cache", tmp_path / "first.json")
    builds = first["builds"]
    assert [b["seed"] for b in builds] == [0, 1]  # type: ignore[index]
    assert [b["cached"] for b in builds] == [False, False]  # type: ignore[index]
    assert builds[0]["model"] != builds[1]["model"]  # type: ignore[index]
    rates = [b["heldout_accuracy"] for b in builds]  # type: ignore[index]
    assert all(0.0 <= rate <= 1.0 for rate in rates)
    assert first["summary"]["mean"] == pytest.approx(sum(rates) / 2)  # type: ignore[index]
    # Built once: a second run takes both from the cache and scores them the same (greedy decoding).
    again = spread(tmp_path / "cache", tmp_path / "again.json")
    assert [b["cached"] for b in again["builds"]] == [True, True]  # type: ignore[index]
    assert [b["heldout_accuracy"] for b in again["builds"]] == rates  # type: ignore[index]
