"""Every results file records where and how it was measured: the machine, the load average at its start
and end, and whether other work shared the cores, so the docs' quiet/contended labels come from data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def _machine(data: Any) -> dict[str, Any] | None:
    """The first ``machine`` record in a results file (a list of rows carries one per row)."""
    if isinstance(data, dict):
        if isinstance(data.get("machine"), dict):
            return data["machine"]
        values = list(data.values())
    elif isinstance(data, list):
        values = data
    else:
        return None
    for value in values:
        found = _machine(value)
        if found is not None:
            return found
    return None


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_a_results_file_records_its_machine_and_load(path: Path) -> None:
    machine = _machine(json.loads(path.read_text(encoding="utf-8")))
    assert machine is not None, f"{path.name} has no machine record (benchmarks.harness.machine_info)"
    for key in ("cores", "load_average_at_start", "load_average_at_end", "contended"):
        assert key in machine, f"{path.name}: machine has no {key!r}"
