"""Optional parts of the environment the tests need: a missing one fails the run, never skips it silently.

The vLLM CPU server (``scripts/install.sh --extra cpu-serve``), the verl environment
(``scripts/install-verl.sh``) and bfcl-eval's checker are installed by ``scripts/test.sh``, which CI runs:
if one went missing, tests that need it must fail. A developer without one opts out explicitly with
``LOOPTOOL_TEST_ALLOW_MISSING=vllm,verl`` (names, comma-separated); those tests are then skipped, and
pytest's summary lists every skip with its reason (``-rs`` in ``scripts/test.sh``).
"""

from __future__ import annotations

import importlib.util
import os

import pytest

OPT_OUT = "LOOPTOOL_TEST_ALLOW_MISSING"


def allowed_missing() -> set[str]:
    return {name.strip() for name in os.environ.get(OPT_OUT, "").split(",") if name.strip()}


def require(name: str, available: bool, how: str) -> None:
    """Fail (or, when ``name`` is opted out, skip) a test whose optional dependency is missing."""
    if available:
        return
    reason = f"{name} is missing: {how}"
    if name in allowed_missing():
        pytest.skip(f"{reason} (skipped: {OPT_OUT} names {name})")
    pytest.fail(f"{reason}; or set {OPT_OUT}={name} to skip the tests that need it", pytrace=False)


def require_vllm() -> None:
    require(
        "vllm",
        importlib.util.find_spec("vllm") is not None,
        "install the cpu-serve extra (scripts/install.sh --extra cpu-serve)",
    )
