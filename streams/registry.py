"""The stage registry: every part of the loop by name, with the constructor that builds it from settings.

Each stage module registers its class (:func:`register`) with a ``from_settings(settings, clients)``
classmethod: ``settings`` are the run's settings (:class:`StageSettings`), ``clients`` what the app
builds for the stages at the edges (:class:`StageClients`: the policy's inference backend, the LLM
roles, the event log). The worker, the demo, the serial loop, the benchmarks and the tests all take
their stages from here, so adding a stage is one module and one line in :data:`STAGE_MODULES`.
Registering a name twice is refused.

Two kinds are registered: a ``stage`` is a :class:`~streams.stage.Stage` (a batch of input events in,
output events out; the bus runs it in a consumer group), a ``service`` is a singleton with its own loop
over the log (curate: it must see every partition to close a round).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncGenerator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from evaluation.config import EvalSettings
from evaluation.gate import PromoteSettings
from inference.base import InferenceBackend
from schemas.events import Event
from streams.config import LoopSettings, PolicySettings
from streams.roles import Generator, JudgeClient, JudgePanel, Verifier

# Modules whose import registers the stages, in pipeline order (the order ``names()`` returns).
STAGE_MODULES = (
    "streams.probe",
    "streams.judge",
    "streams.relabel",
    "streams.expand",
    "streams.verify",
    "streams.curate",
    "streams.evaluate",
    "streams.promote",
)


class StageSettings(Protocol):
    """What the stages read of the app's settings (``looptool.config.Settings`` satisfies it)."""

    @property
    def run_id(self) -> str: ...

    @property
    def loop(self) -> LoopSettings: ...

    @property
    def policy(self) -> PolicySettings: ...

    @property
    def eval(self) -> EvalSettings: ...

    @property
    def promote(self) -> PromoteSettings: ...


class EventSink(Protocol):
    async def send_all(self, events: Sequence[Event[Any]]) -> object: ...


class EventLog(Protocol):
    """A run's topics as the stages' services see them (the bus implements it on Kafka).

    ``follow`` reads from offset 0 and keeps following, yielding an empty batch whenever it is
    caught up; ``replay`` reads up to the ends at call time and stops.
    """

    @property
    def run_id(self) -> str: ...

    def follow(self, topics: Sequence[str]) -> AsyncGenerator[list[Event[Any]], None]: ...

    def replay(self, topics: Sequence[str]) -> AsyncGenerator[list[Event[Any]], None]: ...

    def publisher(self) -> AbstractAsyncContextManager[EventSink]: ...


class StageClients(Protocol):
    """What the app builds for the stages at the edges: models, LLM roles, the event log."""

    def policy_backend(self) -> InferenceBackend: ...

    def judge(self) -> JudgeClient: ...

    def judge_panel(self) -> JudgePanel:
        """Every judge and how their votes combine (a panel of one unless configured)."""
        ...

    def generator(self) -> Generator: ...

    def verifier(self) -> Verifier: ...

    def event_log(self) -> EventLog | None:
        """The run's log (None for in-process runs that feed the stages themselves)."""
        ...


class Registered(Protocol):
    name: ClassVar[str]

    @classmethod
    def from_settings(cls, settings: StageSettings, clients: StageClients) -> Any: ...


@dataclass(frozen=True)
class Entry:
    name: str
    kind: Literal["stage", "service"]
    factory: type[Registered]
    doc: str
    in_loop: bool  # run by the worker by default (evaluate is asked for explicitly)


_ENTRIES: dict[str, Entry] = {}


def register(kind: Literal["stage", "service"] = "stage", *, in_loop: bool = True) -> Any:
    """Class decorator: register a stage (or service) under its ``name``; a name is taken once."""

    def add(cls: type[Registered]) -> type[Registered]:
        name = cls.name
        if name in _ENTRIES:
            raise ValueError(f"stage {name!r} is already registered by {_ENTRIES[name].factory.__module__}")
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        _ENTRIES[name] = Entry(name, kind, cls, doc, in_loop)
        return cls

    return add


def _load() -> None:
    for module in STAGE_MODULES:
        importlib.import_module(module)


def entries() -> list[Entry]:
    """Every registered stage and service, in pipeline order."""
    _load()
    order = {module: index for index, module in enumerate(STAGE_MODULES)}
    return sorted(_ENTRIES.values(), key=lambda e: order.get(e.factory.__module__, len(order)))


def names(kind: Literal["stage", "service"] | None = None) -> tuple[str, ...]:
    return tuple(e.name for e in entries() if kind is None or e.kind == kind)


def loop_names() -> tuple[str, ...]:
    """The stages and services the worker runs by default: the loop itself."""
    return tuple(e.name for e in entries() if e.in_loop)


def entry(name: str) -> Entry:
    _load()
    if name not in _ENTRIES:
        raise ValueError(f"unknown stage {name!r}; known: {', '.join(names())}")
    return _ENTRIES[name]


def build(name: str, settings: StageSettings, clients: StageClients) -> Any:
    """The stage (or service) ``name`` for these settings, its dependencies taken from ``clients``."""
    return entry(name).factory.from_settings(settings, clients)
