"""Typed tool calls, dialogue messages, actions and samples: the vocabulary of the whole project.

A training sample is the paper's triple (T, c_t, a*_t): the tools available at step t, the dialogue
context up to the last user (or tool) message, and the reference action of that step.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from toolcall.canonical import canonical_json, text_hash
from toolcall.specs import ToolSpec, tools_json

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    """One function invocation: a name and its JSON arguments."""

    model_config = ConfigDict(frozen=True)

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One dialogue turn. ``tool_calls`` only on assistant turns; ``name`` names the tool on tool turns."""

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    name: str | None = None


class Action(BaseModel):
    """One assistant step a_t: tool calls, or a plain-text answer when no call is right.

    ``ordered`` marks calls that must be made in this order (sequential dependence); otherwise
    parallel calls are compared as a multiset.
    """

    model_config = ConfigDict(frozen=True)

    calls: list[ToolCall] = Field(default_factory=list)
    text: str | None = None
    ordered: bool = False

    @property
    def is_call(self) -> bool:
        return bool(self.calls)


class Sample(BaseModel):
    """A training sample (T, c_t, a*_t), and the time of its conversation when the source gives one.

    ``conversation_time`` fills the prompts' "current time" (relative dates such as "tomorrow" are
    read against it); None means the run's configured default. It is context, not content: the
    content hash leaves it out, so a sample's identity does not change with it.
    """

    model_config = ConfigDict(frozen=True)

    tools: list[ToolSpec]
    messages: list[Message]
    label: Action
    conversation_time: str | None = None

    def content_hash(self) -> str:
        """Hash over tools, context and label: equal samples hash equal (exact dedup)."""
        return self._hash_with_tools({"label", "messages"})

    def context_hash(self) -> str:
        """Hash over tools and context only: the identity of the question, whatever its label."""
        return self._hash_with_tools({"messages"})

    def _hash_with_tools(self, fields: set[str]) -> str:
        """``content_hash`` of the dump of ``fields`` and the tools, with the tools' JSON made once per
        tool list (:func:`tools_json`): "tools" sorts after the other fields, so it closes the object."""
        rest = canonical_json(self.model_dump(mode="json", include=fields))
        return text_hash(rest[:-1] + ',"tools":' + tools_json(self.tools) + "}")
