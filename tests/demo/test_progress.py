"""What the demo's follower waits for: trained (final checkpoints) or decided (evaluated and gated)."""

from __future__ import annotations

from typing import Any

from looptool.demo import Progress
from schemas.events import CheckpointPublished, Event
from tests.foundation.events_factory import event_of


def published(round_: int, step: int, *, final: bool) -> Event[Any]:
    checkpoint_id = f"r{round_}-s{step}"
    return event_of(
        CheckpointPublished(
            new_checkpoint_id=checkpoint_id,
            round=round_,
            step=step,
            final=final,
            uri=f"/models/{checkpoint_id}",
            backend="transformers",
        ),
        "progress",
    )


def test_trained_needs_every_rounds_final_checkpoint_and_not_the_gate() -> None:
    progress = Progress()
    progress.add(published(1, 4, final=False))
    progress.add(published(1, 16, final=True))
    progress.add(published(2, 4, final=False))
    assert progress.trained(1)
    assert not progress.trained(2)  # round 2 has only an intermediate checkpoint
    progress.add(published(2, 16, final=True))
    assert progress.trained(2)
    # Without an evaluate and promote service nothing is ever decided: a run that has none (the
    # streaming-vs-serial benchmark) must stop at ``trained``, or it waits until its timeout.
    assert not progress.decided(2)
