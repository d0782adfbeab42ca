"""sft_data: the warm start's own samples, read from JSONL, never part of a round's dataset."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from looptool.warm_start import WarmStartRecipe, samples_jsonl, warm_start_data
from tests.trainer import toy
from trainer.dataset import sample_row
from trainer.sft import warm_start_rows
from world import World
from world.seed import build_seed_set

RECIPE = WarmStartRecipe(dialogues=40, copy_drills=5, hidden=64, layers=1, steps=1)


def test_the_warm_start_data_shares_no_context_with_the_seeds_or_the_heldout_set() -> None:
    world = World(0)
    seeds = asyncio.run(build_seed_set(world, 30, heldout=20, noise_rate=0.2))
    warm, drills = asyncio.run(warm_start_data(world, seeds, RECIPE, seed=0, noise_rate=0.2))
    assert len(drills) == 5 and len(warm) > 30
    taken = {item.sample.context_hash() for item in [*seeds.samples, *seeds.heldout]}
    assert taken.isdisjoint(item.sample.context_hash() for item in warm)
    # Drawn with D_seed's noise rate: the warm start gets no cleaner labels than the loop.
    noisy = sum(item.noise is not None for item in warm) / len(warm)
    assert 0.1 < noisy < 0.3
    again, _ = asyncio.run(warm_start_data(world, seeds, RECIPE, seed=0, noise_rate=0.2))
    assert [i.sample for i in again] == [i.sample for i in warm]  # deterministic


def test_the_warm_start_reads_its_file_instead_of_the_round(tmp_path: Path) -> None:
    world = World(0)
    seeds = asyncio.run(build_seed_set(world, 30, heldout=20, noise_rate=0.2))
    warm, drills = asyncio.run(warm_start_data(world, seeds, RECIPE, seed=0, noise_rate=0.2))
    samples = [*(item.sample for item in warm), *drills]
    path = tmp_path / "warmstart.jsonl"
    path.write_text(samples_jsonl(samples), encoding="utf-8")
    rows = warm_start_rows(toy.dataset(), path)
    assert sorted(row.target() for row in rows) == sorted(sample_row("x", s).target() for s in samples)
    assert warm_start_rows(toy.dataset(), None) == list(toy.dataset().rows)


def test_a_bad_line_fails_with_its_line_number(tmp_path: Path) -> None:
    from world.drills import copy_drills

    path = tmp_path / "warm.jsonl"
    path.write_text(samples_jsonl(copy_drills(World(0).vocabulary(), 2)) + '{"tools": "nope"}\n')
    with pytest.raises(ValueError, match=r"warm.jsonl:3: not a sample record"):
        warm_start_rows(toy.dataset(), path)
    path.write_text("\n")
    with pytest.raises(ValueError, match="no samples"):
        warm_start_rows(toy.dataset(), path)


@pytest.mark.parametrize(("sft_threads", "expected"), [(2, 2), (None, 1)])
def test_the_warm_start_runs_with_its_own_thread_count(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sft_threads: int | None, expected: int
) -> None:
    import torch

    import trainer.sft as sft
    from trainer.config import TrainerSettings

    seen: list[int] = []
    monkeypatch.setattr(sft, "_train", lambda *args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    settings = TrainerSettings(sft_warmup_steps=1, torch_threads=1, sft_torch_threads=sft_threads)
    sft.configured_warm_start(toy.dataset(), settings, init_model=tmp_path, out_dir=tmp_path / "out")
    assert seen == [expected]  # the warm start's threads, else the trainer's
    assert torch.get_num_threads() == before  # and put back afterwards


def test_a_cached_warm_start_is_rebuilt_when_what_it_trains_on_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The same samples rendered into other prompts (here the policy's system prompt) are other
    training data: the cache must not hand back the weights trained on the old prompts."""
    import toolcall.prompts
    from looptool.warm_start import cached_warm_start

    world = World(0)
    seeds = asyncio.run(build_seed_set(world, 30, heldout=20, noise_rate=0.2))

    def build() -> object:
        return asyncio.run(
            cached_warm_start(
                world, seeds, RECIPE, cache_dir=tmp_path, seed=0, noise_rate=0.2, show_progress=False
            )
        )

    first = build()
    assert not first.cached  # type: ignore[attr-defined]
    assert build().folder == first.folder  # type: ignore[attr-defined]  # same inputs: from the cache
    changed = toolcall.prompts.POLICY_SYSTEM_PROMPT.replace("You are", "You are, from now on,", 1)
    assert changed != toolcall.prompts.POLICY_SYSTEM_PROMPT
    monkeypatch.setattr(toolcall.prompts, "POLICY_SYSTEM_PROMPT", changed)
    rebuilt = build()
    assert not rebuilt.cached  # type: ignore[attr-defined]
    assert rebuilt.folder != first.folder  # type: ignore[attr-defined]


def test_a_stop_ends_the_warm_start_at_the_next_step_and_saves_nothing(
    toy_policy: Path, tmp_path: Path
) -> None:
    """Ctrl-C or SIGTERM during round 1's warm start waited for all its steps (100 s in a report)."""
    import threading
    import time

    from trainer.base import TrainingInterrupted
    from trainer.config import TrainerSettings
    from trainer.sft import configured_warm_start

    stop = threading.Event()
    stop.set()
    settings = TrainerSettings(sft_warmup_steps=100_000)
    started = time.monotonic()
    with pytest.raises(TrainingInterrupted, match="step 0 of 100000"):
        configured_warm_start(
            toy.dataset(),
            settings,
            init_model=toy_policy,
            out_dir=tmp_path / "sft",
            show_progress=False,
            stop=stop,
        )
    assert time.monotonic() - started < 60 and not (tmp_path / "sft").exists()
