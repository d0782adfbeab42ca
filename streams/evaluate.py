"""evaluate: score policy checkpoints on BFCL v4 as the trainer publishes them (Figure 2, live).

The stage follows the checkpoints topic in its own consumer group. For each CheckpointPublished it
selects (:class:`EvalPolicy`: every checkpoint, or those whose trainer step is a multiple of N, and
the final checkpoint of every round), it loads the checkpoint into its own policy backend, runs the
BFCL single-turn suite (:func:`evaluation.runner.evaluate`), writes the per-item results next to the
run's data, and emits one CheckpointEvaluated: checkpoint, round, suite name and version, per-category
counts and accuracy, BFCL's summary columns and the wall time.

The event's id is derived from the checkpoint event and the suite selection, so a redelivered
checkpoint (or a restarted evaluator) yields the same event, which consumers deduplicate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.logs import get_logger
from evaluation.runner import EvalRun, evaluate, write_results
from evaluation.suite import SUITE_NAME, load_suite, parse_categories, suite_version
from inference.base import InferenceBackend
from schemas.events import (
    CheckpointEvaluated,
    CheckpointPublished,
    Event,
    Producer,
    derived_event_id,
    make_event,
)
from streams.registry import StageClients, StageSettings, register
from streams.stage import Stage
from toolcall.prompts import DEFAULT_CURRENT_TIME

log = get_logger(__name__)
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class EvalPolicy:
    """Which checkpoints to evaluate, on what, and how to decode.

    ``every_n_steps``: 1 evaluates every checkpoint; N > 1 those whose trainer step is a multiple of
    N; 0 none but the final ones. The final checkpoint of each round is always evaluated (it is the
    one Figure 2 plots).
    """

    categories: tuple[str, ...] | None = None  # None: every single-turn category
    limit: int | None = None  # first N items of each category; None: all
    every_n_steps: int = 1
    max_new_tokens: int = 512
    batch_size: int = 16
    current_time: str = DEFAULT_CURRENT_TIME
    results_dir: Path | None = None  # per-item results as <dir>/<checkpoint id>.jsonl

    def __post_init__(self) -> None:
        if self.every_n_steps < 0:
            raise ValueError("every_n_steps must be 0 (final checkpoints only) or more")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")
        parse_categories(self.categories)  # fails early on an unknown category

    def selects(self, checkpoint: CheckpointPublished) -> bool:
        if checkpoint.final:
            return True
        return self.every_n_steps > 0 and checkpoint.step % self.every_n_steps == 0

    def selection_key(self) -> str:
        """What distinguishes one evaluation of a checkpoint from another (part of the event id)."""
        categories = ",".join(parse_categories(self.categories))
        return f"{SUITE_NAME}@{suite_version()}|{categories}|limit={self.limit}"


def eval_policy(settings: StageSettings) -> EvalPolicy:
    """The stage's policy from the run's settings (``[eval]``, with ``[policy]`` and ``[loop]`` defaults)."""
    evaluation = settings.eval
    return EvalPolicy(
        categories=tuple(evaluation.categories) if evaluation.categories else None,
        limit=evaluation.limit,
        every_n_steps=evaluation.every_n_steps,
        max_new_tokens=evaluation.max_new_tokens,
        batch_size=evaluation.batch_size or settings.policy.batch_size,
        current_time=settings.loop.current_time,
        results_dir=Path(evaluation.results_dir) / settings.run_id,
    )


def evaluation_event(
    checkpoint: Event[CheckpointPublished], run: EvalRun, policy: EvalPolicy, results_uri: str | None
) -> Event[CheckpointEvaluated]:
    """The CheckpointEvaluated event for an evaluation of ``checkpoint`` (pure; deterministic id)."""
    summary = run.summary
    published = checkpoint.payload
    return make_event(
        CheckpointEvaluated(
            checkpoint_id=published.new_checkpoint_id,
            round=published.round,
            step=published.step,
            final=published.final,
            suite=run.suite,
            suite_version=run.suite_version,
            categories=list(summary.categories),
            limit=run.limit,
            correct={name: score.correct for name, score in summary.categories.items()},
            total={name: score.total for name, score in summary.categories.items()},
            accuracy=summary.accuracy(),
            summary=summary.columns(),
            wall_time_s=run.wall_time_s,
            results_uri=results_uri,
        ),
        run_id=checkpoint.run_id,
        producer=EvaluateStage.producer_info(),
        event_id=derived_event_id([checkpoint.event_id], EvaluateStage.name, policy.selection_key()),
        parent_ids=[checkpoint.event_id],
        checkpoint_id=published.new_checkpoint_id,
    )


@register(in_loop=False)
class EvaluateStage(Stage):
    """Each selected checkpoint scored on BFCL v4 with bfcl-eval's own data and checker."""

    name = "evaluate"
    input_topics = ("checkpoints",)
    input_types = ("CheckpointPublished",)
    batch_size = 1  # one checkpoint at a time: each is a whole benchmark run

    def __init__(self, run_id: str, backend: InferenceBackend, policy: EvalPolicy | None = None):
        super().__init__(run_id)
        self.backend = backend
        self.policy = policy or EvalPolicy()
        self._loaded: str | None = None
        self._items = load_suite(
            list(self.policy.categories) if self.policy.categories else None, self.policy.limit
        )

    @classmethod
    def from_settings(cls, settings: StageSettings, clients: StageClients) -> EvaluateStage:
        return cls(settings.run_id, clients.policy_backend(), eval_policy(settings))

    @classmethod
    def producer_info(cls) -> Producer:
        return Producer(stage=cls.name, version=cls.version)

    async def _use(self, checkpoint: CheckpointPublished) -> None:
        if self._loaded != checkpoint.new_checkpoint_id:
            log.info("evaluate.load_checkpoint", checkpoint=checkpoint.new_checkpoint_id, uri=checkpoint.uri)
            await self.backend.load(checkpoint.uri, checkpoint.new_checkpoint_id)
            self._loaded = checkpoint.new_checkpoint_id

    async def handle(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        outputs: list[Event[Any]] = []
        for event in events:
            checkpoint: CheckpointPublished = event.payload
            if not self.policy.selects(checkpoint):
                log.info("evaluate.skip", checkpoint=checkpoint.new_checkpoint_id, step=checkpoint.step)
                continue
            await self._use(checkpoint)
            run = await evaluate(
                self.backend,
                self._items,
                max_tokens=self.policy.max_new_tokens,
                batch_size=self.policy.batch_size,
                current_time=self.policy.current_time,
                limit=self.policy.limit,
                show_progress=False,
            )
            results_uri = None
            if self.policy.results_dir is not None:
                stem = _UNSAFE_FILE_CHARS.sub("_", checkpoint.new_checkpoint_id)
                target = self.policy.results_dir / f"{stem}.jsonl"
                results_uri = str(write_results(run.results, target))
            outputs.append(evaluation_event(event, run, self.policy, results_uri))
            log.info(
                "evaluate.checkpoint",
                checkpoint=checkpoint.new_checkpoint_id,
                round=checkpoint.round,
                items=run.summary.total,
                **{k: round(v, 4) for k, v in run.summary.columns().items()},
            )
        return outputs
