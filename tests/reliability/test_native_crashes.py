"""A `looptool` process that dies in native code says where: every thread's Python stack on stderr,
and the supervisor that ran it shows that report, not just the last lines of the log."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from looptool.supervisor import Service

# A command added to the real CLI that crashes the way a native library does (a NULL read), while
# other threads wait (as the trainer's event loop, Kafka client and progress threads do).
CRASHING_COMMAND = textwrap.dedent(
    """
    import ctypes
    import threading

    from looptool.cli import app

    def waiting_thread(depth: int, started: threading.Barrier) -> None:
        if depth:
            return waiting_thread(depth - 1, started)
        started.wait()
        threading.Event().wait()

    @app.command("crash-in-native-code")
    def crash_in_native_code() -> None:
        started = threading.Barrier(9)
        for _ in range(8):
            threading.Thread(target=waiting_thread, args=(6, started), daemon=True).start()
        started.wait()
        print("log line before the crash", flush=True)
        ctypes.string_at(0)

    app(["crash-in-native-code"])
    """
)


def test_a_segfault_under_the_cli_prints_the_python_stack_of_the_crash() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_COMMAND], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -signal.SIGSEGV, done.stderr
    assert "Fatal Python error: Segmentation fault" in done.stderr
    assert "in crash_in_native_code" in done.stderr  # the frame that crashed, named
    assert done.stderr.count("in waiting_thread") >= 8 * 7  # and every other thread's stack


def test_the_supervisor_shows_the_whole_crash_report_of_a_service(tmp_path: Path) -> None:
    service = Service("crasher", [], tmp_path / "unused.toml", tmp_path / "logs" / "crasher.log")
    service.command = [sys.executable, "-c", CRASHING_COMMAND]
    service.start()
    assert service.process is not None
    service.process.wait(timeout=120)
    with pytest.raises(RuntimeError) as raised:
        service.check()
    message = str(raised.value)
    assert message.startswith(f"the crasher service exited with {-signal.SIGSEGV} (SIGSEGV):")
    assert "log line before the crash" in message
    assert "Fatal Python error: Segmentation fault" in message
    assert "in crash_in_native_code" in message
    assert len(service.log_path.read_text().splitlines()) > 25 + 50  # more than a plain tail shows


def test_a_log_without_a_crash_report_shows_its_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "quiet.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    service = Service("quiet", [], tmp_path / "unused.toml", log)
    assert service.tail().splitlines() == [f"line {i}" for i in range(75, 100)]


@pytest.mark.parametrize("stderr", ["None", "io.StringIO()"])
def test_a_command_runs_where_stderr_has_no_file_to_report_to(stderr: str) -> None:
    # A daemon with stderr closed, or a test runner's capture: the report is skipped, the command runs.
    code = textwrap.dedent(
        f"""
        import io
        import sys

        sys.stderr = {stderr}
        from looptool.cli import app

        @app.command("hello")
        def hello() -> None:
            print("ran")

        app(["hello"])
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ran"
