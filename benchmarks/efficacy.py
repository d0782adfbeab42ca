"""Efficacy: does the loop beat training on the seeds alone? Three arms, several seeds, side by side.

Same synthetic world, same seeds, same model, same training compute per round (the same D_j size,
epochs, group size and SFT warm start) for every arm:

- ``loop``: the full LoopTool loop (GCP, JGLV with the world's simulated judge, EDDE, verification,
  high-PPL, the paper's seed-new schedule);
- ``static``: every round trains on a fresh subset of D_seed (the paper's "w/o iterations");
- ``no_jglv``: the loop with every mismatch taken as PRED_WRONG (labels never corrected).

Each arm runs strictly serially in-process (``looptool.serial.SerialLoop``: the worker's stage
objects, curation and the CPU GRPO trainer). After each round it scores the round's checkpoint on the
clean held-out set (greedy ToolMatch against the world's truth) and the label noise of D_j. Prints the
tables (mean ± std over seeds) and writes ``benchmarks/results/efficacy.json``.

    .venv/bin/python -m benchmarks.efficacy                  # 3 seeds, 3 rounds (about an hour on 2 cores)
    .venv/bin/python -m benchmarks.efficacy --seeds 1 --scale quick
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.harness import ROOT, results_path
from looptool.config import load_settings
from looptool.demo import (
    SCALES,
    DemoScale,
    build_initial_policy,
    demo_settings,
    split_warm_start,
    write_warm_start,
)
from looptool.serial import ARMS, SerialLoop

RESULTS = results_path("efficacy")
STAGES = ("probe", "judge", "relabel", "expand", "verify")


@dataclass
class ArmRound:
    arm: str
    seed: int
    round: int
    heldout_accuracy: float
    label_noise: float
    size: int
    sources: dict[str, int]
    train_s: float
    loop_s: float


async def run_arm(
    arm: str, seed: int, scale: DemoScale, work: Path, *, shared_world: bool = False
) -> list[ArmRound]:
    from looptool.wiring import build_stages
    from streams.curate import CurationPolicy
    from trainer.cpu_grpo import CpuGrpoBackend
    from trainer.sft import configured_warm_start
    from world import World
    from world.scoring import heldout_accuracy, label_noise
    from world.seed import build_seed_set, seed_events

    # One run id per seed: every arm curates the same D_1 (curate's draws are seeded by the run id),
    # so the arms differ only from round 2 on. With ``shared_world`` every seed also shares the world
    # and the warm start (built once, cached): seeds then vary the loop's own randomness (curation
    # draws, rollouts), not the world or the initial model.
    run_id = f"eff-s{seed}"
    world_seed = 0 if shared_world else seed
    shared = work.parent / f"shared-w{world_seed}"
    settings = demo_settings(load_settings(None, run_id=run_id), shared, scale, world_seed)
    settings = settings.model_copy(update={"trainer": settings.trainer.model_copy(update={"seed": seed})})
    world_settings = settings.world
    assert world_settings is not None
    world = World(world_settings.seed)
    synthesised = await build_seed_set(
        world, scale.dialogues, heldout=scale.heldout_dialogues, noise_rate=world_settings.noise_rate
    )
    seed_set, warm = split_warm_start(synthesised, scale.warm_start_samples, world_seed)  # as the demo does
    initial = settings.policy.model_path
    assert initial is not None
    if not (initial / "config.json").exists():
        drills = write_warm_start(world, warm, scale.copy_drills, shared / "warmstart.jsonl", world_seed)
        build_initial_policy(world, synthesised.samples, initial, scale, world_seed, drills)
    # The worker's own stage objects (world simulations: no endpoint is configured), fed in-process.
    stages = {stage.name: stage for stage in build_stages(settings, STAGES, log=None)}
    policy_backend = stages["probe"].backend  # type: ignore[attr-defined]
    trainer = settings.trainer

    def warm_start(dataset: Any, init_model: Path, out_dir: Path) -> Path:
        cached = shared / "sft"
        if (cached / "config.json").exists():
            return cached
        return configured_warm_start(
            dataset, trainer, init_model=init_model, out_dir=cached, show_progress=False
        ).model_dir

    serial = SerialLoop(
        settings,
        CurationPolicy.from_settings(settings),
        stages=stages,
        trainer=CpuGrpoBackend(trainer, show_progress=False),
        work_dir=work / "rounds",
        arm=arm,  # type: ignore[arg-type]
        warm_start=warm_start,
    )
    rounds = await serial.run(seed_events(seed_set, settings.run_id), initial, scale.rounds)
    results = []
    for result in rounds:
        await policy_backend.load(str(result.checkpoint_path), f"r{result.round}")
        accuracy = await heldout_accuracy(policy_backend, seed_set.heldout, max_tokens=scale.max_new_tokens)
        noise = label_noise(world, ((m.tools, m.messages, m.label) for m in result.members))
        sources: dict[str, int] = {}
        for member in result.members:
            sources[member.source] = sources.get(member.source, 0) + 1
        results.append(
            ArmRound(
                arm,
                seed,
                result.round,
                accuracy.rate,
                noise.rate,
                len(result.members),
                sources,
                result.train_s,
                result.loop_s,
            )
        )
    await policy_backend.close()
    return results


def _mean_std(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0] * 100:.1f}"
    return f"{statistics.mean(values) * 100:.1f} ± {statistics.stdev(values) * 100:.1f}"


def render(results: list[ArmRound], rounds: int) -> list[Table]:
    tables = []
    for metric, title in (
        ("heldout_accuracy", "held-out ToolMatch accuracy (%)"),
        ("label_noise", "label noise of D_j (%)"),
    ):
        table = Table(
            "arm", *(f"round {j}" for j in range(1, rounds + 1)), title=f"{title}, mean ± std over seeds"
        )
        for arm in ARMS:
            cells = []
            for round_ in range(1, rounds + 1):
                values = [getattr(r, metric) for r in results if r.arm == arm and r.round == round_]
                cells.append(_mean_std(values))
            table.add_row(arm, *cells)
        tables.append(table)
    return tables


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--rounds", type=int, default=None, help="override the scale's number of rounds")
    parser.add_argument("--target-size", type=int, default=None, help="override the scale's |D_j|")
    parser.add_argument(
        "--shared-world",
        action="store_true",
        help="one world and one warm start for every seed (seeds vary curation draws and rollouts)",
    )
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "efficacy")
    args = parser.parse_args()
    console = Console()
    scale = SCALES[args.scale]
    if args.rounds is not None:
        scale = dataclasses.replace(scale, rounds=args.rounds)
    if args.target_size is not None:
        scale = dataclasses.replace(scale, target_size=args.target_size)
    results: list[ArmRound] = []
    started = time.monotonic()
    for seed in range(args.seeds):
        for arm in args.arms.split(","):
            console.print(f"[bold]{arm}[/] seed {seed} …")
            results.extend(
                await run_arm(arm, seed, scale, args.work / f"{arm}-s{seed}", shared_world=args.shared_world)
            )
            for table in render(results, scale.rounds):
                console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "scale": asdict(scale),
                "seeds": args.seeds,
                "shared_world": args.shared_world,
                "machine": {
                    "python": platform.python_version(),
                    "cpu": platform.processor() or platform.machine(),
                },
                "wall_time_s": time.monotonic() - started,
                "results": [asdict(r) for r in results],
            },
            indent=2,
        )
    )
    console.print(f"wrote {RESULTS} ({(time.monotonic() - started) / 60:.1f} min)")


if __name__ == "__main__":
    asyncio.run(main())
