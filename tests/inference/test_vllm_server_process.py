"""VLLMServerProcess lifecycle (readiness, failure, process-group cleanup) with a stand-in server.

The stand-in is a small Python HTTP server that answers ``/v1/models`` like vLLM and, like vLLM's
API server, has a child process of its own (vLLM's engine core); the real server is exercised by
the ``vllm_server`` fixture in test_openai_vllm_server.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from inference.vllm_backend import VLLMServerError, VLLMServerProcess

STAND_IN = textwrap.dedent(
    """
    import http.server, json, subprocess, sys, time
    port, name, delay, pid_file = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    open(pid_file, "w").write(str(child.pid))
    print("booting", flush=True)
    time.sleep(delay)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"object": "list", "data": [{"id": name, "object": "model"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


class StandInServer(VLLMServerProcess):
    def __init__(self, tmp_path: Path, *, delay_s: float = 0.5, crash: bool = False, **options: object):
        super().__init__(tmp_path, "stand-in", **options)  # type: ignore[arg-type]
        self.script = tmp_path / "stand_in.py"
        self.script.write_text(
            STAND_IN if not crash else "print('CUDA out of memory (pretend)'); raise SystemExit(3)"
        )
        self.child_pid_file = tmp_path / "child.pid"
        self.delay_s = delay_s

    def command(self) -> list[str]:
        return [
            sys.executable,
            str(self.script),
            str(self.port),
            self.served_model_name,
            str(self.delay_s),
            str(self.child_pid_file),
        ]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie awaiting its reaper no longer runs.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split(") ", 1)[1][0] != "Z"


def _wait_gone(*pids: int, timeout_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if _alive(pid)]


def test_start_waits_for_models_and_stop_ends_the_whole_tree(tmp_path: Path) -> None:
    server = StandInServer(tmp_path)
    served = server.start()
    try:
        assert served.model == "stand-in" and served.base_url.endswith("/v1")
        answer = httpx.get(f"{served.base_url}/models")
        assert answer.json()["data"][0]["id"] == "stand-in"
        assert server.startup_seconds is not None and server.startup_seconds >= 0.5
        supervisor, server_pid = server.pid, server.server_pid
        assert supervisor is not None and server_pid is not None
        child = int(server.child_pid_file.read_text())
        assert os.getpgid(server_pid) == server_pid  # the server leads its own group
        assert os.getpgid(child) == server_pid  # and its engine-core stand-in is in it
    finally:
        server.stop()
    assert _wait_gone(supervisor, server_pid, child) == []
    server.stop()  # idempotent


def test_a_server_that_exits_during_startup_raises_with_its_output(tmp_path: Path) -> None:
    server = StandInServer(tmp_path, crash=True)
    with pytest.raises(VLLMServerError, match="exited with 3") as caught:
        server.start()
    assert "CUDA out of memory (pretend)" in str(caught.value)
    assert not server.running


def test_a_server_that_never_gets_ready_times_out_and_is_ended(tmp_path: Path) -> None:
    server = StandInServer(tmp_path, delay_s=60, startup_timeout_s=1.5)
    with pytest.raises(VLLMServerError, match="not ready after 2s"):
        server.start()
    assert _wait_gone(int(server.child_pid_file.read_text())) == []


def test_the_whole_tree_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    # A parent that starts the server and is then SIGKILLed, as a crashed pytest would be.
    parent_code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_vllm_server_process import StandInServer
        from pathlib import Path
        server = StandInServer(Path({str(tmp_path)!r}))
        server.start()
        print("PIDS", server.pid, server.server_pid, flush=True)
        time.sleep(3600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        line = ""
        while not line.startswith("PIDS"):
            line = parent.stdout.readline()
            assert line, "the parent exited before starting the server"
        supervisor, server_pid = (int(pid) for pid in line.split()[1:])
        child = int((tmp_path / "child.pid").read_text())
        assert _alive(supervisor) and _alive(server_pid) and _alive(child)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    left = _wait_gone(supervisor, server_pid, child)
    for pid in left:  # never leave them behind, even when the assertion fails
        os.kill(pid, signal.SIGKILL)
    assert left == []
