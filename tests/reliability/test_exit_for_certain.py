"""A command exits with its code even when a library left a thread running (bus restart, faust)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

EXIT_WITH_A_THREAD_LEFT = textwrap.dedent(
    """
    import threading, time
    import looptool.cli as cli

    cli.EXIT_GRACE_S = 1.0
    # What faust's consumer thread did after its broker restarted: never ends, and is no daemon.
    threading.Thread(target=lambda: time.sleep(3600), name="consumer-thread", daemon=False).start()
    cli._fail(75, "the Kafka broker restarted", RuntimeError("restarted"))
    """
)


def test_a_failed_command_exits_with_its_code_though_a_library_thread_lingers() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", EXIT_WITH_A_THREAD_LEFT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 75, done.stderr
    assert "looptool: error: the Kafka broker restarted" in done.stderr
    assert time.monotonic() - started < 60  # not the thread's hour


def test_a_clean_exit_is_not_held_by_the_watchdog() -> None:
    script = "import looptool.cli as cli\ncli.EXIT_GRACE_S = 30.0\ncli.exit_within_grace(0)\n"  # the default
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 25  # a daemon watchdog never delays a clean exit
