"""Events written with any frozen schema version still decode, to the values they were written with."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.codec import EventCodec
from schemas.registry import default_registry
from tests.foundation.golden import GOLDEN_DIR, golden_paths

FROZEN = [
    (event_type, schema.version)
    for event_type in default_registry().event_types()
    for schema in default_registry().versions(event_type)
]


def _subset_mismatches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where ``actual`` differs from ``expected``; keys only ``actual`` has (fields a later version
    added, read as their defaults) are not differences."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        problems = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += _subset_mismatches(value, actual[key], f"{path}.{key}")
        return problems
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            p
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for p in _subset_mismatches(e, a, f"{path}[{i}]")
        ]
    return [] if expected == actual else [f"{path}: {expected!r} != {actual!r}"]


@pytest.mark.parametrize(("event_type", "version"), FROZEN, ids=[f"{t}.v{v}" for t, v in FROZEN])
def test_every_frozen_version_has_golden_bytes_that_still_decode(event_type: str, version: int) -> None:
    binary, expected = golden_paths(event_type, version)
    assert binary.is_file() and expected.is_file(), (
        f"no golden bytes for {event_type} v{version}: run `python -m tests.foundation.golden` "
        "after `looptool schemas freeze`, and commit the files"
    )
    event = EventCodec().decode(binary.read_bytes())
    assert event.event_type == event_type
    problems = _subset_mismatches(
        json.loads(expected.read_text(encoding="utf-8")), event.model_dump(mode="json")
    )
    assert not problems, f"{event_type} v{version} now decodes differently: " + "; ".join(problems[:10])


def test_golden_files_belong_to_frozen_versions() -> None:
    known = {golden_paths(t, v)[0].name for t, v in FROZEN} | {golden_paths(t, v)[1].name for t, v in FROZEN}
    stray = sorted(p.name for p in GOLDEN_DIR.iterdir() if p.name not in known)
    assert not stray, f"golden files of versions the registry does not hold: {stray}"
