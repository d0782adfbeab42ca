"""Hugging Face's own progress bars stay out of the logs: a model load printed one bar per checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Save and load a tiny policy, as the warm start and the probe do, after the logging set-up every
# command runs; ``IMPORT_FIRST`` imports transformers before it (a library already imported).
LOAD_A_MODEL = textwrap.dedent(
    """
    import sys

    if sys.argv[2] == "import-first":
        import transformers  # noqa: F401

    from common.logs import configure_logging
    from trainer.tiny_policy import build_tiny_policy

    configure_logging()
    from transformers import AutoModelForCausalLM

    folder = build_tiny_policy(sys.argv[1], ["a b c d e f g"] * 20, vocab_size=300)
    AutoModelForCausalLM.from_pretrained(folder)
    print("loaded")
    """
)


def run(folder: Path, order: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.endswith("_DISABLE_PROGRESS_BARS")}
    return subprocess.run(
        [sys.executable, "-c", LOAD_A_MODEL, str(folder), order],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment | env,
    )


@pytest.mark.parametrize("order", ["lazy-import", "import-first"])
def test_model_loads_print_no_progress_bars(tmp_path: Path, order: str) -> None:
    done = run(tmp_path / "policy", order)
    assert done.returncode == 0, done.stderr
    assert "loaded" in done.stdout
    assert "Loading weights" not in done.stderr
    assert "Writing model shards" not in done.stderr


def test_the_environment_can_turn_them_back_on(tmp_path: Path) -> None:
    done = run(tmp_path / "policy", "lazy-import", HF_HUB_DISABLE_PROGRESS_BARS="0")
    assert done.returncode == 0, done.stderr
    assert "Loading weights" in done.stderr  # the libraries' own bars: the check above can fail


def test_library_chatter_stays_at_warnings_and_our_own_info_stays() -> None:
    """httpx once logged an INFO line for every judge, generator and verifier request."""
    script = textwrap.dedent(
        """
        import logging
        from common.logs import configure_logging, get_logger

        configure_logging()
        for name in ("httpx", "httpcore", "aiokafka", "faust", "matplotlib"):
            logging.getLogger(name).info("chatter from %s", name)
            logging.getLogger(name).warning("warning from %s", name)
        get_logger("looptool.test").info("ours")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "chatter from" not in output and "ours" in output
    assert output.count("warning from") == 5
