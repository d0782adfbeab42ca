"""Commands for the broker and the run's topics: ``broker``, ``topics``."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from looptool.cli.common import console, require_broker, settings_of

commands = typer.Typer()


@commands.command()
def broker(
    port: Annotated[
        int, typer.Option(help="Port on 127.0.0.1 (0 = any free port).", min=0, max=65535)
    ] = 9092,
    archive: Annotated[
        Path,
        typer.Option(
            help="Folder the broker archives every topic to, and restores from when it starts again.",
            file_okay=False,
        ),
    ] = Path("data/broker"),
    memory_only: Annotated[
        bool, typer.Option("--memory-only", help="No archive: a restart loses every topic (tests, demos).")
    ] = False,
) -> None:
    """Run the embedded Kafka broker (Tansu) in the foreground until Ctrl-C.

    Every topic is archived to disk as it is written (within about 0.1 s) and restored when the broker
    starts again, so a crash loses at most the last moments; producers wait for the archive before they
    report success, and every client of the old broker stops, saying so, when it restarts."""
    if memory_only:
        _memory_only_broker(port)
        return
    from bus.durable import DurableBroker

    durable = DurableBroker(archive, port=port or None)

    def ready(served: DurableBroker) -> None:
        restored = served.restored
        what = (
            f"restored {restored.records} events of {restored.topics} topics in {restored.seconds:.1f} s"
            if restored.topics
            else "empty"
        )
        console.print(
            f"broker ready: bootstrap servers [bold]{served.bootstrap_servers}[/] "
            f"(archive {archive}: {what}; Ctrl-C stops it)"
        )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await durable.serve(stop, ready)

    asyncio.run(main())
    if durable.archiver is not None:
        lag = durable.archiver.lag.summary()
        console.print(
            f"broker stopped: {durable.archive.records()} events archived in {archive}; archive lag "
            f"p50 {lag['p50_ms']} ms, p99 {lag['p99_ms']} ms, max {lag['max_ms']} ms"
        )


def _memory_only_broker(port: int) -> None:
    from bus.broker import EmbeddedBroker

    embedded = EmbeddedBroker(port=port or None)
    embedded.start()
    console.print(
        f"broker ready: bootstrap servers [bold]{embedded.bootstrap_servers}[/] "
        "(memory only; Ctrl-C stops it)"
    )
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop["now"] and embedded.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop["now"] = True
    finally:
        died = not embedded.running
        output = embedded.output_tail() if died else ""
        embedded.stop()
    if died and not stop["now"]:
        console.print(f"[red]the broker exited on its own[/]; its output:\n{output}")
        raise typer.Exit(1)


@commands.command()
def topics(ctx: typer.Context) -> None:
    """Create the run's topics if missing and list them."""
    from bus.kafka import ensure_topics
    from bus.topics import TOPICS, partitions_for, topic_name
    from looptool.cli.setup import preflight_or_exit
    from looptool.preflight import broker_checks

    settings = settings_of(ctx)
    require_broker(settings)
    preflight_or_exit("topics", broker_checks(settings))  # waits for a broker started a moment ago
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
