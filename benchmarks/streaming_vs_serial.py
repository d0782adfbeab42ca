"""Benchmark: wall-clock of J rounds of the demo world, streaming (overlapping services) vs strictly serial.

Both arms start from the same seed pool and the same initial policy
(the demo's cached warm start, :func:`looptool.warm_start.cached_warm_start`), with the demo's settings:
same |D_j|, SFT warm start, GRPO steps, probe batch and length, simulated judge/generator/verifier.

- streaming: as ``looptool demo`` runs it (:func:`looptool.demo.run_demo`): ``looptool worker``
  (probe, judge, relabel, expand, verify, curate) and ``looptool train`` as two processes on the
  embedded broker; the probe works with the newest checkpoint of round j (``probe_checkpoints =
  "latest"``), so D_{j+1} is built while round j still trains. Timed from starting the services
  (their start-up included) until round J's final checkpoint is on the topic.
- serial: :class:`looptool.serial.SerialLoop` arm ``loop`` in this process: train round j, then probe
  with its final checkpoint, judge, relabel, expand, verify, curate, then train round j+1.

Neither arm's time includes building the seeds and the policy, nor evaluating checkpoints. The
streaming arm's service logs give its timeline (start-up, each round's training, how long the
trainer waited for D_{j+1}), which explains the speed-up. Prints tables and writes
``benchmarks/results/streaming_vs_serial.json``.

    .venv/bin/python -m benchmarks.streaming_vs_serial [--scale quick] [--rounds 3] [--target-size N]
    # GRPO rounds about as long as the loop (Table 6's G and more epochs), the regime where streaming pays:
    .venv/bin/python -m benchmarks.streaming_vs_serial --group-size 16 --grpo-epochs 3 --publish-every-steps 2
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import os
import resource
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from benchmarks.harness import (
    finish_machine_info,
    machine_info,
    quiet_logs,
    results_path,
    wide_console,
    write_results,
)
from benchmarks.pipeline_overhead import STAGE_ORDER
from looptool.config import Settings, load_settings

RESULTS = results_path("streaming_vs_serial")


def arm_settings(
    run_id: str,
    bootstrap: str | None,
    scale: Any,
    work: Path,
    model: Path,
    seed: int,
    policy_threads: int | None = None,
    endpoint_latency: str = "vllm-32b-h100",
) -> Settings:
    """The demo's settings for one arm, pointing at the shared initial policy and warm-start data.

    ``policy_threads`` overrides the demo's ``policy.torch_threads`` (the probe's inference, in the
    worker service or, for the serial arm, in this process)."""
    from looptool.demo import demo_settings

    kafka = {"bootstrap_servers": bootstrap} if bootstrap else {}
    settings = demo_settings(load_settings(None, run_id=run_id, kafka=kafka), work, scale, seed)
    trainer = settings.trainer
    if trainer.sft_data is not None:  # the warm start's samples and copy drills, written once for both
        trainer = trainer.model_copy(update={"sft_data": model.parent / "warmstart.jsonl"})
    policy = {"model_path": model} | ({"torch_threads": policy_threads} if policy_threads else {})
    world = settings.world.model_copy(update={"endpoint_latency": endpoint_latency})  # type: ignore[union-attr]
    return settings.model_copy(
        update={"policy": settings.policy.model_copy(update=policy), "trainer": trainer, "world": world}
    )


def cpu_seconds(who: int) -> float:
    """User + system CPU seconds of this process (all threads) or of its reaped children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# --- streaming ------------------------------------------------------------------------------------------


async def run_streaming(
    run_id: str,
    seed_set: Any,
    model: Path,
    scale: Any,
    work: Path,
    seed: int,
    timeout_s: float,
    console: Any,
    policy_threads: int | None = None,
    endpoint_latency: str = "vllm-32b-h100",
) -> dict[str, Any]:
    from bus.broker import EmbeddedBroker
    from bus.kafka import EventProducer, ensure_topics, run_log
    from looptool.config import write_config
    from looptool.demo import follow_until_trained
    from looptool.supervisor import Service
    from streams.curate import CurationPolicy, open_first_round
    from world.seed import seed_events

    with EmbeddedBroker() as broker:
        settings = arm_settings(
            run_id, broker.bootstrap_servers, scale, work, model, seed, policy_threads, endpoint_latency
        )
        config = work / "looptool.toml"
        write_config(settings, config)
        await ensure_topics(settings.kafka, run_id)
        async with EventProducer(settings.kafka) as producer:
            await producer.send_all(seed_events(seed_set, run_id))
        await open_first_round(run_log(settings), CurationPolicy.from_settings(settings))
        logs = work / "logs"
        services = [
            Service("worker", ["worker"], config, logs / "worker.log"),
            Service("trainer", ["train"], config, logs / "trainer.log"),
        ]
        load_start = os.getloadavg()[0]
        children, own = cpu_seconds(resource.RUSAGE_CHILDREN), cpu_seconds(resource.RUSAGE_SELF)
        wall_start = time.time()
        started = time.monotonic()
        for service in services:
            service.start()
        try:
            # No evaluate/promote service here: the run ends with round J's final checkpoint.
            progress, peak = await follow_until_trained(
                settings,
                services,
                console,
                rounds=scale.rounds,
                timeout_s=timeout_s,
                started=started,
                gated=False,
            )
            wall_s = time.monotonic() - started
            # Let the follower's consumer close before the (blocking) service stops and the broker exit.
            await asyncio.sleep(0.5)
        finally:
            for service in services:
                service.stop()
        # Stopped services are reaped, so their CPU time (start-up and shutdown included) is counted.
        services_cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - children
        follower_cpu = cpu_seconds(resource.RUSAGE_SELF) - own
    timeline = service_timeline(logs, wall_start, scale.rounds)
    return {
        "run_id": run_id,
        "wall_s": wall_s,
        "cpu_s": {"services": services_cpu, "this_process": follower_cpu},
        "load_average": [load_start, os.getloadavg()[0]],
        "peak_memory_gib": peak / 2**30,
        "rounds": [
            {
                "round": j,
                "size": progress.ledger.closed[j].payload.total,
                "probed": progress.ledger.status(j).probed,
                "checkpoints": len(progress.checkpoints.get(j, [])),
            }
            for j in range(1, scale.rounds + 1)
        ],
        "timeline": timeline,
    }


def _records(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def _at(record: dict[str, Any], origin: float) -> float:
    return datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp() - origin


def service_timeline(logs: Path, origin: float, rounds: int) -> dict[str, Any]:
    """Seconds after the services were started at which the milestones of the run happened."""
    worker, trainer = _records(logs / "worker.log"), _records(logs / "trainer.log")
    first = {
        "worker_ready_s": next((_at(r, origin) for r in worker if r.get("event") == "worker.ready"), None),
        "trainer_first_round_start_s": next(
            (_at(r, origin) for r in trainer if r.get("event") == "train.round_start"), None
        ),
    }
    per_round = []
    for j in range(1, rounds + 1):
        starts = [
            _at(r, origin) for r in trainer if r.get("event") == "train.round_start" and r.get("round") == j
        ]
        checkpoints = [
            r for r in trainer if r.get("event") == "train.checkpoint_published" and r.get("round") == j
        ]
        finals = [_at(r, origin) for r in checkpoints if r.get("final")]
        closed_next = [
            _at(r, origin)
            for r in worker
            if r.get("event") == "curate.round_closed" and r.get("round") == j + 1
        ]
        entry: dict[str, Any] = {
            "round": j,
            "train_start_s": starts[0] if starts else None,
            "first_checkpoint_s": _at(checkpoints[0], origin) if checkpoints else None,
            "final_checkpoint_s": finals[0] if finals else None,
            "next_round_closed_s": closed_next[0] if closed_next else None,
        }
        if entry["train_start_s"] is not None and entry["final_checkpoint_s"] is not None:
            entry["train_s"] = entry["final_checkpoint_s"] - entry["train_start_s"]
        per_round.append(entry)
    # The trainer's idle time between rounds: waiting for D_{j+1} after round j's final checkpoint.
    for this, following in itertools.pairwise(per_round):
        if this["final_checkpoint_s"] is not None and following["train_start_s"] is not None:
            this["trainer_waited_for_next_round_s"] = following["train_start_s"] - this["final_checkpoint_s"]
    sft = next((r for r in trainer if r.get("event") == "train.sft_done"), None)
    first["sft_s"] = float(sft["seconds"]) if sft else None
    probe_s = sum(float(r.get("seconds", 0.0)) for r in worker if r.get("event") == "transformers.generated")
    return {**first, "rounds": per_round, "probe_generate_s": probe_s}


# --- serial ---------------------------------------------------------------------------------------------


async def run_serial(
    run_id: str,
    seed_set: Any,
    model: Path,
    scale: Any,
    work: Path,
    seed: int,
    policy_threads: int | None,
    endpoint_latency: str = "vllm-32b-h100",
) -> dict[str, Any]:
    from looptool.serial import SerialLoop
    from looptool.wiring import build_stages
    from streams.curate import CurationPolicy
    from trainer.cpu_grpo import CpuGrpoBackend
    from trainer.sft import configured_warm_start
    from world.seed import seed_events

    settings = arm_settings(run_id, None, scale, work, model, seed, policy_threads, endpoint_latency)
    trainer = settings.trainer
    load_start = os.getloadavg()[0]
    own = cpu_seconds(resource.RUSAGE_SELF)
    started = time.monotonic()
    # The worker's own stage objects (looptool.wiring.build_stages), fed in-process.
    stages = {stage.name: stage for stage in build_stages(settings, STAGE_ORDER, log=None)}

    sft_s: list[float] = []

    def warm_start(dataset: Any, init_model: Path, out_dir: Path) -> Path:
        began = time.monotonic()
        try:
            return warm(dataset, init_model, out_dir)
        finally:
            sft_s.append(time.monotonic() - began)

    def warm(dataset: Any, init_model: Path, out_dir: Path) -> Path:
        return configured_warm_start(  # as the trainer service does
            dataset, trainer, init_model=init_model, out_dir=out_dir, show_progress=False
        ).model_dir

    serial = SerialLoop(
        settings,
        CurationPolicy.from_settings(settings),
        stages=stages,
        trainer=CpuGrpoBackend(trainer, show_progress=False),
        work_dir=work / "rounds",
        arm="loop",
        # The demo's cached warm start is already trained: round 1 then runs no SFT, as in the trainer.
        warm_start=warm_start if trainer.sft_warmup_steps > 0 else None,
    )
    rounds = await serial.run(seed_events(seed_set, run_id), model, scale.rounds)
    wall_s = time.monotonic() - started
    cpu_s = cpu_seconds(resource.RUSAGE_SELF) - own
    await stages["probe"].backend.close()  # type: ignore[attr-defined]
    return {
        "run_id": run_id,
        "wall_s": wall_s,
        "cpu_s": {"this_process": cpu_s},
        "load_average": [load_start, os.getloadavg()[0]],
        "sft_s": sum(sft_s),
        "rounds": [
            {
                "round": r.round,
                "size": len(r.members),
                "train_s": r.train_s,
                "loop_s": r.loop_s,
                "grpo_steps": r.metrics.get("steps"),
            }
            for r in rounds
        ],
    }


# --- the benchmark ---------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from looptool.demo import SCALES, WARM_START_CACHE
    from looptool.warm_start import cached_warm_start
    from world import World
    from world.seed import build_seed_set

    console = wide_console()
    quiet_logs()
    machine = machine_info()
    scale = SCALES[args.scale]
    scale = dataclasses.replace(
        scale,
        rounds=args.rounds,
        target_size=args.target_size or scale.target_size,
        sft_steps=scale.sft_steps if args.sft_steps is None else args.sft_steps,
        group_size=args.group_size or scale.group_size,
        grpo_epochs=args.grpo_epochs or scale.grpo_epochs,
        publish_every_steps=args.publish_every_steps or scale.publish_every_steps,
    )
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-svs-"))
    # As run_demo prepares a run: the seeds, the warm start's own samples and drills, the policy.
    world = World(args.seed)
    seed_set = await build_seed_set(world, scale.dialogues, noise_rate=0.2)
    with console.status("the demo's warm-started policy (built once, then from its cache)…"):
        warm = await cached_warm_start(
            world, seed_set, scale.warm_start, cache_dir=WARM_START_CACHE, seed=args.seed, noise_rate=0.2
        )
    model = warm.model  # warm-started beforehand, as the demo does: the arms time the loop alone
    # One run id for both arms: curation's draws are seeded by it, so both curate the same D_1.
    run_id = "svs-" + datetime.now().strftime("%Y%m%d%H%M%S")
    console.print(
        f"{len(seed_set.samples)} seeds · {scale.rounds} rounds · |D_j| = {scale.target_size} · "
        f"policy {scale.hidden}×{scale.layers} · work folder {work}"
    )
    figures: dict[str, Any] = {
        "scale": {"name": args.scale, **dataclasses.asdict(scale)},
        "seeds": len(seed_set.samples),
        "policy_threads": args.policy_threads or "the demo's policy.torch_threads",
        "endpoint_latency": args.endpoint_latency,
    }
    if args.arms in ("both", "streaming"):
        console.rule("streaming: worker and trainer services on the embedded broker")
        shutil.rmtree(work / "streaming", ignore_errors=True)
        figures["streaming"] = await run_streaming(
            run_id,
            seed_set,
            model,
            scale,
            work / "streaming",
            args.seed,
            args.timeout_s,
            console,
            args.policy_threads,
            args.endpoint_latency,
        )
        console.print(f"streaming: {figures['streaming']['wall_s']:.1f} s")
    if args.arms in ("both", "serial"):
        console.rule("serial: SerialLoop arm 'loop' in this process")
        shutil.rmtree(work / "serial", ignore_errors=True)
        figures["serial"] = await run_serial(
            run_id,
            seed_set,
            model,
            scale,
            work / "serial",
            args.seed,
            args.policy_threads,
            args.endpoint_latency,
        )
        console.print(f"serial: {figures['serial']['wall_s']:.1f} s")
    figures["machine"] = finish_machine_info(machine)
    if "serial" in figures:
        serial = figures["serial"]
        # Streaming can at best hide every probe→curate phase under training: serial minus those phases.
        hidden = sum(r["loop_s"] for r in serial["rounds"])
        serial["loop_s_total"] = hidden
        serial["best_case_streaming_speedup"] = serial["wall_s"] / (serial["wall_s"] - hidden)
    derive(figures)
    render(figures, console)
    return figures


def derive(figures: dict[str, Any]) -> None:
    """The speed-ups: of the whole run, and after the warm start (round 1's SFT, serial in both arms,
    which nothing can overlap: the worker probes round j's checkpoints, and the first comes after it)."""
    if "streaming" not in figures or "serial" not in figures:
        return
    serial, streaming = figures["serial"], figures["streaming"]
    figures["speedup"] = serial["wall_s"] / streaming["wall_s"]
    streaming_sft = streaming.get("timeline", {}).get("sft_s")
    if streaming_sft is not None:
        figures["speedup_after_warm_start"] = (serial["wall_s"] - serial["sft_s"]) / (
            streaming["wall_s"] - streaming_sft
        )


def render(figures: dict[str, Any], console: Any) -> None:
    scale = figures["scale"]
    table = Table(
        "arm",
        "wall s",
        "CPU s",
        "load avg",
        "per round",
        title=(
            f"{scale['rounds']} rounds of the demo world · |D_j| = {scale['target_size']} · "
            f"{scale['name']} scale · endpoints: {figures.get('endpoint_latency', 'none')}"
        ),
    )
    if "serial" in figures:
        serial = figures["serial"]
        table.add_row(
            "serial (SerialLoop 'loop')",
            f"{serial['wall_s']:.1f}",
            f"{serial['cpu_s']['this_process']:.0f}",
            " → ".join(f"{x:.1f}" for x in serial["load_average"]),
            f"SFT {serial['sft_s']:.0f} s · "
            + " · ".join(
                f"r{r['round']}: train {r['train_s']:.0f} s + loop {r['loop_s']:.0f} s"
                for r in serial["rounds"]
            ),
        )
    if "streaming" in figures:
        streaming = figures["streaming"]
        timeline = streaming["timeline"]
        cells = []
        for r in timeline["rounds"]:
            cell = f"r{r['round']}: train {r.get('train_s', float('nan')):.0f} s"
            if "trainer_waited_for_next_round_s" in r:
                cell += f", then waited {r['trainer_waited_for_next_round_s']:.0f} s for D_{r['round'] + 1}"
            cells.append(cell)
        startup, sft = timeline.get("trainer_first_round_start_s"), timeline.get("sft_s")
        table.add_row(
            "streaming (worker ∥ trainer)",
            f"{streaming['wall_s']:.1f}",
            f"{sum(streaming['cpu_s'].values()):.0f}",
            " → ".join(f"{x:.1f}" for x in streaming["load_average"]),
            (f"start-up {startup:.0f} s · " if startup is not None else "")
            + (f"SFT {sft:.0f} s · " if sft is not None else "")
            + " · ".join(cells),
        )
    if "speedup" in figures:
        table.add_section()
        table.add_row("speed-up (serial ÷ streaming)", f"{figures['speedup']:.2f}×", "", "", "target ≥ 1.5×")
        if "speedup_after_warm_start" in figures:
            table.add_row(
                "speed-up after the warm start (SFT)",
                f"{figures['speedup_after_warm_start']:.2f}×",
                "",
                "",
                "both arms' wall minus their SFT",
            )
    if "serial" in figures:
        table.add_row(
            "best case (all serial loop phases hidden)",
            f"{figures['serial']['best_case_streaming_speedup']:.2f}×",
            "",
            "",
            f"the serial arm spent {figures['serial']['loop_s_total']:.0f} s outside training",
        )
    console.print(table)


def parse_args() -> argparse.Namespace:
    from looptool.demo import SCALES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", choices=sorted(SCALES), default="quick", help="A demo scale (looptool.demo.SCALES)."
    )
    parser.add_argument("--rounds", type=int, default=3, help="J (overrides the scale's).")
    parser.add_argument("--target-size", type=int, default=None, help="|D_j| (default: the scale's).")
    parser.add_argument(
        "--sft-steps", type=int, default=None, help="Warm-start steps of round 1 (default: the scale's)."
    )
    # The regime: how long a GRPO round takes next to the loop (docs/performance.md). The quick scale's
    # round (G = 4, one epoch) is ~1/9 of the loop; Table 6's G = 16 and two epochs bring it level.
    parser.add_argument("--group-size", type=int, default=None, help="GRPO's G (default: the scale's).")
    parser.add_argument(
        "--grpo-epochs", type=int, default=None, help="Passes over D_j per round (default: the scale's)."
    )
    parser.add_argument(
        "--publish-every-steps",
        type=int,
        default=None,
        help="The trainer publishes an intermediate checkpoint every N steps; the streaming probe starts "
        "on round j's first (default: the scale's).",
    )
    parser.add_argument(
        "--policy-threads",
        type=int,
        default=None,
        help="torch threads of the policy's inference in both arms (default: the demo's "
        "policy.torch_threads); the trainer keeps trainer.torch_threads.",
    )
    parser.add_argument(
        "--endpoint-latency",
        choices=("vllm-32b-h100", "none"),
        default="vllm-32b-h100",
        help="How long the simulated judge, generator and verifier take in both arms ([world] "
        "endpoint_latency; inference/latency.py): as vLLM serving a 32B model on one H100, or at once.",
    )
    parser.add_argument("--arms", choices=("both", "streaming", "serial"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--timeout-s", type=float, default=1800.0, help="Give up on the streaming arm after this."
    )
    parser.add_argument("--work", type=Path, default=None, help="Working folder (default: a temporary one).")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Where to write the results (JSON).")
    parser.add_argument("--no-save", action="store_true", help="Do not write the results file.")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    results = asyncio.run(main(arguments))
    if not arguments.no_save:
        write_results(results, arguments.out)
