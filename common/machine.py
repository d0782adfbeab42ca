"""The machine a measurement ran on and how busy it was (benchmarks and the demo's report record it)."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine_info() -> dict[str, Any]:
    """Where the figures were taken; the load average says how contended the cores were."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
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
