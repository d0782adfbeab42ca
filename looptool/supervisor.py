"""``looptool`` commands as child processes: what the demo, the fault tests and the benchmarks run.

:class:`Service` runs one command (a worker, the trainer, the curator) with its log in a file, and
:class:`BrokerProcess` runs ``looptool broker`` on a fixed port and archive so that it can be crashed
(SIGKILL) and started again. Every child dies with its parent (Linux ``PR_SET_PDEATHSIG``), so an
interrupted demo or test leaves no process behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bus.broker import free_port

_PR_SET_PDEATHSIG = 1
# How faulthandler's report of a crash in native code begins, and how much of a log a report may show.
_CRASH_REPORT = "Fatal Python error: "
CRASH_REPORT_LINES = 300


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def exit_status(code: int) -> str:
    """A child's exit code as a reader wants it: ``-11 (SIGSEGV)`` for a death by signal."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"{code} ({signal.Signals(-code).name})"
    return str(code)


class Service:
    """One ``looptool`` command as a child process, with its log in a file."""

    def __init__(self, name: str, args: list[str], config: Path, log_path: Path):
        self.name = name
        self.log_path = log_path
        self.command = [
            sys.executable,
            "-m",
            "looptool.cli",
            "--config",
            str(config),
            "--log-format",
            "json",
            *args,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.log_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            self.command, stdout=handle, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent
        )
        handle.close()

    def check(self) -> None:
        """Raise with the tail of its log if the service died (from its crash report, if it has one)."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"the {self.name} service exited with {exit_status(self.process.returncode)}:\n{self.tail()}"
            )

    def tail(self, lines: int = 25) -> str:
        """The log's last ``lines`` lines; where the process crashed in native code, its whole crash
        report instead (every thread's stack, :func:`common.runtime.report_native_crashes`), and the
        lines before it, up to ``CRASH_REPORT_LINES``."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        crash = next((i for i in range(len(text) - 1, -1, -1) if text[i].startswith(_CRASH_REPORT)), None)
        if crash is not None and len(text) - crash > lines:
            start = max(0, crash - 5, len(text) - CRASH_REPORT_LINES)
            return "\n".join(text[start:])
        return "\n".join(text[-lines:])

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def rss_bytes(self) -> int:
        return tree_rss(self.process.pid) if self.process and self.process.poll() is None else 0


def tree_rss(pid: int) -> int:
    """Resident memory of a process and its descendants (Linux /proc)."""
    total = 0
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        stack.extend(children.get(current, []))
    return total


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
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout_s
        while "broker ready" not in self.output():
            if self.process.poll() is not None:
                status = exit_status(self.process.returncode)
                raise RuntimeError(f"the broker exited with {status}:\n{self.output()}")
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
