"""``looptool broker`` as a child process with its archive, to crash it (SIGKILL) and start it again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bus.broker import _die_with_parent, free_port


class BrokerProcess:
    """One archived broker on a fixed port; every :meth:`start` is a new process on the same archive."""

    def __init__(self, archive: Path, logs: Path, port: int | None = None, *, memory_only: bool = False):
        self.archive = archive
        self.logs = logs
        self.port = port or free_port()
        self.memory_only = memory_only
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.logs / f"broker-{self.starts}.log"

    def start(self, timeout_s: float = 120.0) -> str:
        """Start it and wait for "broker ready" (the archive restored); returns the bootstrap servers."""
        self.starts += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "looptool.cli",
            "--log-format",
            "json",
            "broker",
            "--port",
            str(self.port),
        ]
        command += ["--memory-only"] if self.memory_only else ["--archive", str(self.archive)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400"},
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout_s
        while "broker ready" not in self.output():
            if self.process.poll() is not None:
                raise RuntimeError(f"the broker exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the broker was not ready after {timeout_s:.0f} s:\n{self.output()}")
            time.sleep(0.05)
        return self.bootstrap_servers

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the broker, its archiver and Tansu die at once, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM: the archiver catches up, then the broker stops."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
