"""`looptool stats` on judge panels: agreement and position flips per judge model, truncations per stage."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from rich.console import Console

from schemas.events import DeadLetter, JudgeVote, Verdict
from tests.foundation.events_factory import CONTEXT, FLUCTUATION, LABEL, PREDICTION, event_of
from views.analytics import load_stats, render_stats, tables_text
from views.analytics.running import RunningStats
from views.analytics.tables import stats_tables

RUN = "stats"


def vote(
    model: str, verdict: str | None, position: int = 1, counted: bool = True, status: str = "read"
) -> JudgeVote:
    return JudgeVote(
        judge_model=model,
        label_position=position,
        verdict=verdict,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        counted=counted,
    )


def verdict(final: str, votes: list[JudgeVote], index: int) -> object:
    return event_of(
        Verdict(
            sample_id=f"s{index}",
            round=1,
            probe_event_id=f"p{index}",
            tools=[FLUCTUATION],
            messages=CONTEXT,
            label=LABEL,
            prediction=PREDICTION,
            verdict=final,  # type: ignore[arg-type]
            decided_by="judge",
            votes=votes,
            quorum=2,
        ),
        RUN,
    )


def test_agreement_and_flip_rate_per_judge_model() -> None:
    events = [
        # a and b agree with the verdict; c is outvoted.
        verdict(
            "PRED_WRONG", [vote("a", "PRED_WRONG"), vote("b", "PRED_WRONG"), vote("c", "LABEL_WRONG")], 0
        ),
        # Two orders: c flips (its vote does not count), a and b agree.
        verdict(
            "LABEL_WRONG",
            [
                vote("a", "LABEL_WRONG", 1),
                vote("a", "LABEL_WRONG", 2),
                vote("b", "LABEL_WRONG", 1),
                vote("b", "LABEL_WRONG", 2),
                vote("c", "LABEL_WRONG", 1, counted=False),
                vote("c", "PRED_WRONG", 2, counted=False),
            ],
            1,
        ),
        # No quorum: b's answer was cut off; nobody's vote is compared with a verdict that did not come.
        verdict(
            "NO_QUORUM",
            [
                vote("a", "PRED_WRONG"),
                vote("b", None, counted=False, status="truncated"),
                vote("c", "BOTH_WRONG"),
            ],
            2,
        ),
        event_of(
            DeadLetter(stage="judge", reason="truncated: cut off", error_type="TruncatedAnswer", raw=b""), RUN
        ),
        event_of(
            DeadLetter(stage="expand", reason="truncated: cut off", error_type="TruncatedAnswer", raw=b""),
            RUN,
        ),
        event_of(
            DeadLetter(stage="expand", reason="truncated: cut off", error_type="TruncatedAnswer", raw=b""),
            RUN,
        ),
        event_of(DeadLetter(stage="verify", reason="poison", error_type="ValueError", raw=b""), RUN),
    ]
    stats = load_stats(events)
    frame = stats.judge_agreement()
    assert frame.loc["a", "agreement"] == 1.0 and frame.loc["a", "counted"] == 3
    assert frame.loc["c", "agreement"] == 0.0 and frame.loc["c", "counted"] == 2  # 0 of its 1 decided vote
    assert frame.loc["c", "flip_rate"] == 1.0 and frame.loc["a", "flip_rate"] == 0.0
    assert frame.loc["b", "truncated"] == 1 and frame.loc["b", "two_order"] == 1
    assert stats.truncations()["truncated"].to_dict() == {"expand": 2, "judge": 1}
    assert stats.verdict_mix().loc[1, "NO_QUORUM"] == 1
    # stats --follow's running counts: the same panels, without keeping a row per vote.
    running = RunningStats()
    running.add_all(events)
    pd.testing.assert_frame_equal(running.stats().judge_agreement(), frame)
    pd.testing.assert_frame_equal(running.stats().truncations(), stats.truncations())
    folded, rows = stats_tables(running.stats()), stats_tables(stats)  # verdicts with no probe
    assert all(folded[name].equals(rows[name]) for name in rows)
    text = tables_text(stats, tables=["judges", "truncations"])
    assert "position flips" in text and "100.0%" in text and "expand" in text
    Console(file=io.StringIO()).print(render_stats(stats))


def test_an_empty_run_has_empty_judge_tables() -> None:
    stats = load_stats([])
    assert stats.judge_agreement().empty and stats.truncations().empty
    with pytest.raises(ValueError):
        tables_text(stats, tables=["judge"])
