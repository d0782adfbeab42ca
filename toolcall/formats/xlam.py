"""xLAM / APIGen records: ``query``, ``tools`` and ``answers`` (each a JSON string or a list).

Parameter types are Python typing expressions (``List[Tuple[float, float]]``, ``str, default='en'``),
read by :mod:`toolcall.pytypes` through :func:`toolcall.specs.load_tools`; ``answers`` lists the calls
(an empty list: no call is right).
"""

from __future__ import annotations

from typing import Any

from toolcall.formats.common import (
    NO_SUITABLE_TOOL,
    Conversion,
    RecordError,
    call_from,
    json_or_value,
    tools_from,
)
from toolcall.types import Action, Message, Sample


def from_xlam(record: dict[str, Any]) -> Conversion:
    notes: list[str] = []
    tools = tools_from(json_or_value(record.get("tools"), "tools", python=True), notes)
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RecordError("xlam 'query' must be a non-empty string")
    answers = json_or_value(record.get("answers"), "answers", python=True)
    if not isinstance(answers, list):
        raise RecordError("xlam 'answers' must be a list of calls")
    calls = [call_from(answer) for answer in answers]
    label = Action(calls=calls) if calls else Action(text=NO_SUITABLE_TOOL)
    sample = Sample(tools=tools, messages=[Message(role="user", content=query.strip())], label=label)
    return Conversion("xlam", [sample], notes)
