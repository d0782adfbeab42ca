"""Typed tool (function) specifications with JSON-Schema parameters."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ParamSchema(BaseModel):
    """The JSON-Schema subset tool parameters use: types, enums, defaults, nested objects and arrays."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    type: str | list[str] | None = None
    description: str = ""
    enum: list[Any] | None = None
    default: Any = None
    has_default: bool = False
    properties: dict[str, ParamSchema] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)
    items: ParamSchema | None = None


class ToolSpec(BaseModel):
    """A function definition: name, description and an object schema of its parameters."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: ParamSchema = Field(default_factory=lambda: ParamSchema(type="object"))
