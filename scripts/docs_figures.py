"""Figures the README and docs quote, written from the results files they come from.

A quoted figure sits between markers that name its source::

    <!-- fig codec_replay.json avro/decode_per_s {:,.0f} -->4,539<!-- /fig -->

the file under ``benchmarks/results/``, the value's path in it (keys joined by ``/``, list positions
as numbers; ``a/b÷c/d`` quotes the ratio of two values), and a Python format spec (default ``{}``),
or for a true/false value two labels, ``quiet|contended`` (the first for false).

A table of several figures sits between block markers naming its results file and its renderer
(a function of :data:`TABLES`)::

    <!-- table demo_report.json demo_rounds -->
    | ... |
    <!-- /table -->

    python -m scripts.docs_figures          # rewrite every marked figure from its results file
    python -m scripts.docs_figures --check  # exit 1, naming each stale or unreadable figure (a test runs it)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "infra" / "README.md")
MARKER = re.compile(
    r"<!-- fig (?P<file>\S+) (?P<path>\S+)(?: (?P<format>.+?))? -->(?P<text>.*?)<!-- /fig -->"
)


TABLE = re.compile(r"<!-- table (?P<file>\S+) (?P<renderer>\w+) -->\n(?P<text>.*?)<!-- /table -->", re.DOTALL)


class FigureError(ValueError):
    pass


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items())


_VERDICT_ORDER = ("PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG")


def _verdicts(counts: dict[str, int]) -> str:
    ordered = sorted(counts, key=lambda v: (_VERDICT_ORDER.index(v) if v in _VERDICT_ORDER else 99, v))
    return _counts({verdict: counts[verdict] for verdict in ordered})


def demo_rounds(report: dict[str, Any]) -> str:
    """The README's table of a full demo run, one row per round, from the demo's ``report.json``."""
    header = (
        "| | D_j | sources | label noise of D_j | mismatches | verdicts | relabels | expansions passed "
        "| GRPO reward (mixed groups) | held-out ToolMatch | promotion gate |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = [f"| after SFT warm start | | | | | | | | | {_percent(report.get('sft_accuracy'))} | |"]
    for r in report["rounds"]:
        reward = r.get("reward_mean")
        mixed = r.get("mixed_groups")
        grpo = "" if reward is None else f"{reward:.2f}" + ("" if mixed is None else f" ({mixed:.0%})")
        gate = r.get("promotion") or ""
        if gate and r.get("promotion_delta") is not None:
            gate += f" ({r['promotion_delta'] * 100:+.1f} pts)"
        rows.append(
            f"| round {r['round']} | {r['size']} | {_counts(r['sources'])} | {_percent(r['label_noise'])} "
            f"| {r['mismatched']}/{r['probed']} | {_verdicts(r['verdicts'])} | {r['relabels']} "
            f"| {r['expansions_passed']}/{r['candidates']} | {grpo} | {_percent(r.get('heldout_accuracy'))} "
            f"| {gate} |"
        )
    return header + "\n".join(rows) + "\n"


def demo_summary(report: dict[str, Any]) -> str:
    """The run's conditions and cost, one paragraph, from the demo's ``report.json``."""
    machine = report["machine"]
    load = machine["load_average_at_start"][0], machine["load_average_at_end"][0]
    warm = "taken from its cache" if report["warm_start_cached"] else "built in this run"
    return (
        f"Measured on a {machine['cores']}-core machine, {'contended' if machine['contended'] else 'quiet'} "
        f"(load average {load[0]:.1f} at the start, {load[1]:.1f} at the end): "
        f"{report['wall_time_s'] / 60:.1f} min wall ({report['loop_time_s'] / 60:.1f} min after the warm "
        f"start, which was {warm}; its first build took {report['warm_start_build_s'] / 60:.1f} min), "
        f"{report['peak_memory_gib']:.1f} GiB peak. D_seed: {report['seeds']} samples with "
        f"{report['seed_noise']:.1%} wrong labels; {report['heldout']} clean held-out samples; the warm "
        f"start saw {report['warm_start_samples']} world samples and {report['warm_start_drills']} copy "
        f"drills. Replay of the last round: "
        + ("equals the live run and its recomputation." if report["replay_matches"] else "DIFFERS.")
        + "\n"
    )


def efficacy_arms(results: dict[str, Any]) -> str:
    """The README's efficacy table (held-out ToolMatch per arm and round, noise at the last round),
    as ``benchmarks/efficacy.py`` prints it, from ``efficacy.json``'s rows."""
    from benchmarks.efficacy import ArmRound, markdown_table

    rows = [ArmRound(**row) for row in results["results"]]
    table = markdown_table(
        rows, results["scale"]["rounds"], results["arms"], results["warm_start"]["heldout_accuracy"]
    )
    return table + "\n"


TABLES = {"demo_rounds": demo_rounds, "demo_summary": demo_summary, "efficacy_arms": efficacy_arms}


@cache
def _results(name: str) -> Any:
    path = RESULTS / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise FigureError(f"cannot read {path.relative_to(ROOT)}: {error}") from error


def value_at(data: Any, path: str) -> Any:
    """``path``: keys joined by "/"; a key's spaces are written %20 (a marker's path has none)."""
    for key in (unquote(part) for part in path.split("/")):
        try:
            data = data[int(key)] if isinstance(data, list) else data[key]
        except (KeyError, IndexError, ValueError, TypeError):
            raise FigureError(f"no {path!r}") from None
    return data


def figure(file: str, path: str, spec: str | None) -> str:
    data = _results(file)
    if "÷" in path:
        top, bottom = path.split("÷", 1)
        value: Any = value_at(data, top) / value_at(data, bottom)
    else:
        value = value_at(data, path)
    if isinstance(value, bool) and spec and "|" in spec:  # a label: "quiet|contended" picks by the value
        when_false, when_true = spec.split("|", 1)
        return when_true if value else when_false
    return (spec or "{}").format(value)


def render(text: str, where: str, problems: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        try:
            new = figure(match["file"], match["path"], match["format"])
        except (FigureError, ValueError, TypeError, ZeroDivisionError) as error:
            problems.append(f"{where}: {match['file']} {match['path']}: {error}")
            return match.group(0)
        if new != match["text"]:
            problems.append(
                f"{where}: {match['file']} {match['path']} is {new}, the text says {match['text']}"
            )
        head = match.group(0)[: match.start("text") - match.start()]
        return f"{head}{new}<!-- /fig -->"

    def replace_table(match: re.Match[str]) -> str:
        renderer = TABLES.get(match["renderer"])
        try:
            if renderer is None:
                raise FigureError(f"no table renderer {match['renderer']!r}")
            new = renderer(_results(match["file"]))
        except (FigureError, KeyError, ValueError, TypeError) as error:
            problems.append(f"{where}: {match['file']} table {match['renderer']}: {error!r}")
            return match.group(0)
        if new != match["text"]:
            problems.append(f"{where}: {match['file']} table {match['renderer']} differs from the file")
        head = match.group(0)[: match.start("text") - match.start()]
        return f"{head}{new}<!-- /table -->"

    return TABLE.sub(replace_table, MARKER.sub(replace, text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Change nothing; exit 1 if a figure is stale.")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        problems: list[str] = []
        updated = render(text, str(document.relative_to(ROOT)), problems)
        stale += problems
        if not args.check and updated != text:
            document.write_text(updated, encoding="utf-8")
    for problem in stale:
        print(problem, file=sys.stderr)
    unreadable = [p for p in stale if "the text says" not in p]
    return 1 if (stale if args.check else unreadable) else 0


if __name__ == "__main__":
    sys.exit(main())
