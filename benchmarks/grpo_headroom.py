"""GRPO headroom: how far can GRPO move the demo's warm-started policy at all? The ceiling for issue 15.

The efficacy benchmark (:mod:`benchmarks.efficacy`) finds every arm within about a point of the warm
start. This asks whether any curation could do better with the same training compute, by measuring
two upper bounds on the clean held-out set itself:

- **sampling headroom**: G completions per held-out prompt at GRPO's temperature. GRPO can only
  sharpen what sampling already finds, so greedy accuracy after GRPO is bounded (loosely) by pass@G,
  and a prompt gives a gradient only when its group has mixed rewards;
- **oracle GRPO**: GRPO trained *on the held-out prompts with their true labels* (training on the test
  set, which no arm may do), with the demo's settings and compute per round (|D_j| prompts, G, steps,
  learning rate), scored greedily on the same prompts after each round. No curated D_j can teach the
  held-out set more than the held-out set itself. Two more arms train on the seeds: ``clean_seeds``
  with the world's true labels (what flawless label verification would give them), ``seeds`` with
  their own labels (20% wrong, as the efficacy benchmark's static arm has them, without the pipeline).

    nice -n 10 .venv/bin/python -m benchmarks.grpo_headroom                 # ~35 min on 2 cores
    nice -n 10 .venv/bin/python -m benchmarks.grpo_headroom --arms oracle --seeds 1 --epochs 2

Writes ``benchmarks/results/grpo_headroom.json``: pass@G and reward statistics of the warm start (and of
each arm's last checkpoint), and held-out accuracy per arm and round.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.efficacy import Shared, mean_std, prepare
from benchmarks.harness import ROOT, finish_machine_info, machine_info, quiet_logs, results_path, wide_console
from looptool.config import load_settings
from looptool.demo import SCALES, WARM_START_CACHE, DemoScale, demo_settings
from looptool.report import narrow_table
from trainer.base import TrainingRow
from world import WorldSample

ARMS = ("oracle", "clean_seeds", "seeds")
DEFAULT_ARMS = ("oracle", "clean_seeds")


@dataclasses.dataclass(frozen=True)
class Headroom:
    """What G samples per prompt find: the expected reward, pass@G, and how often a group is mixed."""

    prompts: int
    group_size: int
    sampled_accuracy: float  # mean reward of one sample: GRPO's expected reward on these prompts
    pass_at_g: float
    mixed_groups: float  # 0 < correct < G: the prompts that give GRPO a gradient
    all_wrong: float
    all_right: float


async def sampling_headroom(
    model: Path, heldout: Sequence[WorldSample], group_size: int, scale: DemoScale
) -> Headroom:
    from inference.base import SamplingConfig
    from inference.transformers_backend import TransformersBackend
    from toolcall.prompts import build_chat
    from toolcall.reward import reward

    backend = TransformersBackend(str(model), "headroom", batch_size=32)
    chats = [build_chat(item.sample.tools, item.sample.messages) for item in heldout]
    sampling = SamplingConfig(
        greedy=False,
        temperature=scale.grpo_temperature,
        max_tokens=scale.max_new_tokens,
        n=group_size,
        seed=0,
    )
    groups = await backend.generate(chats, sampling)
    await backend.close()
    # GRPO's own reward (Eq. 1) against the world's truth: what a rollout of this prompt would earn.
    correct_counts = [
        sum(
            reward(item.sample.tools, item.sample.messages, item.truth, generation.text)
            for generation in group
        )
        for item, group in zip(heldout, groups, strict=True)
    ]
    n = len(correct_counts)
    return Headroom(
        prompts=n,
        group_size=group_size,
        sampled_accuracy=sum(correct_counts) / (n * group_size),
        pass_at_g=sum(c > 0 for c in correct_counts) / n,
        mixed_groups=sum(0 < c < group_size for c in correct_counts) / n,
        all_wrong=sum(c == 0 for c in correct_counts) / n,
        all_right=sum(c == group_size for c in correct_counts) / n,
    )


def training_rows(items: Sequence[WorldSample], prefix: str, *, truth: bool) -> list[TrainingRow]:
    """Training rows of world samples, with the world's true label or the sample's own (maybe noisy)."""
    from toolcall.types import Sample
    from trainer.dataset import sample_row

    return [
        sample_row(
            f"{prefix}-{i}",
            item.sample
            if not truth
            else Sample(tools=item.sample.tools, messages=item.sample.messages, label=item.truth),
        )
        for i, item in enumerate(items)
    ]


async def run_arm(
    arm: str, seed: int, scale: DemoScale, shared: Shared, work: Path, epochs: int
) -> tuple[list[dict[str, Any]], Path]:
    from inference.transformers_backend import TransformersBackend
    from trainer.base import RoundDataset
    from trainer.cpu_grpo import CpuGrpoBackend
    from world.scoring import heldout_accuracy

    settings = demo_settings(
        load_settings(None, run_id=f"headroom-{arm}-s{seed}"), work, scale, 0, shared.warm.model
    )
    trainer_settings = settings.trainer.model_copy(update={"seed": seed, "epochs_per_round": epochs})
    trainer = CpuGrpoBackend(trainer_settings, show_progress=False)
    items = shared.seed_set.heldout if arm == "oracle" else shared.seed_set.samples
    pool = training_rows(items, arm, truth=arm != "seeds")
    # seeds draws the prompts clean_seeds draws, round by round: only their labels differ.
    draw = random.Random(f"headroom-{'clean_seeds' if arm == 'seeds' else arm}-{seed}")
    model, rows = Path(shared.warm.model), []
    for round_ in range(1, scale.rounds + 1):
        members = tuple(draw.sample(pool, min(scale.target_size, len(pool))))
        dataset = RoundDataset(
            round=round_, rows=members, content_hash=f"{arm}-{round_}", manifest_event_id=arm
        )
        began = time.monotonic()
        info = await asyncio.to_thread(
            trainer.train_round, dataset, init_model=model, out_dir=work / arm / f"round-{round_:03d}"
        )
        model = Path(info.path)
        backend = TransformersBackend(str(model), f"{arm}-r{round_}", batch_size=32)
        accuracy = await heldout_accuracy(backend, shared.seed_set.heldout, max_tokens=scale.max_new_tokens)
        await backend.close()
        rows.append(
            {
                "arm": arm,
                "seed": seed,
                "round": round_,
                "heldout_accuracy": accuracy.rate,
                "reward_mean": info.metrics.get("round_reward_mean"),
                "mixed_groups": info.metrics.get("round_mixed_groups"),
                "grpo_steps": int(info.metrics.get("steps", 0)),
                "train_s": time.monotonic() - began,
            }
        )
    return rows, model


def summarise(
    results: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]], warm_accuracy: float, rounds: int
) -> dict[str, Any]:
    """Per arm: held-out accuracy at the last round (mean, std over seeds), its gain over the warm
    start in points, and the sampled accuracy and pass@G after the last round (means)."""
    summary: dict[str, Any] = {}
    for arm in dict.fromkeys(r["arm"] for r in results):
        last = [r["heldout_accuracy"] for r in results if r["arm"] == arm and r["round"] == rounds]
        finals = [a for a in after if a["arm"] == arm]
        summary[arm] = {
            "last_round_accuracy": statistics.mean(last),
            "last_round_std": statistics.stdev(last) if len(last) > 1 else None,
            "gain_points": (statistics.mean(last) - warm_accuracy) * 100,
            "sampled_accuracy": statistics.mean(a["sampled_accuracy"] for a in finals),
            "pass_at_g": statistics.mean(a["pass_at_g"] for a in finals),
        }
    return summary


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--arms", default=",".join(DEFAULT_ARMS), help=f"comma-separated, of {', '.join(ARMS)}"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds of GRPO's sampling and the rounds' draws")
    parser.add_argument(
        "--epochs", type=int, default=None, help="GRPO epochs per round (default: the demo's)"
    )
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "headroom")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / WARM_START_CACHE)
    parser.add_argument("--out", type=Path, default=results_path("grpo_headroom"))
    args = parser.parse_args()
    arms = args.arms.split(",")
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arms {unknown}: choose from {', '.join(ARMS)}")
    import torch

    torch.set_num_threads(1)
    quiet_logs()
    console = wide_console()
    scale = SCALES["full"]
    epochs = args.epochs or scale.grpo_epochs
    started, machine = time.monotonic(), machine_info()
    shared = await prepare(scale, args.cache_dir, console)
    heldout = shared.seed_set.heldout
    with console.status(f"sampling {scale.group_size} completions per held-out prompt…"):
        warm_headroom = await sampling_headroom(Path(shared.warm.model), heldout, scale.group_size, scale)
    console.print(f"warm start: {warm_headroom}")
    results: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        for arm in arms:
            with console.status(f"{arm}, seed {seed}: {scale.rounds} GRPO rounds…"):
                rows, last = await run_arm(arm, seed, scale, shared, args.work / f"s{seed}", epochs)
                headroom = await sampling_headroom(last, heldout, scale.group_size, scale)
            results.extend(rows)
            after.append({"arm": arm, "seed": seed, **dataclasses.asdict(headroom)})
            console.print(f"{arm}, seed {seed}: {[round(r['heldout_accuracy'] * 100, 1) for r in rows]}")
    rounds = range(1, scale.rounds + 1)
    table = narrow_table(
        ("arm", "warm", *(f"r{j}" for j in rounds), "sampled", "pass@G"),
        title=f"held-out ToolMatch (%), mean±std over {args.seeds} seeds (sampled, pass@G: last round)",
    )
    table.add_row(
        "warm start",
        f"{shared.warm_accuracy * 100:.1f}",
        *[""] * scale.rounds,
        f"{warm_headroom.sampled_accuracy * 100:.1f}",
        f"{warm_headroom.pass_at_g * 100:.1f}",
    )
    for arm in arms:
        accuracy = [
            mean_std([r["heldout_accuracy"] for r in results if r["arm"] == arm and r["round"] == j])
            for j in rounds
        ]
        finals = [a for a in after if a["arm"] == arm]
        table.add_row(
            arm,
            "",
            *accuracy,
            mean_std([a["sampled_accuracy"] for a in finals]),
            mean_std([a["pass_at_g"] for a in finals]),
        )
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "scale": dataclasses.asdict(scale),
                "epochs_per_round": epochs,
                "seeds": list(range(args.seeds)),
                "warm_start": {
                    "key": shared.warm.key,
                    "heldout_accuracy": shared.warm_accuracy,
                    "sampling": dataclasses.asdict(warm_headroom),
                },
                "heldout": len(heldout),
                "after": after,
                "machine": finish_machine_info(machine),
                "wall_time_s": time.monotonic() - started,
                "summary": summarise(results, after, shared.warm_accuracy, scale.rounds),
                "results": results,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    console.print(f"wrote {args.out} ({(time.monotonic() - started) / 60:.1f} min)")


if __name__ == "__main__":
    asyncio.run(main())
