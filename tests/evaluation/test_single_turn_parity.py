"""CI-sized parity: our single-turn scoring gives bfcl-eval's own verdicts on the same outputs.

Runs ``python -m benchmarks.bfcl_single_turn_parity`` on the first two items of each single-turn
category in a subprocess (bfcl-eval's evaluation code is imported there, with the stand-ins its import
needs, never in the test process), with the default reading and with ``repair``. The full table is in
``docs/evaluation.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ITEMS = 22  # 2 of each of the 11 single-turn categories
IRRELEVANT = 4  # 2 of irrelevance, 2 of live_irrelevance: a call is wrong there


def parity(tmp_path: Path, *options: str) -> dict[str, Any]:
    env = {**os.environ, "BFCL_PROJECT_ROOT": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bfcl_single_turn_parity", "--sample", "2", "--json", *options],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["items"] == ITEMS
    return report["kinds"]


def test_every_rendering_gets_bfcl_evals_verdict_and_error_type(tmp_path: Path) -> None:
    kinds = parity(tmp_path)
    assert any(not kind["well_formed"] for kind in kinds.values())
    for name, kind in kinds.items():
        assert kind["agree"] == kind["items"] == ITEMS, (name, kind["disagreements"])
    # Not vacuous: the labels pass (irrelevance items, given a call, fail), malformed outputs fail.
    assert kinds["ground_truth"]["bfcl_valid"] == ITEMS - IRRELEVANT
    assert kinds["ground_truth"]["error_types"] == {"irrelevance_error:decoder_success": IRRELEVANT}
    assert kinds["python_literal_blocks"]["bfcl_valid"] == IRRELEVANT  # no call read
    assert kinds["non_object_block"]["error_types"]["ast_decoder:decoder_failed"] == 16  # the AST items
    assert kinds["one_unreadable_block"]["bfcl_valid"] == ITEMS - IRRELEVANT


def test_the_repair_reading_repairs_what_bfcl_eval_drops(tmp_path: Path) -> None:
    kinds = parity(tmp_path, "--reading", "repair")
    for name in ("ground_truth", "prose_around_calls", "text_answer"):
        assert kinds[name]["agree"] == ITEMS, (name, kinds[name]["disagreements"])
    for name in ("python_literal_blocks", "unclosed_last_block"):
        assert kinds[name]["ours_valid"] == ITEMS - IRRELEVANT > kinds[name]["bfcl_valid"] == IRRELEVANT
    # one unreadable block: bfcl-eval keeps the good calls, our parser refuses the output
    unreadable = kinds["one_unreadable_block"]
    assert unreadable["ours_valid"] == IRRELEVANT < unreadable["bfcl_valid"] == ITEMS - IRRELEVANT
