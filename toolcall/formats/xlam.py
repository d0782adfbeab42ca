"""xLAM / APIGen records: ``query``, ``tools`` and ``answers`` (each a JSON string or a list).

Parameter types are Python typing expressions (``List[Tuple[float, float]]``, ``str, default='en'``),
read by :mod:`toolcall.pytypes` through :func:`toolcall.specs.load_tools`; ``answers`` lists the calls
(an empty list: no call is right; Synth-APIGen's text answer, a refusal in words, is that "no call" answer).
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
    written = record.get("answers")
    if isinstance(written, str) and written.strip() and written.strip()[0] not in "[{":
        # Synth-APIGen (argilla) answers a query its tools cannot serve in words, not with a list: that
        # text is the "no call" answer. Text that starts like JSON must still read as calls.
        label = Action(text=written.strip())
    else:
        answers = json_or_value(written, "answers", python=True)
        if not isinstance(answers, list):
            raise RecordError("xlam 'answers' must be a list of calls")
        calls = [call_from(answer) for answer in answers]
        label = Action(calls=calls) if calls else Action(text=NO_SUITABLE_TOOL)
    sample = Sample(tools=tools, messages=[Message(role="user", content=query.strip())], label=label)
    return Conversion("xlam", [sample], notes)
