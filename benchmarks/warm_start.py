"""Warm-start recipe search: how good does the tiny policy get after its SFT warm start, and how fast?

Builds the demo's world and seed set, a warm-start set (further world dialogues with D_seed's noise
rate, disjoint by context from the seeds and the held-out set, plus copy drills), the tiny Qwen2
policy, trains the SFT warm start with the given recipe and scores it: greedy ToolMatch on the clean
held-out set (by dialogue kind) and against the world's truth on D_seed (how often the loop's
probe will find the policy wrong, which sets the Table-3 regime). Prints one JSON line per run and
appends it to ``benchmarks/results/warm_start.jsonl``, with steps/s, wall time, CPU seconds and the
load average (the cores are shared: the figures are only comparable at similar load).

    nice -n 10 .venv/bin/python -m benchmarks.warm_start --warm-dialogues 1500 --drills 2000 --steps 1200
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import RESULTS_DIR, ROOT
from looptool.demo import SCALES
from looptool.warm_start import build_world_policy

RESULTS = RESULTS_DIR / "warm_start.jsonl"


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def evaluate(model_dir: Path, items: list[Any], max_tokens: int) -> dict[str, Any]:
    from inference.transformers_backend import TransformersBackend
    from world.scoring import heldout_accuracy

    backend = TransformersBackend(str(model_dir), "eval", batch_size=32)
    try:
        accuracy = await heldout_accuracy(backend, items, max_tokens=max_tokens)
    finally:
        await backend.close()
    return {
        "accuracy": round(accuracy.rate, 4),
        "unparseable": accuracy.unparseable,
        "by_kind": {kind: f"{hit}/{total}" for kind, (hit, total) in accuracy.by_kind.items()},
    }


def teacher_forced_probe(tokenizer_dir: Path, items: list[Any]) -> Any:
    """``probe(model) -> share of held-out call samples whose whole label the model predicts token by
    token (argmax) given the right prefix``: exactly what greedy decoding would write, so a cheap
    learning curve of ToolMatch on calls (one forward pass per batch, no generation)."""
    import torch
    from transformers import AutoTokenizer

    from trainer.dataset import sample_row
    from trainer.sft import collate, tokenize_examples

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    rows = [
        sample_row(f"h{i}", item.sample.model_copy(update={"label": item.truth}))
        for i, item in enumerate(items)
        if item.truth.calls
    ]
    examples = tokenize_examples(tokenizer, rows)
    pad = tokenizer.pad_token_id or 0

    def probe(model: Any) -> float:
        correct = 0
        model.eval()
        with torch.no_grad():
            for start in range(0, len(examples), 32):
                input_ids, attention, targets = collate(examples[start : start + 32], pad)
                hidden = model.model(input_ids=input_ids, attention_mask=attention).last_hidden_state
                predicted = model.lm_head(hidden).argmax(-1)
                wrong = ((predicted != targets) & (targets != -100)).any(dim=1)
                correct += int((~wrong).sum())
        model.train()
        return correct / max(1, len(examples))

    return probe


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument("--warm-dialogues", type=int, default=1500)
    parser.add_argument("--drills", type=int, default=2000)
    parser.add_argument("--drill-two-requests", type=float, default=0.0)
    parser.add_argument("--parallel-share", type=float, default=None)
    parser.add_argument("--spaced-words", action="store_true")
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--schedule", default="constant")
    parser.add_argument("--warmup-ratio", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--train-eval", type=int, default=160, help="D_seed samples scored against truth")
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "warm-start")
    parser.add_argument("--tag", default="")
    parser.add_argument(
        "--eval-every", type=int, default=0, help="teacher-forced held-out curve every N steps"
    )
    args = parser.parse_args()
    import torch

    # Also for the evaluation: two threads on two cores shared with other jobs run far slower than one.
    torch.set_num_threads(args.threads)

    from trainer.dataset import sample_row
    from trainer.sft import sft_warm_start
    from world import World
    from world.drills import copy_drills
    from world.seed import build_seed_set, build_warm_start_samples

    scale = SCALES[args.scale]
    scale = dataclasses.replace(scale, hidden=args.hidden or scale.hidden, layers=args.layers or scale.layers)
    started = time.monotonic()
    cpu_started = _cpu_seconds()
    world = World(args.world_seed)
    seeds = await build_seed_set(world, scale.dialogues, heldout=scale.heldout_dialogues, noise_rate=0.2)
    from looptool.warm_start import WarmStartRecipe

    recipe = WarmStartRecipe(
        args.warm_dialogues,
        args.drills,
        scale.hidden,
        scale.layers,
        args.steps,
        parallel_share=args.parallel_share,
    )
    warm = await build_warm_start_samples(
        world, args.warm_dialogues, exclude=[*seeds.samples, *seeds.heldout], noise_rate=0.2, mix=recipe.mix()
    )
    drills = copy_drills(
        world.vocabulary(),
        args.drills,
        distractors=[t.spec for t in world.toolset],
        seed=args.world_seed,
        two_requests=args.drill_two_requests,
    )
    name = (
        f"h{scale.hidden}-l{scale.layers}-w{args.warm_dialogues}-d{args.drills}"
        f"-t{args.drill_two_requests:g}-p{args.parallel_share}{'-sp' if args.spaced_words else ''}"
        f"-s{args.world_seed}"
    )
    work = args.work / name
    initial = build_world_policy(
        world,
        [item.sample for item in [*seeds.samples, *warm]],
        work / "initial",
        hidden=scale.hidden,
        layers=scale.layers,
        seed=args.world_seed,
        drills=drills,
        spaced_words=args.spaced_words,
    )
    rows = [sample_row(f"warm-{i}", item.sample) for i, item in enumerate(warm)]
    rows += [sample_row(f"drill-{i}", sample) for i, sample in enumerate(drills)]
    prepared = time.monotonic()
    cpu_prepared = _cpu_seconds()
    load_before = os.getloadavg()
    curve: list[tuple[int, float]] = []
    on_step = None
    if args.eval_every:
        probe = teacher_forced_probe(initial, seeds.heldout)

        def on_step(step: int, model: Any) -> None:
            if step % args.eval_every == 0 or step == args.steps:
                curve.append((step, round(probe(model), 4)))
                print(f"step {step}: teacher-forced held-out call accuracy {curve[-1][1]:.1%}", flush=True)

    result = sft_warm_start(
        rows,
        init_model=initial,
        out_dir=work / f"sft-{args.steps}-{args.batch}-{args.lr:g}-{args.schedule}",
        steps=args.steps,
        learning_rate=args.lr,
        batch_size=args.batch,
        seed=args.world_seed,
        threads=args.threads,
        schedule=args.schedule,
        warmup_ratio=args.warmup_ratio,
        on_step=on_step,
    )
    trained = time.monotonic()
    cpu_trained = _cpu_seconds()
    load_after = os.getloadavg()
    heldout = await evaluate(result.model_dir, seeds.heldout, scale.max_new_tokens)
    on_seeds = await evaluate(result.model_dir, seeds.samples[: args.train_eval], scale.max_new_tokens)
    record = {
        "tag": args.tag,
        "hidden": scale.hidden,
        "layers": scale.layers,
        "warm_dialogues": args.warm_dialogues,
        "warm_samples": len(warm),
        "warm_noise": round(sum(item.noise is not None for item in warm) / max(1, len(warm)), 3),
        "drills": args.drills,
        "drill_two_requests": args.drill_two_requests,
        "parallel_share": args.parallel_share,
        "spaced_words": args.spaced_words,
        "steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "schedule": args.schedule,
        "warmup_ratio": args.warmup_ratio,
        "threads": args.threads,
        "loss_first": result.loss_first,
        "loss_last": result.loss_last,
        "heldout": heldout,
        "teacher_forced_call_curve": curve,
        "seeds_vs_truth": on_seeds,
        "heldout_size": len(seeds.heldout),
        "sft_wall_s": round(trained - prepared, 1),
        "sft_cpu_s": round(cpu_trained - cpu_prepared, 1),
        "steps_per_s": round(args.steps / (trained - prepared), 2),
        "prepare_s": round(prepared - started, 1),
        "eval_s": round(time.monotonic() - trained, 1),
        "total_cpu_s": round(_cpu_seconds() - cpu_started, 1),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
    }
    line = json.dumps(record)
    print(line)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


if __name__ == "__main__":
    asyncio.run(main())
