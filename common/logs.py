"""Structured logging (structlog), console or JSON, with secrets masked before anything is rendered."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

from common.settings import Section

# Keys whose values are never written to a log, whatever the caller passed. "token" not followed by a
# letter (token, access_token, AuthToken), so counts such as tokens or tokens_per_s stay readable.
_SECRET_KEY = re.compile(
    r"(pass(word)?|secret|token(?![a-z])|api[_-]?key|authorization|credential)", re.IGNORECASE
)
REDACTED = "***"
# Credentials inside URLs (scheme://user:password@host) and key-like query parameters (?api_key=...):
# libraries log URLs as they are (httpx logs every request's), so every string logged is masked.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/@?#]+@")
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&](?:api[_-]?key|key|token|access_token|password|secret|sig|signature)=)[^&#\s]+",
    re.IGNORECASE,
)


def mask_url_credentials(text: str) -> str:
    """``text`` with the user info of every URL and key-like query parameters replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['name']}{REDACTED}", text)


def url_has_credentials(url: str) -> bool:
    """Whether ``url`` carries a user, a password or a key-like query parameter."""
    return mask_url_credentials(url) != url


class LogSettings(Section):
    format: Literal["console", "json"] = "console"
    level: Literal["debug", "info", "warning", "error"] = "info"


def _redact(value: Any) -> Any:
    if isinstance(value, MutableMapping):
        return {k: (REDACTED if _SECRET_KEY.search(str(k)) else _redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v) for v in value)
    if hasattr(value, "get_secret_value"):  # pydantic SecretStr / SecretBytes
        return REDACTED
    if isinstance(value, str):
        return mask_url_credentials(value)
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: mask secret-looking keys at any depth, SecretStr values and URL credentials.

    It also runs on the stdlib records of libraries (faust, aiokafka, httpx), whose whole message is
    then the ``event`` string.
    """
    return _redact(event_dict)


# Libraries whose retry loops log the same line over and over: while a broker restarts, every
# aiokafka consumer and producer logs "Unable connect to node …" at each retry (1,800 lines in a few
# seconds from one worker of five stages).
_REPEATING_LIBRARIES = ("aiokafka", "kafka", "faust", "mode")
_NUMBERS = re.compile(r"\d+")


class RepeatLimiter(logging.Filter):
    """Lets a library's line through once per ``window_s``; the lines like it in between (the same
    text up to its numbers: node ids, ports, errnos, offsets) are counted, and the next one let
    through says how many were held back."""

    def __init__(self, window_s: float = 30.0, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.window_s, self.clock = window_s, clock
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}  # line kind -> (window start, held)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(_REPEATING_LIBRARIES):
            return True
        key = (record.name, _NUMBERS.sub("N", record.getMessage()))
        now = self.clock()
        started, held = self._windows.get(key, (None, 0))
        if started is not None and now - started < self.window_s:
            self._windows[key] = (started, held + 1)
            return False
        if held:
            record.msg, record.args = f"{record.getMessage()} ({held} more like it not shown)", None
        self._windows[key] = (now, 0)
        if len(self._windows) > 10_000:  # a library logging ever-new text: forget the oldest kinds
            for stale in list(self._windows)[:5_000]:
                del self._windows[stale]
        return True


class _CurrentStderr:
    """``sys.stderr`` as it is at each write, not as it was when logging was configured: a test runner
    or an in-process CLI runner swaps it for a stream it later closes, and a log line after that
    (a fixture's teardown) failed with "I/O operation on closed file"."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(settings: LogSettings | None = None, *, stream: Any = None) -> None:
    """Configure structlog and the stdlib root logger (faust/aiokafka log through it) once per process."""
    settings = settings or LogSettings()
    level = getattr(logging, settings.level.upper())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream or _CurrentStderr()),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream or _CurrentStderr())
    handler.addFilter(RepeatLimiter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer, foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared]
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.INFO))
    # aiokafka and faust are chatty at INFO about every rebalance, matplotlib about every categorical
    # axis ("Using categorical units ..."), httpx about every request to an LLM endpoint (a line per
    # judge, generator and verifier call); keep them to warnings.
    for noisy in ("aiokafka", "faust", "mode", "matplotlib", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    quiet_library_progress_bars()


# Hugging Face's own tqdm bars ("Loading weights", "Writing model shards", dataset maps): one per model
# load, so the probe's log got one per checkpoint. Our commands show their progress with rich.
_PROGRESS_BAR_SWITCHES = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")


def quiet_library_progress_bars() -> None:
    """Turn Hugging Face's progress bars off, unless the environment says otherwise (``=0``).

    Read by the libraries at import, so set before they are imported (commands import them lazily);
    libraries already imported are told directly."""
    for switch in _PROGRESS_BAR_SWITCHES:
        os.environ.setdefault(switch, "1")
    if os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1" and "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    if os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1" and "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()


def get_logger(name: str, **bound: Any) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name, **bound)
