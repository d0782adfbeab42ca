"""A broker restart does not flood the log: a library's repeated line shows once per window."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from common.logs import LogSettings, RepeatLimiter, configure_logging, get_logger


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_aiokafkas_retry_errors_show_once_and_then_say_how_many_were_held_back() -> None:
    stream = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=stream)
    library = logging.getLogger("aiokafka.consumer.fetcher")
    for attempt in range(500):  # what aiokafka logs at each retry while its broker is away
        library.error(
            "Unable connect to node with id %d: [Errno 111] Connect call failed ('127.0.0.1', %d)",
            1,
            40000 + attempt,
        )
    library.error("Failed fetch messages from 1: NodeNotReadyError")  # another kind of line
    for index in range(3):
        get_logger("ours").warning("stage.paused", attempt=index)  # our own events are never held back
    events = [line["event"] for line in lines(stream)]
    assert sum("Unable connect" in event for event in events) == 1
    assert sum("Failed fetch" in event for event in events) == 1
    assert events.count("stage.paused") == 3


def test_after_the_window_the_next_line_counts_the_ones_held_back() -> None:
    now = [0.0]
    limiter = RepeatLimiter(window_s=30.0, clock=lambda: now[0])
    record = lambda port: logging.LogRecord(  # noqa: E731
        "aiokafka", logging.ERROR, __file__, 1, "Unable connect to node at port %d", (port,), None
    )
    passed = [limiter.filter(record(port)) for port in range(100)]
    assert passed.count(True) == 1
    now[0] = 31.0
    late = record(7)
    assert limiter.filter(late)
    assert late.getMessage() == "Unable connect to node at port 7 (99 more like it not shown)"
    assert limiter.filter(logging.LogRecord("looptool", logging.ERROR, __file__, 1, "x", None, None))


def test_logging_to_stderr_follows_the_stream_that_stands_there_at_each_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Configured while a runner's stream stood in for stderr, logging kept writing to that stream
    after the runner closed it: a later log line (a fixture's teardown) raised "I/O operation on
    closed file". Each line now goes to whatever sys.stderr is when it is written."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    try:
        configure_logging(LogSettings(format="json"))
        first.close()
        monkeypatch.setattr(sys, "stderr", second)
        get_logger("test").info("after.swap")
        logging.getLogger("library").warning("library after swap")
        assert "after.swap" in second.getvalue() and "library after swap" in second.getvalue()
    finally:
        monkeypatch.undo()
        configure_logging(LogSettings())
