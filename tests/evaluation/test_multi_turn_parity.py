"""CI-sized parity: our multi-turn scoring gives bfcl-eval's own verdicts on the same outputs.

Runs ``python -m benchmarks.bfcl_multi_turn_parity`` on the first two conversations of each category in a
subprocess (bfcl-eval's evaluation code is imported there, with the stand-ins its import needs, never in
the test process). The full table (800 conversations) is in ``docs/evaluation.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_verdicts_and_error_types_match_bfcl_eval(tmp_path: Path) -> None:
    env = {**os.environ, "BFCL_PROJECT_ROOT": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bfcl_multi_turn_parity", "--sample", "2", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["conversations"] == 8
    kinds = report["kinds"]
    for name, kind in kinds.items():
        if kind["well_formed"]:
            assert kind["agree"] == kind["conversations"] > 0, (name, kind["disagreements"])
    # The checks are not vacuous: ground truth passes, and edits fail with BFCL's own error types.
    assert kinds["ground_truth"]["bfcl_valid"] == kinds["ground_truth"]["ours_valid"] == 8
    assert kinds["skipped_turn"]["error_types"] == {"multi_turn:empty_turn_model_response": 8}
    assert kinds["cut_short"]["error_types"] == {"multi_turn:force_terminated": 8}
    assert kinds["wrong_argument"]["bfcl_valid"] == 0
    # Known difference of reading: blocks our parser repairs are dropped by bfcl-eval's decoder.
    for name in ("python_literal_blocks", "unclosed_last_block"):
        assert not kinds[name]["well_formed"] and kinds[name]["ours_valid"] == 8
        assert kinds[name]["bfcl_valid"] == 0
