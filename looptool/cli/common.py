"""What every command shares: the console, the settings the callback loaded, the broker to talk to."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import typer
from rich.console import Console

from looptool.config import Settings

console = Console()
T = TypeVar("T")


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root callback loaded (config file, environment, options)."""
    return ctx.obj["settings"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def broker_for(settings: Settings) -> Iterator[Settings]:
    """Yield settings pointing at a broker: the configured one, or an embedded one started now."""
    if settings.kafka.bootstrap_servers:
        yield settings
        return
    from bus.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        console.print(f"[dim]embedded broker (Tansu) at {broker.bootstrap_servers}[/]")
        kafka = settings.kafka.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
        yield settings.model_copy(update={"kafka": kafka})


def require_broker(settings: Settings) -> None:
    if not settings.kafka.bootstrap_servers:
        raise typer.BadParameter(
            "no Kafka configured: set kafka.bootstrap_servers (config, LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS "
            "or --bootstrap-servers); `looptool broker` starts a local one"
        )


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``main(stop)`` on a new event loop; SIGTERM and Ctrl-C set ``stop``."""

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    return asyncio.run(runner())
