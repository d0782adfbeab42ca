"""Efficacy: does the loop beat training on the seeds alone, and what does each part add? Table 4's arms.

One synthetic world, one seed set, one warm start (the demo's, from its cache), the same training
compute per round (|D_j|, epochs, group size, GRPO steps) for every arm:

- ``loop``: the full LoopTool loop (GCP, JGLV with the world's simulated judge, EDDE, verification,
  high-PPL, the paper's seed-new schedule);
- ``static``: every round trains on a fresh subset of D_seed (seeds only, the paper's "w/o iterations");
- ``no_jglv``: every mismatch taken as PRED_WRONG (labels never corrected);
- ``no_edde``: error seeds are not expanded (the paper's "Remove EDDE");
- ``no_hppl``: as many correctly answered samples drawn at random instead of the high-PPL ones.

Seeds vary the loop's own randomness (curation draws through the run id, GRPO's sampling through the
trainer seed), not the world or the initial model. Each arm runs strictly serially in-process
(``looptool.serial.SerialLoop``: the worker's stage objects, curation and the CPU GRPO trainer). After
each round the round's final checkpoint is scored on the clean held-out set (greedy ToolMatch
against the world's truth), and D_j's label noise, sources and GRPO signal (mean reward, share of
groups with mixed rewards, steps) are recorded: one row per arm, seed and round in
``benchmarks/results/efficacy.json``, with the wall time, CPU seconds and load average. A plot of the
arms per round (mean ± std over seeds) goes to ``docs/images/efficacy.png``.

    nice -n 10 .venv/bin/python -m benchmarks.efficacy                 # 5 arms x 3 seeds x 4 rounds
    nice -n 10 .venv/bin/python -m benchmarks.efficacy --seeds 1 --arms loop,static
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import resource
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.harness import ROOT, finish_machine_info, machine_info, results_path
from looptool.config import load_settings
from looptool.demo import SCALES, WARM_START_CACHE, DemoScale, demo_settings
from looptool.report import narrow_table
from looptool.serial import ARMS, SerialLoop

RESULTS = results_path("efficacy")
PLOT = ROOT / "docs" / "images" / "efficacy.png"
STAGES = ("probe", "judge", "relabel", "expand", "verify")


@dataclass
class ArmRound:
    arm: str
    seed: int
    round: int
    heldout_accuracy: float
    label_noise: float
    sources: dict[str, int]
    reward_mean: float | None
    mixed_groups: float | None
    grpo_steps: int
    size: int
    train_s: float
    loop_s: float
    heldout_by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [correct, total]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Shared:
    """What every arm and seed shares: the world, the seed set, the warm start, its held-out score."""

    world: Any
    seed_set: Any
    warm: Any
    warm_accuracy: float


async def prepare(scale: DemoScale, cache_dir: Path, console: Console, model: Path | None = None) -> Shared:
    from inference.transformers_backend import TransformersBackend
    from looptool.warm_start import WarmStart, cached_warm_start, load_cached
    from world import World
    from world.scoring import heldout_accuracy
    from world.seed import build_seed_set

    world = World(0)
    seed_set = await build_seed_set(world, scale.dialogues, heldout=scale.heldout_dialogues, noise_rate=0.2)
    cached = load_cached(model) if model is not None else None
    if cached is not None:  # a cached warm start (of another recipe): its key and build time kept
        warm = cached
    elif model is not None:  # an experiment's warm-started policy instead of the demo's
        warm = WarmStart(str(model), model, model, model, True, 0.0, 0.0, 0, 0.0, 0, {})
    else:
        with console.status("warm start (built once, then taken from its cache)…"):
            warm = await cached_warm_start(
                world, seed_set, scale.warm_start, cache_dir=cache_dir, seed=0, noise_rate=0.2, threads=1
            )
    backend = TransformersBackend(str(warm.model), "warm-start", batch_size=32)
    accuracy = await heldout_accuracy(backend, seed_set.heldout, max_tokens=scale.max_new_tokens)
    await backend.close()
    console.print(
        f"D_seed {len(seed_set.samples)} ({seed_set.noise_rate():.1%} wrong), "
        f"held-out {len(seed_set.heldout)}; "
        f"warm start {warm.key} ({'cached' if warm.cached else 'built'}, first build {warm.build_s:.0f} s): "
        f"held-out {accuracy.rate:.1%}"
    )
    return Shared(world, seed_set, warm, accuracy.rate)


async def run_arm(arm: str, seed: int, scale: DemoScale, shared: Shared, work: Path) -> list[ArmRound]:
    from looptool.wiring import build_stages
    from streams.curate import CurationPolicy
    from trainer.cpu_grpo import CpuGrpoBackend
    from world.scoring import heldout_accuracy, label_noise
    from world.seed import seed_events

    # One run id per seed: every arm curates the same D_1 (curate's draws are seeded by the run id).
    run_id = f"eff-s{seed}"
    settings = demo_settings(load_settings(None, run_id=run_id), work, scale, 0, shared.warm.model)
    settings = settings.model_copy(update={"trainer": settings.trainer.model_copy(update={"seed": seed})})
    # The worker's own stage objects (world simulations: no endpoint is configured), fed in-process.
    stages = {stage.name: stage for stage in build_stages(settings, STAGES, log=None)}
    policy_backend = stages["probe"].backend  # type: ignore[attr-defined]
    serial = SerialLoop(
        settings,
        CurationPolicy.from_settings(settings),
        stages=stages,
        trainer=CpuGrpoBackend(settings.trainer, show_progress=False),
        work_dir=work / "rounds",
        arm=arm,  # type: ignore[arg-type]
    )
    rounds = await serial.run(seed_events(shared.seed_set, settings.run_id), shared.warm.model, scale.rounds)
    results = []
    for result in rounds:
        await policy_backend.load(str(result.checkpoint_path), f"r{result.round}")
        accuracy = await heldout_accuracy(
            policy_backend, shared.seed_set.heldout, max_tokens=scale.max_new_tokens
        )
        noise = label_noise(shared.world, ((m.tools, m.messages, m.label) for m in result.members))
        sources: dict[str, int] = {}
        for member in result.members:
            sources[member.source] = sources.get(member.source, 0) + 1
        metrics = result.metrics
        results.append(
            ArmRound(
                arm=arm,
                seed=seed,
                round=result.round,
                heldout_accuracy=accuracy.rate,
                label_noise=noise.rate,
                sources=sources,
                reward_mean=metrics.get("round_reward_mean"),
                mixed_groups=metrics.get("round_mixed_groups"),
                grpo_steps=int(metrics.get("steps", 0)),
                size=len(result.members),
                train_s=result.train_s,
                loop_s=result.loop_s,
                heldout_by_kind={kind: list(pair) for kind, pair in accuracy.by_kind.items()},
                metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)},
            )
        )
    await policy_backend.close()
    return results


def _values(results: list[ArmRound], arm: str, round_: int, metric: str) -> list[float]:
    out = []
    for r in results:
        if r.arm == arm and r.round == round_:
            value = getattr(r, metric)
            if value is not None:
                out.append(float(value))
    return out


def mean_std(values: list[float], percent: bool = True) -> str:
    if not values:
        return ""
    scale = 100 if percent else 1
    if len(values) == 1:
        return f"{values[0] * scale:.1f}"
    return f"{statistics.mean(values) * scale:.1f}±{statistics.stdev(values) * scale:.1f}"


def render(results: list[ArmRound], rounds: int, arms: list[str]) -> list[Any]:
    tables = []
    for metric, title in (
        ("heldout_accuracy", "held-out ToolMatch (%)"),
        ("label_noise", "label noise of D_j (%)"),
        ("mixed_groups", "GRPO groups with mixed rewards (%)"),
        ("reward_mean", "GRPO mean reward (%)"),
    ):
        table = narrow_table(
            ("arm", *(f"round {j}" for j in range(1, rounds + 1))), title=f"{title}, mean±std over seeds"
        )
        for arm in arms:
            table.add_row(arm, *(mean_std(_values(results, arm, j, metric)) for j in range(1, rounds + 1)))
        tables.append(table)
    return tables


def markdown_table(results: list[ArmRound], rounds: int, arms: list[str], warm_accuracy: float) -> str:
    """The README's table: held-out ToolMatch and label noise per arm and round, mean ± std over seeds."""
    head = ["arm", "seeds", *(f"acc. r{j}" for j in range(1, rounds + 1)), f"noise r{rounds}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.append("| warm start | | " + " | ".join([f"{warm_accuracy * 100:.1f}", *[""] * rounds]) + " |")
    for arm in arms:
        seeds = len(_values(results, arm, 1, "heldout_accuracy"))
        cells = [mean_std(_values(results, arm, j, "heldout_accuracy")) for j in range(1, rounds + 1)]
        noise = mean_std(_values(results, arm, rounds, "label_noise"))
        lines.append("| " + " | ".join([arm, str(seeds), *cells, noise]) + " |")
    return "\n".join(lines)


def gap_summary(results: list[ArmRound], rounds: int) -> dict[str, Any]:
    """Loop vs static at the last round: the gap in points and the pooled std (target: gap ≥ 5 and
    gap > 2 × pooled std)."""
    loop = _values(results, "loop", rounds, "heldout_accuracy")
    static = _values(results, "static", rounds, "heldout_accuracy")
    if not loop or not static:
        return {}
    gap = (statistics.mean(loop) - statistics.mean(static)) * 100
    pooled = None
    if len(loop) > 1 and len(static) > 1:
        spread = (len(loop) - 1) * statistics.variance(loop) + (len(static) - 1) * statistics.variance(static)
        pooled = math.sqrt(spread / (len(loop) + len(static) - 2)) * 100
    return {
        "loop_minus_static_points": gap,
        "pooled_std_points": pooled,
        "gap_at_least_5": gap >= 5,
        "gap_over_2_pooled_std": pooled is not None and gap > 2 * pooled,
    }


def plot(results: list[ArmRound], rounds: int, arms: list[str], warm_accuracy: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    xs = list(range(0, rounds + 1))
    for index, arm in enumerate(arms):
        means, stds = [warm_accuracy * 100], [0.0]
        for j in range(1, rounds + 1):
            values = [v * 100 for v in _values(results, arm, j, "heldout_accuracy")]
            means.append(statistics.mean(values) if values else math.nan)
            stds.append(statistics.stdev(values) if len(values) > 1 else 0.0)
        offset = (index - (len(arms) - 1) / 2) * 0.04
        left.errorbar([x + offset for x in xs], means, yerr=stds, marker="o", capsize=3, label=arm)
        noise_means, noise_stds = [], []
        for j in range(1, rounds + 1):
            values = [v * 100 for v in _values(results, arm, j, "label_noise")]
            noise_means.append(statistics.mean(values) if values else math.nan)
            noise_stds.append(statistics.stdev(values) if len(values) > 1 else 0.0)
        right.errorbar(
            [x + offset for x in xs[1:]], noise_means, yerr=noise_stds, marker="o", capsize=3, label=arm
        )
    left.set_xticks(xs, ["warm start", *(f"round {j}" for j in range(1, rounds + 1))])
    left.set_ylabel("held-out ToolMatch accuracy (%)")
    left.legend(fontsize=8)
    right.set_xticks(xs[1:], [f"D_{j}" for j in range(1, rounds + 1)])
    right.set_ylabel("label noise of the curated set (%)")
    right.axhline(5, color="grey", linestyle=":", linewidth=1)
    right.legend(fontsize=8)
    fig.suptitle("efficacy: arms per round, mean ± std over seeds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def merged_machine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One machine record for runs made apart: the first part's machine, the load at the first part's
    start and after the last part's last arm, contended if any part ran on shared cores."""
    machine = dict(parts[0]["machine"])
    loads = [part.get("load_average") for part in parts]
    if all(loads):
        machine["load_average_at_start"] = [round(x, 2) for x in loads[0]["start"]]
        machine["load_average_at_end"] = [round(loads[-1]["after_each_arm"][-1], 2)]
        peak = max(max(load["start"][0], *load["after_each_arm"]) for load in loads)
        machine["contended"] = bool(machine.get("contended")) or peak > 1.5
    machine["merged_parts"] = len(parts)
    return machine


def merge(paths: list[Path], out: Path, plot_path: Path, console: Console) -> None:
    """One results file (and plot) from runs made apart: same scale and warm start, rows concatenated,
    wall and CPU times summed (the runs' own figures are kept under ``parts``)."""
    parts = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    first = parts[0]
    for part in parts[1:]:
        if part["scale"] != first["scale"] or part["warm_start"]["key"] != first["warm_start"]["key"]:
            raise SystemExit(f"cannot merge runs of different scales or warm starts: {paths}")
    results = [ArmRound(**row) for part in parts for row in part["results"]]
    rounds = first["scale"]["rounds"]
    arms = [arm for arm in ARMS if any(r.arm == arm for r in results)]
    summary = gap_summary(results, rounds)
    merged = {
        **{k: v for k, v in first.items() if k not in ("results", "summary", "load_average")},
        "machine": merged_machine(parts),
        "seeds": sorted({r.seed for r in results}),
        "arms": arms,
        "wall_time_s": sum(part["wall_time_s"] for part in parts),
        "cpu_s": sum(part["cpu_s"] for part in parts),
        "parts": [
            {
                "file": str(path),
                "seeds": part["seeds"],
                "arms": part["arms"],
                "wall_time_s": part["wall_time_s"],
                "cpu_s": part["cpu_s"],
                "load_average": part["load_average"],
            }
            for path, part in zip(paths, parts, strict=True)
        ],
        "summary": summary,
        "results": [asdict(r) for r in results],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=1), encoding="utf-8")
    plot(results, rounds, arms, first["warm_start"]["heldout_accuracy"], plot_path)
    for table in render(results, rounds, arms):
        console.print(table)
    console.print(summary)
    console.print(markdown_table(results, rounds, arms, first["warm_start"]["heldout_accuracy"]))
    console.print(f"wrote {out} and {plot_path}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--rounds", type=int, default=None, help="override the scale's number of rounds")
    parser.add_argument("--target-size", type=int, default=None, help="override the scale's |D_j|")
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "efficacy")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / WARM_START_CACHE)
    parser.add_argument(
        "--warm-model",
        type=Path,
        default=None,
        help="a warm-started policy folder, or a cached warm-start folder (its key and build time kept)",
    )
    parser.add_argument("--grpo-lr", type=float, default=None, help="override the scale's GRPO learning rate")
    parser.add_argument(
        "--es-share",
        type=float,
        default=None,
        help="cap on the error seeds' share of D_j (default: the scale's)",
    )
    parser.add_argument("--group-size", type=int, default=None, help="override the scale's G")
    parser.add_argument("--epochs", type=int, default=None, help="override the scale's GRPO epochs per round")
    parser.add_argument(
        "--temperature", type=float, default=None, help="override GRPO's sampling temperature"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=PLOT)
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="combine result files of separate runs (e.g. one process per seed) into --out and --plot",
    )
    args = parser.parse_args()
    if args.merge:
        merge(args.merge, args.out, args.plot, Console())
        return
    import torch

    torch.set_num_threads(1)  # the cores are shared: one thread each for the probe and the trainer
    console = Console()
    overrides = {
        "rounds": args.rounds,
        "target_size": args.target_size,
        "grpo_learning_rate": args.grpo_lr,
        "max_error_seed_share": args.es_share,
        "group_size": args.group_size,
        "grpo_epochs": args.epochs,
        "grpo_temperature": args.temperature,
    }
    scale = dataclasses.replace(
        SCALES[args.scale], **{name: value for name, value in overrides.items() if value is not None}
    )
    arms = args.arms.split(",")
    started, cpu_started, load_started = time.monotonic(), _cpu_seconds(), os.getloadavg()
    machine = machine_info()
    shared = await prepare(scale, args.cache_dir, console, args.warm_model)
    results: list[ArmRound] = []
    loads = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for arm in arms:
            console.print(f"[bold]{arm}[/] seed {seed} …")
            began = time.monotonic()
            results.extend(await run_arm(arm, seed, scale, shared, args.work / f"{arm}-s{seed}"))
            loads.append(os.getloadavg()[0])
            console.print(f"{arm} seed {seed}: {time.monotonic() - began:.0f} s, load {loads[-1]:.1f}")
            for table in render(results, scale.rounds, arms):
                console.print(table)
    summary = gap_summary(results, scale.rounds)
    console.print(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "scale": asdict(scale),
                "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
                "arms": arms,
                "warm_start": {
                    "key": shared.warm.key,
                    "heldout_accuracy": shared.warm_accuracy,
                    "first_build_s": shared.warm.build_s,
                },
                "seed_set": {
                    "samples": len(shared.seed_set.samples),
                    "noise": shared.seed_set.noise_rate(),
                    "heldout": len(shared.seed_set.heldout),
                },
                "machine": finish_machine_info(machine),
                "wall_time_s": time.monotonic() - started,
                "cpu_s": _cpu_seconds() - cpu_started,
                "load_average": {"start": list(load_started), "after_each_arm": loads},
                "summary": summary,
                "results": [asdict(r) for r in results],
            },
            indent=1,
        )
    )
    plot(results, scale.rounds, arms, shared.warm_accuracy, args.plot)
    console.print(markdown_table(results, scale.rounds, arms, shared.warm_accuracy))
    console.print(f"wrote {args.out} and {args.plot} ({(time.monotonic() - started) / 60:.1f} min)")


if __name__ == "__main__":
    asyncio.run(main())
