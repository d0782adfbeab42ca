"""Benchmark: replay speed of a realistic run (a few thousand events) on the embedded broker.

Simulates a 3-round run with the real stage logic (see ``simulated_run``), publishes it, then times
a replay to the end (decode + the curator's fold + D_J checks), a replay of round 2 into a fresh
LanceDB store, the dataset-only replay behind ``looptool export``, each export format, and the
stats fold. Prints events/s; asserts nothing.

    .venv/bin/python -m benchmarks.replay_analytics [--seeds 400] [--target 300]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bus.broker import EmbeddedBroker
from bus.kafka import EventProducer, ensure_topics
from looptool.config import load_settings
from views.analytics import stats_from_topics
from views.export import EXPORT_FORMATS, export_dataset
from views.replay import Cut, dataset_at, replay_to
from world import World
from world.simulated_run import simulate_run


async def bench(seeds: int, target: int, workdir: Path, console: Console) -> None:
    with EmbeddedBroker() as broker:
        settings = load_settings(
            None,
            run_id="bench-replay",
            kafka={"bootstrap_servers": broker.bootstrap_servers},
            store={"path": workdir / "store"},
            loop={"rounds": 3, "target_size": target, "expansions_per_seed": 4},
        )
        world = World(0)
        started = time.perf_counter()
        pool = await world.samples(seeds, noise_rate=0.3, seed="bench")
        run = await simulate_run(settings.run_id, world, pool, rounds=3, target_size=target, k=4)
        events = run.events
        console.print(f"simulated {len(events)} events in {time.perf_counter() - started:.1f}s")
        await ensure_topics(settings.kafka, settings.run_id)
        async with EventProducer(settings.kafka) as producer:
            started = time.perf_counter()
            await producer.send_all(events)
            console.print(f"published in {time.perf_counter() - started:.1f}s")

        table = Table("operation", "events", "seconds", "events/s", title=f"replay of {len(events)} events")

        def row(name: str, count: int, seconds: float) -> None:
            table.add_row(name, str(count), f"{seconds:.2f}", f"{count / seconds:,.0f}")

        from streams.curate import CurationPolicy

        policy = CurationPolicy.from_settings(settings)
        started = time.perf_counter()
        result = await replay_to(settings, Cut(), policy=policy)
        row(
            "replay to the end (fold + D_3 checks + recompute)", result.records, time.perf_counter() - started
        )
        assert (
            result.dataset is not None
            and result.dataset.verified
            and result.recompute
            and result.recompute.matches
        )
        started = time.perf_counter()
        result = await replay_to(settings, Cut(round=2), store_path=workdir / "replay-r2")
        row("replay round 2 into a LanceDB store", result.records, time.perf_counter() - started)
        started = time.perf_counter()
        dataset = await dataset_at(settings, Cut(round=3))
        dataset_records = sum(
            1 for e in events if e.event_type in ("SampleAdded", "CuratedSample", "RoundClosed")
        )
        row("dataset-only replay (D_3)", dataset_records, time.perf_counter() - started)
        for fmt in EXPORT_FORMATS:
            started = time.perf_counter()
            export_dataset(dataset, fmt, workdir / f"d3.{fmt}", current_time=settings.loop.current_time)
            row(f"export D_3 as {fmt}", len(dataset.members), time.perf_counter() - started)
        started = time.perf_counter()
        stats = await stats_from_topics(settings)
        row("stats from the topics", stats.events, time.perf_counter() - started)
        console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--target", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(bench(args.seeds, args.target, Path(folder), Console()))


if __name__ == "__main__":
    main()
