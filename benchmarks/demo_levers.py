"""Benchmark: the full demo (``looptool demo``) with some of its scale's settings changed, one run each.

The efficacy levers of issue 15 at the demo's own scale and warm start: each run is the whole demo on
its own embedded broker (cached warm start, the stages, the trainer and the evaluate/promote service as
processes), with ``--set NAME=VALUE`` overriding fields of :class:`looptool.demo.DemoScale` (e.g.
``group_size=16``, ``max_error_seed_share=0.4``, ``grpo_epochs=2``; ``max_error_seed_share=none``
removes the cap). The run's report (per round: held-out ToolMatch, label noise, sources, GRPO reward
and mixed groups, the gate's decision; wall time; machine and load) is appended to
``benchmarks/results/demo_levers.json`` under a name (``--name``, default: the overrides).

    .venv/bin/python -m benchmarks.demo_levers --set group_size=16 --set max_error_seed_share=0.4

One run per call, one seed: the held-out set has 157 samples, so a difference below ~4 points between
two runs is within its noise (the efficacy benchmark repeats arms over seeds).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import add_output_arguments, wide_console, write_results
from looptool.cli.common import broker_for
from looptool.config import load_settings
from looptool.demo import SCALES, DemoScale, run_demo
from looptool.report import number_or_blank


def parse_override(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` for a DemoScale field; VALUE is read as JSON (``none`` for null)."""
    name, separator, raw = text.partition("=")
    fields = {f.name for f in dataclasses.fields(DemoScale)}
    if not separator or name not in fields:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME one of {', '.join(sorted(fields))}")
    value = None if raw.strip().lower() in ("none", "null") else json.loads(raw)
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[])
    parser.add_argument("--name", help="The run's name in the results file (default: its overrides).")
    parser.add_argument("--seed", type=int, default=0, help="World and model seed.")
    parser.add_argument("--workdir", type=Path, help="Where the run writes (default: a temporary folder).")
    add_output_arguments(parser, "demo_levers")
    arguments = parser.parse_args()

    overrides = dict(arguments.overrides)
    scale = dataclasses.replace(SCALES["full"], **overrides)
    name = arguments.name or ",".join(f"{k}={v}" for k, v in overrides.items()) or "default"
    console = wide_console()
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="demo-levers-"))
    with broker_for(load_settings()) as live:
        report = asyncio.run(run_demo(live, workdir, console, scale=scale, seed=arguments.seed))
    report_json = json.loads(report.to_json())
    run = {"name": name, "overrides": overrides, "seed": arguments.seed, "report": report_json}
    for row in report.rounds:
        console.print(
            f"round {row.round}: held-out {number_or_blank(row.heldout_accuracy, '{:.1%}')}, "
            f"noise {row.label_noise:.1%}, sources {row.sources}, "
            f"mixed groups {number_or_blank(row.mixed_groups, '{:.0%}')}, gate {row.promotion}"
        )
    if not arguments.no_save:
        existing: dict[str, Any] = {"runs": []}
        if arguments.out.exists():
            existing = json.loads(arguments.out.read_text(encoding="utf-8"))
        existing["runs"] = [r for r in existing["runs"] if r["name"] != name] + [run]
        write_results(existing, arguments.out)


if __name__ == "__main__":
    main()
