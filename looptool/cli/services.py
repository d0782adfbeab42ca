"""The long-running services: ``worker`` (stages) and ``train`` (the trainer)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from looptool.cli.common import console, require_broker, run_until_signalled, settings_of
from looptool.cli.setup import preflight_or_exit
from looptool.preflight import train_checks, worker_checks

commands = typer.Typer()


@commands.command()
def worker(
    ctx: typer.Context,
    stages: Annotated[
        str | None,
        typer.Option(help="Comma-separated stages (see `looptool stages`); default: the loop's own."),
    ] = None,
) -> None:
    """Run stream stages (each its own consumer group) until SIGTERM/Ctrl-C."""
    from looptool.wiring import run_worker
    from streams import registry

    settings = settings_of(ctx)
    names = [name.strip() for name in stages.split(",") if name.strip()] if stages else registry.loop_names()
    unknown = sorted(set(names) - set(registry.names()))
    if unknown:
        raise typer.BadParameter(f"unknown stages {unknown}; known: {', '.join(registry.names())}")
    require_broker(settings)
    preflight_or_exit("worker", worker_checks(settings, names))

    async def main(stop: asyncio.Event) -> None:
        await run_worker(settings, names, stop)

    run_until_signalled(main)


@commands.command()
def stages() -> None:
    """List the registered stages and services, in pipeline order."""
    from rich.table import Table

    from streams import registry

    table = Table("name", "kind", "default", "what it does")
    for entry in registry.entries():
        table.add_row(entry.name, entry.kind, "yes" if entry.in_loop else "", entry.doc)
    console.print(table)


@commands.command()
def train(
    ctx: typer.Context,
    until_idle: Annotated[bool, typer.Option(help="Exit once every closed round is trained.")] = False,
) -> None:
    """Run the trainer: train each closed round (CPU GRPO or verl) and publish its checkpoints."""
    from trainer.service import run_trainer

    settings = settings_of(ctx)
    require_broker(settings)
    preflight_or_exit("train", train_checks(settings))

    async def main(stop: asyncio.Event) -> None:
        published = await run_trainer(settings, settings.trainer, stop, until_idle=until_idle)
        console.print(f"published {len(published)} checkpoint(s)")

    run_until_signalled(main)
