"""``looptool``: the one command line of the project, one module per command group.

The root callback reads the global options; the settings (config file, environment, options) are
loaded when a command first asks for them (:func:`looptool.cli.common.settings_of`), so ``--help``
and commands that need no settings work even with a broken config. Each group module holds its
commands on a Typer of its own, merged here.

A command that fails prints one line, ``looptool: error: …``, and exits with the conventional code
(:mod:`looptool.cli.errors`: 2 for usage and configuration errors, 65 for a store whose build never
finished, 75 when the broker restarted, 130 after Ctrl-C); the traceback is printed only
with debug logging (``--log-level debug``, ``[log] level = "debug"`` or ``LOOPTOOL_LOG__LEVEL``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import typer

from common.logs import LogSettings, configure_logging
from common.runtime import report_native_crashes, tune_gc
from looptool.cli import broker, data, demo, errors, evaluate, schemas, services, setup, views
from looptool.config import Settings, load_settings


class CommandLine(typer.Typer):
    """The Typer app, run so that every failure is one line and an exit code (:mod:`looptool.cli.errors`)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("prog_name", "looptool")
        try:
            code = typer.main.get_command(self)(*args, standalone_mode=False, **kwargs)
        except (typer.Abort, KeyboardInterrupt) as error:
            _fail(errors.INTERRUPTED, "interrupted", error)
        except Exception as error:  # every failure ends as one line
            if _is_click_error(error):  # bad options and refused values: usage errors
                context = getattr(error, "ctx", None)
                hint = f" (see '{context.command_path} --help')" if context is not None else ""
                _fail(error.exit_code, error.format_message() + hint, error)  # type: ignore[attr-defined]
            _fail(*errors.describe(error), error)
        exit_within_grace(code if isinstance(code, int) else 0)


def _is_click_error(error: Exception) -> bool:
    """A click exception (Typer vendors click, so its classes are matched by what they offer)."""
    code, formatter = getattr(error, "exit_code", None), getattr(error, "format_message", None)
    return isinstance(code, int) and callable(formatter)


def _fail(code: int, message: str, error: BaseException) -> None:
    if errors.debugging():
        traceback.print_exception(error)
    print(f"looptool: error: {errors.one_line(message)}", file=sys.stderr, flush=True)
    exit_within_grace(code)


EXIT_GRACE_S = 30.0  # how long interpreter shutdown may wait for threads a library left running


def exit_within_grace(code: int) -> NoReturn:
    """Exit with ``code``, and for certain: the interpreter waits at shutdown for every thread that is
    not a daemon, and a library can leave one running (faust's consumer thread after its broker
    restarted kept a worker alive for minutes after its error; the command's own SIGTERM handler then
    kept it from being stopped). If shutdown has not finished within :data:`EXIT_GRACE_S`, the process
    ends there with the same code, its output flushed."""

    def force() -> None:
        time.sleep(EXIT_GRACE_S)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)

    threading.Thread(target=force, name="exit-watchdog", daemon=True).start()
    sys.exit(code)


app = CommandLine(
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
    log_format: Annotated[Literal["console", "json"] | None, typer.Option(help="console or json.")] = None,
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"] | None,
        typer.Option(help="debug, info, warning or error; debug also prints tracebacks of failures."),
    ] = None,
) -> None:
    overrides: dict[str, Any] = {}
    if run_id is not None:  # an empty --run-id is an error, not the default run
        overrides["run_id"] = run_id
    kafka: dict[str, Any] = {}
    if bootstrap_servers is not None:
        kafka["bootstrap_servers"] = bootstrap_servers
    log: dict[str, Any] = {}
    if log_format is not None:
        log["format"] = log_format
    if log_level is not None:
        log["level"] = log_level
    errors.set_debug(log_level == "debug")
    configure_logging(LogSettings(**log))  # until the settings are read (they may say otherwise)
    tune_gc()  # every command streams events: see common/runtime.py
    report_native_crashes()

    def load() -> Settings:
        try:
            settings = load_settings(config, **overrides)
        except FileNotFoundError as error:
            raise typer.BadParameter(str(error), param_hint="'--config'") from None
        updates: dict[str, Any] = {}
        if kafka:  # validated as the section is: the option gets the same checks as the config
            updates["kafka"] = type(settings.kafka).model_validate(settings.kafka.model_dump() | kafka)
        if log:
            updates["log"] = LogSettings.model_validate(settings.log.model_dump() | log)
        settings = settings.model_copy(update=updates)
        configure_logging(settings.log)
        errors.set_debug(settings.log.level == "debug")
        return settings

    ctx.obj = {"load_settings": load}


for group in (setup, broker, data, services, views, evaluate, demo):
    app.add_typer(group.commands)
app.add_typer(schemas.commands, name="schemas")
