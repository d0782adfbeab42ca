"""Commands that read a run back from its topics: ``store``, ``rebuild``, ``replay``, ``export``,
``stats``, ``lineage``, and ``revert-relabel`` (an audited undo of a label correction)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console

from looptool.cli.common import (
    console,
    require_broker,
    run_until_signalled,
    settings_of,
    sigterm_as_interrupt,
)
from looptool.config import Settings

if TYPE_CHECKING:
    from views.analytics.frames import StatsView

commands = typer.Typer()


@commands.command()
def store(
    ctx: typer.Context,
    until_idle: Annotated[bool, typer.Option(help="Stop once caught up instead of running forever.")] = False,
) -> None:
    """Run the live sample-store materialiser (LanceDB) over the run's topics."""
    from views.store import SampleStore, materialise, store_lock

    settings = settings_of(ctx)
    require_broker(settings)
    folder = settings.store.folder(settings.run_id)
    with store_lock(folder):
        applied = asyncio.run(materialise(settings, SampleStore(folder), stop_when_idle=until_idle))
    console.print(f"applied {applied} events to {folder}")


@commands.command()
def rebuild(
    ctx: typer.Context,
    path: Annotated[
        Path | None, typer.Option(help="Store path (default: the run's folder under the configured one).")
    ] = None,
    allow_empty: Annotated[
        bool, typer.Option(help="Replace the store even if the run has no events on the broker.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Processes that read and decode the topics, each a share of the partitions; 0: as many "
            "as the run's size and the cores pay for (default: store.rebuild_workers).",
        ),
    ] = None,
) -> None:
    """Rebuild the sample store by replaying every topic of the run from offset 0.

    The new store is built beside the old one and replaces it only once the replay succeeded."""
    from common.progress import counting_status
    from views.store import SampleStore
    from views.store import rebuild as rebuild_store

    settings = settings_of(ctx)
    require_broker(settings)
    target = path or settings.store.folder(settings.run_id)
    with (
        sigterm_as_interrupt(),
        counting_status(console, f"rebuilding {target} from run {settings.run_id}") as progress,
    ):
        try:
            stats = asyncio.run(
                rebuild_store(settings, target, allow_empty=allow_empty, workers=workers, on_batch=progress)
            )
        except ValueError as error:  # not a store's folder
            raise typer.BadParameter(str(error), param_hint="--path") from None
    console.print(
        f"rebuilt {target} from {stats.records} records ({stats.undecodable} undecodable skipped): "
        f"{SampleStore(target).counts()}"
    )


@commands.command()
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
    from views.replay import ReplayError, run_replay

    settings = settings_of(ctx)
    require_broker(settings)
    try:
        with sigterm_as_interrupt():  # a kill runs the cleanup of the build beside the store
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


@commands.command()
def export(
    ctx: typer.Context,
    fmt: Annotated[
        Literal["jsonl", "parquet", "hf", "openai", "verl"],
        typer.Option(
            "--format",
            help="jsonl, parquet, hf (a datasets.Dataset folder), openai (chat fine-tuning jsonl: "
            "messages with the label as the last assistant turn, and tools; for OpenAI, TRL, "
            "LLaMA-Factory) or verl (trainer parquet).",
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
        typer.Option(
            help="Output file (folder for hf), - for standard output; default: beside the store, "
            "exports/<run>/. A symlink is followed; a FIFO or device is written through."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="Export even if D_J does not match its RoundClosed manifest, and replace an --out folder "
            "that no export wrote."
        ),
    ] = False,
    arguments: Annotated[
        Literal["string", "object"],
        typer.Option(
            help="openai format: call arguments as JSON strings (OpenAI fine-tuning) or as objects "
            "(Hugging Face chat templates, TRL: they render arguments with tojson)."
        ),
    ] = "string",
) -> None:
    """Write D_J with the labels it was curated with, rebuilt from the topics (byte-identical every time)."""
    from views.export import ExportError, check_format, run_export
    from views.replay import ReplayError

    try:
        check_format(fmt, arguments)  # before anything is asked of the broker
    except ExportError as error:
        raise typer.BadParameter(str(error)) from None
    settings = settings_of(ctx)
    require_broker(settings)
    # With --out -, standard output carries the data alone: progress and the summary go to stderr.
    status_console = Console(stderr=True) if out == Path("-") else console
    try:
        run_export(
            settings,
            round_=round_,
            until=until,
            fmt=fmt,
            out=out,
            console=status_console,
            force=force,
            current_time=settings.loop.current_time,
            call_arguments=arguments,
            on_undecodable=lambda count: warn_undecodable(count, "what this export was rebuilt from"),
        )
    except (ReplayError, ExportError) as error:
        raise typer.BadParameter(str(error)) from None


@commands.command()
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
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="table (rich tables), json (one document: every table with its columns and rows), csv or "
            "parquet (a folder, one <table>.<format> file per table). With --follow: json writes one "
            "document per update (JSON lines); csv and parquet rewrite the folder's files.",
        ),
    ] = "table",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write: a file for table and json (default: standard output), a folder for csv "
            "and parquet (required)."
        ),
    ] = None,
    table: Annotated[
        list[str] | None,
        typer.Option(
            "--table",
            help="For json, csv and parquet: only this table (repeatable; default: the summary tables). "
            "Names: docs/analytics.md.",
        ),
    ] = None,
) -> None:
    """Verdict analytics per round and checkpoint: verdict mix, relabels, expansion, accuracy, curation."""
    settings = settings_of(ctx)
    if store_path is None or follow:
        require_broker(settings)
    try:
        run_stats(
            settings,
            follow=follow,
            plot=plot,
            console=console,
            store_path=store_path,
            fmt=fmt,
            out=out,
            tables=table,
        )
    except (FileNotFoundError, ValueError) as error:
        raise typer.BadParameter(str(error)) from None


def warn_empty_run(settings: Any) -> None:
    """A run with no events at all: most likely a mistyped run id (the tables would just be empty)."""
    Console(stderr=True).print(
        f"[yellow]run {settings.run_id!r} has no events on {settings.kafka.bootstrap_servers}[/]: "
        "a mistyped --run-id (or run_id in the config)?",
        soft_wrap=True,
    )


def warn_undecodable(count: int, left_out_of: str = "these tables") -> None:
    """Records left out of the tables: during an upgrade, a newer writer's events, so say how many."""
    Console(stderr=True).print(
        f"[yellow]{count} record(s) of the run could not be decoded and are left out of {left_out_of}[/]: "
        "written with a newer schema than this looptool knows (upgrade it), or not events at all "
        "(`looptool replay` counts them too)"
    )


async def run_has_events(settings: Any) -> bool:
    """Whether any topic of the run holds a record."""
    from bus.kafka import replay
    from bus.topics import RECORD_TOPICS

    # Closed here, not left to the garbage collector: leaving at the first batch once left the
    # reader's close to a task asyncio.run destroyed ("Task was destroyed but it is pending!").
    async with contextlib.aclosing(replay(settings.kafka, settings.run_id, RECORD_TOPICS)) as batches:
        async for batch in batches:
            if batch:
                return True
    return False


@commands.command()
def deadletters(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Option(help="Only places containing this (a file name, or a topic such as verdicts)."),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Only reasons containing this (case-blind).")] = None,
    stage: Annotated[str | None, typer.Option(help="Only this stage's (ingest, curate, probe, ...).")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per dead letter, raw record included.")
    ] = False,
    limit: Annotated[int, typer.Option(min=0, help="Dead letters listed after the counts.")] = 50,
) -> None:
    """List the run's dead letters (what a stage could not process) with their reasons."""
    import json

    from views.deadletters import load_dead_letters, render_dead_letters, select

    settings = settings_of(ctx)
    require_broker(settings)
    letters = asyncio.run(load_dead_letters(settings))
    if not letters and not asyncio.run(run_has_events(settings)):
        warn_empty_run(settings)
    rows = select(letters, source=source, reason=reason, stage=stage)
    if as_json:
        for row in rows:
            print(json.dumps(row.to_json(), ensure_ascii=False))
    else:
        filtered = any(value is not None for value in (source, reason, stage))
        render_dead_letters(rows, console, limit=limit, filtered=filtered)


@commands.command()
def lineage(
    ctx: typer.Context,
    sample_id: Annotated[str, typer.Argument(help="The sample's id (s_…).")],
    store_path: Annotated[
        Path | None, typer.Option("--store", help="Read this sample store instead of replaying the topics.")
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="One JSON object (one line): the whole history, the error seed's nested in parent."
        ),
    ] = False,
) -> None:
    """A sample's whole history: origin (up to its seed), labels, rounds, probes, verdicts, expansions."""
    from views.lineage import LineageError, run_lineage

    settings = settings_of(ctx)
    if store_path is None:
        require_broker(settings)
    try:
        run_lineage(
            settings,
            sample_id,
            console=console,
            store_path=store_path,
            as_json=as_json,
            on_undecodable=lambda count: warn_undecodable(count, "this history"),
        )
    except (LineageError, FileNotFoundError) as error:
        raise typer.BadParameter(str(error)) from None


@commands.command("revert-relabel")
def revert_relabel_command(
    ctx: typer.Context,
    event_id: Annotated[
        str, typer.Argument(help="The LabelCorrected event to undo (see `looptool lineage`).")
    ],
    note: Annotated[str, typer.Option("--note", help="Why it is reverted (kept in the event for audit).")],
    dry_run: Annotated[bool, typer.Option(help="Show what would be sent; send nothing.")] = False,
) -> None:
    """Undo a label correction: publish a LabelCorrected that restores the replaced label."""
    from looptool.revert import RevertError, revert_relabel
    from toolcall.parsing import render_action

    settings = settings_of(ctx)
    require_broker(settings)
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


@commands.command()
def redrive(
    ctx: typer.Context,
    source: Annotated[
        str | None, typer.Option(help="Only dead letters whose place contains this (e.g. verdicts).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Only reasons containing this (case-blind).")] = None,
    stage: Annotated[str | None, typer.Option(help="Only this stage's (probe, judge, ...).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would be sent; send nothing.")] = False,
) -> None:
    """Send dead-lettered events back to their topic once this release can read them (after an
    upgrade or a fix); the rest is listed with why it stays."""
    from collections import Counter

    from looptool.redrive import redrive as run_redrive
    from views.deadletters import dead_letter_events, row_of, select

    settings = settings_of(ctx)
    require_broker(settings)
    events = asyncio.run(dead_letter_events(settings))
    picked = {row.event_id for row in select(map(row_of, events), source=source, reason=reason, stage=stage)}
    items = asyncio.run(run_redrive(settings, [e for e in events if e.event_id in picked], dry_run=dry_run))
    sent = [item for item in items if item.sent]
    verb = "would send" if dry_run else "sent"
    for item in sent:
        assert item.event is not None
        console.print(f"{verb} {item.event.event_type} {item.event.event_id} to {item.topic}")
    for why, count in Counter(item.kept_because for item in items if not item.sent).most_common():
        console.print(f"kept {count}: {why}", markup=False)
    console.print(f"{len(items)} dead letters: {verb} {len(sent)}, kept {len(items) - len(sent)}")


STATS_FORMATS = ("table", "json", "csv", "parquet")


def run_stats(
    settings: Settings,
    *,
    follow: bool,
    plot: Path | None,
    console: Console,
    store_path: Path | None = None,
    fmt: str = "table",
    out: Path | None = None,
    tables: Sequence[str] | None = None,
) -> StatsView:
    """``looptool stats``: the tables from a replay of the topics (or from the store at ``store_path``);
    ``follow`` keeps them live until Ctrl-C; ``plot`` writes the PNG charts into that folder.

    ``fmt`` json, csv or parquet writes the tables of :mod:`views.analytics.tables` (``tables`` picks
    some by name) to ``out``: a file for json (default: the console's stream), a folder for csv and
    parquet (``<out>/<table>.<fmt>``); table with ``out`` writes the tables as plain text there."""
    from views.analytics import load_stats, plot_stats, render_stats, stats_from_topics, tables_text
    from views.analytics.live import follow_stats
    from views.analytics.tables import resolve_names

    if fmt not in STATS_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(STATS_FORMATS)}")
    if fmt in ("csv", "parquet") and out is None:
        raise ValueError(f"--format {fmt} writes one file per table: give --out FOLDER")
    if fmt in ("csv", "parquet") and out is not None and out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a folder for {fmt} (one file per table): {out} is a file")
    if fmt == "table" and tables:
        raise ValueError("--table picks tables of the json, csv and parquet output")
    if follow and store_path is not None:
        raise ValueError("--follow reads the topics; it cannot follow a store")
    names = resolve_names(tables) if fmt != "table" else []
    # Machine-readable output may go to standard output: keep progress off it.
    status_console = console if fmt == "table" else Console(stderr=True)
    run_id = settings.run_id if store_path is None else None

    def say_waiting() -> None:  # a follower started before the run waits for it, as the services do
        status_console.print(
            f"waiting for run {settings.run_id}: it has no topics on {settings.kafka.bootstrap_servers} "
            "yet (Ctrl-C stops)",
            soft_wrap=True,
        )

    if follow and fmt == "table":
        stats = run_until_signalled(
            lambda stop: follow_stats(settings, console, stop, on_waiting=say_waiting)
        )
        if out is not None:
            out.write_text(tables_text(stats), encoding="utf-8")
    elif follow:
        stats = run_until_signalled(
            lambda stop: _follow_as_data(
                settings, stop, fmt, out, names, console, status_console, on_waiting=say_waiting
            )
        )
    else:
        if store_path is not None:
            stats = load_stats(store_path)
            if stats.events == 0:
                # soft_wrap: a path split over lines cannot be copied
                Console(stderr=True).print(
                    f"[yellow]the store at {store_path} holds no events[/]", soft_wrap=True
                )
        else:
            with status_console.status(f"replaying run {settings.run_id} from the topics…"):
                stats = asyncio.run(stats_from_topics(settings))
            if stats.events == 0:
                warn_empty_run(settings)
            if stats.undecodable:
                warn_undecodable(stats.undecodable)
        if fmt == "table" and out is None:
            console.print(render_stats(stats))
        elif fmt == "table":
            assert out is not None
            out.write_text(tables_text(stats), encoding="utf-8")
        else:
            _write_stats_data(stats, fmt, out, names, run_id, console, status_console, lines=False)
    if follow and stats.events == 0:  # what it followed had no event: the run id may be mistyped
        warn_empty_run(settings)
    if plot is not None:
        paths = plot_stats(stats, plot, title=f"looptool run {settings.run_id}")
        status_console.print("wrote " + ", ".join(str(p) for p in paths))
    return stats


def _write_stats_data(
    stats: StatsView,
    fmt: str,
    out: Path | None,
    names: Sequence[str],
    run_id: str | None,
    console: Console,
    status_console: Console,
    *,
    lines: bool,
    stream: IO[str] | None = None,
) -> None:
    """One output of the tables: a JSON document (to ``stream``, ``out`` or the console's stream) or
    the folder of csv / parquet files."""
    from views.analytics.tables import stats_document, stats_tables, write_json, write_tables

    if fmt == "json":
        document = stats_document(stats, names, run_id=run_id)
        if stream is not None:
            write_json(document, stream, lines=lines)
        elif out is not None:
            with out.open("w", encoding="utf-8") as file:
                write_json(document, file, lines=lines)
            status_console.print(f"wrote {out}")
        else:
            write_json(document, console.file, lines=lines)
        return
    assert out is not None and fmt in ("csv", "parquet")
    paths = write_tables(stats_tables(stats, names), out, fmt)  # type: ignore[arg-type]
    if not lines:
        status_console.print(f"wrote into {out}: " + ", ".join(p.name for p in paths))


async def _follow_as_data(
    settings: Settings,
    stop: asyncio.Event,
    fmt: str,
    out: Path | None,
    names: Sequence[str],
    console: Console,
    status_console: Console,
    *,
    on_waiting: Callable[[], None] | None = None,
) -> StatsView:
    """``stats --follow`` for json (one document per update, JSON lines) and csv / parquet (the files
    rewritten in place, each replaced atomically). The summary tables come from running counts; a
    per-event table asked for (``votes``, ``verdicts``, ``relabels``) keeps every row."""
    from views.analytics.live import stats_updates
    from views.analytics.running import RunningStats
    from views.analytics.tables import BY_NAME

    per_event_rows = any(BY_NAME[name].detail for name in names)
    stats: StatsView = RunningStats().stats()
    with contextlib.ExitStack() as stack:
        stream: IO[str] | None = None
        if fmt == "json":
            stream = stack.enter_context(out.open("w", encoding="utf-8")) if out is not None else console.file
        else:
            status_console.print(f"following run {settings.run_id}: keeping {out} up to date (Ctrl-C stops)")
        updates = stats_updates(settings, stop=stop, per_event_rows=per_event_rows, on_waiting=on_waiting)
        async for stats in updates:
            _write_stats_data(
                stats, fmt, out, names, settings.run_id, console, status_console, lines=True, stream=stream
            )
    return stats
