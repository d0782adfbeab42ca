"""Commands for the broker and the run's topics: ``broker``, ``topics``."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Annotated

import typer
from rich.table import Table

from looptool.cli.common import console, require_broker, settings_of

commands = typer.Typer()


@commands.command()
def broker(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = any free port).")] = 9092,
) -> None:
    """Run the embedded Kafka broker (Tansu, memory only) in the foreground until Ctrl-C."""
    from bus.broker import EmbeddedBroker

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
