"""``looptool``: the one command line of the project, one module per command group.

The root callback loads the settings once (:mod:`looptool.config`); each group module holds its
commands on a Typer of its own, merged here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from common.logs import configure_logging
from looptool.cli import broker, data, demo, evaluate, schemas, services, setup, views
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
    try:
        settings = load_settings(config, **overrides)
    except Exception as error:
        if ctx.invoked_subcommand not in ("doctor", "init"):
            raise
        ctx.obj = {"config_error": error}  # doctor reports it as a check; init may overwrite the file
        return
    updates: dict[str, Any] = {}
    if bootstrap_servers:
        updates["kafka"] = settings.kafka.model_copy(update={"bootstrap_servers": bootstrap_servers})
    if log_format:
        updates["log"] = settings.log.model_copy(update={"format": log_format})
    settings = settings.model_copy(update=updates)
    configure_logging(settings.log)
    ctx.obj = {"settings": settings}


for group in (setup, broker, data, services, views, evaluate, demo):
    app.add_typer(group.commands)
app.add_typer(schemas.commands, name="schemas")
