"""The trainer service on the embedded broker: rounds in, CheckpointPublished events out, once.

One test trains for real (SFT warm start + a few GRPO steps of the CPU backend, online mode) and
loads the published folder with the probe's transformers backend. The others use a recording
backend that copies its input model, to check the service's own decisions cheaply: which round,
from which model, idempotent restarts, recovery of an unpublished final folder, bad manifests.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bus.kafka import EventProducer, ensure_topics, replay
from inference.base import SamplingConfig
from inference.transformers_backend import TransformersBackend
from looptool.config import Settings
from schemas.events import CheckpointPublished, Event, RoundClosed, make_event
from streams.config import PolicySettings
from tests.trainer import toy
from tests.trainer.conftest import WARM_CITIES
from trainer.base import (
    CheckpointInfo,
    RoundDataset,
    TrainingInterrupted,
    check_hf_folder,
    read_checkpoint_manifest,
)
from trainer.config import TrainerSettings
from trainer.dataset import RoundDataError
from trainer.service import (
    PRODUCER,
    TrainerLedger,
    TrainerService,
    make_backend,
    stamp_checkpoint,
    training_key,
)


class RecordingBackend:
    """Trains nothing: copies the input model to ``final`` and records what it was asked."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[int, Path, int]] = []

    def train_round(
        self,
        dataset: RoundDataset,
        *,
        init_model: Path,
        out_dir: Path,
        on_checkpoint: Any = None,
        stop: threading.Event | None = None,
    ) -> CheckpointInfo:
        self.calls.append((dataset.round, Path(init_model), len(dataset)))
        shutil.copytree(init_model, out_dir / "final")
        return CheckpointInfo(
            out_dir / "final", dataset.round, step=7, final=True, metrics={"reward_mean": 0.5}
        )


def with_policy(settings: Settings, model: Path) -> Settings:
    return settings.model_copy(update={"policy": settings.policy.model_copy(update={"model_path": model})})


async def publish(settings: Settings, events: list[Any]) -> None:
    await ensure_topics(settings.kafka, settings.run_id)
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all(events)


async def checkpoints_on_topic(settings: Settings) -> list[Event[CheckpointPublished]]:
    found = []
    async for batch in replay(settings.kafka, settings.run_id, ["checkpoints"]):
        found.extend(d.event for d in batch)
    return found


async def run_until_idle(settings: Settings, trainer: TrainerSettings, backend: Any = None) -> list[Any]:
    service = TrainerService(settings, trainer, backend, show_progress=False)
    return await asyncio.wait_for(service.run(asyncio.Event(), until_idle=True), timeout=300)


def final_of(round_: int, uri: str, run_id: str) -> Event[CheckpointPublished]:
    return make_event(
        CheckpointPublished(
            new_checkpoint_id=f"{run_id}-r{round_}-final",
            round=round_,
            step=3,
            final=True,
            uri=uri,
            backend="recording",
        ),
        run_id=run_id,
        producer=PRODUCER,
    )


# --- the ledger (pure) --------------------------------------------------------------------------


def test_ledger_trains_rounds_in_order_and_each_once() -> None:
    ledger = TrainerLedger()
    assert ledger.next_round() is None
    round1 = toy.round_events("r", ("Paris",), round_=1)[-1]
    round2 = toy.round_events("r", ("Rome",), round_=2)[-1]
    ledger.add(round2)
    assert ledger.next_round() is None  # round 2 waits for round 1
    ledger.add(round1)
    assert ledger.next_round() == 1
    intermediate = final_of(1, "/x", "r").model_copy(
        update={
            "event_id": "01" + "A" * 24,
            "payload": final_of(1, "/x", "r").payload.model_copy(update={"final": False}),
        }
    )
    ledger.add(intermediate)
    assert ledger.next_round() == 1  # an intermediate checkpoint does not finish a round
    ledger.add(final_of(1, "/x", "r"))
    assert ledger.next_round() == 2
    ledger.add(final_of(2, "/y", "r"))
    assert ledger.next_round() is None


# --- real training on the broker ----------------------------------------------------------------


async def test_service_trains_a_round_and_publishes_loadable_checkpoints(
    settings: Settings, toy_policy: Path, tmp_path: Path
) -> None:
    """Round 1 from the raw toy policy: SFT warm start, GRPO in online mode, then a final checkpoint."""
    await publish(settings, toy.round_events(settings.run_id, WARM_CITIES))
    trainer = TrainerSettings(
        output_dir=tmp_path / "checkpoints",
        group_size=4,
        prompts_per_step=2,
        learning_rate=3e-4,
        max_steps_per_round=3,
        max_new_tokens=32,
        publish_every_steps=2,
        sft_warmup_steps=2,
        sft_learning_rate=3e-3,
        sft_batch_size=4,
        torch_threads=1,
    )
    published = await run_until_idle(with_policy(settings, toy_policy), trainer)

    on_topic = await checkpoints_on_topic(settings)
    assert [e.event_id for e in on_topic] == [e.event_id for e in published]
    assert [(e.payload.step, e.payload.final) for e in on_topic] == [(2, False), (3, True)]
    final = on_topic[-1]
    for event in on_topic:
        assert event.payload.round == 1 and event.payload.backend == "cpu"
        assert event.payload.parent_checkpoint_id is None  # round 1 starts from the initial model
        assert event.payload.new_checkpoint_id.startswith(f"{settings.run_id}-r1-s{event.payload.step}-")
        assert event.checkpoint_id == event.payload.new_checkpoint_id
        assert event.parent_ids[0].startswith("01")  # the round's manifest event
        check_hf_folder(Path(event.payload.uri))
    assert final.payload.metrics["rows"] == len(WARM_CITIES)
    assert final.payload.metrics["sft_steps"] == 2
    assert {"reward_mean", "reward_std", "loss"} <= set(final.payload.metrics)
    assert final.payload.wall_time_s > 0
    stamped = read_checkpoint_manifest(Path(final.payload.uri))
    assert stamped is not None and stamped["checkpoint_id"] == final.payload.new_checkpoint_id

    backend = TransformersBackend(final.payload.uri, final.payload.new_checkpoint_id, batch_size=4)
    generations = await backend.generate(
        [toy.rows(("Paris",))[0].chat], SamplingConfig(greedy=True, max_tokens=32)
    )
    assert generations[0][0].token_ids and len(generations[0][0].token_logprobs) == len(
        generations[0][0].token_ids
    )
    await backend.close()

    # A restarted trainer sees the final checkpoint and trains nothing.
    recorder = RecordingBackend()
    assert await run_until_idle(with_policy(settings, toy_policy), trainer, recorder) == []
    assert recorder.calls == []
    assert len(await checkpoints_on_topic(settings)) == 2


# --- the service's decisions, with the recording backend ----------------------------------------


async def test_round_two_starts_from_round_ones_final_checkpoint(
    settings: Settings, toy_policy: Path, tmp_path: Path
) -> None:
    round1 = toy.round_events(settings.run_id, ("Paris", "Rome"), round_=1)
    round2 = toy.round_events(settings.run_id, ("Oslo",), round_=2)
    previous_final = final_of(1, str(toy_policy), settings.run_id)
    await publish(settings, [*round1, previous_final, *round2])
    recorder = RecordingBackend()
    trainer = TrainerSettings(output_dir=tmp_path / "checkpoints")
    published = await run_until_idle(with_policy(settings, tmp_path / "unused"), trainer, recorder)
    assert recorder.calls == [(2, toy_policy, 1)]
    (event,) = published
    assert event.payload.round == 2 and event.payload.final and event.payload.step == 7
    assert event.payload.parent_checkpoint_id == previous_final.payload.new_checkpoint_id
    assert previous_final.event_id in event.parent_ids
    assert event.payload.backend == "recording"
    assert Path(event.payload.uri).is_relative_to(tmp_path / "checkpoints" / settings.run_id / "round-002")


async def test_an_unpublished_final_folder_is_published_without_retraining(
    settings: Settings, toy_policy: Path, tmp_path: Path
) -> None:
    events = toy.round_events(settings.run_id, ("Paris",))
    manifest: Event[RoundClosed] = events[-1]  # type: ignore[assignment]
    await publish(settings, events)
    folder = tmp_path / "checkpoints" / settings.run_id / "round-001" / "attempt-crashed" / "final"
    shutil.copytree(toy_policy, folder)
    trainer = TrainerSettings(output_dir=tmp_path / "checkpoints")
    stamp_checkpoint(
        folder,
        {
            "checkpoint_id": "saved-before-the-crash",
            "manifest_hash": manifest.payload.content_hash,
            "training_key": training_key(toy_policy, None, "recording", trainer),
            "final": True,
            "step": 5,
            "metrics": {"reward_mean": 0.25},
            "wall_time_s": 12.0,
        },
    )
    recorder = RecordingBackend()
    (event,) = await run_until_idle(with_policy(settings, toy_policy), trainer, recorder)
    assert recorder.calls == []
    assert event.payload.new_checkpoint_id == "saved-before-the-crash"
    assert (event.payload.step, event.payload.uri) == (5, str(folder.resolve()))
    assert event.payload.metrics == {"reward_mean": 0.25}


@pytest.mark.parametrize("changed", ["initial model", "settings"])
async def test_a_final_on_disk_from_another_start_or_settings_is_trained_anew(
    settings: Settings, toy_policy: Path, tmp_path: Path, changed: str
) -> None:
    """A run id used again (`looptool init` always writes the same one) with another initial policy
    or other [trainer] settings: the same seeds give D_1 the same hash, and the old run's final was
    published as this run's, trained from the other policy."""
    events = toy.round_events(settings.run_id, ("Paris",))
    manifest: Event[RoundClosed] = events[-1]  # type: ignore[assignment]
    await publish(settings, events)
    other_policy = tmp_path / "other-policy"
    shutil.copytree(toy_policy, other_policy)
    trainer = TrainerSettings(output_dir=tmp_path / "checkpoints")
    earlier = (
        training_key(other_policy, None, "recording", trainer)
        if changed == "initial model"
        else training_key(toy_policy, None, "recording", trainer.model_copy(update={"learning_rate": 1e-3}))
    )
    folder = tmp_path / "checkpoints" / settings.run_id / "round-001" / "attempt-earlier-run" / "final"
    shutil.copytree(toy_policy, folder)
    stamp = {"checkpoint_id": "earlier-run-final", "manifest_hash": manifest.payload.content_hash}
    stamp_checkpoint(folder, {**stamp, "training_key": earlier, "final": True, "step": 5})
    recorder = RecordingBackend()
    (event,) = await run_until_idle(with_policy(settings, toy_policy), trainer, recorder)
    assert [(round_, path) for round_, path, _ in recorder.calls] == [(1, toy_policy)]
    assert event.payload.new_checkpoint_id != "earlier-run-final"


def test_pruning_keeps_finals_the_warm_start_and_the_newest_intermediates(tmp_path: Path) -> None:
    """Checkpoint folders only ever grew: every intermediate, every crashed attempt, every final."""
    from trainer.service import prune_checkpoints

    def checkpoint(path: str, round_: int, step: int, final: bool = False) -> Path:
        folder = tmp_path / path
        folder.mkdir(parents=True)
        stamp_checkpoint(folder, {"round": round_, "step": step, "final": final})
        return folder

    old_steps = [checkpoint(f"round-001/attempt-a/step-00000{i}", 1, i) for i in (1, 2)]
    final_1 = checkpoint("round-001/attempt-a/final", 1, 3, final=True)
    (tmp_path / "round-001/attempt-a/sft").mkdir()  # the warm start: no manifest, kept
    crashed = checkpoint("round-002/attempt-crashed/step-000001", 2, 1).parent
    newest = checkpoint("round-002/attempt-b/step-000002", 2, 2)
    final_2 = checkpoint("round-002/attempt-b/final", 2, 3, final=True)
    removed = prune_checkpoints(tmp_path, keep_intermediate=1, keep=final_2)
    assert sorted(removed) == sorted([*old_steps, crashed])
    assert all(p.exists() for p in (final_1, final_2, newest, tmp_path / "round-001/attempt-a/sft"))
    assert prune_checkpoints(tmp_path, keep_intermediate=0, keep=final_2) == [newest]


async def test_a_round_that_does_not_match_its_manifest_is_not_trained(
    settings: Settings, toy_policy: Path, tmp_path: Path
) -> None:
    events = toy.round_events(settings.run_id, ("Paris", "Rome"))
    manifest: Event[RoundClosed] = events[-1]  # type: ignore[assignment]
    lying = manifest.model_copy(
        update={"payload": manifest.payload.model_copy(update={"content_hash": "0" * 32})}
    )
    await publish(settings, [*events[:-1], lying])
    recorder = RecordingBackend()
    trainer = TrainerSettings(output_dir=tmp_path / "checkpoints", data_wait_s=0)
    with pytest.raises(RoundDataError, match="the manifest says 0000"):
        await run_until_idle(with_policy(settings, toy_policy), trainer, recorder)
    assert recorder.calls == []
    assert await checkpoints_on_topic(settings) == []


async def test_round_one_needs_an_initial_model(settings: Settings, tmp_path: Path) -> None:
    await publish(settings, toy.round_events(settings.run_id, ("Paris",)))
    trainer = TrainerSettings(output_dir=tmp_path / "checkpoints")
    with pytest.raises(ValueError, match=r"policy\.model_path is not set"):
        await run_until_idle(settings, trainer, RecordingBackend())
    with pytest.raises(ValueError, match=r"not a loadable policy folder: missing config\.json"):
        await run_until_idle(with_policy(settings, tmp_path), trainer, RecordingBackend())


class StoppableBackend:
    """Blocks until asked to stop, then ends the round early as a real backend does."""

    name = "stoppable"

    def __init__(self) -> None:
        self.started = threading.Event()

    def train_round(
        self, dataset: RoundDataset, *, stop: threading.Event | None = None, **_: Any
    ) -> CheckpointInfo:
        self.started.set()
        assert stop is not None and stop.wait(timeout=60)
        raise TrainingInterrupted("stopped at step 1 of 9")


async def test_stopping_the_service_mid_round_publishes_no_final(
    settings: Settings, toy_policy: Path, tmp_path: Path
) -> None:
    await publish(settings, toy.round_events(settings.run_id, ("Paris",)))
    backend = StoppableBackend()
    service = TrainerService(
        with_policy(settings, toy_policy),
        TrainerSettings(output_dir=tmp_path / "c"),
        backend,
        show_progress=False,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    while not backend.started.is_set():
        await asyncio.sleep(0.05)
    stop.set()
    assert await asyncio.wait_for(running, timeout=60) == []
    assert await checkpoints_on_topic(settings) == []


async def test_a_second_trainer_on_a_run_is_refused_while_the_first_lives(
    settings: Settings, toy_policy: Path, tmp_path: Path
) -> None:
    """Two trainers each published a final for round 1 and each took its own as round 2's parent."""
    from trainer.service import TrainerBusy

    await publish(settings, toy.round_events(settings.run_id, ("Paris",)))
    backend = StoppableBackend()
    trainer = TrainerSettings(output_dir=tmp_path / "c")
    first = TrainerService(with_policy(settings, toy_policy), trainer, backend, show_progress=False)
    stop = asyncio.Event()
    running = asyncio.create_task(first.run(stop))
    while not backend.started.is_set():
        await asyncio.sleep(0.05)
    second = TrainerService(
        with_policy(settings, toy_policy), trainer, RecordingBackend(), show_progress=False
    )
    with pytest.raises(TrainerBusy, match=r"already has a trainer \(pid \d+\)"):
        await second.run(asyncio.Event(), until_idle=True)
    stop.set()
    await asyncio.wait_for(running, timeout=60)
    recorder = RecordingBackend()  # the first one gone, a trainer starts again
    await run_until_idle(with_policy(settings, toy_policy), trainer, recorder)
    assert len(recorder.calls) == 1


def test_the_verl_backend_hands_verl_the_rows_and_reports_its_merged_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from trainer.verl.backend import VerlBackend, VerlRoundResult
    from trainer.verl.config import VerlSettings

    seen: dict[str, Any] = {}

    def run_round(
        self: VerlBackend, rows: Any, *, round_index: int, model_path: Path, stop: Any = None
    ) -> Any:
        seen.update(rows=list(rows), round=round_index, model_path=model_path, work_dir=self.work_dir)
        return VerlRoundResult(
            round_index=round_index,
            model_dir=tmp_path / "merged",
            checkpoint_dir=tmp_path / "actor",
            step=12,
            metrics={"reward_mean": 0.5},
            wall_time_s=3.0,
            log_path=tmp_path / "verl.log",
        )

    monkeypatch.setattr(VerlBackend, "run_round", run_round)
    backend = make_backend(
        SimpleNamespace(run_id="run-x", policy=PolicySettings()),  # type: ignore[arg-type]
        TrainerSettings(backend="verl", verl=VerlSettings()),
        show_progress=False,
    )
    assert isinstance(backend, VerlBackend) and backend.run_name == "run-x"
    dataset = toy.dataset(("Paris", "Rome"), round_=3)
    info = backend.train_round(dataset, init_model=tmp_path / "init", out_dir=tmp_path / "out")
    assert (info.path, info.round, info.step, info.final) == (tmp_path / "merged", 3, 12, True)
    assert info.metrics == {"reward_mean": 0.5} and info.wall_time_s == 3.0
    assert (seen["round"], seen["model_path"], seen["work_dir"]) == (3, tmp_path / "init", tmp_path / "out")
    assert [(r.sample_id, r.chat, r.ground_truth) for r in seen["rows"]] == [
        (r.sample_id, r.chat, r.ground_truth) for r in dataset.rows
    ]
