"""Benchmark: memory the live curator keeps as a run goes on, before and after its ledger was made lean.

Simulates a multi-round run with the real stage logic (see ``world.simulated_run``), encodes every
event, then folds the log as the live curator does (each event decoded, nothing else kept; at each of
the curator's emissions it composes the round itself and folds what it composed, comparing the event
ids with the log's), once per ledger:

- ``before``: the curator's ledger as of ``--before-rev`` (whole events kept), read from git;
- ``full``: ``Ledger()`` now (what replay and the demo use: whole SampleAdded/CuratedSample events,
  a record of what curation reads of every other event);
- ``live``: ``Ledger(keep_events=False)``, the curator's own (closed rounds forgotten).

Prints the memory each keeps (tracemalloc, after a collection) per event and its growth per 100k
events over the second half of the run, and whether its decisions equal the log's. Asserts nothing.

    .venv/bin/python -m benchmarks.curator_memory [--seeds 3000] [--rounds 8] [--target 600]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from benchmarks.harness import (
    ROOT,
    add_output_arguments,
    finish_machine_info,
    machine_info,
    quiet_logs,
    wide_console,
    write_results,
)

BEFORE_REV = "56a2830"  # the last commit before the curator's ledger kept records instead of events


def load_curate_at(rev: str) -> Any | None:
    """``streams.curate`` as of git revision ``rev`` (a module of its own), or None without git."""
    try:
        source = subprocess.run(
            ["git", "show", f"{rev}:streams/curate.py"], cwd=ROOT, capture_output=True, check=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / f"curate_{rev}.py"
    # Its service would register a second 'curate' stage: only the pure fold is wanted.
    path.write_text(source.replace('@register("service")\n', ""), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"curate_{rev}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def simulate(
    seeds: int, rounds: int, target: int, k: int
) -> tuple[list[bytes], list[bool], list[str], Any]:
    """The run's events encoded, which of them the curator wrote, their ids, and its policy."""
    from schemas.codec import EventCodec
    from world import World
    from world.simulated_run import simulate_run

    world = World(0)
    pool = await world.samples(seeds, noise_rate=0.3, seed="curator-memory")
    run = await simulate_run("curator-memory", world, pool, rounds=rounds, target_size=target, k=k)
    codec = EventCodec()
    events = run.events
    return (
        [codec.encode(e) for e in events],
        [e.producer.stage == "curate" for e in events],
        [e.event_id for e in events],
        run.policy,
    )


def fold(
    module: Any,
    make_ledger: Callable[[], Any],
    blobs: list[bytes],
    by_curator: list[bool],
    ids: list[str],
    policy: Any,
    run_id: str,
) -> dict[str, Any]:
    """Fold the log as the live curator does; the memory kept at each of its emissions."""
    from schemas.codec import EventCodec

    codec = EventCodec()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    ledger = make_ledger()
    marks: list[tuple[int, int]] = []
    identical = True
    started = time.perf_counter()
    i = 0
    while i < len(blobs):
        if not by_curator[i]:
            ledger.add(codec.decode(blobs[i]))
            i += 1
            if i % 2000 == 0 and ledger.closed:  # the status a caught-up curator asks for
                ledger.status(max(ledger.closed), policy.expansions_per_seed)
            continue
        end = i
        while end < len(blobs) and by_curator[end]:
            end += 1
        if ledger.closed:
            emitted = module.next_round_events(ledger, policy, run_id)
        else:
            emitted = module.initial_round_events(ledger, policy, run_id)
        identical &= [e.event_id for e in emitted] == ids[i:end]
        for event in emitted:
            ledger.add(event)
        del emitted
        i = end
        gc.collect()
        marks.append((i, tracemalloc.get_traced_memory()[0] - base))
    seconds = time.perf_counter() - started
    gc.collect()
    marks.append((len(blobs), tracemalloc.get_traced_memory()[0] - base))
    tracemalloc.stop()
    (n0, m0), (n1, m1) = marks[len(marks) // 2], marks[-1]
    return {
        "events": len(blobs),
        "kept_bytes": m1,
        "kept_bytes_per_event": m1 / len(blobs),
        "growth_bytes_per_event": (m1 - m0) / max(1, n1 - n0),
        "growth_mb_per_100k_events": (m1 - m0) / max(1, n1 - n0) * 1e5 / 1e6,
        "decisions_identical": identical,
        "fold_s_with_tracemalloc": seconds,
        "marks": marks,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--target", type=int, default=600, help="Target size of each round's D_j.")
    parser.add_argument("--k", type=int, default=4, help="Expansions per error seed.")
    parser.add_argument("--before-rev", default=BEFORE_REV)
    add_output_arguments(parser, "curator_memory")
    args = parser.parse_args(argv)
    quiet_logs()
    console = wide_console()
    machine = machine_info()
    started = time.perf_counter()
    blobs, by_curator, ids, policy = asyncio.run(simulate(args.seeds, args.rounds, args.target, args.k))
    console.print(f"simulated {len(blobs):,} events in {time.perf_counter() - started:.0f}s")

    import streams.curate as now

    # name: (what it is, the curate module, a new ledger)
    arms: dict[str, tuple[str, Any, Callable[[], Any]]] = {}
    before = load_curate_at(args.before_rev)
    if before is not None:
        arms["before"] = (f"before ({args.before_rev}): every event whole", before, before.Ledger)
    else:
        console.print(f"no git revision {args.before_rev}: the 'before' arm is left out")
    arms["full"] = ("now, Ledger(): replay, demo", now, now.Ledger)
    arms["live"] = ("now, Ledger(keep_events=False): the curator", now, lambda: now.Ledger(keep_events=False))

    results: dict[str, Any] = {"seeds": args.seeds, "rounds": args.rounds, "target": args.target, "arms": {}}
    table = Table(
        "ledger",
        "events",
        "kept MB",
        "kept B/event",
        "growth B/event (2nd half)",
        "growth MB / 100k events",
        "decisions = log",
        title=f"curator memory, {args.rounds} rounds of {args.target}",
    )
    for name, (label, module, make) in arms.items():
        figures = {"label": label, **fold(module, make, blobs, by_curator, ids, policy, "curator-memory")}
        results["arms"][name] = figures
        table.add_row(
            label,
            f"{figures['events']:,}",
            f"{figures['kept_bytes'] / 1e6:.1f}",
            f"{figures['kept_bytes_per_event']:,.0f}",
            f"{figures['growth_bytes_per_event']:,.0f}",
            f"{figures['growth_mb_per_100k_events']:.1f}",
            "yes" if figures["decisions_identical"] else "NO",
        )
    console.print(table)
    if "before" in results["arms"]:
        first = results["arms"]["before"]
        for name in ("full", "live"):
            results[f"{name}_over_before_kept"] = results["arms"][name]["kept_bytes"] / first["kept_bytes"]
            results[f"{name}_over_before_growth"] = (
                results["arms"][name]["growth_bytes_per_event"] / first["growth_bytes_per_event"]
            )
    results["machine"] = finish_machine_info(machine)
    if not args.no_save:
        write_results(results, args.out)


if __name__ == "__main__":
    main()
