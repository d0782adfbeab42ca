"""What every stream stage is, independent of Kafka: a batch of input events in, output events out.

A stage is a deterministic function of its input events (given its models): output event ids are
derived from input ids and describe *which question* an event answers (e.g. "the verdict on probe
P"), so reprocessing a redelivered input yields the same ids, and every consumer keeps the first
occurrence of an id. That turns at-least-once delivery into exactly-once effects.

The worker (:mod:`bus.worker`) feeds stages from Kafka; tests can call :meth:`Stage.process`
directly. ``process`` never lets one bad input sink the batch: if the batch fails, inputs are retried
one by one and those that still fail become DeadLetter events with the reason. Failures of the
infrastructure a stage depends on (an inference endpoint that is down) are not the input's fault:
:class:`TransientError` propagates, and the worker pauses and retries the whole batch later.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from common.logs import get_logger
from inference.base import InferenceError
from schemas.codec import default_codec
from schemas.events import (
    MAX_EVENT_BYTES,
    DeadLetter,
    Event,
    Producer,
    dead_letter_raw,
    derived_event_id,
    make_event,
)

if TYPE_CHECKING:
    from streams.registry import EventLog

log = get_logger(__name__)


class TransientError(RuntimeError):
    """A dependency is unavailable; retry the same batch later (do not dead-letter).

    ``retry_after_s``: the dependency said when to come back (an endpoint's Retry-After); the worker
    pauses at least that long.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def backend_failure(error: InferenceError, what: str) -> Exception:
    """What a stage raises for its backend's failure: ValueError when the input is at fault (a prompt
    the endpoint or the context refuses: the stage dead-letters that input), else TransientError (an
    outage, auth, config: the batch waits, as nothing in it is to blame). ``what``: who failed."""
    if error.input_fault:
        return ValueError(f"{what} rejected this input: {error}")
    return TransientError(f"{what} unavailable: {error}", retry_after_s=error.retry_after_s)


class UnpublishableOutput(ValueError):
    """A stage built an event the codec cannot encode (e.g. NaN in a model's call arguments)."""


def _publishable(outputs: list[Event[Any]]) -> list[Event[Any]]:
    """The outputs, once each is known to encode within :data:`MAX_EVENT_BYTES`: a send that fails
    would halt the worker on the same batch at every start."""
    codec = default_codec()
    for event in outputs:
        try:
            size = len(codec.encode(event))
        except (ValueError, TypeError, OverflowError) as error:
            raise UnpublishableOutput(f"{event.event_type} cannot be encoded: {error}") from error
        if size > MAX_EVENT_BYTES:  # a runaway endpoint's answer, kept whole in a Verdict
            raise UnpublishableOutput(
                f"{event.event_type} encodes to {size} bytes, over the {MAX_EVENT_BYTES} an event may hold"
            )
    return outputs


class SeenIds:
    """A bounded memory of processed event ids (dedupe of redelivered inputs within a process)."""

    def __init__(self, capacity: int = 200_000):
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


class LogFollower:
    """Follows some of the run's topics from offset 0 in a task of its own, and knows when it has read
    them to their end once. ``log`` None: nothing is followed (the owner feeds it: in-process runs,
    tests). Subclasses say what they keep of each batch (:meth:`take`)."""

    topics: tuple[str, ...] = ()

    def __init__(self, log: EventLog | None):
        self.log = log
        self._caught_up = asyncio.Event()  # the topics were read to their end once
        self._task: asyncio.Task[None] | None = None
        if log is None:
            self._caught_up.set()

    async def take(self, batch: Sequence[Event[Any]]) -> None:
        """Keep what is needed of a batch read from the topics."""
        raise NotImplementedError

    async def start(self) -> None:
        if self.log is not None and self._task is None:
            self._task = asyncio.create_task(self._follow(), name=f"follow-{'-'.join(self.topics)}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        assert self.log is not None
        async for batch in self.log.follow(self.topics):
            await self.take(batch)
            if not batch:  # the follower says so when it has read everything there is
                self._caught_up.set()

    async def caught_up(self) -> None:
        """Until what was published before this start is known (starting the follower if need be).

        A follower that stopped first (its broker restarted, which the worker notices and stops for)
        is a :class:`TransientError`: the batch waits and is retried, never dead-lettered; the next
        try follows the topics again."""
        if self._caught_up.is_set():
            return
        if self._task is not None and self._task.done():
            self._task = None
        await self.start()
        assert self._task is not None
        waiting = asyncio.ensure_future(self._caught_up.wait())
        try:
            await asyncio.wait([waiting, self._task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        if not self._caught_up.is_set():
            error = None if self._task.cancelled() else self._task.exception()
            raise TransientError(
                f"the follower of {', '.join(self.topics)} stopped before it caught up: {error!r}"
            )


class PublishedIds(LogFollower):
    """The ids of the events on some of the run's topics, followed from offset 0 (``log`` None: none).

    For a stage whose outputs are not a function of its inputs alone (an LLM at a temperature, or
    re-asked hotter): an input redelivered after a crash between publishing and committing would be
    answered again, under the same ids but with other content. Views keep the first copy while a
    stage that reads the second acts on it; with this, the stage publishes no second copy.
    """

    def __init__(self, log: EventLog | None, topics: Sequence[str]):
        super().__init__(log)
        self.topics = tuple(topics)
        self.ids: set[str] = set()

    async def take(self, batch: Sequence[Event[Any]]) -> None:
        self.ids.update(event.event_id for event in batch)


class Stage(ABC):
    """Base of every stage. Subclasses set the class variables and implement :meth:`handle`."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    input_topics: ClassVar[tuple[str, ...]]
    # Event types this stage acts on; others on its input topics are skipped.
    input_types: ClassVar[tuple[str, ...]]

    batch_size: int = 16  # the batch the stage asks for; the worker grows it while that pays
    batch_within_s: float = 0.5  # the longest a batch's first event waits for the batch to fill
    max_batch_size: int | None = None  # a bound on the worker's batches (None: a multiple of batch_size)
    # Where the worker's batches start (None: batch_size). An endpoint-bound stage starts at about a
    # server's concurrency: each batch costs a round trip of seconds, so ramping up from a small
    # batch costs whole round trips (a batch still goes as soon as its input pauses).
    first_batch_size: int | None = None

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.seen = SeenIds()

    @property
    def producer(self) -> Producer:
        return Producer(stage=self.name, version=self.version)

    async def start(self) -> None:
        """Load models, open clients, start watchers. Called once before the first batch."""

    async def close(self) -> None:
        """Release what :meth:`start` acquired."""

    @abstractmethod
    async def handle(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        """Process a batch of (deduplicated, relevant) input events; return the events to publish."""

    def relevant(self, event: Event[Any]) -> bool:
        return event.event_type in self.input_types and event.run_id == self.run_id

    async def process(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        """Dedupe, filter, handle; isolate poison inputs into DeadLetter events."""
        fresh = []
        for event in events:
            if event.event_id in self.seen or not self.relevant(event):
                continue
            fresh.append(event)
        if not fresh:
            return []
        try:
            outputs = _publishable(await self.handle(fresh))
        except TransientError:
            raise
        except Exception as batch_error:  # isolate the culprit(s) one by one
            log.warning("stage.batch_failed", stage=self.name, size=len(fresh), error=repr(batch_error))
            outputs = []
            for event in fresh:
                try:
                    outputs.extend(_publishable(await self.handle([event])))
                except TransientError:
                    raise
                except Exception as error:
                    outputs.append(self.dead_letter(event, error))
        for event in fresh:
            self.seen.add(event.event_id)
        return outputs

    def dead_letter(
        self, event: Event[Any], error: Exception, reason: str | None = None
    ) -> Event[DeadLetter]:
        log.error("stage.dead_letter", stage=self.name, event_id=event.event_id, error=repr(error))
        raw, note = dead_letter_raw(default_codec().encode(event))
        why = reason or f"{type(error).__name__}: {error}"
        return make_event(
            DeadLetter(
                stage=self.name,
                reason=why + note,
                error_type=type(error).__name__,
                source_ref=event.event_id,
                key=event.key.encode("utf-8"),
                raw=raw,
            ),
            run_id=self.run_id,
            producer=self.producer,
            parent_ids=[event.event_id],
            checkpoint_id=event.checkpoint_id,
            # The same input failing the same way again (redelivered after a crash between publishing
            # and committing) gets the same letter, not one more; a release or a reason that differs
            # (a redriven event failing anew) is a new fact and gets its own.
            event_id=derived_event_id([event.event_id], self.name, f"failed:{self.version}:{why}"),
        )
