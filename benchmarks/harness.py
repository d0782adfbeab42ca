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
import os
import platform
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from common.logs import LogSettings, configure_logging

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"


def machine_info() -> dict[str, Any]:
    """Where the figures were taken; the load average says how contended the cores were."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def finish_machine_info(machine: dict[str, Any]) -> dict[str, Any]:
    """Close a :func:`machine_info` record: load at the end, torch threads, and whether it was contended."""
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if "torch" in sys.modules:
        machine["torch_threads"] = int(sys.modules["torch"].get_num_threads())
    # Load beyond our own single process means other work shared the cores while we measured.
    machine["contended"] = max(machine["load_average_at_start"][0], machine["load_average_at_end"][0]) > 1.5
    return machine


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
