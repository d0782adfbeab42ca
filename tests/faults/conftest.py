"""Fixtures of the fault tests: one seed set with fixed event ids, and the settings of a run.

Runs compared with each other must be fed the very same SampleAdded events (same ids), so the seeds
are built once per session and published to every run's own broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from common.logs import LogSettings
from looptool.config import Settings, load_settings
from schemas.events import Event, SampleAdded
from streams.config import LoopSettings, PolicySettings
from tests.faults.harness import RUN_ID
from trainer.config import TrainerSettings
from world.config import WorldSettings

DIALOGUES = 220  # about 300 seed samples
TARGET_SIZE = 160  # |D_1| and |D_2|
K = 2  # EDDE candidates per error seed


@pytest.fixture(scope="session")
def fault_seeds() -> list[Event[SampleAdded]]:
    from world import World
    from world.seed import build_seed_set, seed_events

    seed_set = asyncio.run(build_seed_set(World(0), DIALOGUES, noise_rate=0.3, name="faults"))
    return seed_events(seed_set, RUN_ID)


def run_settings(workdir: Path, policy: Path, **changes: Any) -> Settings:
    """A run's settings: world simulations for judge, generator and verifier; a tiny CPU trainer."""
    values: dict[str, Any] = {
        "run_id": RUN_ID,
        "store": {"path": workdir / "store"},
        "log": LogSettings(format="json"),
        "policy": PolicySettings(model_path=policy, batch_size=32, max_new_tokens=64),
        "loop": LoopSettings(rounds=2, target_size=TARGET_SIZE, expansions_per_seed=K),
        "world": WorldSettings(seed=0),
        "trainer": TrainerSettings(
            backend="cpu",
            output_dir=workdir / "checkpoints",  # per run: a run must not find another's final on disk
            group_size=2,
            prompts_per_step=2,
            max_steps_per_round=16,  # the trainer is SIGKILLed after step 1: many steps left
            epochs_per_round=1,
            max_new_tokens=24,
            learning_rate=1e-4,
            publish_every_steps=1,
            torch_threads=1,
            seed=0,
        ),
    }
    return load_settings(None, **{**values, **changes})


@pytest.fixture
def fault_settings(world_policy: Path) -> Callable[..., Settings]:
    def make(workdir: Path, **changes: Any) -> Settings:
        return run_settings(workdir, world_policy, **changes)

    return make
