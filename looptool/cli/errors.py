"""What a failed command prints: one line and the conventional exit code, a traceback only when debugging.

Exit codes: 2 for usage and configuration errors (as click uses for bad options), 65 (``EX_DATAERR``)
when a sample store to read holds a build that never finished (rebuild or replay it again), 75
(``EX_TEMPFAIL``) when the broker restarted under the command (run it again), 130 after Ctrl-C, 1 for
anything else.
Configuration errors are rebuilt from pydantic's structured errors: a value is shown only when it is
a number or a choice, never a string of a field that may hold a secret, never a section's mapping.
"""

from __future__ import annotations

import os
import re
import tomllib
from typing import Any

from pydantic import ValidationError

from common.logs import mask_url_credentials

USAGE = 2
FAILURE = 1
INCOMPLETE_STORE = 65
RESTARTED = 75
INTERRUPTED = 130

_debug = False

# Error types whose input is the user's choice among allowed values: safe and useful to show.
_SHOWN_INPUT_TYPES = {"literal_error", "enum", "bool_parsing", "bool_type"}
_SECRET_NAME = re.compile(r"(pass|secret|token|key|auth|credential|cert)", re.IGNORECASE)


def set_debug(on: bool) -> None:
    global _debug
    _debug = on


def debugging() -> bool:
    """Tracebacks wanted: debug logging from the options, the settings or ``LOOPTOOL_LOG__LEVEL``."""
    return _debug or os.environ.get("LOOPTOOL_LOG__LEVEL", "").lower() == "debug"


def describe_validation(error: ValidationError) -> str:
    """One line for a settings validation error, with no value that could be a secret."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or error.title
        message = item["msg"].removeprefix("Value error, ")
        value = item.get("input")
        name = str(item["loc"][-1]) if item["loc"] else ""
        if item["type"] == "extra_forbidden":
            message = "unknown setting (a typo?)"
        elif _showable(item["type"], name, value):
            message += f" (got {value!r})"
        parts.append(f"{where}: {message}")
    return "invalid configuration: " + "; ".join(parts)


def _showable(error_type: str, name: str, value: Any) -> bool:
    if isinstance(value, bool | int | float):
        return True
    return (
        isinstance(value, str)
        and error_type in _SHOWN_INPUT_TYPES
        and not _SECRET_NAME.search(name)
        and len(value) <= 40
    )


def describe(error: BaseException) -> tuple[int, str]:
    """(exit code, one line) for an error that ended a command."""
    from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

    from bus.archive import ArchiveError
    from bus.broker import BrokerError
    from bus.kafka import BrokerDataLost, BrokerNotDurable, BrokerRestarted, KafkaSetupError
    from looptool.cli.common import BrokerUnreachable
    from views.store import IncompleteStore

    if isinstance(error, ValidationError):
        return USAGE, describe_validation(error)
    if isinstance(error, tomllib.TOMLDecodeError):
        return USAGE, f"the config file is not valid TOML: {error}"
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED, "interrupted"
    if isinstance(error, BrokerRestarted):
        return RESTARTED, str(error)
    if isinstance(error, IncompleteStore):  # its message says what to run again
        return INCOMPLETE_STORE, str(error)
    if isinstance(error, BrokerUnreachable | BrokerDataLost | BrokerNotDurable | BrokerError | ArchiveError):
        return FAILURE, str(error)
    if isinstance(error, KafkaSetupError):
        return FAILURE, f"Kafka: {error}"
    if isinstance(error, KafkaConnectionError | KafkaTimeoutError):
        return FAILURE, f"lost the connection to the Kafka broker ({_named(error)})"
    if isinstance(error, KafkaError):
        return FAILURE, f"Kafka error: {_named(error)}"
    if isinstance(error, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return FAILURE, str(error)
    first_line = (str(error).strip().splitlines() or [""])[0]
    return FAILURE, f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__


def _named(error: BaseException) -> str:
    """``Type: message``, once (aiokafka's messages often start with their type already)."""
    name, text = type(error).__name__, str(error)
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def one_line(text: str) -> str:
    """A message on one line, with credentials in URLs masked."""
    return mask_url_credentials(" ".join(text.replace("Value error, ", "").split()))
