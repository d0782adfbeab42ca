"""The answer inside OpenAI's harmony format (gpt-oss), for servers that return it raw.

vLLM and the OpenAI API split gpt-oss's channels apart (the ``analysis`` channel becomes the
reasoning field). llama.cpp with ``--reasoning-format none``, mlx_lm.server and LM Studio return the
model's text as generated::

    <|channel|>analysis<|message|>draft …<|end|><|start|>assistant<|channel|>final<|message|>answer<|return|>

or, llama.cpp, the answer right after the analysis' ``<|end|>``. The ``analysis`` channel is a
reasoning trace: drafts in it ("Response 1 is incorrect… no, wait") are not the answer. Pure: the
judge's, the verifier's and the generator's readers call :func:`harmony_answer`; the policy's output
parser reads a call from the message's recipient (:func:`harmony_messages`)::

    <|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>

(the recipient may also stand in the role: ``<|start|>assistant to=functions.get_weather<|channel|>…``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A raw completion opens with a message header (the channel, after the role if the completion repeats
# it); harmony tokens further on in ordinary text are the answer quoting them ("Response 2 printed
# <|channel|>final<|message|>BOTH_CORRECT"), never the format.
_OPENING = re.compile(r"^\s*(?:<\|start\|>)?\s*(?:assistant\b[^<\n]*)?<\|channel\|>", re.IGNORECASE)
# A message: the role part (after <|start|>, or before the first <|channel|> of a completion, which
# starts after the prompt's "<|start|>assistant"), the channel and the header (a recipient "to=...",
# a content type), then the content up to the message's end token.
_MESSAGE = re.compile(
    r"(?:<\|start\|>)?(?P<role>[^<]*)<\|channel\|>\s*(?P<channel>[A-Za-z_]+)(?P<header>[^<]*)"
    r"(?:<\|constrain\|>[^<]*)?"
    r"<\|message\|>(?P<content>.*?)(?P<end><\|end\|>|<\|return\|>|<\|call\|>|(?=<\|start\|>)|\Z)",
    re.DOTALL,
)
_RECIPIENT = re.compile(r"(?:^|\s)to=(?P<recipient>[^\s<]+)")
_LEFTOVER = re.compile(r"<\|(?:start|end|return|call)\|>(?:assistant\b)?")


@dataclass(frozen=True)
class HarmonyMessage:
    """One message of a harmony completion."""

    channel: str
    recipient: str | None  # "functions.get_weather": the message is a call's arguments
    content: str


def harmony_messages(text: str) -> list[HarmonyMessage] | None:
    """The messages of a raw harmony completion; None when ``text`` is not in the harmony format."""
    if not _OPENING.match(text):
        return None
    messages = []
    for message in _MESSAGE.finditer(text):
        recipient = _RECIPIENT.search(message.group("header")) or _RECIPIENT.search(message.group("role"))
        messages.append(
            HarmonyMessage(
                channel=message.group("channel").lower(),
                recipient=recipient.group("recipient") if recipient else None,
                content=message.group("content"),
            )
        )
    return messages


@dataclass(frozen=True)
class HarmonyReading:
    """``answer``: the final channel's text (None: none came); ``problem``: why, when None."""

    answer: str | None
    problem: str | None = None


def harmony_answer(text: str) -> HarmonyReading | None:
    """The answer of a raw harmony text; None when ``text`` is not in the harmony format."""
    if not _OPENING.match(text):
        return None
    finals: list[str] = []
    last_end = 0
    open_channel: str | None = None
    for message in _MESSAGE.finditer(text):
        if message.group("channel").lower() == "final":
            finals.append(message.group("content"))
        open_channel = message.group("channel") if not message.group("end") else None
        last_end = message.end()
    if finals:
        answer = _LEFTOVER.sub("", finals[-1]).strip()
        return HarmonyReading(answer, None) if answer else HarmonyReading(None, "empty answer")
    if open_channel is not None:
        return HarmonyReading(
            None,
            f"the {open_channel} channel never ended: the answer never came (cut off by the token budget?)",
        )
    rest = _LEFTOVER.sub("", text[last_end:]).strip()  # llama.cpp: the answer after the analysis' <|end|>
    if not rest:
        return HarmonyReading(None, "no final channel: only the analysis came back")
    return HarmonyReading(rest)
