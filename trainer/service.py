"""``looptool train``: the trainer service of the loop.

It follows the ``rounds`` and ``checkpoints`` topics from offset 0 (a singleton, like curate: it needs
the whole picture). Once caught up it trains the earliest round that has a RoundClosed manifest and
no final checkpoint yet, provided the round before it has one (round 1 starts from
``policy.model_path``, round j from round j-1's final checkpoint, with a fresh optimizer): it reads
the round's CuratedSample events and checks them against the manifest (count, per-member and manifest
content hashes), trains with the configured backend, and publishes CheckpointPublished events:
intermediate ones every ``publish_every_steps`` in online mode (the probe's ``latest`` mode uses
them while training goes on), then the round's final one.

Idempotent and restartable:

- A round whose final checkpoint is on the topic is never trained again.
- A round whose final folder is complete on disk (``looptool_checkpoint.json`` names the manifest's
  content hash) but was never published (a crash between saving and sending) is published from disk.
- Otherwise the round is trained again, in a fresh attempt folder. Checkpoint ids are
  ``<run>-r<round>-s<step>-<attempt>``: the attempt part (from a ULID) keeps the checkpoints of a retried
  round distinct from any a crashed attempt published, the rest says where they come from. Event ids
  derive from the manifest's and the checkpoint's ids, so re-sending one checkpoint gives the same
  event and consumers deduplicate it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.kafka import EventProducer, ensure_topics, follow, replay
from common.locks import LockHeld, holding, take_lock
from common.logs import get_logger
from evaluation.gate import PromotionLedger, promoted_parent
from inference.base import WEIGHT_FILES
from schemas.events import (
    CheckpointPublished,
    Event,
    Producer,
    RoundClosed,
    derived_event_id,
    make_event,
    new_event_id,
)
from trainer.base import (
    CHECKPOINT_MANIFEST,
    CheckpointInfo,
    RoundDataset,
    TrainerBackend,
    TrainingInterrupted,
    check_hf_folder,
    read_checkpoint_manifest,
)
from trainer.config import TrainerRunSettings, TrainerSettings
from trainer.dataset import load_round_dataset

log = get_logger(__name__)
PRODUCER = Producer(stage="train", version="1")
FOLLOWED_TOPICS = ("rounds", "checkpoints")


def checkpoint_id(run_id: str, round_: int, step: int, attempt: str) -> str:
    return f"{run_id}-r{round_}-s{step}-{attempt}"


def new_attempt() -> str:
    """A short, unique, time-ordered attempt token (the tail of a ULID, lower case)."""
    return new_event_id()[-8:].lower()


@dataclass
class TrainerLedger:
    """What the trainer knows from the topics (pure: no I/O)."""

    manifests: dict[int, Event[RoundClosed]] = field(default_factory=dict)
    checkpoints: dict[int, list[Event[CheckpointPublished]]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    # trainer.start_from = "promoted": the promotion gate's decisions (None: start from the previous round)
    promotions: PromotionLedger | None = None

    def add(self, event: Event[Any]) -> None:
        if event.event_id in self.seen:
            return
        self.seen.add(event.event_id)
        payload = event.payload
        if isinstance(payload, RoundClosed):
            self.manifests.setdefault(payload.round, event)  # the first manifest of a round is the round
        elif isinstance(payload, CheckpointPublished):
            self.checkpoints.setdefault(payload.round, []).append(event)
        elif self.promotions is not None:
            self.promotions.add(event.event_id, payload)

    def parent(self, round_: int) -> tuple[bool, Event[CheckpointPublished] | None]:
        """(ready, the checkpoint round ``round_`` > 1 starts from; None: the initial policy)."""
        if self.promotions is None:
            previous = self.final(round_ - 1)
            return previous is not None, previous
        published = [e for events in self.checkpoints.values() for e in events]
        return promoted_parent(self.promotions, published, round_)

    def final(self, round_: int) -> Event[CheckpointPublished] | None:
        return next((e for e in self.checkpoints.get(round_, []) if e.payload.final), None)

    def next_round(self) -> int | None:
        """The earliest round that has a manifest, no final checkpoint, and a trained predecessor."""
        for round_ in sorted(self.manifests):
            if self.final(round_) is not None:
                continue
            if round_ == 1 or self.parent(round_)[0]:
                return round_
            return None  # round_-1 still trains (or waits): rounds are trained in order
        return None


def make_backend(
    settings: TrainerRunSettings, trainer: TrainerSettings, *, show_progress: bool = True
) -> TrainerBackend:
    if trainer.backend == "verl":
        from trainer.verl.backend import VerlBackend

        return VerlBackend(
            trainer.verl,
            run_name=settings.run_id,
            show_progress=show_progress,
            chat_template_kwargs=settings.policy.chat_template_kwargs,
        )
    from trainer.cpu_grpo import CpuGrpoBackend

    return CpuGrpoBackend(
        trainer, show_progress=show_progress, chat_template_kwargs=settings.policy.chat_template_kwargs
    )


def stamp_checkpoint(folder: Path, fields: dict[str, Any]) -> None:
    """Merge ``fields`` into a checkpoint folder's ``looptool_checkpoint.json`` (creating it)."""
    manifest = read_checkpoint_manifest(folder) or {}
    manifest.update(fields)
    path = folder / CHECKPOINT_MANIFEST
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    partial.replace(path)


def completed_final(
    round_dir: Path, manifest_hash: str, training_key: str
) -> tuple[Path, dict[str, Any]] | None:
    """A final checkpoint of this round's dataset, trained from the same start with the same
    settings (``training_key``), already complete on disk (and stamped), if any. A run id used again
    with another initial policy or other settings finds the same dataset hash, but trains anew."""
    if not round_dir.is_dir():
        return None
    found = []
    for path in round_dir.glob(f"**/{CHECKPOINT_MANIFEST}"):
        info = read_checkpoint_manifest(path.parent)
        if not (info and info.get("final") and info.get("manifest_hash") == manifest_hash):
            continue
        if not info.get("checkpoint_id"):
            continue
        if info.get("training_key") != training_key:
            log.info(
                "train.final_on_disk_ignored",
                path=str(path.parent),
                reason="trained from another start or settings",
            )
            continue
        found.append((path.parent, info))
    return min(found, key=lambda item: str(item[1]["checkpoint_id"])) if found else None


def training_key(
    init_model: Path,
    parent_id: str | None,
    backend: str,
    trainer: TrainerSettings,
    template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """What a round's training depends on besides its data: the folder it starts from (path and its
    weights' sizes and times), the parent checkpoint, the backend, the ``[trainer]`` settings and the
    policy's ``chat_template_kwargs`` (the prompts trained on)."""
    folder = Path(init_model).resolve()
    weights = sorted(
        (path.name, path.stat().st_size, path.stat().st_mtime_ns)
        for pattern in WEIGHT_FILES
        for path in folder.glob(pattern)
    )
    settings = trainer.model_dump(mode="json", exclude={"output_dir", "data_wait_s", "keep_intermediate"})
    parts: list[Any] = [str(folder), weights, parent_id, backend, settings]
    if template_kwargs:  # left out when unset: a run without them keeps the key it had before
        parts.append(dict(template_kwargs))
    material = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.blake2b(material.encode("utf-8"), digest_size=16).hexdigest()


def _attempt_of(folder: Path) -> Path | None:
    return next((parent for parent in (folder, *folder.parents) if parent.name.startswith("attempt-")), None)


def prune_checkpoints(run_dir: Path, keep_intermediate: int, *, keep: Path) -> list[Path]:
    """Delete what finished rounds leave behind: intermediate checkpoints beyond the newest
    ``keep_intermediate`` (by round and step), and attempt folders that hold no final (a crashed
    attempt's). Finals, the warm start and ``keep`` (the final just published) stay. Returns what went."""
    finals: list[Path] = []
    intermediates: list[tuple[int, int, Path]] = []
    for manifest in run_dir.glob(f"round-*/attempt-*/**/{CHECKPOINT_MANIFEST}"):
        info = read_checkpoint_manifest(manifest.parent) or {}
        if info.get("final"):
            finals.append(manifest.parent)
        else:
            intermediates.append((int(info.get("round", 0)), int(info.get("step", 0)), manifest.parent))
    kept_attempts = {_attempt_of(folder) for folder in (*finals, Path(keep))}
    doomed = [attempt for attempt in run_dir.glob("round-*/attempt-*") if attempt not in kept_attempts]
    intermediates = sorted(item for item in intermediates if _attempt_of(item[2]) in kept_attempts)
    doomed += [folder for _, _, folder in intermediates[: max(0, len(intermediates) - keep_intermediate)]]
    protected = Path(keep).resolve()
    removed = []
    for folder in doomed:
        if folder.exists() and protected != folder.resolve() and folder.resolve() not in protected.parents:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
            log.info("train.checkpoint_removed", path=str(folder))
    return removed


class TrainerBusy(RuntimeError):
    """Another trainer process serves this run (its checkpoint folder is locked)."""


class TrainerService:
    """The singleton trainer: follows rounds and checkpoints, trains each closed round once."""

    def __init__(
        self,
        settings: TrainerRunSettings,
        trainer: TrainerSettings,
        backend: TrainerBackend | None = None,
        *,
        show_progress: bool = True,
    ) -> None:
        self.settings = settings
        self.trainer = trainer
        self.backend = backend or make_backend(settings, trainer, show_progress=show_progress)
        self.show_progress = show_progress
        promoted = trainer.start_from == "promoted"
        self.ledger = TrainerLedger(promotions=PromotionLedger() if promoted else None)
        self.followed = (*FOLLOWED_TOPICS, "promotions") if promoted else FOLLOWED_TOPICS
        self.published: list[Event[CheckpointPublished]] = []

    def run_dir(self) -> Path:
        return self.trainer.output_dir / self.settings.run_id

    async def run(self, stop: asyncio.Event, *, until_idle: bool = False) -> list[Event[CheckpointPublished]]:
        """Serve until ``stop`` is set (or, with ``until_idle``, until caught up with nothing to train).

        One trainer per run: a second one (a restart while the first still runs) would train the
        same rounds and publish a second final for each, so it is refused while the first lives."""
        try:
            lock = take_lock(self.run_dir() / ".trainer.lock")
        except LockHeld as held:
            raise TrainerBusy(
                f"run {self.settings.run_id} already has a trainer (pid {held.holder}) writing to "
                f"{self.run_dir()}; stop it first (one trainer per run)"
            ) from None
        with holding(lock):
            return await self._serve(stop, until_idle=until_idle)

    async def _serve(self, stop: asyncio.Event, *, until_idle: bool) -> list[Event[CheckpointPublished]]:
        await ensure_topics(self.settings.kafka, self.settings.run_id)
        # A replay reads up to the topics' ends, so the first decision sees everything already
        # published (a follower's first empty batch may come before its first fetch does).
        async for batch in replay(self.settings.kafka, self.settings.run_id, self.followed):
            for delivered in batch:
                self.ledger.add(delivered.event)
        async with EventProducer(self.settings.kafka) as producer:
            stream = follow(self.settings.kafka, self.settings.run_id, self.followed)
            stopper = asyncio.ensure_future(stop.wait())
            hinted = False
            try:
                while not stop.is_set():
                    batch_task = asyncio.ensure_future(anext(stream))
                    done, _ = await asyncio.wait({batch_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    if batch_task not in done:
                        batch_task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                            await batch_task
                        break
                    batch = batch_task.result()
                    for delivered in batch:
                        self.ledger.add(delivered.event)
                    if batch:
                        continue
                    round_ = self.ledger.next_round()
                    if round_ is None:
                        if until_idle:
                            break
                        if not self.ledger.manifests and not hinted:
                            # Caught up and nothing to train: say why the trainer waits, once.
                            log.info(
                                "train.waiting",
                                reason="no round is open yet: `looptool curate --initial` opens round 1 "
                                "from the ingested seeds",
                            )
                            hinted = True
                        continue
                    try:
                        await self.train(round_, producer, stop)
                    except TrainingInterrupted as error:
                        log.warning("train.interrupted", round=round_, reason=str(error))
                        break
            finally:
                stopper.cancel()
                await stream.aclose()
        return self.published

    # --- one round ------------------------------------------------------------------------------

    def initial_model(self, round_: int) -> tuple[Path, Event[CheckpointPublished] | None]:
        """The folder round ``round_`` starts from, and the checkpoint event it came from."""
        if round_ == 1:
            path = self.settings.policy.model_path
            if path is None:
                raise ValueError("policy.model_path is not set: round 1 needs an initial model folder")
            check_hf_folder(Path(path))
            return Path(path), None
        ready, parent = self.ledger.parent(round_)
        assert ready  # next_round() only offers rounds whose predecessor is final (and decided)
        if parent is None:  # start_from = "promoted" and the gate never promoted anything
            return self.initial_model(1)[0], None
        path = Path(parent.payload.uri.removeprefix("file://"))
        check_hf_folder(path)
        return path, parent

    async def train(self, round_: int, producer: EventProducer, stop: asyncio.Event) -> None:
        manifest = self.ledger.manifests[round_]
        init_model, parent = self.initial_model(round_)
        round_dir = self.run_dir() / f"round-{round_:03d}"
        key = training_key(
            init_model,
            parent.payload.new_checkpoint_id if parent else None,
            self.backend.name,
            self.trainer,
            self.settings.policy.chat_template_kwargs,
        )
        recovered = completed_final(round_dir, manifest.payload.content_hash, key)
        if recovered is not None:
            folder, info = recovered
            log.info(
                "train.final_recovered_from_disk", round=round_, path=str(folder), id=info["checkpoint_id"]
            )
            checkpoint = CheckpointInfo(
                path=folder,
                round=round_,
                step=int(info.get("step", 0)),
                final=True,
                metrics={k: float(v) for k, v in (info.get("metrics") or {}).items()},
                wall_time_s=float(info.get("wall_time_s", 0.0)),
            )
            await self.publish(producer, checkpoint, str(info["checkpoint_id"]), manifest, parent)
            return

        dataset = await load_round_dataset(
            self.settings,
            manifest,
            current_time=self.settings.loop.current_time,
            wait_s=self.trainer.data_wait_s,
            identity=producer.identity,
        )
        attempt = new_attempt()
        out_dir = round_dir / f"attempt-{attempt}"
        out_dir.mkdir(parents=True, exist_ok=True)
        log.info(
            "train.round_start",
            round=round_,
            rows=len(dataset),
            backend=self.backend.name,
            init_model=str(init_model),
            attempt=attempt,
        )
        loop = asyncio.get_running_loop()
        halt = threading.Event()
        watcher = asyncio.ensure_future(self._relay_stop(stop, halt))

        def on_checkpoint(info: CheckpointInfo) -> None:  # called in the training thread
            future = asyncio.run_coroutine_threadsafe(
                self.publish(
                    producer,
                    info,
                    checkpoint_id(self.settings.run_id, round_, info.step, attempt),
                    manifest,
                    parent,
                ),
                loop,
            )
            future.result()

        try:
            extra: dict[str, float] = {}
            if round_ == 1 and self.trainer.sft_warmup_steps > 0:
                sft = await asyncio.to_thread(self._warm_start, dataset, init_model, out_dir / "sft", halt)
                init_model = sft.model_dir
                extra = sft.metrics()
            final = await asyncio.to_thread(
                self.backend.train_round,
                dataset,
                init_model=init_model,
                out_dir=out_dir,
                on_checkpoint=on_checkpoint,
                stop=halt,
            )
        finally:
            watcher.cancel()
        final.metrics = {**final.metrics, **extra, "rows": float(len(dataset))}
        new_id = checkpoint_id(self.settings.run_id, round_, final.step, attempt)
        stamp_checkpoint(
            final.path,
            {
                "checkpoint_id": new_id,
                "manifest_hash": manifest.payload.content_hash,
                "training_key": key,
                "round": round_,
                "step": final.step,
                "final": True,
                "metrics": final.metrics,
                "wall_time_s": final.wall_time_s,
                "backend": self.backend.name,
            },
        )
        await self.publish(producer, final, new_id, manifest, parent)
        if self.trainer.keep_intermediate is not None:
            prune_checkpoints(self.run_dir(), self.trainer.keep_intermediate, keep=final.path)

    def _warm_start(
        self, dataset: RoundDataset, init_model: Path, out_dir: Path, stop: threading.Event
    ) -> Any:
        from trainer.sft import configured_warm_start

        return configured_warm_start(
            dataset,
            self.trainer,
            init_model=init_model,
            out_dir=out_dir,
            show_progress=self.show_progress,
            stop=stop,
            chat_template_kwargs=self.settings.policy.chat_template_kwargs,
        )

    @staticmethod
    async def _relay_stop(stop: asyncio.Event, halt: threading.Event) -> None:
        await stop.wait()
        halt.set()

    async def publish(
        self,
        producer: EventProducer,
        info: CheckpointInfo,
        new_id: str,
        manifest: Event[RoundClosed],
        parent: Event[CheckpointPublished] | None,
    ) -> Event[CheckpointPublished]:
        event = make_event(
            CheckpointPublished(
                new_checkpoint_id=new_id,
                parent_checkpoint_id=parent.payload.new_checkpoint_id if parent else None,
                round=info.round,
                step=info.step,
                final=info.final,
                uri=str(Path(info.path).resolve()),
                backend=self.backend.name,
                metrics={k: float(v) for k, v in info.metrics.items()},
                wall_time_s=info.wall_time_s,
            ),
            run_id=self.settings.run_id,
            producer=PRODUCER,
            event_id=derived_event_id([manifest.event_id], "train", new_id),
            parent_ids=[manifest.event_id, *([parent.event_id] if parent else [])],
            checkpoint_id=new_id,
        )
        await producer.send_all([event])
        self.ledger.add(event)  # before it comes back through the stream: never train a round twice
        self.published.append(event)
        log.info(
            "train.checkpoint_published",
            round=info.round,
            step=info.step,
            final=info.final,
            checkpoint=new_id,
            uri=event.payload.uri,
            reward_mean=info.metrics.get("reward_mean"),
        )
        return event


async def run_trainer(
    settings: TrainerRunSettings,
    trainer: TrainerSettings,
    stop: asyncio.Event,
    *,
    until_idle: bool = False,
    backend: TrainerBackend | None = None,
    show_progress: bool = True,
) -> Sequence[Event[CheckpointPublished]]:
    """What ``looptool train`` runs."""
    service = TrainerService(settings, trainer, backend, show_progress=show_progress)
    return await service.run(stop, until_idle=until_idle)
