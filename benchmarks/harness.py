"""What every benchmark shares: the machine it ran on, how busy it was, where its figures go.

Benchmarks are scripts that print measured figures (ratios taken side by side in one run) and write
them to ``benchmarks/results/NAME.json``; run one as ``python -m benchmarks.NAME --help``. Each
results file records the machine, the load average at start and end, and the torch threads, so a
reader can tell a quiet run from a contended one (``contended``: load beyond our own process).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from common.logs import LogSettings, configure_logging
from common.machine import finish_machine_info as finish_machine_info  # re-exported for benchmarks
from common.machine import machine_info as common_machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"


def machine_info() -> dict[str, Any]:
    """:func:`common.machine.machine_info`, after setting the garbage collector as the services set it
    (:func:`common.runtime.tune_gc`), so a benchmark measures what they do."""
    import gc

    from common.runtime import tune_gc

    tune_gc()
    return {"gc_thresholds": list(gc.get_threshold()), **common_machine_info()}


def wide_console() -> Console:
    """A console whose tables are not squeezed to 80 columns when the output is a file or a pipe."""
    return Console(width=None if sys.stdout.isatty() else 140)


def set_torch_threads(threads: int | None) -> int:
    """Pin torch's CPU threads (None: torch's default, one per core); returns the count in use.

    On a shared 2-core machine two threads per decode were measured ~10× slower than one: OpenMP
    threads spin-waiting for a core another process holds.
    """
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return int(torch.get_num_threads())


def quiet_logs() -> None:
    """Warnings only: the per-batch info lines of every stage would swamp the tables."""
    configure_logging(LogSettings(level="warning"))
    for noisy in ("faust", "mode", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def results_path(name: str) -> Path:
    return RESULTS_DIR / f"{name}.json"


def add_output_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """``--out`` (default ``benchmarks/results/NAME.json``) and ``--no-save``."""
    parser.add_argument("--out", type=Path, default=results_path(name), help="Where to write the results.")
    parser.add_argument("--no-save", action="store_true", help="Do not write the results file.")


def write_results(results: dict[str, Any], out: Path) -> None:
    """The figures as JSON under ``benchmarks/results/`` (or ``--out``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    wide_console().print(f"wrote {out}")


def save(results: dict[str, Any], arguments: argparse.Namespace) -> None:
    """Write ``results`` unless ``--no-save`` was given."""
    if not arguments.no_save:
        write_results(results, arguments.out)
