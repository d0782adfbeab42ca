"""A one-line status that counts events as a long read goes (rebuild, replay)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console


@contextlib.contextmanager
def counting_status(console: Console, what: str) -> Iterator[Callable[[int], None]]:
    """Show ``what…`` while the block runs; the yielded callable adds to the events it shows."""
    with console.status(what + "…") as status:
        done = 0

        def count(events: int) -> None:
            nonlocal done
            done += events
            status.update(f"{what}: {done:,} events…")

        yield count
