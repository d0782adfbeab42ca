"""ToolMatch vs bfcl-eval's AST checker on BFCL v4 ground truth and perturbations of it.

For every AST item of BFCL v4's single-turn categories the label is the first acceptable value of each
parameter; predictions are the label and its perturbations (see :mod:`evaluation.parity`). Both sides
judge every pair; the script prints agreement by perturbation kind and one example per class of
disagreement, and can write the full table into ``docs/toolmatch.md``.

    .venv/bin/python -m benchmarks.toolmatch_parity                 # all AST items (~20 s)
    .venv/bin/python -m benchmarks.toolmatch_parity --sample 10     # first 10 items of each category
    .venv/bin/python -m benchmarks.toolmatch_parity --write-docs    # refresh the table in the docs
    .venv/bin/python -m benchmarks.toolmatch_parity --check-docs    # exit 1 if the docs table is stale
"""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console
from rich.table import Table

from benchmarks.harness import ROOT, DocsTable
from evaluation.bfcl_checker import bfcl_version
from evaluation.parity import KindSummary, markdown_table, parity_pairs, summarise_parity
from evaluation.suite import load_suite

DOCS = DocsTable(ROOT / "docs" / "toolmatch.md", "parity", "benchmarks/toolmatch_parity.py")


def run(categories: str, sample: int | None) -> tuple[dict[str, KindSummary], int, float]:
    """(summaries by kind, items used, seconds)."""
    started = time.perf_counter()
    items = load_suite(categories, sample)
    summaries = summarise_parity(parity_pairs(items), items)
    return summaries, len(items), time.perf_counter() - started


def rich_tables(summaries: dict[str, KindSummary]) -> list[Table]:
    table = Table(title=f"ToolMatch vs bfcl-eval {bfcl_version()} AST checker")
    for column in (
        "perturbation",
        "pairs",
        "BFCL accepts",
        "ToolMatch accepts",
        "agree",
        "only BFCL",
        "only ToolMatch",
    ):
        table.add_column(column, justify="left" if column == "perturbation" else "right")
    for s in summaries.values():
        table.add_row(
            s.kind,
            str(s.pairs),
            str(s.bfcl_accepts),
            str(s.ours_accepts),
            f"{100 * s.agreement:.1f}%",
            str(s.only_bfcl),
            str(s.only_ours),
        )
    examples = Table(title="Disagreements: one example per class")
    for column in ("perturbation", "class", "pairs", "example"):
        examples.add_column(column, justify="right" if column == "pairs" else "left")
    for s in summaries.values():
        for name, outcome in s.examples.items():
            examples.add_row(s.kind, name, str(s.class_counts[name]), outcome.describe())
    return [table, examples]


def docs_section(summaries: dict[str, KindSummary], items: int) -> str:
    source = f"from bfcl-eval {bfcl_version()}: {items} AST items, every perturbation that applies to each."
    return DOCS.section(source, markdown_table(summaries))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--categories", default="ast", help="BFCL categories or groups (default: ast).")
    parser.add_argument("--sample", type=int, default=None, help="First N items of each category.")
    DOCS.add_arguments(parser)
    args = parser.parse_args(argv)
    if (args.write_docs or args.check_docs) and (args.sample is not None or args.categories != "ast"):
        parser.error(
            "the docs hold the full table: --write-docs/--check-docs take no --sample or --categories"
        )
    console = Console()
    summaries, items, seconds = run(args.categories, args.sample)
    for table in rich_tables(summaries):
        console.print(table)
    pairs = sum(s.pairs for s in summaries.values())
    agree = sum(s.pairs - s.only_bfcl - s.only_ours for s in summaries.values())
    console.print(
        f"{items} items, {pairs} pairs, {agree} agree ({100 * agree / max(pairs, 1):.2f}%), {seconds:.1f} s"
    )
    section = docs_section(summaries, items)
    return DOCS.sync(section, write=args.write_docs, check=args.check_docs, console=console)


if __name__ == "__main__":
    sys.exit(main())
