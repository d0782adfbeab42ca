"""Setting a run up: ``init`` (a commented config for your own data) and ``doctor`` (the preflight).

:func:`preflight_or_exit` is how ``worker``, ``train``, ``eval`` and ``topics`` run the checks they
need (:mod:`looptool.preflight`) before they start.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from looptool import preflight
from looptool.cli.common import console, settings_of
from looptool.config import Settings, config_file_path

commands = typer.Typer()


def preflight_or_exit(command: str, checks: Coroutine[Any, Any, list[preflight.CheckResult]]) -> None:
    """Run ``checks``; on any failure print one line per failed check and exit with status 1.

    An LLM server that answers but fails right now (HTTP 5xx/429) does not stop a service: its stages
    pause and retry through an outage; the line is printed as a warning."""
    results = asyncio.run(checks)
    for result in results:
        if result.outage:
            print(f"looptool {command}: warning: {result.line()}", file=sys.stderr, flush=True)
    failed = preflight.failures(results, outages_fail=False)
    if not failed:
        return
    for result in failed:
        print(f"looptool {command}: not started: {result.line()}", file=sys.stderr, flush=True)
    raise typer.Exit(1)


@commands.command()
def init(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("looptool.toml"),
    policy: Annotated[
        str | None, typer.Option(help="Your policy's model folder (Hugging Face format).")
    ] = None,
    llm_url: Annotated[
        str | None,
        typer.Option(
            help="Base URL of the OpenAI-compatible server of judge, generator and verifier (…/v1)."
        ),
    ] = None,
    llm_model: Annotated[str | None, typer.Option(help="The model name that server serves.")] = None,
    kafka: Annotated[str | None, typer.Option(help="Kafka bootstrap servers (host:port).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented looptool.toml for a run on your own data (placeholders for what you leave out)."""
    from looptool.starter import StarterValues, render_starter

    if path.exists() and not force:
        console.print(f"[red]{path} exists[/]; `looptool init --force` overwrites it")
        raise typer.Exit(1)
    given: dict[str, Any] = {
        "policy": policy,
        "llm_url": llm_url,
        "llm_model": llm_model,
        "kafka": kafka,
        "run_id": ctx.find_root().params.get("run_id"),
    }
    values = StarterValues(**{key: value for key, value in given.items() if value})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_starter(values), encoding="utf-8")
    console.print(f"wrote {path} (run {values.run_id!r})")
    if values.policy == StarterValues.policy:
        console.print(escape("fill in [policy] model_path: your model's folder (or --policy)"))
    console.print(
        f"the judge, generator and verifier ask {values.llm_url} for model {values.llm_model!r}: the vLLM "
        "command that serves them is in the file"
    )
    console.print("`looptool doctor` then checks every part")


def _settings_or_error(ctx: typer.Context) -> tuple[Settings | None, BaseException | None]:
    """The settings, or why they did not load (the root callback keeps a load error for doctor)."""
    error = (ctx.obj or {}).get("config_error")
    if error is not None:
        return None, error
    try:
        return settings_of(ctx), None
    except Exception as failure:  # settings loaded lazily: a broken config surfaces here
        return None, failure


@commands.command()
def doctor(ctx: typer.Context) -> None:
    """Check everything a run needs, one row per check (ok, or failed with the fix); exit 1 if any fails."""
    config = ctx.find_root().params.get("config")
    try:
        config_file = config_file_path(config)
    except FileNotFoundError:
        config_file = config
    settings, error = _settings_or_error(ctx)
    results = [preflight.check_config(config_file, error, settings)]
    if settings is not None:
        results += asyncio.run(preflight.doctor_checks(settings))
    table = Table("check", "", "what was found", "fix", title="looptool doctor")
    for result in results:
        mark = "[green]ok[/]" if result.ok else "[red]failed[/]"
        table.add_row(
            escape(result.name), mark, escape(result.detail), "" if result.ok else escape(result.fix)
        )
    console.print(table)
    failed = preflight.failures(results)
    if failed:
        console.print(f"[red]{len(failed)} of {len(results)} checks failed[/]")
        raise typer.Exit(1)
    console.print(f"all {len(results)} checks passed")
