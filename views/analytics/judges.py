"""How each judge model voted, and how many role answers their token budget cut off.

From every Verdict's ``votes`` (one per answer; a judge asked in two orders answers twice): one row
per verdict and judge (:func:`vote_rows`), then per judge model (:func:`judge_agreement`):

- ``agreement``: of its counted votes on verdicts the panel decided, the share equal to the verdict;
- ``flip_rate``: of the verdicts it answered in both orders and both answers were read, the share
  where the two answers disagree (a position flip: its vote did not count);
- its answers that could not be read, and those cut off by their budget.

:func:`truncations` counts, per stage, the answers dead-lettered as truncated (``TruncatedAnswer``).
Pure pandas, no I/O: the collector feeds the rows, the renderers print the frames.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

import pandas as pd

from schemas.events import Verdict

VOTE_COLUMNS: tuple[str, ...] = (
    "verdict_event_id",
    "round",
    "judge_model",
    "answers",
    "read",
    "unparseable",
    "truncated",
    "counted",
    "vote",
    "verdict",
    "flipped",
)
DECIDED = ("PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG")
TRUNCATED = "TruncatedAnswer"


def vote_rows(verdict_event_id: str, verdict: Verdict) -> list[dict[str, Any]]:
    """One row per judge of a verdict (its answers are consecutive in ``votes``)."""
    rows = []
    for model, group in groupby(verdict.votes, key=lambda vote: vote.judge_model):
        answers = list(group)
        read = [a for a in answers if a.status == "read"]
        counted = all(a.counted for a in answers)
        rows.append(
            {
                "verdict_event_id": verdict_event_id,
                "round": verdict.round,
                "judge_model": model,
                "answers": len(answers),
                "read": len(read),
                "unparseable": sum(a.status == "unparseable" for a in answers),
                "truncated": sum(a.status == "truncated" for a in answers),
                "counted": counted,
                "vote": read[0].verdict if counted and read else None,
                "verdict": verdict.verdict,
                "flipped": len(read) == 2 and read[0].verdict != read[1].verdict,
            }
        )
    return rows


def judge_agreement(votes: pd.DataFrame) -> pd.DataFrame:
    """Per judge model: verdicts it answered, votes counted, agreement rate, position-flip rate,
    answers unread and truncated."""
    if not len(votes):
        return finish_judge_agreement(None)
    decided = votes[votes["counted"].astype(bool) & votes["verdict"].isin(DECIDED)]
    two_order = votes[votes["read"] == 2]
    by_model = votes.groupby("judge_model")
    frame = pd.DataFrame(
        {
            "verdicts": by_model.size(),
            "counted": by_model["counted"].sum().astype("int64"),
            "decided": decided.groupby("judge_model").size(),
            "agreed": (decided["vote"] == decided["verdict"]).groupby(decided["judge_model"]).sum(),
            "two_order": two_order.groupby("judge_model").size(),
            "flipped": two_order.groupby("judge_model")["flipped"].sum(),
            "answers": by_model["answers"].sum(),
            "unparseable": by_model["unparseable"].sum(),
            "truncated": by_model["truncated"].sum(),
        }
    )
    return finish_judge_agreement(frame)


def vote_counts(row: dict[str, Any]) -> dict[str, int]:
    """One row of :func:`vote_rows` as its share of the counts per judge model (a running fold adds
    these up instead of keeping the rows)."""
    two_order = row["read"] == 2
    decided = bool(row["counted"]) and row["verdict"] in DECIDED
    return {
        "verdicts": 1,
        "counted": int(bool(row["counted"])),
        "decided": int(decided),
        "agreed": int(decided and row["vote"] == row["verdict"]),
        "two_order": int(two_order),
        "flipped": int(two_order and bool(row["flipped"])),
        "answers": row["answers"],
        "unparseable": row["unparseable"],
        "truncated": row["truncated"],
    }


def finish_judge_agreement(frame: pd.DataFrame | None) -> pd.DataFrame:
    """From the counts per judge model (``frame``, indexed by judge_model, the keys of
    :func:`vote_counts`; None without a vote): the agreement and flip rates."""
    columns = [
        "verdicts",
        "counted",
        "agreed",
        "agreement",
        "two_order",
        "flipped",
        "flip_rate",
        "answers",
        "unparseable",
        "truncated",
    ]
    if frame is None:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="judge_model"))
    counts = [c for c in frame.columns]
    frame[counts] = frame[counts].fillna(0).astype("int64")
    frame["agreement"] = (frame["agreed"] / frame["decided"]).where(frame["decided"] > 0)
    frame["flip_rate"] = (frame["flipped"] / frame["two_order"]).where(frame["two_order"] > 0)
    frame.index.name = "judge_model"
    return frame[columns].sort_index()


def truncations(dead_letters: pd.DataFrame) -> pd.DataFrame:
    """Per stage: the role answers dead-lettered because their token budget cut them off (twice)."""
    cut = dead_letters[dead_letters["error_type"] == TRUNCATED] if len(dead_letters) else dead_letters
    if not len(cut):
        return pd.DataFrame({"truncated": pd.Series(dtype="int64")}, index=pd.Index([], name="stage"))
    frame = cut.groupby("stage").size().rename("truncated").to_frame()
    frame.index.name = "stage"
    return frame
