"""Benchmark: what the streaming pipeline adds on top of the model, per stage and per sample.

1. Records the real greedy outputs of a policy on the prompts of a round D_1 to a JSON-lines file,
   timing the model (the transformers backend, batched as the probe batches). ``--policy initial``
   (the default) records the demo's untrained initial policy (:func:`looptool.demo.build_initial_policy`),
   which gets almost every prompt wrong; ``--policy warm-start`` records the demo's cached warm start,
   the policy that probes the demo's D_1 (with ``--scale full``: the demo's own). A sample makes
   downstream events only when it is mismatched, so the overhead per sample follows the policy.
2. Plain loop: the same outputs handed over to the stages' logic called directly, in one process,
   no broker, no codec: ``probe_result`` per member, then the judge, relabel, expand and verify
   stages' ``handle`` (the world's simulated judge, generator and verifier), then curation of D_2.
3. Pipeline, one stage at a time: each stage as a faust agent on the embedded broker, exactly as
   ``looptool worker`` runs it (one app per stage, Avro on the wire, ``take_events`` batching, outputs
   acknowledged before inputs), the probe driven by the recorded outputs through a replaying
   :class:`~inference.base.InferenceBackend`. Timed from the moment the stage's consumer holds its
   partitions (its inputs already on the topics) until it has acknowledged every input; its outputs
   are then read back and checked equal to the plain loop's. Curate is timed as a cold
   ``CurateService`` (fold of the topics from offset 0, then D_2).
4. Pipeline, all at once: every stage and the curator running together from the round's checkpoint
   until D_2 is closed (the latency a round's evolution takes once its checkpoint exists).

Before each timed section the heap is settled as a service's start-up settles it
(:func:`common.runtime.tune_gc`): what the benchmark built so far (its world, the recording, earlier
sections' results) is frozen out of the collector's sight, so a collection of the older generation
that falls inside a section does not walk the benchmark's own fixtures (0.3 s of a 2-second section
before this).

Prints events/s per stage and the overhead the pipeline adds per sample of D_1, as a fraction of
the model's own time per sample; writes ``benchmarks/results/pipeline_overhead.json``.

    .venv/bin/python -m benchmarks.pipeline_overhead [--samples 96] [--scale quick] [--policy initial]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.harness import (
    ROOT,
    finish_machine_info,
    machine_info,
    quiet_logs,
    results_path,
    set_torch_threads,
    wide_console,
    write_results,
)
from bus.kafka import EventProducer, ensure_topics, replay, run_log
from bus.worker import StageRunner, started_stages
from common.runtime import tune_gc
from inference.base import Chat, Generation, SamplingConfig
from looptool.config import Settings, load_settings
from schemas.events import CheckpointPublished, Event, Producer, make_event
from streams.stage import Stage

RESULTS = results_path("pipeline_overhead")
DEFAULT_OUTPUTS = ROOT / "data" / "bench" / "probe_outputs.jsonl"
BENCH_PRODUCER = Producer(stage="bench", version="1")
STAGE_ORDER = ("probe", "judge", "relabel", "expand", "verify")


async def wait_assigned(runners: Sequence[StageRunner], timeout_s: float = 60.0) -> float:
    """Wait until every runner's consumer holds partitions (the group join is over); returns the time."""
    deadline = time.monotonic() + timeout_s
    while not all(runner.app.consumer.assignment() for runner in runners):
        if time.monotonic() > deadline:
            raise TimeoutError("the stages' consumers got no partitions")
        await asyncio.sleep(0.005)
    return time.perf_counter()


async def wait_processed(runner: StageRunner, records: int, timeout_s: float = 600.0) -> float:
    """Wait until ``runner`` acknowledged ``records`` inputs (their outputs are acknowledged before)."""
    deadline = time.monotonic() + timeout_s
    while runner.processed < records:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{runner.stage.name}: {runner.processed}/{records} records after {timeout_s}s"
            )
        await asyncio.sleep(0.002)
    return time.perf_counter()


async def read_topics(settings: Settings, topics: Sequence[str]) -> list[Event[Any]]:
    events: list[Event[Any]] = []
    async for batch in replay(settings.kafka, settings.run_id, topics):
        events.extend(delivered.event for delivered in batch)
    return events


def checkpoint_event(run_id: str, uri: str, checkpoint_id: str = "bench-r1") -> Event[CheckpointPublished]:
    return make_event(
        CheckpointPublished(
            new_checkpoint_id=checkpoint_id, round=1, step=1, final=True, uri=uri, backend="bench"
        ),
        run_id=run_id,
        producer=BENCH_PRODUCER,
    )


@dataclass
class RoundOne:
    """A world, its seed pool and D_1 of a given size, as the demo would open it."""

    settings: Settings
    world: Any
    seed_set: Any
    seeds: list[Event[Any]]
    opened: list[Event[Any]]  # D_1's CuratedSample events, then its RoundClosed (and any refusals)
    policy: Any

    @property
    def members(self) -> list[Event[Any]]:
        return [e for e in self.opened if e.event_type == "CuratedSample"]

    def for_run(self, run_id: str) -> RoundOne:
        """The same seeds and D_1 under another run id (another topic namespace)."""
        from streams.curate import Ledger, initial_round_events
        from world.seed import seed_events

        settings = self.settings.model_copy(update={"run_id": run_id})
        seeds = seed_events(self.seed_set, run_id)
        ledger = Ledger()
        for event in seeds:
            ledger.add(event)
        opened = initial_round_events(ledger, self.policy, run_id)
        return RoundOne(settings, self.world, self.seed_set, seeds, opened, self.policy)


async def round_one(settings: Settings, scale: Any, samples: int, seed: int = 0) -> RoundOne:
    """Seeds from the synthetic world (enough for ``samples`` members) and D_1 of that size."""
    from streams.curate import CurationPolicy
    from world import World
    from world.seed import build_seed_set

    settings = settings.model_copy(
        update={"loop": settings.loop.model_copy(update={"target_size": samples, "rounds": 2})}
    )
    world = World(seed)
    # A dialogue gives ~1.3 samples, some are duplicates: ask for one dialogue per wanted sample.
    seed_set = await build_seed_set(world, max(scale.dialogues, samples), noise_rate=0.2)
    if len(seed_set.samples) < samples:
        raise ValueError(f"the world gave {len(seed_set.samples)} seed samples, fewer than {samples}")
    draft = RoundOne(settings, world, seed_set, [], [], CurationPolicy.from_settings(settings))
    return draft.for_run(settings.run_id)


def bench_settings(run_id: str, bootstrap: str | None, scale: Any, work: Path, seed: int = 0) -> Settings:
    """The demo's settings (world, loop, policy batch and length) for a benchmark run."""
    from looptool.demo import demo_settings

    kafka = {"bootstrap_servers": bootstrap} if bootstrap else {}
    return demo_settings(load_settings(None, run_id=run_id, kafka=kafka), work, scale, seed)


def build_policy(world: Any, seed_set: Any, folder: Path, scale: Any, seed: int) -> Path:
    """The demo's initial policy (a tiny Qwen2 with the world's tokenizer), built once per folder."""
    from looptool.demo import build_initial_policy

    if (folder / "config.json").is_file():
        return folder
    return build_initial_policy(world, seed_set.samples, folder, scale, seed)


POLICIES = ("initial", "warm-start")


async def recorded_policy(r1: RoundOne, folder: Path, scale: Any, seed: int, policy: str) -> Path:
    """The policy whose outputs are recorded: the demo's untrained ``initial`` policy, or its
    ``warm-start``, the policy that probes the demo's D_1 (from the demo's cache, built there the
    first time)."""
    if policy == "warm-start":
        from looptool.demo import WARM_START_CACHE
        from looptool.warm_start import cached_warm_start

        warm = await cached_warm_start(
            r1.world,
            r1.seed_set,
            scale.warm_start,
            cache_dir=ROOT / WARM_START_CACHE,
            seed=seed,
            noise_rate=0.2,
        )
        return Path(warm.model)
    return build_policy(r1.world, r1.seed_set, folder, scale, seed)


def chat_key(chat: Chat) -> str:
    return hashlib.sha256(json.dumps(chat, sort_keys=True).encode("utf-8")).hexdigest()


def wire_chats(members: Sequence[Event[Any]], current_time: str) -> list[Chat]:
    """The probe prompts of ``members`` as a worker builds them, from the events after an Avro round
    trip: exactly the prompts the probe stage will ask the recorded backend for."""
    from schemas.codec import default_codec
    from toolcall.prompts import build_chat

    codec = default_codec()
    decoded = [codec.decode(codec.encode(member)) for member in members]
    return [build_chat(m.payload.tools, m.payload.messages, current_time) for m in decoded]


# --- recorded model outputs ---------------------------------------------------------------------------


@dataclass
class Recording:
    """Real outputs of a model on a set of prompts, and how long the model took to produce them."""

    outputs: dict[str, Generation]
    model_s: float
    batch_size: int
    max_new_tokens: int
    model: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return sum(len(g.token_ids) for g in self.outputs.values())

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "model": self.model,
            "model_s": self.model_s,
            "batch_size": self.batch_size,
            "max_new_tokens": self.max_new_tokens,
            "prompts": len(self.outputs),
            **self.meta,
        }
        lines = [json.dumps(header)]
        for key, g in self.outputs.items():
            lines.append(
                json.dumps(
                    {
                        "key": key,
                        "text": g.text,
                        "token_ids": g.token_ids,
                        "token_logprobs": g.token_logprobs,
                        "finish_reason": g.finish_reason,
                    }
                )
            )
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> Recording:
        header, *rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line)
        outputs = {
            row["key"]: Generation(
                text=row["text"],
                token_ids=row["token_ids"],
                token_logprobs=row["token_logprobs"],
                finish_reason=row["finish_reason"],
            )
            for row in rows
        }
        meta = {
            k: v for k, v in header.items() if k not in ("model", "model_s", "batch_size", "max_new_tokens")
        }
        return cls(
            outputs, header["model_s"], header["batch_size"], header["max_new_tokens"], header["model"], meta
        )


async def record_outputs(
    model: Path, chats: Sequence[Chat], *, batch_size: int, max_new_tokens: int
) -> Recording:
    """Greedy outputs of the policy on ``chats`` with the probe's sampling, and the model's time."""
    from inference.transformers_backend import TransformersBackend

    backend = TransformersBackend(str(model), "recorded", batch_size=batch_size)
    sampling = SamplingConfig(greedy=True, max_tokens=max_new_tokens)
    await backend.generate(list(chats[:1]), sampling)  # first-call warm-up, outside the timing
    started = time.perf_counter()
    generations = await backend.generate(list(chats), sampling)
    model_s = time.perf_counter() - started
    await backend.close()
    outputs = {chat_key(chat): options[0] for chat, options in zip(chats, generations, strict=True)}
    return Recording(outputs, model_s, batch_size, max_new_tokens, str(model))


class RecordedBackend:
    """An :class:`~inference.base.InferenceBackend` that answers each prompt with its recorded output."""

    name = "recorded"

    def __init__(self, recording: Recording, model_id: str = "recorded"):
        self.recording = recording
        self._model_id = model_id

    @property
    def model_id(self) -> str:
        return self._model_id

    async def generate(self, prompts: Sequence[Chat], sampling: SamplingConfig) -> list[list[Generation]]:
        try:
            return [[self.recording.outputs[chat_key(chat)]] * sampling.n for chat in prompts]
        except KeyError:
            raise ValueError("a prompt has no recorded output (record again without --reuse)") from None

    async def score(self, prompts: Sequence[Chat], continuations: Sequence[str]) -> list[list[float]]:
        raise NotImplementedError("recorded outputs carry no teacher-forced scores")

    async def load(self, model_path: str, model_id: str) -> None:
        self._model_id = model_id

    async def close(self) -> None:
        return None


# --- the stages -----------------------------------------------------------------------------------------


def make_stages(r1: RoundOne, backend: Any) -> dict[str, Stage]:
    """The worker's stage objects for this run, with the world's simulated judge/generator/verifier."""
    from schemas.events import Scenario
    from streams.expand import ExpandStage
    from streams.judge import JudgeStage
    from streams.probe import CheckpointWatcher, ProbeStage
    from streams.relabel import RelabelStage
    from streams.verify import VerifyStage
    from toolcall.prompts import DEFAULT_SCENARIOS
    from world.simulation import SimulatedWorldGenerator, SimulatedWorldJudge, SimulatedWorldVerifier

    s = r1.settings
    world_settings = s.world
    assert world_settings is not None
    return {
        "probe": ProbeStage(
            s.run_id,
            backend,
            CheckpointWatcher(run_log(s) if s.kafka.bootstrap_servers else None, s.run_id),
            mode="final",
            current_time=s.loop.current_time,
            max_new_tokens=s.policy.max_new_tokens,
            batch_size=s.policy.batch_size,
        ),
        "judge": JudgeStage(s.run_id, SimulatedWorldJudge(r1.world, world_settings.judge_error_rate)),
        "relabel": RelabelStage(s.run_id),
        "expand": ExpandStage(
            s.run_id,
            SimulatedWorldGenerator(r1.world, world_settings.generator_defect_rate),
            [Scenario(**scenario) for scenario in DEFAULT_SCENARIOS],
            k=s.loop.expansions_per_seed,
        ),
        "verify": VerifyStage(s.run_id, SimulatedWorldVerifier(r1.world, world_settings.verifier_error_rate)),
    }


@dataclass
class PlainRun:
    seconds: dict[str, float]
    acted_on: dict[str, int]  # inputs each stage acts on (the relevant ones)
    outputs: dict[str, list[Event[Any]]]
    d2: list[Event[Any]]


async def plain_loop(r1: RoundOne, recording: Recording, checkpoint: Event[CheckpointPublished]) -> PlainRun:
    """Round 1's evolution with the stages' logic called directly (no broker, codec or batching).

    Each stage gets its inputs as a worker would see them, decoded from Avro outside the timing,
    so that its outputs can be compared with the pipeline's field by field.
    """
    from schemas.codec import default_codec
    from streams.curate import Ledger, next_round_events
    from streams.expand import ERROR_SEED_VERDICTS
    from streams.probe import probe_result
    from toolcall.prompts import build_chat

    codec = default_codec()

    def decoded(events: Sequence[Event[Any]]) -> list[Event[Any]]:
        return [codec.decode(codec.encode(event)) for event in events]

    stages = make_stages(r1, RecordedBackend(recording))
    current_time = r1.settings.loop.current_time
    members = decoded(r1.members)
    # The outputs are handed over in member order; looking them up is not the stages' work.
    handed = [recording.outputs[chat_key(chat)] for chat in wire_chats(members, current_time)]
    seconds: dict[str, float] = {}
    outputs: dict[str, list[Event[Any]]] = {}
    acted_on: dict[str, int] = {}

    tune_gc()
    started = time.perf_counter()
    probes = []
    for member, generation in zip(members, handed, strict=True):
        build_chat(member.payload.tools, member.payload.messages, current_time)  # the prompt it answers
        probes.append(
            probe_result(
                member, checkpoint, generation.text, generation.token_logprobs, high_ppl_threshold=None
            )
        )
    seconds["probe"], outputs["probe"], acted_on["probe"] = (
        time.perf_counter() - started,
        probes,
        len(members),
    )

    async def run(name: str, inputs: list[Event[Any]]) -> list[Event[Any]]:
        inputs = decoded(inputs)
        tune_gc()
        started = time.perf_counter()
        produced = await stages[name].handle(inputs)
        seconds[name], outputs[name], acted_on[name] = time.perf_counter() - started, produced, len(inputs)
        return produced

    judged = await run("judge", [p for p in probes if not p.payload.matched])
    verdicts = [e for e in judged if e.event_type == "Verdict"]
    corrections = await run("relabel", verdicts)
    candidates = await run("expand", [v for v in verdicts if v.payload.verdict in ERROR_SEED_VERDICTS])
    verified = await run("verify", candidates)

    everything = decoded(
        [*r1.seeds, *r1.opened, checkpoint, *probes, *judged, *corrections, *candidates, *verified]
    )
    tune_gc()
    started = time.perf_counter()
    ledger = Ledger()
    for event in everything:
        ledger.add(event)
    d2 = next_round_events(ledger, r1.policy, r1.settings.run_id)
    seconds["curate"], acted_on["curate"] = time.perf_counter() - started, len(everything)
    outputs["curate"] = d2
    if not any(e.event_type == "RoundClosed" for e in d2):
        raise RuntimeError(f"the plain loop did not close D_2: {ledger.status(1)}")
    return PlainRun(seconds, acted_on, outputs, d2)


def time_process(stage: Stage) -> list[float]:
    """Seconds of each ``stage.process`` call from now on (the runner calls it once per batch)."""
    spent: list[float] = []
    original = stage.process

    async def timed(events: Sequence[Event[Any]]) -> list[Event[Any]]:
        started = time.perf_counter()
        try:
            return await original(events)
        finally:
            spent.append(time.perf_counter() - started)

    stage.process = timed  # type: ignore[method-assign]
    return spent


def _comparable(event: Event[Any]) -> tuple[str, str, str]:
    """What must agree between the plain loop and the pipeline: ids (derived from the inputs), types
    and payloads (timestamps in the envelope differ)."""
    from toolcall.canonical import canonical_json

    return (event.event_id, event.event_type, canonical_json(event.payload.model_dump(mode="json")))


async def pipeline_by_stage(
    r1: RoundOne,
    recording: Recording,
    plain: PlainRun,
    checkpoint: Event[CheckpointPublished],
    console: Console,
) -> tuple[dict[str, float], dict[str, bool], dict[str, tuple[int, float]]]:
    """Each stage alone on the broker, in the loop's order; returns seconds, equality, and batches
    and seconds spent inside ``stage.process``.

    Same run, events and checkpoint as the plain loop, so both must produce the same outputs.
    """
    from streams.curate import CurateService

    settings = r1.settings
    await ensure_topics(settings.kafka, settings.run_id)
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all([*r1.seeds, *r1.opened, checkpoint])
    stages = make_stages(r1, RecordedBackend(recording))
    seconds: dict[str, float] = {}
    equal: dict[str, bool] = {}
    in_process: dict[str, tuple[int, float]] = {}  # batches, seconds inside stage.process
    output_topics = {
        "probe": ("probes",),
        "judge": ("verdicts", "deadletter"),
        "relabel": ("labels",),
        "expand": ("candidates",),
        "verify": ("verifications", "samples"),
    }
    seen: set[str] = {e.event_id for e in [*r1.seeds, *r1.opened, checkpoint]}
    batch_sizes: dict[str, list[int]] = {}
    for name in STAGE_ORDER:
        stage = stages[name]
        records = len(await read_topics(settings, stage.input_topics))
        spent = time_process(stage)
        tune_gc()
        async with started_stages(settings, [stage]) as (runner,):
            started = await wait_assigned([runner])
            seconds[name] = await wait_processed(runner, records) - started
            batch_sizes[name] = list(runner.batch_sizes)
        in_process[name] = (len(spent), sum(spent))
        produced = [e for e in await read_topics(settings, output_topics[name]) if e.event_id not in seen]
        seen.update(e.event_id for e in produced)
        # The stage's own outputs (dead letters of other stages share a topic; none are expected).
        produced = [e for e in produced if e.producer.stage == stage.name]
        mine, theirs = set(map(_comparable, produced)), set(map(_comparable, plain.outputs[name]))
        equal[name] = mine == theirs and len(produced) == len(plain.outputs[name])
        if not equal[name]:
            differing = sorted(mine ^ theirs)[:2]
            console.print(f"  [red]{name}: {len(produced)} outputs vs {len(plain.outputs[name])} plain[/]")
            for item in differing:
                console.print(
                    f"    {'pipeline' if item in mine else 'plain'} only: {item[:2]} {item[2][:600]}"
                )
        console.print(
            f"  {name}: {records} records in {seconds[name]:.2f} s, outputs equal: {equal[name]}, "
            f"batches {batch_sizes[name]}"
        )

    service = CurateService(run_log(settings), r1.policy)
    stop = asyncio.Event()
    tune_gc()
    started = time.perf_counter()
    task = asyncio.create_task(service.run(stop))
    while 2 not in service.emitted_rounds:
        if task.done():
            task.result()
            raise RuntimeError("the curate service stopped before closing D_2")
        await asyncio.sleep(0.002)
    seconds["curate"] = time.perf_counter() - started
    stop.set()
    await task
    d2 = [e for e in await read_topics(settings, ("rounds",)) if e.payload.round == 2]
    equal["curate"] = [e.payload.content_hash for e in d2] == [
        e.payload.content_hash for e in plain.d2 if e.event_type == "RoundClosed"
    ]
    console.print(
        f"  curate: D_2 in {seconds['curate']:.2f} s (cold start), manifest equal: {equal['curate']}"
    )
    return seconds, equal, in_process


async def pipeline_together(r1: RoundOne, recording: Recording, console: Console | None = None) -> float:
    """Every stage and the curator at once: seconds from the round's checkpoint to D_2's manifest."""
    from streams.curate import CurateService

    console = console or wide_console()
    settings = r1.settings
    await ensure_topics(settings.kafka, settings.run_id)
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all([*r1.seeds, *r1.opened])
    stages = make_stages(r1, RecordedBackend(recording))
    service = CurateService(run_log(settings), r1.policy)
    stop = asyncio.Event()
    tune_gc()
    curate = asyncio.create_task(service.run(stop))
    try:
        async with started_stages(settings, [stages[name] for name in STAGE_ORDER]) as runners:
            try:
                await wait_assigned(runners, timeout_s=30.0)
            except TimeoutError:
                # A group rebalancing (heartbeats late on busy cores) can hold its partitions while the
                # probe holds a batch that waits for this checkpoint: send it anyway (the rebalance's
                # time is then in the figure).
                console.print(
                    "  [yellow]not every stage held partitions after 30 s; sending the checkpoint[/]"
                )
            # The probe now waits for round 1's checkpoint, as it does while the trainer trains.
            async with EventProducer(settings.kafka) as producer:
                started = time.perf_counter()
                await producer.send_all([checkpoint_event(settings.run_id, "recorded")])
            while 2 not in service.emitted_rounds:
                if curate.done():
                    curate.result()
                    raise RuntimeError("the curate service stopped before closing D_2")
                await asyncio.sleep(0.002)
            return time.perf_counter() - started
    finally:
        stop.set()
        await curate


# --- the benchmark ---------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from bus.broker import EmbeddedBroker
    from looptool.demo import SCALES

    console = wide_console()
    quiet_logs()
    machine = machine_info()
    machine["torch_threads"] = set_torch_threads(args.threads or None)
    scale = SCALES[args.scale]
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-pipeline-"))
    with EmbeddedBroker() as broker:
        base = bench_settings("bench-po", broker.bootstrap_servers, scale, work, args.seed)
        r1 = await round_one(base, scale, args.samples, args.seed)
        members = r1.members
        # The run of all stages together lives in its own topics; its D_1 draws other seeds.
        r1_together = r1.for_run("bench-po-together")
        chats = list(
            {
                chat_key(chat): chat
                for chat in wire_chats([*members, *r1_together.members], base.loop.current_time)
            }.values()
        )
        if args.reuse and args.outputs.is_file():
            recording = Recording.read(args.outputs)
            console.print(f"reusing {len(recording.outputs)} recorded outputs from {args.outputs}")
        else:
            with console.status(f"the demo's {args.policy} policy…"):
                model = await recorded_policy(r1, work / "policy", scale, args.seed, args.policy)
            with console.status(f"recording the policy's outputs on {len(chats)} prompts…"):
                recording = await record_outputs(
                    model, chats, batch_size=base.policy.batch_size, max_new_tokens=base.policy.max_new_tokens
                )
            recording.meta = {
                "scale": args.scale,
                "policy": args.policy,
                "seed": args.seed,
                "machine": machine["platform"],
                "torch_threads": machine["torch_threads"],
            }
            recording.write(args.outputs)
            console.print(f"recorded {len(chats)} outputs in {recording.model_s:.1f} s → {args.outputs}")
        missing = sum(chat_key(chat) not in recording.outputs for chat in chats)
        if missing:
            raise SystemExit(f"{missing} prompts have no recorded output: run without --reuse")
        n = len(members)
        model_per_sample = recording.model_s / len(recording.outputs)

        checkpoint = checkpoint_event(r1.settings.run_id, "recorded")
        plain = await plain_loop(r1, recording, checkpoint)
        console.print("pipeline, one stage at a time:")
        by_stage, equal, in_process = await pipeline_by_stage(r1, recording, plain, checkpoint, console)
        together = await pipeline_together(r1_together, recording, console)

    stages_out: dict[str, Any] = {}
    for name in (*STAGE_ORDER, "curate"):
        acted = plain.acted_on[name]
        stages_out[name] = {
            "inputs_acted_on": acted,
            "plain_s": plain.seconds[name],
            "pipeline_s": by_stage[name],
            "plain_events_per_s": acted / plain.seconds[name] if plain.seconds[name] else math.inf,
            "pipeline_events_per_s": acted / by_stage[name],
            "overhead_per_sample_ms": (by_stage[name] - plain.seconds[name]) / n * 1000,
            "outputs_equal": equal[name],
        }
        if name in in_process:
            batches, inside = in_process[name]
            stages_out[name].update(batches=batches, in_stage_process_s=inside)
    plain_total = sum(plain.seconds.values())
    stage_total = sum(by_stage.values())
    figures: dict[str, Any] = {
        "machine": finish_machine_info(machine),
        "scale": args.scale,
        "policy": args.policy,
        "samples": n,
        "model": {
            "path": recording.model,
            "batch_size": recording.batch_size,
            "max_new_tokens": recording.max_new_tokens,
            "seconds": recording.model_s,
            "seconds_per_sample": model_per_sample,
            "tokens_per_sample": recording.tokens / len(recording.outputs),
        },
        "stages": stages_out,
        "plain_total_s": plain_total,
        "pipeline_stages_total_s": stage_total,
        "pipeline_together_s": together,
        "overhead_per_sample_ms": (stage_total - plain_total) / n * 1000,
        "overhead_fraction_of_model_time": (stage_total - plain_total) / n / model_per_sample,
        "together_overhead_per_sample_ms": (together - plain_total) / n * 1000,
        "together_overhead_fraction_of_model_time": (together - plain_total) / n / model_per_sample,
    }

    table = Table(
        "stage",
        "inputs",
        "plain ev/s",
        "pipeline ev/s",
        "batches",
        "in process()",
        "overhead / sample",
        "same outputs",
        title=f"pipeline overhead · D_1 of {n} samples · recorded outputs of the {args.scale} policy",
        caption=(
            f"model: {model_per_sample * 1000:.0f} ms per sample (batch {recording.batch_size}, "
            f"{figures['model']['tokens_per_sample']:.0f} tokens) · judge/generator/verifier are simulations"
        ),
    )
    for name, s in stages_out.items():
        table.add_row(
            name,
            str(s["inputs_acted_on"]),
            f"{s['plain_events_per_s']:,.0f}",
            f"{s['pipeline_events_per_s']:,.0f}",
            str(s.get("batches", "")),
            f"{s['in_stage_process_s']:.2f} of {s['pipeline_s']:.2f} s" if "batches" in s else "",
            f"{s['overhead_per_sample_ms']:.1f} ms",
            "yes" if s["outputs_equal"] else "NO",
        )
    table.add_section()
    table.add_row(
        "all (one at a time)",
        str(n),
        f"{n / plain_total:,.0f}",
        f"{n / stage_total:,.0f}",
        "",
        "",
        f"{figures['overhead_per_sample_ms']:.1f} ms",
        f"{figures['overhead_fraction_of_model_time']:.1%} of model",
    )
    table.add_row(
        "all (together, ckpt → D_2)",
        str(n),
        "",
        f"{n / together:,.0f}",
        "",
        "",
        f"{figures['together_overhead_per_sample_ms']:.1f} ms",
        f"{figures['together_overhead_fraction_of_model_time']:.1%} of model",
    )
    console.print(table)
    return figures


def parse_args() -> argparse.Namespace:
    from looptool.demo import SCALES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=96, help="|D_1|: prompts probed.")
    parser.add_argument(
        "--scale", choices=sorted(SCALES), default="quick", help="The demo scale of the policy."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--policy",
        choices=POLICIES,
        default="initial",
        help="Whose outputs to record: the demo's untrained initial policy, or its cached warm start "
        "(the policy that probes the demo's D_1; far fewer mismatches, so fewer events per sample).",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the model (0: torch's default)."
    )
    parser.add_argument(
        "--outputs", type=Path, default=DEFAULT_OUTPUTS, help="Recorded outputs (JSON lines)."
    )
    parser.add_argument("--reuse", action="store_true", help="Reuse --outputs instead of recording again.")
    parser.add_argument("--work", type=Path, default=None, help="Working folder (default: a temporary one).")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Where to write the results (JSON).")
    parser.add_argument("--no-save", action="store_true", help="Do not write the results file.")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    results = asyncio.run(main(arguments))
    if not arguments.no_save:
        write_results(results, arguments.out)
