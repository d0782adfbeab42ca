"""``looptool``: the one command line of the project."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from looptool.config import Settings, load_settings
from looptool.logs import configure_logging

app = typer.Typer(
    name="looptool",
    help="Streaming LoopTool: closed-loop data evolution for tool-calling LLMs on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
schemas_app = typer.Typer(help="Event schema registry.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
console = Console()


def _settings(ctx: typer.Context) -> Settings:
    return ctx.obj["settings"]


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
    ctx.obj = {"settings": settings}


@contextlib.contextmanager
def broker_for(settings: Settings) -> Iterator[Settings]:
    """Yield settings pointing at a broker: the configured one, or an embedded one started now."""
    if settings.kafka.bootstrap_servers:
        yield settings
        return
    from looptool.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        console.print(f"[dim]embedded broker (Tansu) at {broker.bootstrap_servers}[/]")
        kafka = settings.kafka.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
        yield settings.model_copy(update={"kafka": kafka})


def _require_broker(settings: Settings) -> None:
    if not settings.kafka.bootstrap_servers:
        raise typer.BadParameter(
            "no Kafka configured: set kafka.bootstrap_servers (config, LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS "
            "or --bootstrap-servers); `looptool broker` starts a local one"
        )


@app.command()
def broker(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = any free port).")] = 9092,
) -> None:
    """Run the embedded Kafka broker (Tansu, memory only) in the foreground until Ctrl-C."""
    from looptool.broker import EmbeddedBroker

    embedded = EmbeddedBroker(port=port or None)
    embedded.start()
    console.print(f"broker ready: bootstrap servers [bold]{embedded.bootstrap_servers}[/] (Ctrl-C stops it)")
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop["now"] and embedded.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        embedded.stop()
    if not stop["now"]:
        raise typer.Exit(1)


@app.command()
def topics(ctx: typer.Context) -> None:
    """Create the run's topics if missing and list them."""
    from looptool.kafka import ensure_topics
    from looptool.topics import TOPICS, partitions_for, topic_name

    settings = _settings(ctx)
    _require_broker(settings)
    asyncio.run(ensure_topics(settings.kafka, settings.run_id))
    table = Table("topic", "partitions", "events", "purpose", title=f"run {settings.run_id}")
    for spec in TOPICS:
        table.add_row(
            topic_name(settings.run_id, spec.name),
            str(partitions_for(spec, settings.kafka)),
            ", ".join(spec.event_types),
            spec.doc,
        )
    console.print(table)


@app.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(help="Seed files (JSON, JSONL, .gz), folders of them, or datasets saved to disk."),
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="auto (per record), paper, bfcl, xlam, openai, sharegpt (hermes, toolace) or glaive.",
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
    """Read seed samples into the run's topics; bad records go to the dead-letter topic with the reason."""
    import json

    from streams.deadletters import render_ingest_report
    from streams.ingest import ingest_paths
    from streams.sources import SourceError
    from toolcall.formats import RecordError

    settings = _settings(ctx)
    _require_broker(settings)
    try:
        report = asyncio.run(ingest_paths(paths, settings, fmt, show_progress=not as_json, answers=answers))
    except (SourceError, RecordError, OSError) as error:
        raise typer.BadParameter(str(error)) from None
    if as_json:
        print(json.dumps(report.summary(), ensure_ascii=False))
    else:
        render_ingest_report(report, console)


@app.command()
def deadletters(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Option(help="Only places containing this (a file name).")] = None,
    reason: Annotated[str | None, typer.Option(help="Only reasons containing this (case-blind).")] = None,
    stage: Annotated[str | None, typer.Option(help="Only this stage's (ingest, curate, probe, ...).")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per dead letter, raw record included.")
    ] = False,
    limit: Annotated[int, typer.Option(min=0, help="Dead letters listed after the counts.")] = 50,
) -> None:
    """List the run's dead letters (what a stage could not process) with their reasons."""
    import json

    from streams.deadletters import load_dead_letters, render_dead_letters, select

    settings = _settings(ctx)
    _require_broker(settings)
    rows = select(asyncio.run(load_dead_letters(settings)), source=source, reason=reason, stage=stage)
    if as_json:
        for row in rows:
            print(json.dumps(row.to_json(), ensure_ascii=False))
    else:
        render_dead_letters(rows, console, limit=limit)


@app.command()
def store(
    ctx: typer.Context,
    until_idle: Annotated[bool, typer.Option(help="Stop once caught up instead of running forever.")] = False,
) -> None:
    """Run the live sample-store materialiser (LanceDB) over the run's topics."""
    from streams.store import SampleStore, materialise

    settings = _settings(ctx)
    _require_broker(settings)
    folder = settings.store.folder(settings.run_id)
    applied = asyncio.run(materialise(settings, SampleStore(folder), stop_when_idle=until_idle))
    console.print(f"applied {applied} events to {folder}")


@app.command()
def rebuild(
    ctx: typer.Context,
    path: Annotated[
        Path | None, typer.Option(help="Store path (default: the run's folder under the configured one).")
    ] = None,
) -> None:
    """Drop the sample store and rebuild it by replaying every topic of the run from offset 0."""
    from streams.store import SampleStore
    from streams.store import rebuild as rebuild_store

    settings = _settings(ctx)
    _require_broker(settings)
    target = path or settings.store.folder(settings.run_id)
    stats = asyncio.run(rebuild_store(settings, target))
    console.print(
        f"rebuilt {target} from {stats.records} records ({stats.undecodable} undecodable skipped): "
        f"{SampleStore(target).counts()}"
    )


@app.command()
def seed(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option(help="Also write the seeds as paper-format JSONL here.")] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Write the world's true labels here (never sent to the topics).")
    ] = None,
    heldout_out: Annotated[Path | None, typer.Option(help="Write the clean held-out set here.")] = None,
    publish: Annotated[bool, typer.Option(help="Send SampleAdded events to the run's topics.")] = True,
    offline: Annotated[
        bool, typer.Option("--offline", help="Use the synthetic world even when [generator] is configured.")
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

    settings = _settings(ctx)
    world_settings = settings.world
    if world_settings is None:
        from looptool.config import WorldSettings

        world_settings = WorldSettings()
    use_llm = settings.generator is not None and not offline
    if use_llm and truth is not None:
        raise typer.BadParameter("seeds made by an LLM have no independent truth", param_hint="--truth")
    if use_llm:
        console.print(
            "[dim]LLM roles from [generator] (checks by [judge]); noise_rate applies to the world only[/]"
        )

    async def main() -> Any:
        if use_llm:
            from streams.worker import endpoint_backend
            from world.llm_roles import build_llm_seed_set, llm_seed_events

            generator = endpoint_backend(settings, "generator")
            judge = endpoint_backend(settings, "judge") if settings.judge is not None else generator
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
            _require_broker(settings)
            from looptool.kafka import EventProducer, ensure_topics

            await ensure_topics(settings.kafka, settings.run_id)
            async with EventProducer(settings.kafka) as producer:
                await producer.send_all(events)
        return seed_set

    from world.llm_roles import SeedConstructionError

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


@app.command()
def demo(
    ctx: typer.Context,
    workdir: Annotated[
        Path, typer.Option(help="Where the run writes its config, model, logs and report.")
    ] = Path("data/demo"),
    quick: Annotated[
        bool, typer.Option(help="A shortened run (small world, 2 rounds): minutes, for tests.")
    ] = False,
    seed: Annotated[int, typer.Option(help="World and model seed.")] = 0,
) -> None:
    """The whole loop on the embedded broker: seed the world, train, probe, judge, expand, curate, report."""
    from looptool.demo import SCALES, run_demo

    settings = _settings(ctx)
    scale = SCALES["quick" if quick else "full"]
    with broker_for(settings) as live:
        report = asyncio.run(run_demo(live, workdir, console, scale=scale, seed=seed))
    if not report.replay_matches:
        raise typer.Exit(1)


@app.command()
def worker(
    ctx: typer.Context,
    stages: Annotated[
        str, typer.Option(help="Comma-separated subset of probe,judge,relabel,expand,verify,curate,evaluate.")
    ] = "probe,judge,relabel,expand,verify,curate",
) -> None:
    """Run stream stages (each its own consumer group) until SIGTERM/Ctrl-C."""
    from streams.worker import STAGE_NAMES, run_worker

    settings = _settings(ctx)
    _require_broker(settings)
    names = [name.strip() for name in stages.split(",") if name.strip()]
    unknown = sorted(set(names) - set(STAGE_NAMES))
    if unknown:
        raise typer.BadParameter(f"unknown stages {unknown}; known: {', '.join(STAGE_NAMES)}")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, names, stop)

    asyncio.run(main())


@app.command()
def train(
    ctx: typer.Context,
    until_idle: Annotated[bool, typer.Option(help="Exit once every closed round is trained.")] = False,
) -> None:
    """Run the trainer: train each closed round (CPU GRPO or verl) and publish its checkpoints."""
    from trainer.service import run_trainer

    settings = _settings(ctx)
    _require_broker(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        published = await run_trainer(settings, settings.trainer, stop, until_idle=until_idle)
        console.print(f"published {len(published)} checkpoint(s)")

    asyncio.run(main())


@app.command()
def curate(
    ctx: typer.Context,
    initial: Annotated[
        bool, typer.Option("--initial", help="Open round 1 (D_1) from the seed pool.")
    ] = False,
) -> None:
    """Open round 1 from the seeds now in the pool (later rounds are closed by the curate stage)."""
    from streams.curate import open_first_round, refusals
    from streams.worker import curation_policy

    settings = _settings(ctx)
    _require_broker(settings)
    if not initial:
        raise typer.BadParameter("later rounds are built by `looptool worker --stages curate`; use --initial")
    try:
        events = asyncio.run(open_first_round(settings, curation_policy(settings)))
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


@app.command("eval")
def eval_command(
    ctx: typer.Context,
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help="A checkpoint id published in this run, or a model folder.")
    ],
    categories: Annotated[
        str | None,
        typer.Option(help="Comma-separated BFCL v4 categories or groups (non_live, live, ast, relevance)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="First N items of each category.")] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Per-item results file, .jsonl or .parquet (default: under eval.results_dir)."),
    ] = None,
    max_new_tokens: Annotated[int | None, typer.Option(min=1, help="Decode budget per item.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Prompts per backend call.")] = None,
) -> None:
    """Evaluate a policy on BFCL v4's single-turn categories with bfcl-eval's own data and AST checker."""
    from evaluation.command import CheckpointNotFoundError, run_eval_command
    from evaluation.suite import SuiteError

    settings = _settings(ctx)
    try:
        asyncio.run(
            run_eval_command(
                settings,
                checkpoint,
                categories=categories,
                limit=limit,
                output=output,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                console=console,
            )
        )
    except (CheckpointNotFoundError, SuiteError, ValueError) as error:
        raise typer.BadParameter(str(error)) from error


@app.command()
def replay(
    ctx: typer.Context,
    round_: Annotated[
        int | None,
        typer.Option("--round", min=1, help="Rebuild as of the close of round J (D_J and the store then)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="Rebuild as of a checkpoint's publication (its id) or a time (ISO 8601; UTC if no zone)."
        ),
    ] = None,
    store_path: Annotated[
        Path | None,
        typer.Option(
            "--store", help="Folder for the rebuilt store (default: beside the store, replay/<run>/<cut>)."
        ),
    ] = None,
    check_curation: Annotated[
        bool, typer.Option(help="Also curate D_J again with the configured policy and compare with the log.")
    ] = True,
) -> None:
    """Rebuild D_J and the sample store as of a round, a checkpoint or a time, from the topics alone."""
    from streams.replay import ReplayError, run_replay

    settings = _settings(ctx)
    _require_broker(settings)
    try:
        result = run_replay(
            settings,
            round_=round_,
            until=until,
            store_path=store_path,
            console=console,
            check_curation=check_curation,
        )
    except ReplayError as error:
        raise typer.BadParameter(str(error)) from None
    failed_manifest = result.dataset is not None and not result.dataset.verified
    if failed_manifest or (result.recompute is not None and not result.recompute.matches):
        raise typer.Exit(1)


@app.command()
def export(
    ctx: typer.Context,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="jsonl, parquet, hf (a datasets.Dataset folder) or verl (trainer parquet)."
        ),
    ] = "jsonl",
    round_: Annotated[
        int | None,
        typer.Option("--round", min=1, help="D_J of this round (default: the latest closed round)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="The dataset current at a checkpoint (its id) or a time (ISO 8601).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output file (folder for hf); default: beside the store, exports/<run>/."),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Export even if D_J does not match its RoundClosed manifest.")
    ] = False,
) -> None:
    """Write D_J with the labels it was curated with, rebuilt from the topics (byte-identical every time)."""
    from streams.export import ExportError, run_export
    from streams.replay import ReplayError

    settings = _settings(ctx)
    _require_broker(settings)
    try:
        run_export(settings, round_=round_, until=until, fmt=fmt, out=out, console=console, force=force)
    except (ReplayError, ExportError) as error:
        raise typer.BadParameter(str(error)) from None


@app.command()
def stats(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option(help="Keep the tables live while the pipeline runs (Ctrl-C stops).")
    ] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write PNG charts (one per chart and overview.png) into this folder.")
    ] = None,
    store_path: Annotated[
        Path | None, typer.Option("--store", help="Read this sample store instead of replaying the topics.")
    ] = None,
) -> None:
    """Verdict analytics per round and checkpoint: verdict mix, relabels, expansion, accuracy, curation."""
    from streams.analytics import run_stats

    settings = _settings(ctx)
    if store_path is None or follow:
        _require_broker(settings)
    try:
        run_stats(settings, follow=follow, plot=plot, console=console, store_path=store_path)
    except (FileNotFoundError, ValueError) as error:
        raise typer.BadParameter(str(error)) from None


@app.command()
def lineage(
    ctx: typer.Context,
    sample_id: Annotated[str, typer.Argument(help="The sample's id (s_…).")],
    store_path: Annotated[
        Path | None, typer.Option("--store", help="Read this sample store instead of replaying the topics.")
    ] = None,
) -> None:
    """A sample's whole history: origin (up to its seed), labels, rounds, probes, verdicts, expansions."""
    from streams.lineage import LineageError, run_lineage

    settings = _settings(ctx)
    if store_path is None:
        _require_broker(settings)
    try:
        run_lineage(settings, sample_id, console=console, store_path=store_path)
    except (LineageError, FileNotFoundError) as error:
        raise typer.BadParameter(str(error)) from None


@app.command("revert-relabel")
def revert_relabel_command(
    ctx: typer.Context,
    event_id: Annotated[
        str, typer.Argument(help="The LabelCorrected event to undo (see `looptool lineage`).")
    ],
    note: Annotated[str, typer.Option("--note", help="Why it is reverted (kept in the event for audit).")],
    dry_run: Annotated[bool, typer.Option(help="Show what would be sent; send nothing.")] = False,
) -> None:
    """Undo a label correction: publish a LabelCorrected that restores the replaced label."""
    from streams.revert import RevertError, revert_relabel
    from toolcall.parsing import render_action

    settings = _settings(ctx)
    _require_broker(settings)
    try:
        plan = asyncio.run(revert_relabel(settings, event_id, note, dry_run=dry_run))
    except RevertError as error:
        raise typer.BadParameter(str(error)) from None
    p = plan.event.payload
    if plan.existing is not None:
        console.print(f"already reverted by {plan.existing.event_id}; nothing sent")
    else:
        verb = "would send" if dry_run else "sent"
        console.print(
            f"{verb} {plan.event.event_id}: sample {p.sample_id} label back to {render_action(p.new_label)!r}"
        )


@schemas_app.command("freeze")
def schemas_freeze() -> None:
    """Append a new frozen version for every event schema whose source changed."""
    from schemas.registry import freeze

    changed = freeze()
    console.print(f"froze new versions of: {', '.join(changed)}" if changed else "no schema changed")


@schemas_app.command("list")
def schemas_list() -> None:
    """List every event type with its versions and fingerprints."""
    from schemas.registry import default_registry

    registry = default_registry()
    table = Table("event type", "version", "fingerprint (CRC-64-AVRO)")
    for event_type in registry.event_types():
        for schema in registry.versions(event_type):
            table.add_row(event_type, str(schema.version), schema.fingerprint.hex())
    console.print(table)


if __name__ == "__main__":
    app()
