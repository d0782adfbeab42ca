"""Benchmark: how close the probe stage on the broker comes to the backend's own batched throughput.

The same prompts (the members of a round D_1 from the synthetic world), the demo's tiny policy on
the transformers backend, the same batch size and greedy length:

- backend: ``backend.generate`` on all prompts at once (it decodes them ``batch_size`` at a time);
  timed before and after the pipeline run, the mean is used (the machine's load drifts);
- pipeline: the real probe stage as ``looptool worker`` runs it (faust agent, ``take_events``
  batching, Avro, the checkpoint watcher, outputs acknowledged before inputs) on the embedded broker,
  timed from the moment its consumer holds its partitions (inputs and checkpoint already on the
  topics) until every member is acknowledged; the one checkpoint load it does is left out;
- backend on the pipeline's own batches: ``generate`` again on exactly the batches the stage
  formed, which separates "batches of another make-up" from "time outside the model".

Efficiency = pipeline samples/s ÷ backend samples/s (target ≥ 0.9). Prints a table and writes
``benchmarks/results/probe_batching.json``.

    .venv/bin/python -m benchmarks.probe_batching [--samples 128] [--batch-size 32] [--scale quick]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from benchmarks.harness import (
    finish_machine_info,
    machine_info,
    quiet_logs,
    results_path,
    set_torch_threads,
    wide_console,
    write_results,
)
from benchmarks.pipeline_overhead import (
    bench_settings,
    build_policy,
    checkpoint_event,
    round_one,
    wait_assigned,
    wait_processed,
    wire_chats,
)
from bus.kafka import EventProducer, ensure_topics, run_log
from bus.worker import started_stages
from inference.base import Chat, Generation, SamplingConfig

RESULTS = results_path("probe_batching")


class TimedBackend:
    """Wraps a backend: remembers each generate call (its prompts and seconds) and time spent loading."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.name = inner.name
        self.calls: list[tuple[list[Chat], float]] = []
        self.load_s = 0.0

    @property
    def model_id(self) -> str:
        return str(self.inner.model_id)

    async def generate(self, prompts: Sequence[Chat], sampling: SamplingConfig) -> list[list[Generation]]:
        started = time.perf_counter()
        generations = await self.inner.generate(prompts, sampling)
        self.calls.append((list(prompts), time.perf_counter() - started))
        return list(generations)

    async def score(self, prompts: Sequence[Chat], continuations: Sequence[str]) -> list[list[float]]:
        return list(await self.inner.score(prompts, continuations))

    async def load(self, model_path: str, model_id: str) -> None:
        started = time.perf_counter()
        await self.inner.load(model_path, model_id)
        self.load_s += time.perf_counter() - started

    async def close(self) -> None:
        await self.inner.close()


async def backend_seconds(
    backend: Any, chats: Sequence[Chat], sampling: SamplingConfig
) -> tuple[float, list[int]]:
    """Seconds of one ``generate`` call on ``chats``, and the new tokens of each completion."""
    started = time.perf_counter()
    generations = await backend.generate(list(chats), sampling)
    return time.perf_counter() - started, [len(options[0].token_ids) for options in generations]


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from bus.broker import EmbeddedBroker
    from inference.transformers_backend import TransformersBackend, encode_prompt
    from looptool.demo import SCALES
    from streams.probe import CheckpointWatcher, ProbeStage

    console = wide_console()
    quiet_logs()
    machine = machine_info()
    machine["torch_threads"] = set_torch_threads(args.threads or None)
    scale = SCALES[args.scale]
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-probe-"))
    max_new_tokens = args.max_new_tokens or scale.max_new_tokens
    sampling = SamplingConfig(greedy=True, max_tokens=max_new_tokens)
    with EmbeddedBroker() as broker:
        settings = bench_settings("bench-probe", broker.bootstrap_servers, scale, work, args.seed)
        r1 = await round_one(settings, scale, args.samples, args.seed)
        settings = r1.settings
        members = r1.members
        chats = wire_chats(members, settings.loop.current_time)
        with console.status("building the demo's initial policy…"):
            model = args.policy or build_policy(r1.world, r1.seed_set, work / "policy", scale, args.seed)
        inner = TransformersBackend(str(model), "initial", batch_size=args.batch_size)
        backend = TimedBackend(inner)
        await inner.generate(chats[: args.batch_size], sampling)  # first-call warm-up
        before, new_tokens = await backend_seconds(inner, chats, sampling)
        prompt_tokens = [len(encode_prompt(inner.tokenizer, chat)) for chat in chats]
        console.print(f"backend: {len(chats)} prompts in {before:.2f} s")

        await ensure_topics(settings.kafka, settings.run_id)
        async with EventProducer(settings.kafka) as producer:
            await producer.send_all([*r1.seeds, *r1.opened, checkpoint_event(settings.run_id, str(model))])
        stage = ProbeStage(
            settings.run_id,
            backend,
            CheckpointWatcher(run_log(settings), settings.run_id),
            mode="final",
            current_time=settings.loop.current_time,
            max_new_tokens=max_new_tokens,
            batch_size=args.batch_size,
        )
        async with started_stages(settings, [stage]) as (runner,):
            started = await wait_assigned([runner])
            finished = await wait_processed(runner, len(members))
        pipeline_raw = finished - started
        pipeline = pipeline_raw - backend.load_s
        batches = [prompts for prompts, _ in backend.calls]
        model_in_pipeline = sum(seconds for _, seconds in backend.calls)
        console.print(
            f"pipeline: {len(members)} members in {pipeline_raw:.2f} s "
            f"({backend.load_s:.2f} s of it loading the checkpoint), batches {[len(b) for b in batches]}"
        )
        after, _ = await backend_seconds(inner, chats, sampling)
        same_batches = 0.0
        for prompts in batches:
            same_batches += (await backend_seconds(inner, prompts, sampling))[0]
        console.print(f"backend again: {after:.2f} s; on the pipeline's batches: {same_batches:.2f} s")
        await inner.close()

    n = len(members)
    backend_s = (before + after) / 2
    figures: dict[str, Any] = {
        "machine": finish_machine_info(machine),
        "scale": args.scale,
        "samples": n,
        "batch_size": args.batch_size,
        "max_new_tokens": max_new_tokens,
        "prompt_tokens_mean": sum(prompt_tokens) / n,
        "prompt_tokens_max": max(prompt_tokens),
        "new_tokens_mean": sum(new_tokens) / n,
        "backend_s": [before, after],
        "backend_samples_per_s": n / backend_s,
        "pipeline_s": pipeline,
        "pipeline_s_with_checkpoint_load": pipeline_raw,
        "checkpoint_load_s": backend.load_s,
        "pipeline_samples_per_s": n / pipeline,
        "efficiency": backend_s / pipeline,
        "pipeline_batches": [len(b) for b in batches],
        "model_s_in_pipeline": model_in_pipeline,
        "outside_model_s_in_pipeline": pipeline - model_in_pipeline,
        "backend_on_pipeline_batches_s": same_batches,
        "efficiency_vs_pipeline_batches": same_batches / pipeline,
    }
    table = Table(
        "measure",
        "seconds",
        "samples/s",
        title=f"probe batching · {n} prompts · batch {args.batch_size} · ≤{max_new_tokens} new tokens",
    )
    table.add_row("backend.generate (mean of before/after)", f"{backend_s:.2f}", f"{n / backend_s:.1f}")
    table.add_row("probe stage on the broker", f"{pipeline:.2f}", f"{n / pipeline:.1f}")
    table.add_row("  of which in backend.generate", f"{model_in_pipeline:.2f}", "")
    table.add_row("  checkpoint load (left out above)", f"{backend.load_s:.2f}", "")
    table.add_row("backend.generate on the stage's batches", f"{same_batches:.2f}", f"{n / same_batches:.1f}")
    table.add_section()
    table.add_row("efficiency (stage ÷ backend)", f"{figures['efficiency']:.2f}", "target ≥ 0.9")
    table.add_row(
        "efficiency vs the stage's own batches", f"{figures['efficiency_vs_pipeline_batches']:.2f}", ""
    )
    console.print(table)
    return figures


def parse_args() -> argparse.Namespace:
    from looptool.demo import SCALES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=128, help="Prompts probed (|D_1|).")
    parser.add_argument("--batch-size", type=int, default=32, help="Probe and backend batch size (demo: 32).")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="Default: the scale's.")
    parser.add_argument(
        "--scale", choices=sorted(SCALES), default="quick", help="The demo scale of the policy."
    )
    parser.add_argument(
        "--policy", type=Path, default=None, help="Use this model folder instead of building one."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the model (0: torch's default)."
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
