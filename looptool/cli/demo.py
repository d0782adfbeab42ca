"""``looptool demo``: the whole loop on the embedded broker, with a report."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from looptool.cli.common import broker_for, console, settings_of

commands = typer.Typer()


@commands.command()
def demo(
    ctx: typer.Context,
    workdir: Annotated[
        Path, typer.Option(help="Where the run writes its config, model, logs and report.")
    ] = Path("data/demo"),
    quick: Annotated[
        bool, typer.Option(help="A shortened run (small world, 2 rounds): minutes, for tests.")
    ] = False,
    seed: Annotated[int, typer.Option(help="World and model seed.")] = 0,
    results_file: Annotated[
        Path | None,
        typer.Option(
            help="Also write the report's JSON here (scripts/demo.sh writes a full run's to "
            "benchmarks/results/demo_report.json, which the README's demo table is checked against)."
        ),
    ] = None,
) -> None:
    """The whole loop on the embedded broker: seed the world, train, probe, judge, expand, curate, report."""
    from looptool.demo import SCALES, run_demo, user_policy_refusal

    settings = settings_of(ctx)
    refusal = user_policy_refusal(settings)
    if refusal is not None:  # before the broker starts and anything is written
        raise typer.BadParameter(refusal, param_hint="'--config'")
    scale = SCALES["quick" if quick else "full"]
    with broker_for(settings) as live:
        report = asyncio.run(run_demo(live, workdir, console, scale=scale, seed=seed))
    if results_file is not None:
        results_file.parent.mkdir(parents=True, exist_ok=True)
        results_file.write_text(report.to_json() + "\n", encoding="utf-8")
        console.print(f"report written to {results_file}")
    if not report.replay_matches:
        raise typer.Exit(1)
