"""sft_data: the warm start's own samples, read from JSONL, never part of a round's dataset."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from looptool.demo import split_warm_start, write_warm_start
from tests.trainer import toy
from trainer.dataset import sample_row
from trainer.sft import warm_start_rows
from world import World
from world.seed import build_seed_set


def test_the_warm_start_reads_its_file_instead_of_the_round(tmp_path: Path) -> None:
    world = World(0)
    seeds = asyncio.run(build_seed_set(world, 30, noise_rate=0.2))
    pool, warm = split_warm_start(seeds, 10, seed=0)
    # The split: disjoint, complete, deterministic.
    assert len(warm) == 10 and len(pool.samples) == len(seeds.samples) - 10
    assert {id(i) for i in warm}.isdisjoint({id(i) for i in pool.samples})
    assert [i.sample for i in split_warm_start(seeds, 10, seed=0)[1]] == [i.sample for i in warm]

    path = tmp_path / "warmstart.jsonl"
    drills = write_warm_start(world, warm, 5, path, seed=0)
    rows = warm_start_rows(toy.dataset(), path)
    expected = sorted(sample_row("x", s).target() for s in [*(i.sample for i in warm), *drills])
    assert sorted(row.target() for row in rows) == expected
    assert warm_start_rows(toy.dataset(), None) == list(toy.dataset().rows)


def test_a_bad_line_fails_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "warm.jsonl"
    write_warm_start(World(0), [], 2, path, seed=0)
    path.write_text(path.read_text() + '{"tools": "nope"}\n')
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
