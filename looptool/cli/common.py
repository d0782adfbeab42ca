"""What every command shares: the console, the settings the callback loaded, the broker to talk to."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import TypeVar

import typer
from rich.console import Console

from looptool.config import Settings

PIPED_WIDTH = 160
# Written to a file or a pipe, rich would squeeze every table into 80 columns: give them room (COLUMNS,
# when set, still wins).
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH)
T = TypeVar("T")


class BrokerUnreachable(RuntimeError):
    """No Kafka broker answered at the configured address in time."""


def settings_of(ctx: typer.Context) -> Settings:
    """The settings (config file, environment, options), loaded on the first call of a command."""
    obj = ctx.obj
    if "settings" not in obj:
        obj["settings"] = obj["load_settings"]()
    return obj["settings"]  # type: ignore[no-any-return]


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
    """Refuse to go on without a configured broker that answers within ``kafka.connect_timeout_s``."""
    if not settings.kafka.bootstrap_servers:
        raise typer.BadParameter(
            "no Kafka configured: set kafka.bootstrap_servers (config, LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS "
            "or --bootstrap-servers); `looptool broker` starts a local one"
        )
    asyncio.run(check_reachable(settings))


async def check_reachable(settings: Settings) -> None:
    """Ask the broker for its metadata until it answers or the connect timeout passes."""
    import logging
    import time

    from aiokafka.client import AIOKafkaClient

    from bus.kafka import client_options

    kafka = settings.kafka
    deadline = time.monotonic() + kafka.connect_timeout_s
    quiet = logging.getLogger("aiokafka")  # each refused connection would be logged
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    reason = "no answer"
    try:
        while True:
            options = client_options(kafka) | {"request_timeout_ms": int(kafka.connect_timeout_s * 1000)}
            client = AIOKafkaClient(**options)
            try:
                await asyncio.wait_for(client.bootstrap(), max(0.1, deadline - time.monotonic()))
                return
            except Exception as error:  # anything short of an answer: try again until the deadline
                reason = str(error) or type(error).__name__
            finally:
                await client.close()
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.25)
    finally:
        quiet.setLevel(level)
    raise BrokerUnreachable(
        f"cannot reach the Kafka broker at {kafka.bootstrap_servers} (tried for "
        f"{kafka.connect_timeout_s:g} s; last: {reason}); is it running? `looptool broker` starts a local one"
    )


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """For the block, SIGTERM raises KeyboardInterrupt as Ctrl-C does, so a rebuild or replay stopped
    by ``kill`` or a supervisor runs its cleanup (the build folder beside the store) instead of dying
    at once (Python's default for SIGTERM). A no-op outside the main thread, where no handler can be
    set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``main(stop)`` on a new event loop; SIGTERM and Ctrl-C set ``stop``."""

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    return asyncio.run(runner())
