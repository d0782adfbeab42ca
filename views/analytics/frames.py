"""The analytics as pandas DataFrames, derived from the collector's rows.

- :meth:`RunStats.verdict_mix` per round or per checkpoint: probes, matches, accuracy, the verdict
  mix (PRED_WRONG / LABEL_WRONG / BOTH_CORRECT / BOTH_WRONG / UNPARSEABLE / NO_QUORUM), mismatches
  not (yet) judged, relabels and reverts;
- :meth:`RunStats.judge_agreement` per judge model (agreement, position flips) and
  :meth:`RunStats.truncations` per stage (answers cut off by their token budget);
- :meth:`RunStats.expansion_summary` and :meth:`RunStats.expansion_outcomes`: EDDE candidates per
  round, the pass rate, and every failure by the rule (or LLM tier) that failed it;
- :meth:`RunStats.accuracy_by_tool` and :meth:`RunStats.error_types` (from ToolMatch diffs, with
  the judge's verdicts on each kind of error);
- :meth:`RunStats.curation`: D_j's sources (Eq. 5) and its seed-new share against the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import pandas as pd

VERDICT_LABELS: tuple[str, ...] = (
    "PRED_WRONG",
    "LABEL_WRONG",
    "BOTH_CORRECT",
    "BOTH_WRONG",
    "UNPARSEABLE",
    "NO_QUORUM",
)
SOURCES: tuple[str, ...] = ("SEED", "ES", "EE", "HPPL", "SEED_NEW")
NO_CALL = "(no call)"
ERROR_SEEDS: tuple[str, ...] = ("PRED_WRONG", "LABEL_WRONG")  # the verdicts that make a sample an error seed
NO_CHECKPOINT = "(none)"  # the key of events without a checkpoint in the verdict mix by checkpoint
PASSED = "passed"
UNVERIFIED = "unverified"


class StatsView(Protocol):
    """What the rich tables, the plots and the summary tables read: a :class:`RunStats`, or the
    snapshot of a running fold (:class:`views.analytics.running.SummaryStats`)."""

    events: int
    undecodable: int
    evaluations: list[Any]
    promotions: list[Any]
    dead_letters: pd.DataFrame

    def verdict_mix(self, by: Literal["round", "checkpoint"] = "round") -> pd.DataFrame: ...
    def expansion_summary(self) -> pd.DataFrame: ...
    def expansion_outcomes(self) -> pd.DataFrame: ...
    def accuracy_by_tool(self) -> pd.DataFrame: ...
    def error_types(self) -> pd.DataFrame: ...
    def curation(self) -> pd.DataFrame: ...
    def judge_agreement(self) -> pd.DataFrame: ...
    def truncations(self) -> pd.DataFrame: ...


def _count_by(frame: pd.DataFrame, keys: list[str], name: str) -> pd.Series:
    return frame.groupby(keys).size().rename(name) if len(frame) else pd.Series(name=name, dtype="int64")


@dataclass
class RunStats:
    """The run's per-event rows as DataFrames, and the aggregate views derived from them."""

    events: int
    probes: pd.DataFrame
    verdicts: pd.DataFrame
    relabels: pd.DataFrame
    candidates: pd.DataFrame
    verifications: pd.DataFrame
    added: pd.DataFrame  # every SampleAdded
    samples: pd.DataFrame  # one row per sample: its origin
    curated: pd.DataFrame
    rounds: pd.DataFrame
    checkpoints: pd.DataFrame
    dead_letters: pd.DataFrame
    votes: pd.DataFrame  # one row per verdict and judge (views.analytics.judges)
    evaluations: list[Any] = field(default_factory=list)  # CheckpointEvaluated payloads
    # Records of the topics that could not be decoded (a newer writer's schema during an upgrade,
    # garbage): left out of every table, so they are counted and said.
    undecodable: int = 0
    promotions: list[Any] = field(default_factory=list)  # PolicyPromoted / PromotionRefused payloads

    # --- judges ---------------------------------------------------------------------------------

    def judge_agreement(self) -> pd.DataFrame:
        """Per judge model: agreement with the verdict, position-flip rate, unread and cut-off answers."""
        from views.analytics.judges import judge_agreement

        return judge_agreement(self.votes)

    def truncations(self) -> pd.DataFrame:
        """Per stage: role answers dead-lettered because their token budget cut them off."""
        from views.analytics.judges import truncations

        return truncations(self.dead_letters)

    # --- verdicts -------------------------------------------------------------------------------

    def verdict_mix(self, by: Literal["round", "checkpoint"] = "round") -> pd.DataFrame:
        """Per round (or checkpoint): probes, matches, accuracy, each verdict, unjudged, relabels."""
        if by not in ("round", "checkpoint"):
            raise ValueError(f"by must be 'round' or 'checkpoint', not {by!r}")
        key = "round" if by == "round" else "checkpoint_id"
        probes = self.probes.assign(checkpoint_id=self.probes["checkpoint_id"].fillna(NO_CHECKPOINT))
        verdicts = self.verdicts.assign(checkpoint_id=self.verdicts["checkpoint_id"].fillna(NO_CHECKPOINT))
        relabels = self.relabels.assign(checkpoint_id=self.relabels["checkpoint_id"].fillna(NO_CHECKPOINT))
        parts = [
            _count_by(probes, [key], "probed"),
            probes.groupby(key)["matched"].sum().astype("int64").rename("matched")
            if len(probes)
            else pd.Series(name="matched", dtype="int64"),
        ]
        if by == "round":
            parts.insert(0, _count_by(self.curated, ["round"], "members"))
        frame = pd.concat(parts, axis=1)
        verdict_counts = (
            verdicts.groupby([key, "verdict"]).size().unstack(fill_value=0)
            if len(verdicts)
            else pd.DataFrame()
        )
        frame = frame.join(verdict_counts.reindex(columns=list(VERDICT_LABELS), fill_value=0), how="outer")
        frame = frame.join(
            _count_by(relabels[~relabels["revert"].astype(bool)], [key], "relabels"), how="outer"
        )
        frame = frame.join(
            _count_by(relabels[relabels["revert"].astype(bool)], [key], "reverts"), how="outer"
        )
        checkpoints = self.checkpoints.set_index("checkpoint_id")[["round", "step"]]
        return finish_verdict_mix(frame, by, checkpoints)

    # --- expansion ------------------------------------------------------------------------------

    def _candidate_outcomes(self) -> pd.DataFrame:
        verified = self.verifications[["candidate_id", "round", "passed", "failing_rule"]]
        merged = self.candidates[["candidate_id", "round", "parsed"]].merge(
            verified, on="candidate_id", how="outer", suffixes=("", "_verification")
        )
        merged["round"] = merged["round"].fillna(merged["round_verification"]).astype("int64")
        merged["outcome"] = merged["failing_rule"].fillna(UNVERIFIED)
        return merged

    def expansion_outcomes(self) -> pd.DataFrame:
        """Long form: per round and outcome (``passed``, ``rule:<code>``, ``llm:<verdict>``,
        ``unverified``) the number of candidates and their share of the round's candidates."""
        merged = self._candidate_outcomes()
        if not len(merged):
            return finish_expansion_outcomes(pd.DataFrame(columns=["round", "outcome", "candidates"]))
        return finish_expansion_outcomes(
            merged.groupby(["round", "outcome"]).size().rename("candidates").reset_index()
        )

    def expansion_summary(self) -> pd.DataFrame:
        """Per round: error seeds, candidates, parsed, verified, passed, pass rate, expansions added
        (SampleAdded events) and how many of those are new samples (not a recreation of one)."""
        seeds = self.verdicts[self.verdicts["verdict"].isin(ERROR_SEEDS)]
        merged = self._candidate_outcomes()
        added = self.added[self.added["origin"] == "expansion"]
        new = self.samples[self.samples["origin"] == "expansion"]
        frame = pd.concat(
            [
                _count_by(seeds, ["round"], "error_seeds"),
                _count_by(merged, ["round"], "candidates"),
                _count_by(merged[merged["parsed"].fillna(False).astype(bool)], ["round"], "parsed"),
                _count_by(merged[merged["outcome"] != UNVERIFIED], ["round"], "verified"),
                _count_by(merged[merged["outcome"] == PASSED], ["round"], "passed"),
                _count_by(added, ["round"], "added"),
                _count_by(new, ["round"], "new_samples"),
            ],
            axis=1,
        )
        return finish_expansion(frame)

    # --- accuracy -------------------------------------------------------------------------------

    def accuracy_by_tool(self) -> pd.DataFrame:
        """Per round and tool the label calls (``(no call)`` for text answers): probes, matched, accuracy."""
        if not len(self.probes):
            return pd.DataFrame(columns=["round", "tool", "probes", "matched", "accuracy"])
        exploded = (
            self.probes[["round", "tools", "matched"]].explode("tools").rename(columns={"tools": "tool"})
        )
        return finish_accuracy_by_tool(
            exploded.groupby(["round", "tool"])
            .agg(probes=("matched", "size"), matched=("matched", "sum"))
            .reset_index()
        )

    def error_types(self) -> pd.DataFrame:
        """Per round and ToolMatch error type: mismatched probes showing it, their share of the
        round's probes and mismatches, and how the judge ruled on them."""
        mismatched = self.probes[~self.probes["matched"].astype(bool)]
        if not len(mismatched):
            return finish_error_types(None, pd.Series(dtype="int64"), pd.Series(dtype="int64"), None)
        exploded = mismatched[["event_id", "round", "error_types"]].explode("error_types")
        exploded = exploded.rename(columns={"error_types": "error_type"}).dropna(subset=["error_type"])
        frame = exploded.groupby(["round", "error_type"]).size().rename("probes").reset_index()
        judged = exploded.merge(
            self.verdicts[["probe_event_id", "verdict"]], left_on="event_id", right_on="probe_event_id"
        )
        split = (
            judged.groupby(["round", "error_type", "verdict"]).size().unstack(fill_value=0)
            if len(judged)
            else None
        )
        return finish_error_types(
            frame, self.probes.groupby("round").size(), mismatched.groupby("round").size(), split
        )

    # --- curation -------------------------------------------------------------------------------

    def curation(self) -> pd.DataFrame:
        """Per round: D_j's members by source (Eq. 5), expansions among them, the seed-new share
        (SEED and SEED_NEW members over all) beside the manifest's target, and whether it closed."""
        if not len(self.curated) and not len(self.rounds):
            return finish_curation(None, pd.Series(dtype="int64"), self.rounds)
        by_source = (
            self.curated.groupby(["round", "source"]).size().unstack(fill_value=0)
            if len(self.curated)
            else pd.DataFrame()
        )
        origins = self.curated.merge(self.samples[["sample_id", "origin"]], on="sample_id", how="left")
        expansion_members = _count_by(
            origins[origins["origin"] == "expansion"], ["round"], "expansion_members"
        )
        return finish_curation(by_source, expansion_members, self.rounds)


# --- the tables from their counts ------------------------------------------------------------------
# Shared by RunStats (counts from the per-event rows) and views.analytics.running (running counts):
# the figures derived from the counts, the columns and the order are the same code for both.


def finish_verdict_mix(
    frame: pd.DataFrame, by: Literal["round", "checkpoint"], checkpoints: pd.DataFrame
) -> pd.DataFrame:
    """The verdict mix from its counts per ``round`` (or ``checkpoint_id``): ``frame`` indexed by the
    key with the columns probed, matched, each verdict, relabels, reverts (and members per round);
    ``checkpoints``: round and step indexed by checkpoint id."""
    key = "round" if by == "round" else "checkpoint_id"
    counted = ["probed", "matched", *VERDICT_LABELS, "relabels", "reverts"]
    if by == "round":
        counted.insert(0, "members")
    frame = frame.reindex(columns=counted).fillna(0).astype("int64").sort_index()
    frame.index.name = key
    frame["mismatched"] = frame["probed"] - frame["matched"]
    frame["unjudged"] = frame["mismatched"] - frame[list(VERDICT_LABELS)].sum(axis=1)
    frame["accuracy"] = (frame["matched"] / frame["probed"]).where(frame["probed"] > 0)
    columns = [
        "probed",
        "matched",
        "accuracy",
        "mismatched",
        *VERDICT_LABELS,
        "unjudged",
        "relabels",
        "reverts",
    ]
    if by == "round":
        return frame[["members", *columns]].sort_index()
    frame = frame.join(checkpoints, how="left")
    frame = frame.sort_values(["round", "step"], na_position="last", kind="stable")
    return frame[["round", "step", *columns]]


def finish_expansion(frame: pd.DataFrame) -> pd.DataFrame:
    """Expansion per round from its counts (error_seeds, candidates, parsed, verified, passed, added,
    new_samples), with the pass rate."""
    columns = [
        "error_seeds",
        "candidates",
        "parsed",
        "verified",
        "passed",
        "pass_rate",
        "added",
        "new_samples",
    ]
    counted = [c for c in columns if c != "pass_rate"]
    frame = frame.reindex(columns=counted).fillna(0).astype("int64")
    frame.index.name = "round"
    frame["pass_rate"] = (frame["passed"] / frame["verified"]).where(frame["verified"] > 0)
    return frame.reindex(columns=columns).sort_index()


def finish_expansion_outcomes(counts: pd.DataFrame) -> pd.DataFrame:
    """From candidates per round and outcome: each outcome's share of its round, the largest first."""
    if not len(counts):
        return pd.DataFrame(columns=["round", "outcome", "candidates", "share"])
    counts = counts.copy()
    totals = counts.groupby("round")["candidates"].transform("sum")
    counts["share"] = counts["candidates"] / totals
    return counts.sort_values(["round", "candidates", "outcome"], ascending=[True, False, True]).reset_index(
        drop=True
    )


def finish_accuracy_by_tool(frame: pd.DataFrame) -> pd.DataFrame:
    """From probes and matches per round and tool: the accuracy, in round and tool order."""
    if not len(frame):
        return pd.DataFrame(columns=["round", "tool", "probes", "matched", "accuracy"])
    frame = frame.copy()
    frame["matched"] = frame["matched"].astype("int64")
    frame["accuracy"] = frame["matched"] / frame["probes"]
    return frame.sort_values(["round", "tool"]).reset_index(drop=True)


def finish_error_types(
    frame: pd.DataFrame | None,
    per_round: pd.Series,
    mismatches_per_round: pd.Series,
    split: pd.DataFrame | None,
) -> pd.DataFrame:
    """From mismatched probes per round and error type (``frame``: round, error_type, probes), the
    round's probes and mismatches, and the verdicts on them (``split``: indexed by round and error
    type, a column per verdict): the shares and the verdict columns."""
    columns = ["round", "error_type", "probes", "share_of_probes", "share_of_mismatches", *VERDICT_LABELS]
    if frame is None:
        return pd.DataFrame(columns=columns)
    frame = frame.copy()
    frame["share_of_probes"] = frame["probes"] / frame["round"].map(per_round)
    frame["share_of_mismatches"] = frame["probes"] / frame["round"].map(mismatches_per_round)
    if split is not None:
        frame = frame.merge(split.reset_index(), on=["round", "error_type"], how="left")
    for label in VERDICT_LABELS:
        frame[label] = frame[label].fillna(0).astype("int64") if label in frame else 0
    return (
        frame[columns]
        .sort_values(["round", "probes", "error_type"], ascending=[True, False, True])
        .reset_index(drop=True)
    )


def finish_curation(
    by_source: pd.DataFrame | None, expansion_members: pd.Series, rounds: pd.DataFrame
) -> pd.DataFrame:
    """Curation per round from its members by source (``by_source``: a column per source, None when no
    round has any member nor a manifest), the members that entered by expansion, and the RoundClosed
    manifests (``rounds``: round, seed_new_fraction, content_hash)."""
    columns = [
        "members",
        *SOURCES,
        "expansion_members",
        "seed_new_share",
        "seed_new_target",
        "closed",
        "content_hash",
    ]
    if by_source is None:
        return pd.DataFrame(columns=columns).rename_axis("round")
    frame = by_source.reindex(columns=list(SOURCES), fill_value=0)
    frame = frame.join(expansion_members.rename("expansion_members"), how="outer")
    manifest = rounds.set_index("round")[["seed_new_fraction", "content_hash"]]
    frame = frame.join(manifest, how="outer")
    counts = [*SOURCES, "expansion_members"]
    frame[counts] = frame[counts].fillna(0).astype("int64")
    frame["members"] = frame[list(SOURCES)].sum(axis=1)
    frame["seed_new_share"] = ((frame["SEED"] + frame["SEED_NEW"]) / frame["members"]).where(
        frame["members"] > 0
    )
    frame["seed_new_target"] = frame["seed_new_fraction"]
    frame["closed"] = frame["content_hash"].notna()
    frame.index.name = "round"
    return frame[columns].sort_index()
