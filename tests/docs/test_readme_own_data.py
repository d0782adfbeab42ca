"""The README's "Using it on your own data" commands, run as they stand until round 2 is closed.

The block between the ``own-data commands`` markers is extracted from README.md and run verbatim by
``bash -euo pipefail`` in a fresh folder that holds the checkout's files (so ``looptool init`` writes
its ``./looptool.toml`` there). The user's own values come from the environment variables the README
documents: ``POLICY_DIR`` (a tiny Qwen2 policy built here), ``LLM_URL`` and ``LLM_MODEL`` (an
OpenAI-compatible HTTP server in this process that answers like a reasoning model behind vLLM's
reasoning parser, as judge, generator and verifier; it takes the seed files' labels for the truth),
``KAFKA_PORT`` (a free port). ``LOOPTOOL_*`` variables shrink the run to CPU size (short decodes, two
GRPO steps a round, one torch thread), as a user may. The test watches the run's topics until round 2
is closed and a checkpoint is published, then stops every process the block started.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bus.kafka import replay
from looptool.config import Settings, load_settings
from tests.streams.reasoning_endpoint import Persona, ReasoningEndpoint, served_in_thread
from toolcall.formats import RecordError, record_to_samples
from toolcall.prompts import quote_data, render_conversation
from toolcall.types import Action

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
START = "<!-- own-data commands"
END = "<!-- /own-data commands -->"
MODEL = "test-reasoner"
VALUES = ("POLICY_DIR", "LLM_URL", "LLM_MODEL", "KAFKA_PORT")  # the user's values the README names
DEADLINE_S = 480.0
DOCTOR_PASSED = re.compile(r"all \d+ checks passed")
# A CPU-sized run of the same commands: what a user on a laptop would set too.
SHRINK = {
    "LOOPTOOL_POLICY__MAX_NEW_TOKENS": "24",
    "LOOPTOOL_POLICY__TORCH_THREADS": "1",
    "LOOPTOOL_TRAINER__GROUP_SIZE": "2",
    "LOOPTOOL_TRAINER__PROMPTS_PER_STEP": "2",
    "LOOPTOOL_TRAINER__MAX_STEPS_PER_ROUND": "2",
    "LOOPTOOL_TRAINER__MAX_NEW_TOKENS": "24",
    "LOOPTOOL_TRAINER__EPOCHS_PER_ROUND": "1",
    "LOOPTOOL_TRAINER__TORCH_THREADS": "1",
}


def own_data_commands(readme: str) -> str:
    """The bash block between the README's own-data markers."""
    try:
        section = readme.split(START, 1)[1].split(END, 1)[0]
    except IndexError:
        raise AssertionError(f"README.md has no block between {START!r} and {END!r}") from None
    found = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert found, "the own-data markers hold no ```bash block"
    return found.group(1)


def ingested_files(commands: str) -> list[str]:
    """The paths the block's ``looptool ingest`` lines read."""
    paths = []
    for line in commands.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if len(words) > 2 and words[0].endswith("looptool") and words[1] == "ingest":
            paths += [word for word in words[2:] if not word.startswith("-")]
    return paths


def truth_of_seeds(paths: list[str]) -> dict[str, Action]:
    """The seeds' labels by conversation block, as the roles' prompts quote it (the server's truth)."""
    truth: dict[str, Action] = {}
    for name in paths:
        for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                samples = record_to_samples(json.loads(line))
            except (RecordError, ValueError):
                continue  # a bad record: ingest dead-letters it
            for sample in samples:
                truth[quote_data(render_conversation(sample.messages))] = sample.label
    return truth


def test_the_own_data_block_is_found_and_names_only_documented_values() -> None:
    readme = README.read_text(encoding="utf-8")
    commands = own_data_commands(readme)
    assert "looptool init" in commands and "looptool doctor" in commands
    used = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", commands))
    assert used <= set(VALUES), f"the block uses values the README does not document: {used - set(VALUES)}"
    section = readme.split("## Using it on your own data", 1)[1].split(START, 1)[0]
    for name in used:
        assert f"export {name}=" in section or f" {name}=" in section, f"{name} is not documented"
    assert ingested_files(commands), "the block ingests no seed file"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def checkout_copy(folder: Path) -> Path:
    """A folder that looks like a fresh checkout: the repository's top-level entries, linked."""
    folder.mkdir()
    for entry in ROOT.iterdir():
        if entry.name in (".git", "data", "looptool.toml") or entry.name.startswith(".pytest"):
            continue
        (folder / entry.name).symlink_to(entry)
    return folder


async def progress(settings: Settings) -> dict[str, Any]:
    """What the run's topics hold: closed rounds, checkpoints, verdicts, verified expansions."""
    seen: dict[str, Any] = {"rounds": {}, "checkpoints": [], "verdicts": [], "verified": 0}
    ids: set[str] = set()
    topics = ["rounds", "checkpoints", "verdicts", "verifications"]
    async for batch in replay(settings.kafka, settings.run_id, topics):
        for delivered in batch:
            event = delivered.event
            if event.event_id in ids:
                continue
            ids.add(event.event_id)
            payload = event.payload
            if event.event_type == "RoundClosed":
                seen["rounds"][payload.round] = payload
            elif event.event_type == "CheckpointPublished":
                seen["checkpoints"].append(payload)
            elif event.event_type == "Verdict":
                seen["verdicts"].append(payload.verdict)
            elif event.event_type == "VerificationResult" and payload.passed:
                seen["verified"] += 1
    return seen


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to every process the block started (one process group), then SIGKILL to what is left."""

    def alive() -> bool:
        process.poll()  # reap the shell, or the group would never look empty
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    for sig, wait_s in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
        if not alive():
            break
        os.killpg(process.pid, sig)
        deadline = time.monotonic() + wait_s
        while alive() and time.monotonic() < deadline:
            time.sleep(0.5)
    process.wait(10)


def test_readme_own_data_commands_run_until_round_2_closes(tmp_path: Path, tiny_policy_path: Path) -> None:
    commands = own_data_commands(README.read_text(encoding="utf-8"))
    workdir = checkout_copy(tmp_path / "checkout")
    endpoint = ReasoningEndpoint(
        personas={MODEL: Persona(layout="parser", style="markdown", trace_words=(20, 60))},
        truth=truth_of_seeds(ingested_files(commands)),
    )
    assert endpoint.truth, "no seed was read from the block's ingest paths"
    log_path = tmp_path / "commands.log"
    with served_in_thread(endpoint):
        env = (
            dict(os.environ)
            | SHRINK
            | {
                "POLICY_DIR": str(tiny_policy_path),
                "LLM_URL": endpoint.base_url,
                "LLM_MODEL": MODEL,
                "KAFKA_PORT": str(free_port()),
                "PYTHONUNBUFFERED": "1",
            }
        )
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", commands],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the test stops everything it started
            )
        seen: dict[str, Any] = {}
        try:
            deadline = time.monotonic() + DEADLINE_S
            settings: Settings | None = None
            while time.monotonic() < deadline:
                time.sleep(3)
                code = process.poll()
                assert code in (None, 0), f"the README's commands failed ({code}):\n{_tail(log_path)}"
                if settings is None and (workdir / "looptool.toml").is_file():
                    settings = load_settings(workdir / "looptool.toml")
                if settings is None or not DOCTOR_PASSED.search(_text(log_path)):
                    continue  # doctor has not passed yet: nothing runs
                seen = asyncio.run(progress(settings))
                if 2 in seen["rounds"] and seen["checkpoints"]:
                    break
            else:
                pytest.fail(
                    f"round 2 not closed within {DEADLINE_S:.0f} s ({_summary(seen)}):\n{_tail(log_path)}"
                )
        finally:
            stop_group(process)

    output = _text(log_path)
    assert DOCTOR_PASSED.search(output) and "checks failed" not in output
    assert settings is not None and settings.run_id == "exp1"  # the file init wrote, as the README says
    roles = {served.role for served in endpoint.served}
    assert {"judge", "generator", "verifier"} <= roles, roles
    assert seen["rounds"][1].total > 0 and seen["rounds"][2].total > 0
    assert seen["checkpoints"][0].round == 1
    assert "PRED_WRONG" in seen["verdicts"], seen["verdicts"]
    assert seen["verified"] > 0
    print(
        f"\nREADME own-data block: {_summary(seen)}; endpoint answered "
        f"{len(endpoint.served)} requests ({', '.join(sorted(roles))})"
    )


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def _tail(path: Path, lines: int = 40) -> str:
    """The last lines of the block's output and of every log file it wrote beside it."""
    parts = [f"--- {path.name}", *_text(path).splitlines()[-lines:]]
    for log in sorted(path.parent.glob("checkout/*.log")):
        parts += [f"--- {log.name}", *_text(log).splitlines()[-lines:]]
    return "\n".join(parts)


def _summary(seen: dict[str, Any]) -> str:
    if not seen:
        return "nothing read from the topics"
    rounds = {j: dict(manifest.counts) for j, manifest in sorted(seen["rounds"].items())}
    return (
        f"rounds closed {rounds}, {len(seen['checkpoints'])} checkpoint(s), verdicts "
        f"{sorted(set(seen['verdicts']))}, {seen['verified']} verified expansions"
    )
