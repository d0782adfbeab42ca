"""Commands that read a run back from its topics: ``store``, ``rebuild``, ``replay``, ``export``,
``stats``, ``lineage``, and ``revert-relabel`` (an audited undo of a label correction)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Literal

import typer

from looptool.cli.common import console, require_broker, settings_of

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
    with store_lock(settings.store.path):
        store_ = SampleStore(settings.store.path)
        applied = asyncio.run(materialise(settings, store_, stop_when_idle=until_idle))
    console.print(f"applied {applied} events to {settings.store.path}")


@commands.command()
def rebuild(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Option(help="Store path (default: the configured one).")] = None,
    allow_empty: Annotated[
        bool, typer.Option(help="Replace the store even if the run has no events on the broker.")
    ] = False,
) -> None:
    """Rebuild the sample store by replaying every topic of the run from offset 0.

    The new store is built beside the old one and replaces it only once the replay succeeded."""
    from views.store import SampleStore
    from views.store import rebuild as rebuild_store

    settings = settings_of(ctx)
    require_broker(settings)
    target = path or settings.store.path
    try:
        stats = asyncio.run(rebuild_store(settings, target, allow_empty=allow_empty))
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
        Literal["jsonl", "parquet", "hf", "verl"],
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
        bool,
        typer.Option(
            help="Export even if D_J does not match its RoundClosed manifest, and replace an --out folder "
            "that no export wrote."
        ),
    ] = False,
) -> None:
    """Write D_J with the labels it was curated with, rebuilt from the topics (byte-identical every time)."""
    from views.export import ExportError, run_export
    from views.replay import ReplayError

    settings = settings_of(ctx)
    require_broker(settings)
    try:
        run_export(settings, round_=round_, until=until, fmt=fmt, out=out, console=console, force=force)
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
) -> None:
    """Verdict analytics per round and checkpoint: verdict mix, relabels, expansion, accuracy, curation."""
    from views.analytics import run_stats

    settings = settings_of(ctx)
    if store_path is None or follow:
        require_broker(settings)
    try:
        run_stats(settings, follow=follow, plot=plot, console=console, store_path=store_path)
    except (FileNotFoundError, ValueError) as error:
        raise typer.BadParameter(str(error)) from None


@commands.command()
def lineage(
    ctx: typer.Context,
    sample_id: Annotated[str, typer.Argument(help="The sample's id (s_…).")],
    store_path: Annotated[
        Path | None, typer.Option("--store", help="Read this sample store instead of replaying the topics.")
    ] = None,
) -> None:
    """A sample's whole history: origin (up to its seed), labels, rounds, probes, verdicts, expansions."""
    from views.lineage import LineageError, run_lineage

    settings = settings_of(ctx)
    if store_path is None:
        require_broker(settings)
    try:
        run_lineage(settings, sample_id, console=console, store_path=store_path)
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
