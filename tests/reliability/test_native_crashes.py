"""A `looptool` process that dies in native code says where: every thread's Python stack on stderr."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap


def test_a_segfault_under_the_cli_prints_the_python_stack_of_the_crash() -> None:
    # A command added to the real CLI that crashes the way a native library does (a NULL read).
    code = textwrap.dedent(
        """
        import ctypes

        from looptool.cli import app

        @app.command("crash-in-native-code")
        def crash_in_native_code() -> None:
            ctypes.string_at(0)

        app(["crash-in-native-code"])
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGSEGV, done.stderr
    assert "Fatal Python error: Segmentation fault" in done.stderr
    assert "in crash_in_native_code" in done.stderr  # the frame that crashed, named
