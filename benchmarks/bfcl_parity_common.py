"""What the two bfcl-eval parity scripts share (not a script itself).

:mod:`benchmarks.bfcl_single_turn_parity` and :mod:`benchmarks.bfcl_multi_turn_parity` take the same
options, score a suite with a progress bar, report the same JSON object, print disagreements the same
way and keep a table in ``docs/evaluation.md``; only what they score (items or conversations), their
tables and the figures they print differ.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.harness import ROOT, DocsTable
from evaluation.bfcl_checker import bfcl_version
from evaluation.reading import DEFAULT_OUTPUT_READING, OUTPUT_READINGS, OutputReading
from evaluation.suite import SuiteItem, load_suite
from evaluation.verdict_parity import KindSummary, ParityCheck

DOCS_PAGE = ROOT / "docs" / "evaluation.md"
ItemT = TypeVar("ItemT", bound=SuiteItem)
# Prints a run's table and figures: (console, summaries by kind, items used, seconds, reading).
Report = Callable[[Console, dict[str, KindSummary], int, float, OutputReading], None]


@dataclass(frozen=True)
class ParityScript(Generic[ItemT]):
    """One parity script: which suite it scores (items of ``item_type``), the check that scores and
    counts them, and its table in ``docs/evaluation.md``."""

    suite: str
    item_type: type[ItemT]
    check: ParityCheck[ItemT, Any]
    script: str  # the script's ``__file__``
    docs_marker: str
    docs_scope: str  # what the docs table covers, after the count of items

    @property
    def docs(self) -> DocsTable:
        return DocsTable(
            DOCS_PAGE, self.docs_marker, Path(self.script).resolve().relative_to(ROOT).as_posix()
        )

    def docs_section(self, summaries: dict[str, KindSummary], items: int) -> str:
        source = (
            f"from bfcl-eval {bfcl_version()}: {items} {self.check.unit} {self.docs_scope}; ours with the "
            f"evaluator's default reading (`{DEFAULT_OUTPUT_READING}`)."
        )
        return self.docs.section(source, self.check.markdown_table(summaries))

    def main(self, description: str | None, argv: Sequence[str] | None, report: Report) -> int:
        """Parse the options, score, and print the JSON object or ``report`` and the disagreements;
        then check or write the docs table."""
        args = self.parse_arguments(description, argv)
        summaries, items, seconds = self.run(args.sample, show_progress=not args.json, reading=args.reading)
        if args.json:
            print(as_json(summaries, self.check.unit, items, seconds, args.reading))
            return 0
        console = Console()
        report(console, summaries, items, seconds, args.reading)
        print_disagreements(console, summaries)
        section = self.docs_section(summaries, items)
        return self.docs.sync(section, write=args.write_docs, check=args.check_docs, console=console)

    def parse_arguments(self, description: str | None, argv: Sequence[str] | None) -> argparse.Namespace:
        """``--sample``, ``--json``, the docs options and ``--reading``."""
        parser = argparse.ArgumentParser(
            description=description, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        parser.add_argument(
            "--sample", type=int, default=None, help=f"First N {self.check.unit} of each category."
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object instead of a table.")
        self.docs.add_arguments(parser)
        parser.add_argument(
            "--reading",
            choices=OUTPUT_READINGS,
            default=DEFAULT_OUTPUT_READING,
            help="How our side reads outputs ([eval] output_reading; default: %(default)s).",
        )
        args = parser.parse_args(argv)
        if (args.write_docs or args.check_docs) and args.sample is not None:
            parser.error("the docs hold the full table: --write-docs/--check-docs take no --sample")
        if (args.write_docs or args.check_docs) and args.reading != DEFAULT_OUTPUT_READING:
            parser.error(
                "the docs hold the default reading's table: --write-docs/--check-docs take no --reading"
            )
        return args

    def run(
        self, sample: int | None, show_progress: bool, reading: OutputReading = DEFAULT_OUTPUT_READING
    ) -> tuple[dict[str, KindSummary], int, float]:
        """(summaries by kind, items used, seconds)."""
        started = time.perf_counter()
        items = [item for item in load_suite(self.suite, sample) if isinstance(item, self.item_type)]
        progress = Progress(
            TextColumn(self.check.unit),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not show_progress,
        )
        with progress:
            task = progress.add_task("", total=len(items))
            outcomes = self.check.parity_outcomes(
                items, on_item=lambda: progress.advance(task), reading=reading
            )
        return self.check.summarise(outcomes), len(items), time.perf_counter() - started


def as_json(
    summaries: dict[str, KindSummary], unit: str, items: int, seconds: float, reading: OutputReading
) -> str:
    """One JSON object: the counts per kind (``unit`` names the count) and the first disagreements."""
    return json.dumps(
        {
            "bfcl_eval": bfcl_version(),
            unit: items,
            "reading": reading,
            "seconds": round(seconds, 2),
            "kinds": {
                s.kind: {
                    "well_formed": s.well_formed,
                    unit: s.outputs,
                    "bfcl_valid": s.bfcl_valid,
                    "ours_valid": s.ours_valid,
                    "agree": s.agree,
                    "error_types": s.error_types,
                    "disagreements": [
                        {"id": o.item_id, "ours": [o.ours, o.our_error], "bfcl": [o.bfcl, o.bfcl_error]}
                        for o in s.disagreements[:20]
                    ],
                }
                for s in summaries.values()
            },
        }
    )


def print_disagreements(console: Console, summaries: dict[str, KindSummary], per_kind: int = 3) -> None:
    for s in summaries.values():
        for outcome in s.disagreements[:per_kind]:
            console.print(
                f"  {s.kind}: {outcome.item_id} ours {outcome.ours} ({outcome.our_error}), "
                f"bfcl-eval {outcome.bfcl} ({outcome.bfcl_error})"
            )
