"""One process at a time: an ``flock`` on a file, holding the holder's pid for the message.

The OS releases the lock when its holder exits, however it exits (SIGKILL included), so a crash
never leaves a stale lock. Used by the sample store (one writer per folder), the broker's archive
(one broker per archive) and the trainer (one trainer per run).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class LockHeld(RuntimeError):
    """Another process holds the lock; ``holder`` is its pid as it wrote it ("?" if unknown)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by pid {holder}")
        self.path, self.holder = path, holder


def take_lock(path: Path) -> int:
    """Lock ``path`` (created if missing) for this process and write its pid there; returns the
    descriptor that holds it (closing it releases the lock). :class:`LockHeld` if another holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise LockHeld(path, holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


@contextlib.contextmanager
def holding(fd: int) -> Iterator[None]:
    """Release the lock ``fd`` (from :func:`take_lock`) when the block ends."""
    try:
        yield
    finally:
        os.close(fd)
