"""Benchmark: how much the demo's warm start varies from one build to another.

The demo's policy is warm-started by SFT (:func:`looptool.warm_start.cached_warm_start`, the demo's
recipe, one torch thread). A build is bit-for-bit deterministic on one machine, but its training
trajectory depends on the seed (initial weights, batch order) and on the machine's floating-point
kernels, and the held-out accuracy it ends at moves with it. This builds the demo's warm start for
several seeds exactly as the demo does (the same cache, so the demo's own seed-0 build is shared),
``--parallel`` builds at a time, and scores each on the clean held-out set as the demo's report does.

Prints the held-out ToolMatch accuracy per seed with mean, std, min and max; writes
``benchmarks/results/warm_start_spread.json``.

    .venv/bin/python -m benchmarks.warm_start_spread [--seeds 0 1 2 3] [--parallel 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.table import Table

from benchmarks.harness import (
    ROOT,
    add_output_arguments,
    finish_machine_info,
    machine_info,
    quiet_logs,
    save,
    set_torch_threads,
    wide_console,
)


async def demo_world(scale_name: str, warm_dialogues: int | None = None) -> tuple[Any, Any, Any]:
    """The demo's world, seed set and scale, built as the demo builds them from the default
    ``[world]`` settings; ``warm_dialogues`` replaces the scale's number of warm-start dialogues."""
    import dataclasses

    from looptool.demo import SCALES
    from world import World
    from world.config import WorldSettings
    from world.seed import build_seed_set

    scale = SCALES[scale_name]
    if warm_dialogues is not None:
        scale = dataclasses.replace(scale, warm_dialogues=warm_dialogues)
    settings = WorldSettings()
    world = World(settings.seed)
    seed_set = await build_seed_set(
        world, scale.dialogues, heldout=scale.heldout_dialogues, noise_rate=settings.noise_rate
    )
    return world, seed_set, scale


async def build_one(seed: int, cache: Path, scale_name: str, warm_dialogues: int | None) -> dict[str, Any]:
    """One warm start, built (or taken from ``cache``) as the demo does: one thread."""
    from looptool.warm_start import cached_warm_start
    from world.config import WorldSettings

    world, seed_set, scale = await demo_world(scale_name, warm_dialogues)
    warm = await cached_warm_start(
        world,
        seed_set,
        scale.warm_start,
        cache_dir=cache,
        seed=seed,
        noise_rate=WorldSettings().noise_rate,
        threads=1,
        show_progress=False,
    )
    return {"seed": seed, "model": str(warm.model), "cached": warm.cached, "build_s": warm.build_s}


def build_all(
    seeds: list[int], parallel: int, cache: Path, scale_name: str, warm_dialogues: int | None
) -> list[dict[str, Any]]:
    """Each seed's build in a process of its own, ``parallel`` at a time (one core each)."""

    def build(seed: int) -> dict[str, Any]:
        command = [sys.executable, "-m", "benchmarks.warm_start_spread", "--build-one", str(seed)]
        command += ["--cache", str(cache), "--scale", scale_name]
        if warm_dialogues is not None:
            command += ["--warm-dialogues", str(warm_dialogues)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"the build of seed {seed} exited with {done.returncode}:\n{done.stderr[-2000:]}"
            )
        return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(build, seeds))


async def score(builds: list[dict[str, Any]], scale_name: str) -> None:
    """Held-out ToolMatch of each build, as the demo's report scores its warm start."""
    from inference.transformers_backend import TransformersBackend
    from world.scoring import heldout_accuracy

    _, seed_set, scale = await demo_world(scale_name)
    for row in builds:
        backend = TransformersBackend(row["model"], "warm-start", batch_size=32)
        try:
            accuracy = await heldout_accuracy(backend, seed_set.heldout, max_tokens=scale.max_new_tokens)
        finally:
            await backend.close()
        row["heldout_accuracy"] = accuracy.rate
        row["heldout_samples"] = len(seed_set.heldout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--parallel", type=int, default=2, help="Builds at a time (one core each).")
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "cache" / "warm-start")
    parser.add_argument("--scale", default="full")
    parser.add_argument(
        "--warm-dialogues", type=int, default=None, help="Warm-start dialogues (default: the scale's)."
    )
    parser.add_argument("--build-one", type=int, default=None, help=argparse.SUPPRESS)
    add_output_arguments(parser, "warm_start_spread")
    args = parser.parse_args()
    quiet_logs()
    if args.build_one is not None:  # a child of build_all: its result as the last line
        print(json.dumps(asyncio.run(build_one(args.build_one, args.cache, args.scale, args.warm_dialogues))))
        return

    machine = machine_info()
    set_torch_threads(1)
    started = time.monotonic()
    builds = build_all(args.seeds, args.parallel, args.cache, args.scale, args.warm_dialogues)
    built_s = time.monotonic() - started
    asyncio.run(score(builds, args.scale))
    rates = [row["heldout_accuracy"] for row in builds]
    summary = {
        "mean": statistics.fmean(rates),
        "std": statistics.stdev(rates) if len(rates) > 1 else 0.0,
        "min": min(rates),
        "max": max(rates),
        "at_least_55_percent": sum(rate >= 0.55 for rate in rates),
    }
    results = {
        "scale": args.scale,
        "warm_dialogues": args.warm_dialogues,
        "seeds": args.seeds,
        "builds": builds,
        "summary": summary,
        "wall_time_s": time.monotonic() - started,
        "build_wall_time_s": built_s,
        "machine": finish_machine_info(machine),
    }
    table = Table("seed", "held-out ToolMatch", "build (min)", title="the demo's warm start, per seed")
    for row in builds:
        build = f"{row['build_s'] / 60:.1f}" + (" (cached)" if row["cached"] else "")
        table.add_row(str(row["seed"]), f"{row['heldout_accuracy']:.1%}", build)
    table.add_row("mean ± std", f"{summary['mean']:.1%} ± {summary['std']:.1%}", f"min {summary['min']:.1%}")
    wide_console().print(table)
    save(results, args)


if __name__ == "__main__":
    main()
