"""Commands that bring data into a run: ``seed``, ``ingest``, ``curate --initial``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from looptool.cli.common import console, require_broker, settings_of

commands = typer.Typer()


@commands.command()
def seed(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option(help="Also write the seeds as paper-format JSONL here.")] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Write the world's true labels here (never sent to the topics).")
    ] = None,
    heldout_out: Annotated[Path | None, typer.Option(help="Write the clean held-out set here.")] = None,
    publish: Annotated[bool, typer.Option(help="Send SampleAdded events to the run's topics.")] = True,
    offline: Annotated[
        bool, typer.Option("--offline", help="Use the synthetic world even when \\[generator] is configured.")
    ] = False,
    tools: Annotated[
        int | None, typer.Option(help="LLM path: tools to synthesise (default: one per context-tree leaf).")
    ] = None,
) -> None:
    """Construct D_seed: dual-tree tools and four-role dialogues.

    By LLM roles when the generator endpoint is configured, else by the offline synthetic tool world
    (with label noise, and the truth kept apart)."""
    from world import World
    from world.seed import build_seed_set, seed_events, write_jsonl

    settings = settings_of(ctx)
    world_settings = settings.world
    if world_settings is None:
        from world.config import WorldSettings

        world_settings = WorldSettings()
    use_llm = settings.generator is not None and not offline
    if use_llm and truth is not None:
        raise typer.BadParameter("seeds made by an LLM have no independent truth", param_hint="--truth")
    if use_llm:
        console.print(
            "[dim]LLM roles from \\[generator] (checks by \\[judge]); noise_rate applies to the world only[/]"
        )

    async def main() -> Any:
        if use_llm:
            from looptool.wiring import endpoint_backend
            from world.llm_roles import build_llm_seed_set, llm_seed_events

            generator = endpoint_backend(settings.generator)
            judge = endpoint_backend(settings.judge) if settings.judge is not None else generator
            try:
                seed_set = await build_llm_seed_set(
                    generator,
                    world_settings.seed_dialogues,
                    judge=judge,
                    heldout=world_settings.heldout_dialogues,
                    tools=tools,
                    seed=world_settings.seed,
                    current_time=settings.loop.current_time,
                    constrain_judge=settings.judge.constrain_output if settings.judge else False,
                )
            finally:
                await generator.close()
                if judge is not generator:
                    await judge.close()
            events = llm_seed_events(seed_set, settings.run_id)
        else:
            seed_set = await build_seed_set(
                World(world_settings.seed),
                world_settings.seed_dialogues,
                heldout=world_settings.heldout_dialogues,
                noise_rate=world_settings.noise_rate,
                noise_mix=world_settings.noise_mix,
            )
            events = seed_events(seed_set, settings.run_id)
        if publish:
            await publish_seeds(settings, events)
        return seed_set

    from world.llm_roles import SeedConstructionError

    if publish:
        require_broker(settings)
    try:
        seed_set = asyncio.run(main())
    except SeedConstructionError as error:
        console.print(f"[red]seed construction failed:[/] {error}")
        raise typer.Exit(1) from None
    if out is not None:
        write_jsonl(seed_set.samples, out, truth)
    if heldout_out is not None:
        write_jsonl(seed_set.heldout, heldout_out)
    source = "LLM roles" if use_llm else f"world {world_settings.seed}"
    table = Table("", "count", title=f"{source}: D_seed")
    table.add_row("seed samples", str(len(seed_set.samples)))
    for kind, count in sorted(seed_set.kinds().items()):
        table.add_row(f"  {kind}", str(count))
    if not use_llm:
        table.add_row("noisy labels", f"{sum(seed_set.noise_kinds().values())} ({seed_set.noise_rate():.1%})")
        for kind, count in sorted(seed_set.noise_kinds().items()):
            table.add_row(f"  {kind}", str(count))
    table.add_row("held-out samples (clean)", str(len(seed_set.heldout)))
    for label, value in getattr(seed_set, "report", None).rows() if use_llm else []:
        table.add_row(label, value)
    console.print(table)


async def publish_seeds(settings: Any, events: list[Any], chunk: int = 64) -> None:
    """Send the seeds in acknowledged chunks, with progress; the ids are deterministic (world seeds), so
    running the command again after an interruption adds nothing twice."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from bus.kafka import EventProducer, ensure_topics
    from common.logs import get_logger

    log = get_logger("looptool.seed")
    await ensure_topics(settings.kafka, settings.run_id)
    columns = (TextColumn("[bold]seed[/] publishing"), BarColumn(), MofNCompleteColumn())
    progress = Progress(*columns, transient=True, console=console)
    async with EventProducer(settings.kafka) as producer:
        with progress:
            task = progress.add_task("publish", total=len(events))
            for start in range(0, len(events), chunk):
                sent = await producer.send_all(events[start : start + chunk])
                progress.advance(task, sent)
                log.debug("seed.published", acknowledged=producer.acknowledged, total=len(events))


def _known_format(value: str) -> str:
    """``--format`` checked while the options are parsed: before any file is read or broker asked."""
    from toolcall.formats import RecordError, resolve_format

    try:
        resolve_format(value)
    except RecordError as error:
        raise typer.BadParameter(str(error)) from None
    return value


@commands.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(help="Seed files (JSON, JSONL, .gz, Parquet), folders of them, or saved datasets."),
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="auto (per record), paper, bfcl, xlam, openai, sharegpt (hermes, toolace), glaive "
            "or when2call.",
            callback=_known_format,
        ),
    ] = "auto",
    answers: Annotated[
        Path | None,
        typer.Option(
            help="BFCL possible answers ({id, ground_truth} lines) when no possible_answer/ is beside."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON object of the counts.")] = False,
) -> None:
    """Read seed samples into the run's topics; bad records go to the dead-letter topic with the reason.

    A record over the ``\\[ingest]`` limits is dead-lettered too. Exits 1 when nothing landed (an empty
    file, or every record dead-lettered). Event ids are deterministic: running it again adds nothing."""
    import json
    import sys

    from bus.ingest import ingest_paths
    from looptool.cli.errors import FAILURE, one_line
    from streams.sources import SourceError
    from toolcall.formats import RecordError
    from views.deadletters import render_ingest_report

    settings = settings_of(ctx)
    require_broker(settings)
    try:
        report = asyncio.run(
            ingest_paths(
                paths,
                settings,
                fmt,
                show_progress=not as_json,
                answers=answers,
                decontaminate=settings.eval.decontaminate,
                limits=settings.ingest,
            )
        )
    except (SourceError, RecordError, OSError) as error:
        raise typer.BadParameter(str(error)) from None
    if as_json:
        print(json.dumps(report.summary(), ensure_ascii=False))
    else:
        render_ingest_report(report, console)
    failure = report.nothing_landed()
    if failure is not None:
        print(f"looptool: error: {one_line(failure)}", file=sys.stderr, flush=True)
        raise typer.Exit(FAILURE)


@commands.command()
def curate(
    ctx: typer.Context,
    initial: Annotated[
        bool, typer.Option("--initial", help="Open round 1 (D_1) from the seed pool.")
    ] = False,
) -> None:
    """Open round 1 from the seeds now in the pool (later rounds are closed by the curate stage)."""
    from bus.kafka import run_log
    from streams.curate import CurationPolicy, open_first_round, refusals

    settings = settings_of(ctx)
    require_broker(settings)
    if not initial:
        raise typer.BadParameter("later rounds are built by `looptool worker --stages curate`; use --initial")
    try:
        events = asyncio.run(open_first_round(run_log(settings), CurationPolicy.from_settings(settings)))
    except ValueError as error:
        console.print(f"[red]round 1 not opened:[/] {error}")
        raise typer.Exit(1) from None
    if not events:
        console.print("round 1 is already open")
        return
    manifest = events[-1].payload
    console.print(f"opened round {manifest.round}: {manifest.total} samples {manifest.counts}")
    refused = refusals(events)
    if refused:
        console.print(
            f"[yellow]refused {len(refused)} seeds[/] as evaluation-suite questions: kept out of every "
            "round (`looptool deadletters --stage curate` lists them all), e.g.:"
        )
        for event in refused[:5]:
            console.print(
                f"  {event.payload.key.decode() if event.payload.key else ''}: {event.payload.reason}"
            )
