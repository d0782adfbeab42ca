"""Fixtures of the CPU trainer tests: the toy policy, and the same policy after the SFT warm start.

Both are built once per session (the warm start is the slow part: 40 steps).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer import toy

# The warm start sees the first four cities: the model then writes well-formed calls naming one of
# them, the asked one about a quarter of the time (it has not learned to copy the city).
WARM_CITIES = toy.CITIES[:4]
WARM_STEPS = 40


@pytest.fixture(scope="session")
def toy_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return toy.build_toy_policy(tmp_path_factory.mktemp("toy-policy") / "model", seed=0)


@pytest.fixture(scope="session")
def warm_start(toy_policy: Path, tmp_path_factory: pytest.TempPathFactory) -> object:
    from trainer.sft import sft_warm_start

    return sft_warm_start(
        toy.rows(WARM_CITIES),
        init_model=toy_policy,
        out_dir=tmp_path_factory.mktemp("toy-warm") / "model",
        steps=WARM_STEPS,
        learning_rate=3e-3,
        batch_size=4,
        seed=0,
        threads=1,
        show_progress=False,
    )


@pytest.fixture(scope="session")
def warm_policy(warm_start: object) -> Path:
    return warm_start.model_dir  # type: ignore[attr-defined]
