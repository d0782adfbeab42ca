"""Shared fixtures: one broker per test session, a fresh run (topic namespace) per test.

Set ``LOOPTOOL_TEST_BOOTSTRAP=host:port`` to run the suite against an existing Kafka cluster
instead of the embedded Tansu broker; the code under test is the same either way.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from looptool.broker import EmbeddedBroker
from looptool.config import Settings, load_settings

_session_broker_pid: int | None = None


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("LOOPTOOL_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    global _session_broker_pid
    broker = EmbeddedBroker()
    try:
        bootstrap = broker.start()
        _session_broker_pid = broker.pid
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture
def run_id() -> str:
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture
def settings(kafka_bootstrap: str, run_id: str, tmp_path: Path) -> Settings:
    return load_settings(
        None,
        run_id=run_id,
        kafka={"bootstrap_servers": kafka_bootstrap},
        store={"path": tmp_path / "store"},
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if the session broker outlived its fixture (an orphan process)."""
    if _session_broker_pid is None:
        return
    try:
        os.kill(_session_broker_pid, 0)
    except ProcessLookupError:
        return
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    raise RuntimeError(f"embedded broker pid {_session_broker_pid} is still running after the session")
