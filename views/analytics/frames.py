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
from typing import Any, Literal

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
PASSED = "passed"
UNVERIFIED = "unverified"


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
        probes = self.probes.assign(checkpoint_id=self.probes["checkpoint_id"].fillna("(none)"))
        verdicts = self.verdicts.assign(checkpoint_id=self.verdicts["checkpoint_id"].fillna("(none)"))
        relabels = self.relabels.assign(checkpoint_id=self.relabels["checkpoint_id"].fillna("(none)"))
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
        frame = frame.fillna(0).astype("int64")
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
            columns.insert(0, "members")
        else:
            info = self.checkpoints.set_index("checkpoint_id")[["round", "step"]]
            frame = frame.join(info, how="left")
            columns = ["round", "step", *columns]
            frame = frame.sort_values(["round", "step"], na_position="last", kind="stable")
        return frame[columns].sort_index() if by == "round" else frame[columns]

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
            return pd.DataFrame(columns=["round", "outcome", "candidates", "share"])
        counts = merged.groupby(["round", "outcome"]).size().rename("candidates").reset_index()
        totals = counts.groupby("round")["candidates"].transform("sum")
        counts["share"] = counts["candidates"] / totals
        return counts.sort_values(
            ["round", "candidates", "outcome"], ascending=[True, False, True]
        ).reset_index(drop=True)

    def expansion_summary(self) -> pd.DataFrame:
        """Per round: error seeds, candidates, parsed, verified, passed, pass rate, expansions added
        (SampleAdded events) and how many of those are new samples (not a recreation of one)."""
        seeds = self.verdicts[self.verdicts["verdict"].isin(["PRED_WRONG", "LABEL_WRONG"])]
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
        frame = frame.fillna(0).astype("int64")
        frame.index.name = "round"
        frame["pass_rate"] = (frame["passed"] / frame["verified"]).where(frame["verified"] > 0)
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
        return frame.reindex(columns=columns).sort_index()

    # --- accuracy -------------------------------------------------------------------------------

    def accuracy_by_tool(self) -> pd.DataFrame:
        """Per round and tool the label calls (``(no call)`` for text answers): probes, matched, accuracy."""
        if not len(self.probes):
            return pd.DataFrame(columns=["round", "tool", "probes", "matched", "accuracy"])
        exploded = (
            self.probes[["round", "tools", "matched"]].explode("tools").rename(columns={"tools": "tool"})
        )
        frame = (
            exploded.groupby(["round", "tool"])
            .agg(probes=("matched", "size"), matched=("matched", "sum"))
            .reset_index()
        )
        frame["matched"] = frame["matched"].astype("int64")
        frame["accuracy"] = frame["matched"] / frame["probes"]
        return frame.sort_values(["round", "tool"]).reset_index(drop=True)

    def error_types(self) -> pd.DataFrame:
        """Per round and ToolMatch error type: mismatched probes showing it, their share of the
        round's probes and mismatches, and how the judge ruled on them."""
        columns = ["round", "error_type", "probes", "share_of_probes", "share_of_mismatches", *VERDICT_LABELS]
        mismatched = self.probes[~self.probes["matched"].astype(bool)]
        if not len(mismatched):
            return pd.DataFrame(columns=columns)
        exploded = mismatched[["event_id", "round", "error_types"]].explode("error_types")
        exploded = exploded.rename(columns={"error_types": "error_type"}).dropna(subset=["error_type"])
        frame = exploded.groupby(["round", "error_type"]).size().rename("probes").reset_index()
        per_round = self.probes.groupby("round").size()
        mismatches_per_round = mismatched.groupby("round").size()
        frame["share_of_probes"] = frame["probes"] / frame["round"].map(per_round)
        frame["share_of_mismatches"] = frame["probes"] / frame["round"].map(mismatches_per_round)
        judged = exploded.merge(
            self.verdicts[["probe_event_id", "verdict"]], left_on="event_id", right_on="probe_event_id"
        )
        if len(judged):
            split = judged.groupby(["round", "error_type", "verdict"]).size().unstack(fill_value=0)
            frame = frame.merge(split.reset_index(), on=["round", "error_type"], how="left")
        for label in VERDICT_LABELS:
            frame[label] = frame[label].fillna(0).astype("int64") if label in frame else 0
        return (
            frame[columns]
            .sort_values(["round", "probes", "error_type"], ascending=[True, False, True])
            .reset_index(drop=True)
        )

    # --- curation -------------------------------------------------------------------------------

    def curation(self) -> pd.DataFrame:
        """Per round: D_j's members by source (Eq. 5), expansions among them, the seed-new share
        (SEED and SEED_NEW members over all) beside the manifest's target, and whether it closed."""
        columns = [
            "members",
            *SOURCES,
            "expansion_members",
            "seed_new_share",
            "seed_new_target",
            "closed",
            "content_hash",
        ]
        if not len(self.curated) and not len(self.rounds):
            return pd.DataFrame(columns=columns).rename_axis("round")
        by_source = (
            self.curated.groupby(["round", "source"]).size().unstack(fill_value=0)
            if len(self.curated)
            else pd.DataFrame()
        )
        frame = by_source.reindex(columns=list(SOURCES), fill_value=0)
        origins = self.curated.merge(self.samples[["sample_id", "origin"]], on="sample_id", how="left")
        frame = frame.join(
            _count_by(origins[origins["origin"] == "expansion"], ["round"], "expansion_members"), how="outer"
        )
        manifest = self.rounds.set_index("round")[["seed_new_fraction", "content_hash"]]
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
