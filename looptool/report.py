"""The demo's report: per round what the loop did and what it achieved, as data, tables and a plot.

:class:`DemoReport` is what ``report.json`` holds (``scripts/demo.sh`` also writes a full run's to
``benchmarks/results/demo_report.json``, which the README's demo table is generated from);
:func:`render_report` prints it in tables that read in an 80-column terminal and in a log file, and
:func:`plot_report` draws the Figure-2 style plot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table


def narrow_table(headers: Sequence[str], *, title: str, caption: str | None = None) -> Table:
    """A table that reads in an 80-column terminal and in a log file: light box, one space of
    padding, and no column narrower than its header (rich would cut it to "rou…")."""
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    for header in headers:
        table.add_column(header, min_width=len(header), no_wrap=True)
    return table


def number_or_blank(value: float | None, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


@dataclass
class RoundReport:
    round: int
    size: int
    sources: dict[str, int]
    label_noise: float
    probed: int = 0
    mismatched: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    relabels: int = 0
    candidates: int = 0
    expansions_passed: int = 0
    checkpoint_id: str | None = None
    heldout_accuracy: float | None = None
    reward_mean: float | None = None
    mixed_groups: float | None = None  # share of GRPO groups whose rewards differ (non-zero advantage)
    grpo_steps: int | None = None
    # The promotion gate on ckpt j (held-out ToolMatch against the promoted policy): "promoted" or
    # "refused", and the held-out change against the policy promoted before it (None: the first).
    promotion: str | None = None
    promotion_delta: float | None = None
    promotion_reason: str | None = None


@dataclass
class DemoReport:
    run_id: str
    seeds: int
    seed_noise: float
    heldout: int
    sft_accuracy: float | None
    rounds: list[RoundReport]
    replay_matches: bool
    wall_time_s: float
    peak_memory_gib: float
    plot: str
    loop_time_s: float = 0.0  # the run after the warm start was ready (built or cached)
    warm_start_key: str = ""
    warm_start_cached: bool = False
    warm_start_build_s: float = 0.0  # its first build's wall time (on this or an earlier run)
    warm_start_samples: int = 0
    warm_start_drills: int = 0
    machine: dict[str, Any] = field(default_factory=dict)  # cores and load average at start and end

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def render_report(report: DemoReport) -> Group:
    """The final report as narrow tables: each fits an 80-column terminal and reads in a log file."""
    summary = Table.grid(padding=(0, 2))
    summary.add_row("seeds (D_seed)", f"{report.seeds} samples, label noise {report.seed_noise:.1%}")
    summary.add_row("held-out set", f"{report.heldout} clean samples")
    if report.sft_accuracy is not None:
        summary.add_row("after SFT warm start", f"held-out ToolMatch accuracy {report.sft_accuracy:.1%}")
    summary.add_row(
        "warm start",
        f"{report.warm_start_samples} samples + {report.warm_start_drills} drills, "
        + ("cached" if report.warm_start_cached else "built")
        + f" (build {report.warm_start_build_s / 60:.1f} min)",
    )
    summary.add_row(
        "wall time",
        f"{report.wall_time_s / 60:.1f} min ({report.loop_time_s / 60:.1f} after the warm start), "
        f"{report.peak_memory_gib:.1f} GiB peak",
    )
    summary.add_row(
        "replay of the last round",
        "equals the live run and its recomputation" if report.replay_matches else "DIFFERS",
    )
    summary.add_row("plot", report.plot)
    outcome = narrow_table(
        ("round", "held-out", "noise", "|D_j|", "ES", "EE", "HPPL", "seed-new"),
        title="Held-out ToolMatch of ckpt j; label noise and sources of D_j",
    )
    signal = narrow_table(
        ("round", "steps", "reward", "mixed groups", "gate", "Δ pts"),
        title="GRPO signal and the promotion gate per round",
        caption="mixed: the G rewards differ · Δ: against the policy promoted before",
    )
    work = narrow_table(
        ("round", "probed", "wrong", "PW", "LW", "BC", "BW", "relabel", "EE ok/cand"),
        title="Probing D_j with ckpt j: verdicts and expansions",
        caption="PW/LW: pred/label wrong · BC/BW: both right/wrong",
    )
    for r in report.rounds:
        size = max(1, r.size)
        outcome.add_row(
            str(r.round),
            number_or_blank(r.heldout_accuracy, "{:.1%}"),
            f"{r.label_noise:.1%}",
            str(r.size),
            *(
                f"{count} ({count / size:.0%})"
                for count in (
                    r.sources.get("ES", 0),
                    r.sources.get("EE", 0),
                    r.sources.get("HPPL", 0),
                    r.sources.get("SEED", 0) + r.sources.get("SEED_NEW", 0),
                )
            ),
        )
        signal.add_row(
            str(r.round),
            "" if r.grpo_steps is None else str(r.grpo_steps),
            number_or_blank(r.reward_mean, "{:.2f}"),
            number_or_blank(r.mixed_groups, "{:.0%}"),
            r.promotion or "",
            number_or_blank(None if r.promotion_delta is None else r.promotion_delta * 100, "{:+.1f}"),
        )
        work.add_row(
            str(r.round),
            str(r.probed),
            str(r.mismatched),
            *(str(r.verdicts.get(k, 0)) for k in ("PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG")),
            str(r.relabels),
            f"{r.expansions_passed}/{r.candidates}",
        )
    return Group(summary, outcome, signal, work)


def plot_report(report: DemoReport, path: Path) -> Path:
    """Figure-2 style: held-out accuracy per round (bars) and the label noise of D_j (line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["SFT"] if report.sft_accuracy is not None else []
    accuracy = [report.sft_accuracy * 100] if report.sft_accuracy is not None else []
    for r in report.rounds:
        labels.append(f"round {r.round}")
        accuracy.append((r.heldout_accuracy or 0.0) * 100)
    fig, left = plt.subplots(figsize=(7, 4))
    left.bar(labels, accuracy, color="#4c72b0")
    for x, value in enumerate(accuracy):
        left.annotate(f"{value:.1f}", (x, value), ha="center", va="bottom", fontsize=9)
    left.set_ylabel("held-out ToolMatch accuracy (%)")
    left.set_ylim(0, max(10.0, max(accuracy, default=0.0) * 1.2))
    right = left.twinx()
    right.axhline(report.seed_noise * 100, color="#dd8452", linestyle=":", label="noise in D_seed")
    noise_x = [labels.index(f"round {r.round}") for r in report.rounds]
    right.plot(
        noise_x, [r.label_noise * 100 for r in report.rounds], "o-", color="#dd8452", label="noise in D_j"
    )
    right.set_ylabel("label noise of the curated set D_j (%)")
    highest = max([report.seed_noise, *(r.label_noise for r in report.rounds)])
    right.set_ylim(0, max(25.0, highest * 125))
    right.legend(loc="upper right")
    left.set_title(f"looptool demo · run {report.run_id}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
