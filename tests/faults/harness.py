"""A loop run as real services on its own embedded broker, watched from the topics, with faults on demand.

Each :class:`LoopRun` owns a Tansu broker, so runs can share one run id: curate seeds its draws with
the run id (``seeded_rng(run_id, "curate", round)``), hence two runs are comparable only when they use
the same run id and are fed the same SampleAdded events (same event ids). Services are the real
``looptool worker`` / ``looptool train`` commands in child processes (:class:`looptool.supervisor.Service`),
each stage in its own process so one can be SIGKILLed and started again alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.broker import EmbeddedBroker
from bus.kafka import EventProducer, ensure_topics, follow, replay, run_log
from looptool.config import Settings, write_config
from looptool.supervisor import BrokerProcess, Service
from schemas.events import CheckpointPublished, Event, Producer, SampleAdded, make_event
from streams.curate import CurationPolicy, open_first_round

RUN_ID = "faults"
STAGES = ("probe", "judge", "relabel", "expand", "verify", "curate")
# The topics a round's work goes through, and the checkpoints.
WATCHED_TOPICS = (
    "samples",
    "curated",
    "rounds",
    "probes",
    "verdicts",
    "labels",
    "candidates",
    "verifications",
    "deadletter",
    "checkpoints",
)
# What each stage publishes (where its progress shows).
OUTPUT_TOPIC = {
    "probe": "probes",
    "judge": "verdicts",
    "relabel": "labels",
    "expand": "candidates",
    "verify": "verifications",
    "curate": "rounds",
}
TOPIC_OF_TYPE = {
    "SampleAdded": "samples",
    "CuratedSample": "curated",
    "RoundClosed": "rounds",
    "ProbeResult": "probes",
    "Verdict": "verdicts",
    "LabelCorrected": "labels",
    "ExpansionCandidate": "candidates",
    "VerificationResult": "verifications",
    "DeadLetter": "deadletter",
    "CheckpointPublished": "checkpoints",
}


def hand_checkpoint(run_id: str, policy: Path) -> Event[CheckpointPublished]:
    """Round 1's final checkpoint, published by hand (the stage-kill runs have no trainer)."""
    return make_event(
        CheckpointPublished(
            new_checkpoint_id="ckpt-r1", round=1, step=1, final=True, uri=str(policy), backend="test"
        ),
        run_id=run_id,
        producer=Producer(stage="test", version="0"),
    )


@dataclass
class Kill:
    """One SIGKILL: which service, when (seconds into the run), what its output topic held then."""

    service: str
    at_s: float
    output_at_kill: int
    restarted: bool = True


@dataclass
class Trigger:
    """Kill ``service`` once ``topic`` holds ``threshold`` distinct events (a point mid-round)."""

    service: str
    topic: str
    threshold: int


@dataclass
class Watch:
    """Every record read from the run's topics (redelivered copies included), in arrival order."""

    records: list[Event[Any]] = field(default_factory=list)
    ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, event: Event[Any]) -> None:
        self.records.append(event)
        self.ids[TOPIC_OF_TYPE[event.event_type]].add(event.event_id)

    def distinct(self, topic: str) -> int:
        return len(self.ids.get(topic, ()))

    def first(self) -> dict[str, Event[Any]]:
        """The first copy of every event id."""
        out: dict[str, Event[Any]] = {}
        for event in self.records:
            out.setdefault(event.event_id, event)
        return out

    def copies(self) -> Counter[str]:
        return Counter(event.event_id for event in self.records)

    def closed(self, round_: int) -> Event[Any] | None:
        return next(
            (e for e in self.records if e.event_type == "RoundClosed" and e.payload.round == round_), None
        )


class LoopRun:
    """One run: a broker, a config file, services as child processes, a watcher of the topics."""

    def __init__(
        self,
        settings: Settings,
        workdir: Path,
        extra_config: dict[str, dict[str, Any]] | None = None,
        *,
        broker: EmbeddedBroker | BrokerProcess | None = None,
    ):
        self.workdir = workdir
        # Sections write_config leaves out (it never writes [judge]/[generator]: they may hold keys).
        self.extra_config = extra_config or {}
        self.broker: EmbeddedBroker | BrokerProcess = broker or EmbeddedBroker()
        self.base_settings = settings
        self.settings = settings
        self.config_path = workdir / "looptool.toml"
        self.services: dict[str, Service] = {}
        self.starts: Counter[str] = Counter()
        self.commands: dict[str, list[str]] = {}
        self.watch = Watch()
        self.kills: list[Kill] = []
        self.started = 0.0
        self._follower: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    async def open(self, seeds: Sequence[Event[SampleAdded]]) -> None:
        """Start the broker, create the topics, publish the seeds, open round 1, start watching."""
        await self.start_broker()
        async with EventProducer(self.settings.kafka) as producer:
            await producer.send_all(seeds)
        assert await open_first_round(run_log(self.settings), CurationPolicy.from_settings(self.settings))
        self.started = time.monotonic()
        self.rewatch()

    async def start_broker(self) -> None:
        """Start the broker, write the services' config file, create the topics."""
        bootstrap = await asyncio.to_thread(self.broker.start)
        kafka = self.base_settings.kafka.model_copy(update={"bootstrap_servers": bootstrap})
        self.settings = self.base_settings.model_copy(update={"kafka": kafka})
        write_config(self.settings, self.config_path)
        with self.config_path.open("a", encoding="utf-8") as config:
            for section, values in self.extra_config.items():
                config.write(f"\n[{section}]\n")
                config.writelines(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
        await ensure_topics(self.settings.kafka, self.settings.run_id)

    def rewatch(self) -> None:
        """Watch the topics from offset 0 with a new watcher (after a broker restart: the restored log)."""
        if self._follower is not None and not self._follower.done():
            self._follower.cancel()
        self.watch = Watch()
        self._follower = asyncio.create_task(self._follow())

    async def run_command(self, name: str, args: list[str], timeout_s: float = 300.0) -> Service:
        """Run a one-shot command (``seed``, ``curate --initial``) to its end; returns it (exit code, log)."""
        service = self.start(name, args)
        await self.finish(name, timeout_s)
        return service

    async def finish(self, name: str, timeout_s: float = 300.0) -> Service:
        """Wait for the command ``name`` to exit; it is then no longer a service of the run."""
        service = self.services[name]
        assert service.process is not None
        await asyncio.wait_for(asyncio.to_thread(service.process.wait), timeout_s)
        return self.services.pop(name)

    async def publish(self, events: Sequence[Event[Any]]) -> None:
        async with EventProducer(self.settings.kafka) as producer:
            await producer.send_all(events)

    async def _follow(self) -> None:
        async for batch in follow(self.settings.kafka, self.settings.run_id, WATCHED_TOPICS):
            for delivered in batch:
                self.watch.add(delivered.event)

    def start(self, name: str, args: list[str]) -> Service:
        """Start (or start again) the service ``name``; each start logs to a file of its own."""
        self.starts[name] += 1
        self.commands[name] = args
        service = Service(
            name, args, self.config_path, self.workdir / "logs" / f"{name}-{self.starts[name]}.log"
        )
        service.start()
        self.services[name] = service
        return service

    def start_stage(self, stage: str) -> Service:
        return self.start(stage, ["worker", "--stages", stage])

    def kill(self, name: str, *, restart: Callable[[], Service] | None = None) -> Kill:
        """SIGKILL the service (no chance to commit or flush), then start the same command again."""
        service = self.services[name]
        assert service.process is not None and service.process.poll() is None, f"{name} is not running"
        topic = OUTPUT_TOPIC.get(name, "checkpoints")
        kill = Kill(name, time.monotonic() - self.started, self.watch.distinct(topic))
        service.process.send_signal(signal.SIGKILL)
        service.process.wait()
        self.kills.append(kill)
        if restart is not None:
            restart()
        else:
            self.start(name, self.commands[name])
        return kill

    def check_services(self) -> None:
        """Raise with the log tail of any service that exited on its own."""
        for service in self.services.values():
            service.check()

    async def wait_until(
        self, condition: Callable[[], bool], timeout_s: float, what: str, *, check: bool = True
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self._follower is not None and self._follower.done():
                self._follower.result()
                raise AssertionError("the topic follower stopped")
            if check:
                self.check_services()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout_s:.0f} s waiting for {what}; {self.describe()}"
                )
            await asyncio.sleep(0.2)

    async def drive(
        self,
        until: Callable[[], bool],
        triggers: Sequence[Trigger],
        timeout_s: float,
        what: str,
        *,
        restarts: dict[str, Callable[[], Service]] | None = None,
    ) -> list[Kill]:
        """Wait for ``until``, SIGKILLing (and restarting) each trigger's service when it fires."""
        pending = list(triggers)
        fired: list[Kill] = []

        def step() -> bool:
            for trigger in list(pending):
                if self.watch.distinct(trigger.topic) >= trigger.threshold:
                    pending.remove(trigger)
                    fired.append(self.kill(trigger.service, restart=(restarts or {}).get(trigger.service)))
            return until()

        await self.wait_until(step, timeout_s, what)
        assert not pending, f"the round ended before these kills fired: {pending}; {self.describe()}"
        return fired

    def describe(self) -> str:
        counts = {topic: self.watch.distinct(topic) for topic in WATCHED_TOPICS}
        return f"distinct events per topic: {counts}; kills: {self.kills}"

    def log_tail(self, name: str, lines: int = 40) -> str:
        logs = sorted((self.workdir / "logs").glob(f"{name}-*.log"))
        return "\n".join(f"== {p.name}\n{Service(name, [], self.config_path, p).tail(lines)}" for p in logs)

    def kill_all(self) -> None:
        """SIGKILL every service still running (to end a run fast: how they stop is not under test)."""
        for service in self.services.values():
            if service.process is not None and service.process.poll() is None:
                service.process.kill()
                service.process.wait()

    async def stop_services(self, timeout_s: float = 20.0) -> None:
        """SIGTERM every service at once (SIGKILL after ``timeout_s``): stopping is not under test."""
        await asyncio.gather(*(asyncio.to_thread(s.stop, timeout_s) for s in self.services.values()))

    async def records(self) -> list[Event[Any]]:
        """Every record now in the watched topics (copies included), read afresh up to their ends."""
        found: list[Event[Any]] = []
        async for batch in replay(self.settings.kafka, self.settings.run_id, WATCHED_TOPICS):
            found.extend(delivered.event for delivered in batch)
        return found

    async def close(self) -> None:
        await self.stop_services()
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._follower
        await asyncio.to_thread(self.broker.stop)


def json_log_events(path: Path) -> list[dict[str, Any]]:
    """The structlog JSON lines of a service log (other lines skipped)."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                out.append(record)
    return out
