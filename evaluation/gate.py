"""The promotion gate: does a checkpoint's evaluation hold up against the promoted policy's?

Pure logic, no Kafka and no model: :func:`gate_figures` reads the gated figures out of a
CheckpointEvaluated payload, :func:`decide` compares them with the promoted policy's, and
:class:`PromotionLedger` folds the gate's past decisions (PolicyPromoted / PromotionRefused events)
into "which policy is promoted now, and after round j's decision". The stage that emits the decisions
is :mod:`streams.promote`.

The rule: a checkpoint is promoted when none of its gated figures drops by more than the tolerance
(absolute, in accuracy 0-1) below the promoted policy's. The figures are the held-out ToolMatch
accuracy (``heldout_toolmatch``) and a configurable subset of BFCL: summary columns (``overall``,
``multi_turn``, ``non_live_ast``, ...) or single categories (``multi_turn_base``, ...). The first
checkpoint decided is promoted (there is nothing to regress against). A checkpoint is refused when
it lacks a gated figure, or when a figure was measured on a different number of items than the
promoted one's (the two evaluations did not run the same questions, so their difference means
nothing); the refusal names the figures, so the configuration can be fixed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

HELDOUT = "heldout_toolmatch"
_EPSILON = 1e-9  # float noise: a drop of exactly the tolerance is allowed


class PromoteSettings(BaseModel):
    """The ``[promote]`` section: what the gate weighs and how much it forgives."""

    model_config = ConfigDict(extra="forbid")

    tolerance: float = Field(
        default=0.01, ge=0, le=1, description="Largest allowed drop of a gated figure (absolute, 0-1)."
    )
    tolerances: dict[str, float] = Field(
        default_factory=dict, description="Per-figure tolerances that override `tolerance`."
    )
    heldout: bool = Field(
        default=True,
        description="Gate on the held-out ToolMatch accuracy (needs [eval] heldout_path on the evaluator).",
    )
    bfcl: list[str] = Field(
        default_factory=lambda: ["overall"],
        description="BFCL figures gated: summary columns (overall, multi_turn, ...) or category names.",
    )
    final_only: bool = Field(
        default=True, description="Decide on the final checkpoint of each round only (others are skipped)."
    )

    @field_validator("bfcl")
    @classmethod
    def _known_figures(cls, names: list[str]) -> list[str]:
        from evaluation.scoring import SUMMARY_COLUMNS
        from evaluation.suite import CATEGORIES

        unknown = [n for n in names if n not in SUMMARY_COLUMNS and n not in CATEGORIES]
        if unknown:
            raise ValueError(
                f"unknown BFCL figures {unknown}; use summary columns ({', '.join(SUMMARY_COLUMNS)}) "
                "or category names"
            )
        return names

    @field_validator("tolerances")
    @classmethod
    def _valid_tolerances(cls, values: dict[str, float]) -> dict[str, float]:
        from evaluation.scoring import SUMMARY_COLUMNS
        from evaluation.suite import CATEGORIES

        bad = {name: value for name, value in values.items() if not 0 <= value <= 1}
        if bad:
            raise ValueError(f"tolerances must lie in [0, 1]: {bad}")
        # A misspelt name ("heldout") would be ignored and the default tolerance applied.
        unknown = [n for n in values if n != HELDOUT and n not in SUMMARY_COLUMNS and n not in CATEGORIES]
        if unknown:
            raise ValueError(
                f"tolerances for unknown figures {unknown}; use {HELDOUT}, summary columns "
                f"({', '.join(SUMMARY_COLUMNS)}) or category names"
            )
        return values

    def gated(self) -> list[str]:
        return [*([HELDOUT] if self.heldout else []), *self.bfcl]

    def tolerance_of(self, name: str) -> float:
        return self.tolerances.get(name, self.tolerance)

    def key(self) -> str:
        """What distinguishes one gate configuration's decisions from another's (part of event ids)."""
        tolerances = ",".join(f"{k}={v}" for k, v in sorted(self.tolerances.items()))
        return f"{','.join(self.gated())}|tol={self.tolerance}|{tolerances}|final_only={self.final_only}"


@dataclass(frozen=True)
class Figure:
    """One gated figure: an accuracy, the number of items behind it, and what was measured
    (``basis``: the held-out file; BFCL's suite version, categories, output reading and limits).
    Two figures compare only on the same basis and item count ("" : unknown, items alone decide)."""

    value: float
    items: int
    basis: str = ""


def gate_figures(evaluation: Any, names: Sequence[str]) -> dict[str, Figure]:
    """The figures ``names`` of a CheckpointEvaluated payload (those it has; the rest are missing).

    BFCL summary columns are recomputed from the per-category counts (BFCL's formulas), so their item
    count is the sum over the column's categories present.
    """
    from evaluation.scoring import SUMMARY_COLUMNS, CategoryScore, summary_from_scores
    from evaluation.suite import IRRELEVANCE, LIVE_AST, MULTI_TURN, NON_LIVE_AST, RELEVANCE

    scores = {c: CategoryScore(c, int(evaluation.correct[c]), int(n)) for c, n in evaluation.total.items()}
    summary = summary_from_scores(scores)
    groups = {
        "non_live_ast": NON_LIVE_AST,
        "live_ast": LIVE_AST,
        "irrelevance": IRRELEVANCE,
        "relevance": RELEVANCE,
        "multi_turn": MULTI_TURN,
        "overall": (*NON_LIVE_AST, *LIVE_AST, *IRRELEVANCE, *MULTI_TURN),
    }
    bfcl = (
        f"{getattr(evaluation, 'suite', 'bfcl')} {getattr(evaluation, 'suite_version', '?')}, "
        f"reading {getattr(evaluation, 'output_reading', None) or 'bfcl'}, "
        f"limit {getattr(evaluation, 'limit', None)}, max_steps {getattr(evaluation, 'max_steps', None)}"
    )
    figures: dict[str, Figure] = {}
    for name in names:
        if name == HELDOUT:
            total = getattr(evaluation, "heldout_total", None)
            if total:
                basis = f"held-out {getattr(evaluation, 'heldout_source', None) or '?'}"
                figures[name] = Figure(evaluation.heldout_correct / total, int(total), basis)
        elif name in SUMMARY_COLUMNS:
            value = summary.column(name)
            if value is not None:
                present = sorted(c for c in groups[name] if c in scores)
                figures[name] = Figure(
                    value,
                    sum(scores[c].total for c in present),
                    f"{bfcl}, categories {','.join(f'{c}:{scores[c].total}' for c in present)}",
                )
        elif name in scores and scores[name].total:
            figures[name] = Figure(scores[name].accuracy, scores[name].total, bfcl)
    return figures


def with_bases(figures: Mapping[str, Figure], evaluation: Any | None) -> dict[str, Figure]:
    """``figures`` (a promotion's, which records no basis) with the bases of the evaluation they
    came from, where it is known and its figures are the same."""
    if evaluation is None:
        return dict(figures)
    measured = gate_figures(evaluation, list(figures))
    return {
        name: Figure(figure.value, figure.items, measured[name].basis)
        if name in measured and measured[name].items == figure.items
        else figure
        for name, figure in figures.items()
    }


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer for one candidate, with both sets of figures and why."""

    promote: bool
    reason: str
    figures: dict[str, float]
    counts: dict[str, int]
    baseline_figures: dict[str, float] = field(default_factory=dict)
    baseline_counts: dict[str, int] = field(default_factory=dict)
    deltas: dict[str, float] = field(default_factory=dict)
    regressions: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    incomparable: list[str] = field(default_factory=list)


def _percent_points(value: float, tolerance: float | None = None) -> str:
    """A delta in percentage points; with more decimals where two would show a drop beyond the
    tolerance as equal to it (-1.003 printed as -1.00 against a tolerance of 1.00)."""
    for digits in range(2, 7):
        text = f"{100 * value:+.{digits}f}"
        if tolerance is None or abs(float(text)) != round(100 * tolerance, digits):
            break
    return f"{text} pts"


def decide(
    candidate: Mapping[str, Figure],
    baseline: Mapping[str, Figure] | None,
    settings: PromoteSettings,
) -> GateDecision:
    """Promote ``candidate`` over ``baseline`` (the promoted policy's figures; None: none promoted)?"""
    gated = settings.gated()
    figures = {name: candidate[name].value for name in gated if name in candidate}
    counts = {name: candidate[name].items for name in gated if name in candidate}
    missing = [name for name in gated if name not in candidate]
    if missing:
        hint = " (the evaluator needs [eval] heldout_path)" if HELDOUT in missing else ""
        return GateDecision(
            False,
            f"evaluation lacks gated figures: {', '.join(missing)}{hint}",
            figures,
            counts,
            missing=missing,
        )
    if baseline is None:
        return GateDecision(True, "no promoted policy yet", figures, counts)
    base_figures = {name: f.value for name, f in baseline.items()}
    base_counts = {name: f.items for name, f in baseline.items()}
    compared = [name for name in gated if name in baseline]
    deltas = {name: candidate[name].value - baseline[name].value for name in compared}
    incomparable = [
        name
        for name in compared
        if candidate[name].items != baseline[name].items
        or (candidate[name].basis and baseline[name].basis and candidate[name].basis != baseline[name].basis)
    ]
    regressions = [
        name
        for name in compared
        if name not in incomparable and deltas[name] < -settings.tolerance_of(name) - _EPSILON
    ]
    common: dict[str, Any] = {
        "figures": figures,
        "counts": counts,
        "baseline_figures": base_figures,
        "baseline_counts": base_counts,
        "deltas": deltas,
    }
    if incomparable or regressions:
        parts = []
        if regressions:
            parts.append(
                "regressed beyond tolerance: "
                + ", ".join(
                    f"{n} {_percent_points(deltas[n], settings.tolerance_of(n))} "
                    f"(tolerance {100 * settings.tolerance_of(n):.2f})"
                    for n in regressions
                )
            )
        if incomparable:
            parts.append(
                "not comparable (measured on other items): "
                + ", ".join(_difference(n, candidate[n], baseline[n]) for n in incomparable)
            )
        return GateDecision(
            False, "; ".join(parts), regressions=regressions, incomparable=incomparable, **common
        )
    unchecked = [name for name in gated if name not in baseline]
    reason = "within tolerance: " + ", ".join(f"{n} {_percent_points(deltas[n])}" for n in compared)
    if unchecked:
        reason += f"; not gated (the promoted policy has no such figure): {', '.join(unchecked)}"
    return GateDecision(True, reason, **common)


def _difference(name: str, candidate: Figure, baseline: Figure) -> str:
    if candidate.items != baseline.items:
        return f"{name} {candidate.items} vs {baseline.items} items"
    return f"{name} on [{candidate.basis}] vs [{baseline.basis}]"


@dataclass(frozen=True)
class Promotion:
    """One promoted policy, as its PolicyPromoted event states it."""

    checkpoint_id: str
    round: int
    uri: str | None
    evaluation_event_id: str
    figures: dict[str, Figure]


@dataclass
class PromotionLedger:
    """The gate's decisions so far (pure fold over PolicyPromoted / PromotionRefused payloads).

    ``promoted``: the current promoted policy. ``after_round(j)``: the policy promoted once round j's
    final checkpoint was decided, i.e. the policy the probe of D_j+... and the trainer of round j+1
    follow; None until that decision exists.
    """

    promoted: Promotion | None = None
    decided: set[str] = field(default_factory=set)  # evaluation event ids already decided
    _after_round: dict[int, Promotion | None] = field(default_factory=dict)

    def add(self, event_id: str, payload: Any) -> bool:
        """Fold one decision (False for anything else, or an evaluation already decided)."""
        from schemas.events import PolicyPromoted, PromotionRefused

        if not isinstance(payload, PolicyPromoted | PromotionRefused):
            return False
        if payload.evaluation_event_id in self.decided:
            return False
        self.decided.add(payload.evaluation_event_id)
        if isinstance(payload, PolicyPromoted):
            self.promoted = Promotion(
                payload.checkpoint_id,
                payload.round,
                payload.uri,
                payload.evaluation_event_id,
                {n: Figure(v, int(payload.counts.get(n, 0))) for n, v in payload.figures.items()},
            )
        if payload.final:
            self._after_round[payload.round] = self.promoted
        return True

    def after_round(self, round_: int) -> Promotion | None:
        return self._after_round.get(round_)

    def decided_round(self, round_: int) -> bool:
        return round_ in self._after_round


def promoted_parent(ledger: PromotionLedger, checkpoints: Sequence[Any], round_: int) -> tuple[bool, Any]:
    """For the trainer's ``start_from = "promoted"``: (ready, the CheckpointPublished event, among
    ``checkpoints``, that round ``round_`` starts from).

    Round j starts from the policy promoted once round j-1's final checkpoint was decided; (False, None)
    until that decision (and that checkpoint's event) is known; (True, None) when nothing was ever
    promoted, i.e. the initial policy.
    """
    if not ledger.decided_round(round_ - 1):
        return False, None
    promoted = ledger.after_round(round_ - 1)
    if promoted is None:
        return True, None
    found = next((e for e in checkpoints if e.payload.new_checkpoint_id == promoted.checkpoint_id), None)
    return found is not None, found
