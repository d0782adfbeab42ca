"""The command line as a careless user and an attacker meet it: one-line errors, no secret ever shown.

Every failure is one line on stderr (``looptool: error: …``) and the conventional exit code: 2 for
usage and configuration errors, 1 for failures (an unreachable broker within its connect timeout,
naming the address; a busy port), a traceback only with debug logging. A canary key set as every
secret of the config (judge and generator API keys, the SASL password) and as credentials in URLs
never appears in anything any command prints, with debug logs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bus.broker import free_port
from common.logs import LogSettings, configure_logging, get_logger
from tests.reliability.endpoint import Endpoint, serve

CANARY = "sk-canary-7f3a9Qx"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Ran:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def errors(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("looptool: error:")]


def looptool(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> Ran:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "looptool.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**_clean_env(), "COLUMNS": "200", **(env or {})},
    )
    return Ran(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOOPTOOL_")}


def assert_one_line_error(ran: Ran, code: int, *needles: str) -> str:
    assert ran.code == code, ran
    assert "Traceback" not in ran.err + ran.out, ran.err
    assert len(ran.errors) == 1, ran.err
    for needle in needles:
        assert needle in ran.errors[0], ran.errors[0]
    return ran.errors[0]


# --- clean errors ---------------------------------------------------------------------------------


def test_configuration_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('run_id = "ok"\n[kafka]\npartitions = 0\n[log]\nlevel = "loud"\n')
    message = assert_one_line_error(looptool("--config", str(bad), "topics"), 2, "invalid configuration")
    assert "kafka.partitions" in message and "(got 0)" in message and "log.level" in message
    broken = tmp_path / "broken.toml"
    broken.write_text("[kafka\n")
    assert_one_line_error(looptool("--config", str(broken), "topics"), 2, "not valid TOML")
    assert_one_line_error(looptool("--config", str(tmp_path / "missing.toml"), "topics"), 2, "not found")
    typo = tmp_path / "typo.toml"
    typo.write_text(f'[judge]\nbase_url = "http://127.0.0.1:1/v1"\nmodel = "m"\napi_kye = "{CANARY}"\n')
    message = assert_one_line_error(looptool("--config", str(typo), "topics"), 2, "judge.api_kye")
    assert "unknown setting" in message and CANARY not in message


def test_an_incomplete_judge_section_never_shows_its_key_and_help_still_works(tmp_path: Path) -> None:
    config = tmp_path / "looptool.toml"
    config.write_text(f'[judge]\napi_key = "{CANARY}"\nbase_url = "http://127.0.0.1:1/v1"\n')
    ran = looptool("--config", str(config), "topics")
    assert_one_line_error(ran, 2, "judge.model", "Field required")
    assert CANARY not in ran.out + ran.err
    helped = looptool("--config", str(config), "seed", "--help")
    assert helped.code == 0 and "Construct D_seed" in helped.out, helped
    # The same from the environment, and with debug logging (a traceback, still no key).
    debug = looptool(
        "--log-level",
        "debug",
        "topics",
        env={"LOOPTOOL_JUDGE__API_KEY": CANARY, "LOOPTOOL_JUDGE__BASE_URL": "http://h"},
    )
    assert debug.code == 2 and "Traceback" in debug.err and CANARY not in debug.out + debug.err


def test_usage_errors_exit_2_before_anything_runs() -> None:
    assert_one_line_error(looptool("--run-id", "", "topics"), 2, "run_id")
    assert_one_line_error(looptool("stages", "--bogus"), 2, "No such option: --bogus")
    assert_one_line_error(looptool("export", "--format", "foo"), 2, "'--format'", "'foo'")
    assert_one_line_error(looptool("ingest", "missing.jsonl", "--format", "foo"), 2, "unknown format 'foo'")
    assert_one_line_error(looptool("--log-format", "xml", "stages"), 2, "--log-format")
    # No broker configured: a usage error, before any connection is tried.
    assert_one_line_error(looptool("topics"), 2, "no Kafka configured")


def test_a_store_whose_build_never_finished_is_one_line_with_what_to_run_and_exit_65(tmp_path: Path) -> None:
    """A reader pointed at an unfinished build (a rebuild or replay killed mid-way) gets its own exit
    code (65, EX_DATAERR, as 75 is EX_TEMPFAIL for a restarted broker) and the command to run again,
    not the generic failure with the exception's class name."""
    from views.store import building_beside

    with building_beside(tmp_path / "store") as building:
        for args in (
            ("stats", "--store", str(building)),
            ("stats", "--store", str(building), "--format", "json"),
            ("lineage", "s_000", "--store", str(building)),
        ):
            ran = looptool(*args)
            line = assert_one_line_error(ran, 65, str(building), "has not finished", "looptool rebuild")
            assert "IncompleteStore" not in line
            assert ran.out == ""


def test_an_unreachable_broker_fails_within_its_timeout_naming_the_address() -> None:
    address = f"127.0.0.1:{free_port()}"
    ran = looptool("--bootstrap-servers", address, "topics")
    assert_one_line_error(ran, 1, "cannot reach the Kafka broker at " + address)
    assert ran.seconds < 10 + 8, ran.seconds  # connect_timeout_s plus the interpreter's start
    quick = looptool(
        "topics", env={"LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS": address, "LOOPTOOL_KAFKA__CONNECT_TIMEOUT_S": "1"}
    )
    assert_one_line_error(quick, 1, "tried for 1 s")
    traced = looptool(
        "--log-level",
        "debug",
        "--bootstrap-servers",
        address,
        "topics",
        env={"LOOPTOOL_KAFKA__CONNECT_TIMEOUT_S": "1"},
    )
    assert traced.code == 1 and "Traceback" in traced.err and len(traced.errors) == 1


@pytest.mark.parametrize("memory_only", [False, True], ids=["archived", "memory-only"])
def test_a_busy_broker_port_is_one_line_and_nothing_starts(tmp_path: Path, memory_only: bool) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [
            "broker",
            "--port",
            str(port),
            *(["--memory-only"] if memory_only else ["--archive", str(tmp_path / "a")]),
        ]
        ran = looptool(*args, timeout=60)
    assert_one_line_error(ran, 1, f"port {port}", "busy")
    assert "broker ready" not in ran.out


# --- no secret in anything printed ----------------------------------------------------------------


def test_url_credentials_are_refused_without_echoing_them(tmp_path: Path) -> None:
    for env in (
        {"LOOPTOOL_JUDGE__BASE_URL": f"http://user:{CANARY}@127.0.0.1:1/v1", "LOOPTOOL_JUDGE__MODEL": "m"},
        {
            "LOOPTOOL_GENERATOR__BASE_URL": f"http://127.0.0.1:1/v1?api_key={CANARY}",
            "LOOPTOOL_GENERATOR__MODEL": "m",
        },
        {"LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS": f"user:{CANARY}@127.0.0.1:9"},
    ):
        ran = looptool("--log-level", "debug", "topics", env=env)
        assert ran.code == 2, ran
        assert "must not carry credentials" in ran.err or "without credentials" in ran.err, ran.err
        assert "file" in ran.errors[0]  # it points to api_key_file / sasl_password_file
        assert CANARY not in ran.out + ran.err


def test_library_log_lines_have_url_credentials_masked() -> None:
    stream = io.StringIO()
    configure_logging(LogSettings(format="json", level="debug"), stream=stream)
    try:
        # (httpx's per-request lines are INFO, kept out; a warning of the library still passes through)
        logging.getLogger("httpx").warning(
            'HTTP Request: POST %s "HTTP/1.1 503"', f"http://u:{CANARY}@h/v1?api_key={CANARY}&x=1"
        )
        get_logger("test").info("calling", url=f"https://{CANARY}@example.org/path", note=f"?token={CANARY}")
    finally:
        configure_logging(LogSettings())
    logged = stream.getvalue()
    assert "HTTP Request" in logged and "calling" in logged and "x=1" in logged
    assert CANARY not in logged


def _every_command() -> list[str]:
    from typer.main import get_command

    from looptool.cli import app

    group = get_command(app)
    names = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(command, "commands", None)
        names += [f"{name} {child}" for child in sub] if sub else [name]
    return sorted(names)


# How each command is run for real (besides --help); long-running ones are stopped after a while.
RUNS: dict[str, list[str]] = {
    "broker": ["broker", "--port", "0", "--archive", "{tmp}/archive"],
    "topics": ["topics"],
    "seed": ["seed", "--offline"],
    "ingest": ["ingest", str(REPO / "examples/seeds/paper.jsonl")],
    "curate": ["curate", "--initial"],
    "worker": ["worker", "--stages", "judge,relabel"],
    "stages": ["stages"],
    "train": ["train", "--until-idle"],
    "store": ["store", "--until-idle"],
    "rebuild": ["rebuild"],
    "replay": ["replay", "--round", "1", "--store", "{tmp}/replayed"],
    "export": ["export", "--round", "1", "--out", "{tmp}/d1.jsonl"],
    "stats": ["stats"],
    "lineage": ["lineage", "s_0000"],
    "revert-relabel": ["revert-relabel", "01JAAAAAAAAAAAAAAAAAAAAAAA", "--note", "x", "--dry-run"],
    "eval": ["eval", "--help"],
    "demo": ["demo", "--help"],
    "deadletters": ["deadletters"],
    "redrive": ["redrive", "--dry-run"],
    "doctor": ["doctor"],
    "init": ["init", "{tmp}/starter/looptool.toml"],
    "schemas list": ["schemas", "list"],
    "schemas freeze": ["schemas", "freeze", "--help"],
}
LONG_RUNNING = {"broker", "worker", "train"}


@contextlib.contextmanager
def _endpoint_in_a_thread() -> Iterator[Endpoint]:
    """The test OpenAI-compatible endpoint on its own event loop, for commands run as processes."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    serving = serve(Endpoint())
    try:
        yield asyncio.run_coroutine_threadsafe(serving.__aenter__(), loop).result(30)
    finally:
        asyncio.run_coroutine_threadsafe(serving.__aexit__(None, None, None), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_the_canary_secret_never_appears_in_any_command_output(kafka_bootstrap: str, tmp_path: Path) -> None:
    assert set(RUNS) == set(_every_command()), "a new command: say how the canary test runs it"
    with _endpoint_in_a_thread() as endpoint:  # the LLM roles answer: the worker starts and judges
        _run_every_command_with_the_canary(kafka_bootstrap, tmp_path, endpoint)
        # Every request carried the key as a bearer token: the roles used the secret they never showed.
        assert endpoint.authorizations and set(endpoint.authorizations) == {f"Bearer {CANARY}"}


def _run_every_command_with_the_canary(kafka_bootstrap: str, tmp_path: Path, endpoint: Endpoint) -> None:
    run_id = "canary-" + os.urandom(3).hex()
    env = {
        "LOOPTOOL_RUN_ID": run_id,
        "LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LOOPTOOL_KAFKA__SASL_PASSWORD": CANARY,  # PLAINTEXT: set but never used
        "LOOPTOOL_JUDGE__BASE_URL": endpoint.base_url,
        "LOOPTOOL_JUDGE__MODEL": "judge",
        "LOOPTOOL_JUDGE__API_KEY": CANARY,
        "LOOPTOOL_JUDGE__MAX_RETRIES": "0",
        "LOOPTOOL_GENERATOR__BASE_URL": endpoint.base_url,
        "LOOPTOOL_GENERATOR__MODEL": "generator",
        "LOOPTOOL_GENERATOR__API_KEY": CANARY,
        "LOOPTOOL_WORLD__SEED_DIALOGUES": "12",
        "LOOPTOOL_WORLD__HELDOUT_DIALOGUES": "2",
        "LOOPTOOL_LOOP__TARGET_SIZE": "8",
        "LOOPTOOL_STORE__PATH": str(tmp_path / "store"),
        "LOOPTOOL_LOG__LEVEL": "debug",
    }
    outputs: dict[str, str] = {}
    for name, args in RUNS.items():
        args = [a.replace("{tmp}", str(tmp_path)) for a in args]
        helped = looptool(*name.split(), "--help", env=env)
        assert helped.code == 0, (name, helped)
        outputs[f"{name} --help"] = helped.out + helped.err
        if name in LONG_RUNNING:
            outputs[name] = _run_for_a_while(args, env, tmp_path)
        else:
            ran = looptool(*args, env=env, cwd=tmp_path, timeout=300)
            outputs[name] = ran.out + ran.err
    leaked = [name for name, text in outputs.items() if CANARY in text]
    assert leaked == [], {name: outputs[name][-2000:] for name in leaked}
    # The commands did run (debug logs on): the canary test is not vacuous.
    assert "seed.published" in outputs["seed"] and "samples (SampleAdded)" in outputs["ingest"]
    assert "worker.ready" in outputs["worker"] and "broker ready" in outputs["broker"]


def _run_for_a_while(args: list[str], env: dict[str, str], cwd: Path, seconds: float = 12) -> str:
    log = cwd / f"{args[0]}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "looptool.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**_clean_env(), "COLUMNS": "200", **env},
        )
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return log.read_text(errors="replace")
