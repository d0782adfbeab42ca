"""Benchmark: one endpoint-bound stage (verify) run by 1, 2 and 4 worker processes in one consumer group.

Each arm starts ``looptool worker --stages verify`` N times against the embedded broker (one
consumer group: the stage's), the ``candidates`` topic with ``--partitions`` partitions (the per-topic
setting ``[kafka] topic_partitions``), waits until every worker is in the group, then publishes the
same ``--candidates`` ExpansionCandidate events (world samples) and times until a VerificationResult
for every candidate is on the ``verifications`` topic. It then checks by id: a candidate with no
result is **lost**, a result record whose event id was already seen is **duplicated** (at-least-once
delivery redoes a batch whose acknowledgement was lost in a rebalance; the derived event id makes
such a copy recognisable, and readers drop it).

The verifier is the world's simulation answering as late as a vLLM server of a 32B model on one H100
would (``[world] endpoint_latency = "vllm-32b-h100"``, :mod:`inference.latency`), each worker
process with its own simulated server: a worker per endpoint replica, which is how such a stage is
scaled (infra/README.md). ``--time-scale`` shortens every wait by that factor (the ratios hold; the
default 0.5 keeps the run short).

    .venv/bin/python -m benchmarks.scale_out [--candidates 1536] [--partitions 8] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from benchmarks.harness import finish_machine_info, machine_info, quiet_logs, results_path, wide_console
from benchmarks.harness import write_results as save

RESULTS = results_path("scale_out")
STAGE = "verify"


async def candidates(count: int, run_id: str) -> list[Any]:
    """``count`` ExpansionCandidate events over world samples (a call or a text answer each)."""
    from schemas.events import ExpansionCandidate, Producer, Scenario, make_event
    from world import World

    world = World(0)
    items = (await world.samples(count, seed="scale-out"))[:count]
    producer = Producer(stage="expand", version="bench")
    events = []
    for n, item in enumerate(items):
        payload = ExpansionCandidate(
            candidate_id=f"cand-{n:05d}",
            seed_sample_id=f"seed-{n:05d}",
            round=1,
            verdict_event_id=f"verdict-{n:05d}",
            index=0,
            count=1,
            scenario=Scenario(focus="scale-out", parameters="as the seed"),
            tools=item.sample.tools,
            messages=item.sample.messages,
            label=item.truth,
        )
        events.append(make_event(payload, run_id=run_id, producer=producer))
    return events


def _ready(log: Path) -> bool:
    return log.is_file() and '"worker.ready"' in log.read_text(errors="replace")


async def run_arm(
    workers: int, bootstrap: str, args: argparse.Namespace, work: Path, console: Any
) -> dict[str, Any]:
    from bus.kafka import EventProducer, ensure_topics, replay
    from looptool.config import load_settings, write_config
    from looptool.supervisor import Service

    run_id = f"scale{workers}-" + datetime.now().strftime("%H%M%S")
    settings = load_settings(None, run_id=run_id, kafka={"bootstrap_servers": bootstrap})
    kafka = settings.kafka.model_copy(update={"topic_partitions": {"candidates": args.partitions}})
    world = settings.world or _default_world()
    world = world.model_copy(
        update={"endpoint_latency": "vllm-32b-h100", "latency_time_scale": args.time_scale}
    )
    settings = settings.model_copy(update={"kafka": kafka, "world": world})
    config = work / f"{run_id}.toml"
    write_config(settings, config)
    await ensure_topics(settings.kafka, run_id)
    events = await candidates(args.candidates, run_id)
    services = [
        Service(f"worker{i}", ["worker", "--stages", STAGE], config, work / f"{run_id}-worker{i}.log")
        for i in range(workers)
    ]
    for service in services:
        service.start()
    try:
        deadline = time.monotonic() + 300
        while not all(_ready(s.log_path) for s in services):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{workers} workers did not all start within 300 s")
            for service in services:
                service.check()
            await asyncio.sleep(0.5)
        # Every worker has joined; let the group's last rebalance settle (rebalance timeout 3 s).
        await asyncio.sleep(2 * settings.kafka.rebalance_timeout_s + 2)
        load_start = os.getloadavg()[0]
        started = time.monotonic()
        async with EventProducer(settings.kafka) as producer:
            await producer.send_all(events)
        wanted = {e.payload.candidate_id for e in events}
        seen_ids: list[str] = []
        done_at: float | None = None
        while time.monotonic() < started + args.timeout_s:
            seen_ids, covered = [], set()
            async for batch in replay(settings.kafka, run_id, ["verifications"]):
                for delivered in batch:
                    if delivered.event.event_type == "VerificationResult":
                        seen_ids.append(delivered.event.event_id)
                        covered.add(delivered.event.payload.candidate_id)
            if covered >= wanted:
                done_at = done_at or time.monotonic()
                if time.monotonic() - done_at > 3.0:  # a redelivered batch would show by now
                    break
            elif len(covered) > 0:
                await asyncio.sleep(0.25)
        elapsed = (done_at or time.monotonic()) - started
        load_end = os.getloadavg()[0]
    finally:
        for service in services:
            service.stop()
    covered = set()
    async for batch in replay(settings.kafka, run_id, ["verifications"]):
        for delivered in batch:
            if delivered.event.event_type == "VerificationResult":
                covered.add(delivered.event.payload.candidate_id)
    result = {
        "workers": workers,
        "run_id": run_id,
        "candidates": len(events),
        "elapsed_s": elapsed,
        "per_s": len(events) / elapsed,
        "results": len(seen_ids),
        "lost": len(wanted - covered),
        "duplicated": len(seen_ids) - len(set(seen_ids)),
        "load_average": [load_start, load_end],
        "complete": done_at is not None,
    }
    console.print(
        f"{workers} worker(s): {result['per_s']:.1f} candidates/s ({elapsed:.1f} s), "
        f"lost {result['lost']}, duplicated {result['duplicated']}"
    )
    return result


def _default_world() -> Any:
    from world.config import WorldSettings

    return WorldSettings()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from bus.broker import EmbeddedBroker
    from inference.latency import VLLM_32B_H100

    console = wide_console()
    quiet_logs()
    machine = machine_info()
    work = Path(tempfile.mkdtemp(prefix="bench-scale-out-"))
    arms = []
    try:
        with EmbeddedBroker() as broker:
            for workers in args.workers:
                arms.append(await run_arm(workers, broker.bootstrap_servers, args, work, console))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = arms[0]["per_s"]
    for arm in arms:
        arm["speedup"] = arm["per_s"] / base
    verifier = VLLM_32B_H100["verifier"]
    figures = {
        "stage": STAGE,
        "partitions": args.partitions,
        "candidates": args.candidates,
        "time_scale": args.time_scale,
        "endpoint": {
            "ttft_s": verifier.ttft_s,
            "tokens_per_s": verifier.tokens_per_s,
            "concurrency": verifier.concurrency,
            "output_tokens": verifier.output_tokens,
            "one_replica_per_worker": True,
        },
        "arms": arms,
        "machine": finish_machine_info(machine),
    }
    table = Table(
        "workers",
        "candidates/s",
        "speed-up",
        "lost",
        "duplicated",
        "load avg",
        title=f"verify on {args.partitions} partitions · {args.candidates} candidates · endpoint-bound "
        f"(vLLM 32B/H100 model × {args.time_scale})",
    )
    for arm in arms:
        table.add_row(
            str(arm["workers"]),
            f"{arm['per_s']:.1f}",
            f"{arm['speedup']:.2f}×",
            str(arm["lost"]),
            str(arm["duplicated"]),
            " → ".join(f"{x:.1f}" for x in arm["load_average"]),
        )
    console.print(table)
    return figures


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=1536)
    parser.add_argument("--partitions", type=int, default=8, help="Partitions of the candidates topic.")
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4])
    parser.add_argument("--time-scale", type=float, default=0.5, help="Multiplies the endpoint's waits.")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="Per arm, after publishing.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-save", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    results = asyncio.run(main(arguments))
    if not arguments.no_save:
        save(results, arguments.out)
