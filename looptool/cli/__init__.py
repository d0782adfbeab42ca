"""``looptool``: the one command line of the project, one module per command group.

The root callback loads the settings once (:mod:`looptool.config`); each group module holds its
commands on a Typer of its own, merged here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from common.logs import configure_logging
from common.runtime import tune_gc
from looptool.cli import broker, data, demo, evaluate, schemas, services, views
from looptool.config import load_settings

app = typer.Typer(
    name="looptool",
    help="Streaming LoopTool: closed-loop data evolution for tool-calling LLMs on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")] = None,
    run_id: Annotated[str | None, typer.Option(help="Run id (topic prefix); overrides config.")] = None,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers; overrides config.")
    ] = None,
    log_format: Annotated[str | None, typer.Option(help="console or json.")] = None,
) -> None:
    overrides: dict[str, Any] = {}
    if run_id:
        overrides["run_id"] = run_id
    settings = load_settings(config, **overrides)
    updates: dict[str, Any] = {}
    if bootstrap_servers:
        updates["kafka"] = settings.kafka.model_copy(update={"bootstrap_servers": bootstrap_servers})
    if log_format:
        updates["log"] = settings.log.model_copy(update={"format": log_format})
    settings = settings.model_copy(update=updates)
    configure_logging(settings.log)
    tune_gc()  # every command streams events: see common/runtime.py
    ctx.obj = {"settings": settings}


for group in (broker, data, services, views, evaluate, demo):
    app.add_typer(group.commands)
app.add_typer(schemas.commands, name="schemas")
