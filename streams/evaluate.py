"""evaluate: score policy checkpoints on BFCL v4 as the trainer publishes them (Figure 2, live).

The stage follows the checkpoints topic in its own consumer group. For each CheckpointPublished it
selects (:class:`EvalPolicy`: every checkpoint, or those whose trainer step is a multiple of N, and
the final checkpoint of every round), it loads the checkpoint into its own policy backend, runs the
BFCL suite, single- and multi-turn (:func:`evaluation.runner.evaluate`), and the held-out ToolMatch
set when one is configured (:mod:`evaluation.heldout`), writes the per-item results next to the
run's data, and emits one CheckpointEvaluated: checkpoint, round, suite name and version, per-category
counts, accuracy, steps and error types, BFCL's summary columns, the held-out figures and the wall
time. The promotion gate (:mod:`streams.promote`) decides on those events.

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
from evaluation.heldout import HeldoutScore, HeldoutSet, heldout_toolmatch, load_heldout
from evaluation.reading import DEFAULT_OUTPUT_READING, OutputReading
from evaluation.runner import EvalRun, evaluate, write_results
from evaluation.suite import SUITE_NAME, load_suite, parse_categories, suite_version
from inference.base import InferenceBackend, InferenceError
from schemas.events import (
    CheckpointEvaluated,
    CheckpointPublished,
    Event,
    Producer,
    derived_event_id,
    make_event,
)
from streams.probe import switch_policy
from streams.registry import StageClients, StageSettings, register
from streams.stage import Stage, backend_failure
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

    categories: tuple[str, ...] | None = None  # None: every category, multi-turn included
    bfcl: bool = True  # False: no BFCL item, the held-out set only
    limit: int | None = None  # first N items of each category; None: all
    every_n_steps: int = 1
    max_new_tokens: int = 512
    batch_size: int = 16
    current_time: str = DEFAULT_CURRENT_TIME
    results_dir: Path | None = None  # per-item results as <dir>/<checkpoint id>.jsonl
    max_steps: int | None = None  # multi-turn steps per turn (None: BFCL's limit)
    heldout_path: Path | None = None  # held-out ToolMatch set scored beside BFCL
    reading: OutputReading = DEFAULT_OUTPUT_READING  # how outputs are read (evaluation.reading)

    def __post_init__(self) -> None:
        if self.every_n_steps < 0:
            raise ValueError("every_n_steps must be 0 (final checkpoints only) or more")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        parse_categories(self.categories)  # fails early on an unknown category
        if not self.bfcl and self.heldout_path is None:
            raise ValueError("nothing to evaluate: BFCL is off ([eval] bfcl = false) and no heldout_path")

    def selects(self, checkpoint: CheckpointPublished) -> bool:
        if checkpoint.final:
            return True
        return self.every_n_steps > 0 and checkpoint.step % self.every_n_steps == 0

    def selection_key(self, heldout_source: str | None = None) -> str:
        """What distinguishes one evaluation of a checkpoint from another (part of the event id)."""
        categories = ",".join(parse_categories(self.categories)) if self.bfcl else "none"
        key = f"{SUITE_NAME}@{suite_version()}|{categories}|limit={self.limit}"
        if self.max_steps is not None:
            key += f"|max_steps={self.max_steps}"
        if self.reading != DEFAULT_OUTPUT_READING:
            key += f"|reading={self.reading}"
        return key + (f"|heldout={heldout_source}" if heldout_source else "")


def eval_policy(settings: StageSettings) -> EvalPolicy:
    """The stage's policy from the run's settings (``[eval]``, with ``[policy]`` and ``[loop]`` defaults)."""
    evaluation = settings.eval
    return EvalPolicy(
        categories=tuple(evaluation.categories) if evaluation.categories else None,
        bfcl=evaluation.bfcl,
        limit=evaluation.limit,
        every_n_steps=evaluation.every_n_steps,
        max_new_tokens=evaluation.max_new_tokens,
        batch_size=evaluation.batch_size or settings.policy.batch_size,
        current_time=settings.loop.current_time,
        results_dir=Path(evaluation.results_dir) / settings.run_id,
        max_steps=evaluation.max_steps,
        heldout_path=evaluation.heldout_path,
        reading=evaluation.output_reading,
    )


def evaluation_event(
    checkpoint: Event[CheckpointPublished],
    run: EvalRun,
    policy: EvalPolicy,
    results_uri: str | None,
    heldout: tuple[HeldoutScore, str] | None = None,
) -> Event[CheckpointEvaluated]:
    """The CheckpointEvaluated event for an evaluation of ``checkpoint`` (pure; deterministic id).

    ``heldout``: the held-out ToolMatch score and the set's source name, when one was scored.
    """
    summary = run.summary
    published = checkpoint.payload
    score, source = heldout if heldout is not None else (None, None)
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
            uri=published.uri,
            max_steps=run.max_steps,
            steps=run.steps(),
            error_types=run.error_types(),
            heldout_correct=score.correct if score else None,
            heldout_total=score.total if score else None,
            heldout_source=source,
            output_reading=str(policy.reading) if summary.categories else None,
        ),
        run_id=checkpoint.run_id,
        producer=EvaluateStage.producer_info(),
        event_id=derived_event_id([checkpoint.event_id], EvaluateStage.name, policy.selection_key(source)),
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
    max_batch_size = 1

    def __init__(self, run_id: str, backend: InferenceBackend, policy: EvalPolicy | None = None):
        super().__init__(run_id)
        self.backend = backend
        self.policy = policy or EvalPolicy()
        self._loaded: str | None = None
        self._items = (
            load_suite(list(self.policy.categories) if self.policy.categories else None, self.policy.limit)
            if self.policy.bfcl
            else []
        )
        # Read once: a file that changes under a running evaluator would make its figures incomparable.
        self._heldout: HeldoutSet | None = (
            load_heldout(self.policy.heldout_path) if self.policy.heldout_path is not None else None
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
            await switch_policy(self.backend, checkpoint)
            self._loaded = checkpoint.new_checkpoint_id

    async def _evaluate(self) -> tuple[EvalRun, tuple[HeldoutScore, str] | None]:
        """BFCL and the held-out set on the loaded checkpoint."""
        run = await evaluate(
            self.backend,
            self._items,
            max_tokens=self.policy.max_new_tokens,
            batch_size=self.policy.batch_size,
            current_time=self.policy.current_time,
            limit=self.policy.limit,
            show_progress=False,
            max_steps=self.policy.max_steps,
            reading=self.policy.reading,
        )
        if self._heldout is None:
            return run, None
        score = await heldout_toolmatch(
            self.backend,
            self._heldout.samples,
            max_tokens=self.policy.max_new_tokens,
            batch_size=self.policy.batch_size,
            current_time=self.policy.current_time,
        )
        return run, (score, self._heldout.source)

    async def handle(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        outputs: list[Event[Any]] = []
        for event in events:
            checkpoint: CheckpointPublished = event.payload
            if not self.policy.selects(checkpoint):
                log.info("evaluate.skip", checkpoint=checkpoint.new_checkpoint_id, step=checkpoint.step)
                continue
            await self._use(checkpoint)
            try:
                run, heldout = await self._evaluate()
            except InferenceError as error:  # a served policy's outage pauses; one refused prompt does not
                raise backend_failure(error, "the policy") from error
            results_uri = None
            if self.policy.results_dir is not None:
                stem = _UNSAFE_FILE_CHARS.sub("_", checkpoint.new_checkpoint_id)
                target = self.policy.results_dir / f"{stem}.jsonl"
                results_uri = str(write_results(run.results, target))
            outputs.append(evaluation_event(event, run, self.policy, results_uri, heldout))
            log.info(
                "evaluate.checkpoint",
                checkpoint=checkpoint.new_checkpoint_id,
                round=checkpoint.round,
                items=run.summary.total,
                heldout_accuracy=round(heldout[0].accuracy, 4) if heldout else None,
                **{k: round(v, 4) for k, v in run.summary.columns().items()},
            )
        return outputs
