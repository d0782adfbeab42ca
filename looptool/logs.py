"""Structured logging (structlog), console or JSON, with secrets masked before anything is rendered."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from looptool.config import LogSettings

# Keys whose values are never written to a log, whatever the caller passed. "token" not followed by a
# letter (token, access_token, AuthToken), so counts such as tokens or tokens_per_s stay readable.
_SECRET_KEY = re.compile(
    r"(pass(word)?|secret|token(?![a-z])|api[_-]?key|authorization|credential)", re.IGNORECASE
)
REDACTED = "***"


def _redact(value: Any) -> Any:
    if isinstance(value, MutableMapping):
        return {k: (REDACTED if _SECRET_KEY.search(str(k)) else _redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v) for v in value)
    if hasattr(value, "get_secret_value"):  # pydantic SecretStr / SecretBytes
        return REDACTED
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: mask secret-looking keys at any depth and any SecretStr value."""
    return _redact(event_dict)


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
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer, foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared]
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.INFO))
    # aiokafka and faust are chatty at INFO about every rebalance, matplotlib about every categorical
    # axis ("Using categorical units ..."); keep them to warnings.
    for noisy in ("aiokafka", "faust", "mode", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def get_logger(name: str, **bound: Any) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name, **bound)
