"""The base every component's settings build on (each component keeps its settings beside it).

The app composes them into one object, :class:`looptool.config.Settings` (a TOML file plus
``LOOPTOOL_*`` environment variables).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

# Kafka topic names allow [a-zA-Z0-9._-]; the run id becomes the topic prefix, and '.' separates the
# prefix from the topic's own name, so the run id itself may not contain one.
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")


class Section(BaseModel):
    """A config section: unknown keys are an error, so a typo never silently falls back to a default.

    Validation errors never carry the values given (``hide_input_in_errors``): a section's values may
    be secrets, and an error message ends up in terminals, logs and tracebacks.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
