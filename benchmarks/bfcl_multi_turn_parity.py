"""Our BFCL multi-turn scoring vs bfcl-eval's own evaluation, on the same model outputs.

Every conversation of the four multi-turn categories, its ground truth written as model outputs and
edited one way per kind (see :mod:`evaluation.multi_turn_parity`), is scored twice: by
:func:`evaluation.multi_turn.score_conversation` (with the evaluator's default reading, bfcl-eval's;
``--reading repair`` shows our parser's instead) and by bfcl-eval's ``_evaluate_single_multi_turn_entry``
with its ``QwenFCHandler`` decoding the outputs. The script prints, per kind, how many conversations
each side passes and how many get the same verdict and the same BFCL error type, and can write the
table into ``docs/evaluation.md``.

    .venv/bin/python -m benchmarks.bfcl_multi_turn_parity                # all 800 conversations (~4 min)
    .venv/bin/python -m benchmarks.bfcl_multi_turn_parity --sample 5     # first 5 of each category
    .venv/bin/python -m benchmarks.bfcl_multi_turn_parity --sample 2 --json   # machine-readable (tests)
    .venv/bin/python -m benchmarks.bfcl_multi_turn_parity --reading repair --sample 5   # our parser
    .venv/bin/python -m benchmarks.bfcl_multi_turn_parity --write-docs   # refresh the docs table
    .venv/bin/python -m benchmarks.bfcl_multi_turn_parity --check-docs   # exit 1 if the table is stale
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from benchmarks.bfcl_parity_common import ParityScript
from evaluation import multi_turn_parity
from evaluation.bfcl_checker import bfcl_version
from evaluation.multi_turn_parity import describe_errors
from evaluation.reading import OutputReading
from evaluation.suite import MultiTurnItem
from evaluation.verdict_parity import KindSummary, kind_label

SCRIPT = ParityScript(
    "multi_turn",
    MultiTurnItem,
    multi_turn_parity.CHECK,
    __file__,
    docs_marker="multi-turn-parity",
    docs_scope="(every one of the four categories), each kind that applies to each",
)


def rich_table(summaries: dict[str, KindSummary]) -> Table:
    table = Table(title=f"Our multi-turn scoring vs bfcl-eval {bfcl_version()}'s own evaluation")
    for column in (
        "outputs",
        "conversations",
        "bfcl-eval valid",
        "ours valid",
        "same verdict",
        "bfcl-eval errors",
    ):
        table.add_column(column, justify="left" if column in ("outputs", "bfcl-eval errors") else "right")
    for s in summaries.values():
        table.add_row(
            kind_label(s),
            str(s.outputs),
            str(s.bfcl_valid),
            str(s.ours_valid),
            f"{s.agree} ({100 * s.agreement:.1f}%)",
            describe_errors(s.error_types) or "–",
        )
    return table


def report(
    console: Console, summaries: dict[str, KindSummary], items: int, seconds: float, reading: OutputReading
) -> None:
    console.print(rich_table(summaries))
    well_formed = [s for s in summaries.values() if s.well_formed]
    total = sum(s.outputs for s in well_formed)
    agree = sum(s.agree for s in well_formed)
    everything = sum(s.outputs for s in summaries.values())
    everything_agree = sum(s.agree for s in summaries.values())
    console.print(
        f"{items} conversations, {reading} reading; on well-formed outputs {agree}/{total} scored "
        f"alike ({100 * agree / max(total, 1):.2f}%); on all {everything_agree}/{everything} "
        f"({100 * everything_agree / max(everything, 1):.2f}%); {seconds:.1f} s"
    )


def main(argv: list[str] | None = None) -> int:
    return SCRIPT.main(__doc__, argv, report)


if __name__ == "__main__":
    sys.exit(main())
