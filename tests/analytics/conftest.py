"""One realistic 3-round run per test session, published phase by phase to the session broker while the live
store materialises it; the live store's snapshot is taken after each phase (= as of each round)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bus.kafka import EventProducer, ensure_topics
from looptool.config import Settings, load_settings
from views.store import SampleStore, materialise
from world import World
from world.simulated_run import SimulatedRun, simulate_run


@dataclass
class LiveRun:
    settings: Settings
    run: SimulatedRun
    store_path: Path
    snapshots: list[dict[str, list[dict[str, Any]]]]  # live store after phase j (as of round j+1's close)


@pytest.fixture(scope="session")
def world() -> World:
    return World(0)


async def publish_live(settings: Settings, run: SimulatedRun, store_path: Path) -> LiveRun:
    """Publish ``run`` phase by phase while the live materialiser runs; snapshot after each phase."""
    await ensure_topics(settings.kafka, settings.run_id)
    store = SampleStore(store_path)
    materialiser = asyncio.create_task(materialise(settings, store))
    snapshots = []
    published: set[str] = set()
    try:
        async with EventProducer(settings.kafka) as producer:
            for phase in run.phases:
                await producer.send_all(phase)
                published |= {e.event_id for e in phase}
                async with asyncio.timeout(60):
                    while store.counts()["events"] < len(published):
                        if materialiser.done():
                            materialiser.result()  # raises what killed it
                        await asyncio.sleep(0.1)
                snapshots.append(store.snapshot())
    finally:
        materialiser.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await materialiser
    return LiveRun(settings, run, store_path, snapshots)


@pytest.fixture(scope="session")
async def live_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, world: World) -> LiveRun:
    run_id = "t-" + uuid.uuid4().hex[:12]
    folder = tmp_path_factory.mktemp("analytics-run")
    loop = {"rounds": 3, "target_size": 40, "expansions_per_seed": 2}  # the run's curation policy
    settings = load_settings(
        None,
        run_id=run_id,
        kafka={"bootstrap_servers": kafka_bootstrap},
        store={"path": folder / "store"},
        loop=loop,
    )
    seeds = await world.samples(60, noise_rate=0.4, seed="analytics")
    run = await simulate_run(
        run_id,
        world,
        seeds,
        rounds=loop["rounds"],
        target_size=loop["target_size"],
        k=loop["expansions_per_seed"],
    )
    return await publish_live(settings, run, settings.store.path)
