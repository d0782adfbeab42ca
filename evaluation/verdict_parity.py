"""What the single- and multi-turn parity checks share: one outcome per output both sides scored,
counted per kind of output.

:mod:`evaluation.single_turn_parity` scores one output per item and kind, :mod:`evaluation.multi_turn_parity`
one conversation per item and kind; both compare our verdict and error type with bfcl-eval's and count
the results here, so the two tables are built the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from evaluation.reading import DEFAULT_OUTPUT_READING, OutputReading


class OutputKind(Protocol):
    """A way of writing an item's outputs (a rendering or a perturbation)."""

    @property
    def name(self) -> str: ...

    @property
    def well_formed(self) -> bool: ...  # False: bfcl-eval's reading drops or refuses it in part or whole


ItemT = TypeVar("ItemT")
KindT = TypeVar("KindT", bound=OutputKind)


@dataclass(frozen=True)
class Outcome:
    item_id: str
    category: str
    kind: str
    ours: bool
    our_error: str | None
    bfcl: bool
    bfcl_error: str | None

    @property
    def agree(self) -> bool:
        return self.ours == self.bfcl and self.our_error == self.bfcl_error


@dataclass
class KindSummary:
    kind: str
    well_formed: bool
    outputs: int = 0  # outputs scored: items (single turn) or conversations (multi-turn)
    bfcl_valid: int = 0
    ours_valid: int = 0
    agree: int = 0
    error_types: dict[str, int] = field(default_factory=dict)  # bfcl-eval's error types, as it names them
    disagreements: list[Outcome] = field(default_factory=list)

    @property
    def agreement(self) -> float:
        return self.agree / self.outputs if self.outputs else 1.0


def kind_label(summary: KindSummary) -> str:
    return summary.kind if summary.well_formed else f"{summary.kind} (malformed)"


@dataclass(frozen=True)
class ParityCheck(Generic[ItemT, KindT]):
    """One parity check: its kinds of output, in table order; ``compare``, which writes an item one
    way and scores it on both sides (None where the kind does not apply to the item); and its table:
    what it calls an output (``unit``) and how it writes bfcl-eval's error types."""

    kinds: Sequence[KindT]
    compare: Callable[[ItemT, KindT, OutputReading], Outcome | None]
    unit: str
    errors_heading: str
    describe_errors: Callable[[dict[str, int]], str]

    def parity_outcomes(
        self,
        items: Iterable[ItemT],
        kinds: Sequence[str] | None = None,
        on_item: Callable[[], None] | None = None,
        reading: OutputReading = DEFAULT_OUTPUT_READING,
    ) -> list[Outcome]:
        """Every item written every way named in ``kinds`` (default: all) and scored by both sides;
        ``on_item`` is called after each item (progress)."""
        by_name = {kind.name: kind for kind in self.kinds}
        chosen = [by_name[name] for name in kinds] if kinds else list(self.kinds)
        outcomes = []
        for item in items:
            outcomes.extend(o for kind in chosen if (o := self.compare(item, kind, reading)) is not None)
            if on_item is not None:
                on_item()
        return outcomes

    def summarise(self, outcomes: Iterable[Outcome]) -> dict[str, KindSummary]:
        """Counts per kind, in table order; kinds without outcomes are left out."""
        summaries = {k.name: KindSummary(k.name, k.well_formed) for k in self.kinds}
        for outcome in outcomes:
            summary = summaries[outcome.kind]
            summary.outputs += 1
            summary.bfcl_valid += outcome.bfcl
            summary.ours_valid += outcome.ours
            summary.agree += outcome.agree
            if outcome.bfcl_error:
                summary.error_types[outcome.bfcl_error] = summary.error_types.get(outcome.bfcl_error, 0) + 1
            if not outcome.agree:
                summary.disagreements.append(outcome)
        return {name: s for name, s in summaries.items() if s.outputs}

    def markdown_table(self, summaries: dict[str, KindSummary]) -> str:
        lines = [
            f"| outputs | {self.unit} | bfcl-eval valid | ours valid | same verdict and error type | "
            f"{self.errors_heading} |",
            "|---|---|---|---|---|---|",
        ]
        for s in summaries.values():
            errors = self.describe_errors(s.error_types)
            lines.append(
                f"| {kind_label(s)} | {s.outputs} | {s.bfcl_valid} | {s.ours_valid} | "
                f"{s.agree} ({100 * s.agreement:.1f}%) | {errors or '–'} |"
            )
        return "\n".join(lines)
