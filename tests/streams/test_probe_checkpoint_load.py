"""A round checkpoint that does not load pauses the probe; it never dead-letters the round.

Once, a final checkpoint whose folder was deleted, whose weights were cut short or whose tokenizer
was missing made every member of D_j a dead letter, and the curator then closed the round as if it
had been probed (no error seeds, no expansions, nothing said).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from inference.transformers_backend import TransformersBackend
from schemas.events import CheckpointPublished, Producer, make_event
from streams.probe import CheckpointWatcher, ProbeStage
from streams.stage import TransientError
from tests.trainer import toy


def deleted(folder: Path) -> None:
    shutil.rmtree(folder)


def cut_short(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def without_tokenizer(folder: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink(missing_ok=True)


@pytest.mark.parametrize("damage", [deleted, cut_short, without_tokenizer], ids=lambda f: f.__name__)
async def test_a_checkpoint_that_does_not_load_pauses_the_probe_and_loses_no_member(
    tiny_policy_path: Path, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    run = "probe-load"
    folder = tmp_path / "final"
    shutil.copytree(tiny_policy_path, folder)
    damage(folder)
    backend = TransformersBackend(str(tiny_policy_path), "initial", batch_size=4)
    watcher = CheckpointWatcher(None, run)
    stage = ProbeStage(run, backend, watcher, mode="final", max_new_tokens=8)
    checkpoint = make_event(
        CheckpointPublished(
            new_checkpoint_id="probe-load-r1-final",
            round=1,
            step=3,
            final=True,
            uri=str(folder),
            backend="cpu",
        ),
        run_id=run,
        producer=Producer(stage="train", version="1"),
    )
    await watcher.publish(checkpoint)
    members = toy.round_events(run, toy.CITIES[:3])[:-1]
    with pytest.raises(TransientError, match="probe-load-r1-final"):
        await stage.process(members)  # the worker pauses and offers the batch again
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(tiny_policy_path, folder)  # the checkpoint becomes readable: the same batch is probed
    outputs = await stage.process(members)
    assert [type(event.payload).__name__ for event in outputs] == ["ProbeResult"] * len(members)
