"""Copy drills: the pre-training a tiny policy gets in place of a real base model's.

A pretrained LLM can already copy a span from its prompt into its answer; that is most of what
filling a tool call's arguments takes. A tiny model trained from scratch cannot, and a few hundred
dialogues teach it the output format and the function choice long before they teach it copying
(held-out ToolMatch stays near the share of "no call" samples). So the demo's initial policy is first
trained on drills that need nothing but copying: a user asks to record one to four values, in order,
with a generic ``record_values`` tool that is not one of the world's tools (so no world label leaks),
listed among a few of the world's tools as distractors. The values are the world's entity words, the
tokens the policy will later have to copy.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from toolcall.specs import ToolSpec, load_tools
from toolcall.types import Action, Message, Sample, ToolCall

DRILL_TOOL_NAME = "record_values"
_SLOTS = ("first", "second", "third", "fourth")

RECORD_VALUES: ToolSpec = load_tools(
    [
        {
            "name": DRILL_TOOL_NAME,
            "description": "Record the values the user gives, in the order given.",
            "parameters": {
                "type": "object",
                "properties": {
                    slot: {"type": "string", "description": f"The {slot} value."} for slot in _SLOTS
                },
                "required": ["first"],
            },
        }
    ]
)[0]


def copy_drills(
    vocabulary: Sequence[str],
    count: int,
    *,
    distractors: Sequence[ToolSpec] = (),
    seed: int = 0,
    two_requests: float = 0.0,
) -> list[Sample]:
    """``count`` samples: "Please record A, then B." → ``record_values(first=A, second=B)``.

    A ``two_requests`` share asks twice ("Please record A, then B. Also record C.") and is answered
    with two calls, each copying from its own sentence: the skill parallel calls need, where a small
    model otherwise copies values across requests.
    """
    if not vocabulary:
        raise ValueError("copy drills need a non-empty vocabulary")
    rng = random.Random(f"copy-drills-{seed}")
    values = list(vocabulary)
    out = []
    for _ in range(count):
        requests = 2 if rng.random() < two_requests else 1
        sentences, calls = [], []
        for index in range(requests):
            n = rng.randint(1, min(len(_SLOTS), len(values)))
            chosen = rng.sample(values, n)
            opener = "Please record " if index == 0 else rng.choice(("Also record ", "And then record "))
            sentences.append(opener + ", then ".join(chosen) + ".")
            calls.append(ToolCall(name=DRILL_TOOL_NAME, arguments=dict(zip(_SLOTS[:n], chosen, strict=True))))
        tools = [RECORD_VALUES, *rng.sample(list(distractors), min(2, len(distractors)))]
        rng.shuffle(tools)
        out.append(
            Sample(
                tools=tools,
                messages=[Message(role="user", content=" ".join(sentences))],
                label=Action(calls=calls),
            )
        )
    return out
