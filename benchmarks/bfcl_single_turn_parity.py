"""Our BFCL single-turn scoring vs bfcl-eval's own evaluation, on the same model outputs.

Every single-turn item, an action written out one way per kind (see
:mod:`evaluation.single_turn_parity`: well-formed and malformed renderings), is scored twice: by
:func:`evaluation.scoring.score_output` (with the evaluator's default reading, bfcl-eval's;
``--reading repair`` shows our parser's instead) and by bfcl-eval's ``_evaluate_single_ast_entry`` /
``_evaluate_single_relevance_entry`` with its ``QwenFCHandler`` decoding the output. The script
prints, per kind, how many items each side passes and how many get the same verdict and BFCL error
type, and can write the table into ``docs/evaluation.md``.

    .venv/bin/python -m benchmarks.bfcl_single_turn_parity                # all 3,491 items
    .venv/bin/python -m benchmarks.bfcl_single_turn_parity --sample 3     # first 3 of each category
    .venv/bin/python -m benchmarks.bfcl_single_turn_parity --sample 2 --json   # machine-readable (tests)
    .venv/bin/python -m benchmarks.bfcl_single_turn_parity --reading repair --sample 5   # our parser
    .venv/bin/python -m benchmarks.bfcl_single_turn_parity --write-docs   # refresh the docs table
"""

from __future__ import annotations

import sys

from rich.console import Console

from benchmarks.bfcl_parity_common import ParityScript
from evaluation import single_turn_parity
from evaluation.reading import OutputReading
from evaluation.single_turn_parity import markdown_table
from evaluation.suite import BfclItem
from evaluation.verdict_parity import KindSummary

SCRIPT = ParityScript(
    "single_turn",
    BfclItem,
    single_turn_parity.CHECK,
    __file__,
    docs_marker="single-turn-parity",
    docs_scope="(every single-turn category), each rendered every way",
)


def report(
    console: Console, summaries: dict[str, KindSummary], items: int, seconds: float, reading: OutputReading
) -> None:
    console.print(markdown_table(summaries))
    total = sum(s.outputs for s in summaries.values())
    agree = sum(s.agree for s in summaries.values())
    console.print(
        f"{items} items, {reading} reading: {agree}/{total} outputs scored alike "
        f"({100 * agree / max(total, 1):.2f}%); {seconds:.1f} s"
    )


def main(argv: list[str] | None = None) -> int:
    return SCRIPT.main(__doc__, argv, report)


if __name__ == "__main__":
    sys.exit(main())
