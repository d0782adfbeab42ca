"""``looptool demo``: the whole streaming loop on a laptop, on the embedded broker, measured.

1. Seed construction: the synthetic tool world (dual-tree tools, four-role dialogues) gives D_seed
   with label noise, and a clean held-out set; the truth stays in this process, never on a topic.
2. A tiny Qwen2 policy: a tokenizer trained on the world's corpus, random init, saved as an HF folder.
3. Round 1 (D_1) is opened from the seeds; then two real services run as their own processes, as
   they would in production: ``looptool worker`` (probe, judge, relabel, expand, verify, curate) and
   ``looptool train`` (SFT warm start, CPU GRPO, checkpoints every few steps). Judge, generator and
   verifier are the world's SIMULATIONS (no LLM endpoint is configured). Progress is followed live
   from the topics.
4. When the trainer has published round J's final checkpoint, both services stop and the report is
   computed: per round the held-out ToolMatch accuracy of its checkpoint, the label noise of D_j,
   its Table-3 sources, the verdicts and relabels, and a Figure-2 style plot. Finally D_J is rebuilt
   from the topics alone and checked against its RoundClosed manifest.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from bus.kafka import EventProducer, ensure_topics, follow, run_log
from common.logs import get_logger
from looptool.config import Settings
from schemas.events import CheckpointPublished, Event
from streams.curate import LEDGER_TOPICS, CurationPolicy, Ledger, open_first_round

log = get_logger(__name__)


@dataclass(frozen=True)
class DemoScale:
    """Sizes of a demo run: ``full`` is the README's main job, ``quick`` the test's shortened run."""

    dialogues: int
    heldout_dialogues: int
    rounds: int
    target_size: int
    hidden: int
    layers: int
    sft_steps: int
    grpo_prompts_per_step: int
    group_size: int
    publish_every_steps: int
    # Copy drills in the SFT warm start: a pretrained LLM can copy spans from its prompt; a tiny model
    # from scratch learns that from world data alone far too slowly (see world.drills).
    copy_drills: int
    # Seeds set apart for the warm start (never curated): see split_warm_start.
    warm_start_samples: int
    sft_learning_rate: float = 2e-3
    max_new_tokens: int = 96


SCALES: dict[str, DemoScale] = {
    "full": DemoScale(
        dialogues=400,
        heldout_dialogues=120,
        rounds=3,
        target_size=160,
        hidden=128,
        layers=2,
        sft_steps=800,
        copy_drills=1500,
        warm_start_samples=200,
        grpo_prompts_per_step=4,
        group_size=8,
        publish_every_steps=10,
    ),
    "quick": DemoScale(
        dialogues=150,
        heldout_dialogues=30,
        rounds=2,
        target_size=64,
        hidden=128,
        layers=2,
        sft_steps=150,
        copy_drills=0,  # format and function choice are enough for this run's check
        warm_start_samples=90,
        sft_learning_rate=3e-3,
        grpo_prompts_per_step=4,
        group_size=4,
        publish_every_steps=4,
        max_new_tokens=64,
    ),
}


def demo_settings(settings: Settings, workdir: Path, scale: DemoScale, seed: int = 0) -> Settings:
    """The run's settings: the user's (broker, run id, log) plus the demo's world, loop and trainer."""
    from streams.config import LoopSettings, PolicySettings
    from trainer.config import TrainerSettings
    from views.config import StoreSettings
    from world.config import WorldSettings

    run_id = settings.run_id
    if run_id == "default":
        run_id = "demo-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return settings.model_copy(
        update={
            "run_id": run_id,
            "world": WorldSettings(
                seed=seed,
                seed_dialogues=scale.dialogues,
                heldout_dialogues=scale.heldout_dialogues,
                noise_rate=0.2,
            ),
            "loop": LoopSettings(
                rounds=scale.rounds,
                target_size=scale.target_size,
                expansions_per_seed=4,
                probe_checkpoints="latest",  # the online variant: probe with the newest checkpoint
            ),
            "policy": PolicySettings(
                backend="transformers",
                model_path=workdir / "model" / "initial",
                batch_size=32,
                max_new_tokens=scale.max_new_tokens,
                torch_threads=1,  # the trainer shares the two cores
            ),
            "trainer": TrainerSettings(
                backend="cpu",
                output_dir=workdir / "checkpoints",
                group_size=scale.group_size,
                prompts_per_step=scale.grpo_prompts_per_step,
                learning_rate=1e-4,
                epochs_per_round=1,
                max_new_tokens=scale.max_new_tokens,
                publish_every_steps=scale.publish_every_steps,
                sft_warmup_steps=scale.sft_steps,
                sft_learning_rate=scale.sft_learning_rate,
                sft_batch_size=16,
                sft_data=workdir / "warmstart.jsonl",
                torch_threads=1,
                sft_torch_threads=os.cpu_count() or 1,  # nothing else runs before the first checkpoint
                seed=seed,
            ),
            "store": StoreSettings(path=workdir / "store"),
        }
    )


def write_config(settings: Settings, path: Path) -> None:
    """The run's settings as a TOML file the services read (the LLM roles, which may hold keys, never)."""
    data = settings.model_dump(mode="json", exclude_none=True, exclude={"judge", "generator", "verifier"})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")


# --- the services ---------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Service:
    """One ``looptool`` command as a child process, with its log in a file."""

    def __init__(self, name: str, args: list[str], config: Path, log_path: Path):
        self.name = name
        self.log_path = log_path
        self.command = [
            sys.executable,
            "-m",
            "looptool.cli",
            "--config",
            str(config),
            "--log-format",
            "json",
            *args,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.log_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            self.command, stdout=handle, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
        )
        handle.close()

    def check(self) -> None:
        """Raise with the tail of its log if the service died."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"the {self.name} service exited with {self.process.returncode}:\n{self.tail()}"
            )

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def rss_bytes(self) -> int:
        return _tree_rss(self.process.pid) if self.process and self.process.poll() is None else 0


def _tree_rss(pid: int) -> int:
    """Resident memory of a process and its descendants (Linux /proc)."""
    total = 0
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        stack.extend(children.get(current, []))
    return total


# --- following the run ------------------------------------------------------------------------------


@dataclass
class Progress:
    """What the demo has seen on the topics so far."""

    ledger: Ledger = field(default_factory=Ledger)
    checkpoints: dict[int, list[Event[CheckpointPublished]]] = field(default_factory=dict)
    dead_letters: int = 0

    def add(self, event: Event[Any]) -> None:
        self.ledger.add(event)
        if isinstance(event.payload, CheckpointPublished):
            known = self.checkpoints.setdefault(event.payload.round, [])
            if all(e.event_id != event.event_id for e in known):
                known.append(event)
        elif event.event_type == "DeadLetter":
            self.dead_letters += 1

    def final(self, round_: int) -> Event[CheckpointPublished] | None:
        return next((e for e in self.checkpoints.get(round_, []) if e.payload.final), None)

    def table(self, rounds: int, elapsed_s: float, memory: int) -> Table:
        table = Table(
            "round",
            "D_j",
            "sources",
            "trained (step)",
            "reward",
            "probed",
            "mismatch",
            "judged",
            "relabel",
            "candidates",
            "verified (passed)",
            title=f"looptool demo · {elapsed_s:,.0f} s · {memory / 2**30:.1f} GiB",
            caption="judge, generator and verifier are SIMULATIONS backed by the synthetic world",
        )
        for round_ in range(1, rounds + 1):
            closed = self.ledger.closed.get(round_)
            status = self.ledger.status(round_)
            checkpoints = self.checkpoints.get(round_, [])
            latest = max(checkpoints, key=lambda e: e.payload.step, default=None)
            trained = (
                "" if latest is None else f"{latest.payload.step}{' final' if latest.payload.final else ''}"
            )
            reward = (
                "" if latest is None else f"{latest.payload.metrics.get('reward_mean', float('nan')):.2f}"
            )
            table.add_row(
                str(round_),
                str(closed.payload.total) if closed else "…",
                " ".join(f"{k}={v}" for k, v in sorted(closed.payload.counts.items())) if closed else "",
                trained,
                reward,
                str(status.probed),
                str(status.mismatched),
                str(status.judged),
                str(status.corrected),
                str(status.candidates),
                f"{status.verified} ({status.passed})",
            )
        return table


async def follow_until_trained(
    settings: Settings,
    services: list[Service],
    console: Console,
    *,
    rounds: int,
    timeout_s: float,
    started: float,
) -> tuple[Progress, int]:
    """Fold the topics until round ``rounds`` has its final checkpoint; returns the peak memory too."""
    progress = Progress()
    peak = 0
    topics = (*LEDGER_TOPICS, "checkpoints")
    stream = follow(settings.kafka, settings.run_id, topics)
    try:
        with Live(
            progress.table(rounds, 0, 0), console=console, refresh_per_second=2, transient=False
        ) as live:
            async for batch in stream:
                for delivered in batch:
                    progress.add(delivered.event)
                memory = _tree_rss(os.getpid())
                peak = max(peak, memory)
                elapsed = time.monotonic() - started
                live.update(progress.table(rounds, elapsed, memory))
                for service in services:
                    service.check()
                if progress.final(rounds) is not None:
                    break
                if elapsed > timeout_s:
                    raise TimeoutError(f"the demo did not finish within {timeout_s:.0f} s")
    finally:
        await stream.aclose()
    return progress, peak


# --- the report ---------------------------------------------------------------------------------------


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

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def render_report(report: DemoReport) -> Group:
    summary = Table.grid(padding=(0, 2))
    summary.add_row("seeds (D_seed)", f"{report.seeds} samples, label noise {report.seed_noise:.1%}")
    summary.add_row("held-out set", f"{report.heldout} clean samples")
    if report.sft_accuracy is not None:
        summary.add_row("after SFT warm start", f"held-out ToolMatch accuracy {report.sft_accuracy:.1%}")
    summary.add_row(
        "wall time", f"{report.wall_time_s / 60:.1f} min, peak memory {report.peak_memory_gib:.1f} GiB"
    )
    summary.add_row("replay of the last round", "equals the live run" if report.replay_matches else "DIFFERS")
    summary.add_row("plot", report.plot)
    table = Table(
        "round j",
        "held-out acc (ckpt j)",
        "noise in D_j",
        "|D_j|",
        "ES",
        "EE",
        "HPPL",
        "seed-new",
        "mismatches",
        "verdicts (PW/LW/BC/BW)",
        "relabels",
        "EE passed/cand.",
        title="LoopTool rounds (Table 3 sources; verdicts from probing D_j with checkpoint j)",
    )
    for r in report.rounds:
        v = r.verdicts
        table.add_row(
            str(r.round),
            "" if r.heldout_accuracy is None else f"{r.heldout_accuracy:.1%}",
            f"{r.label_noise:.1%}",
            str(r.size),
            str(r.sources.get("ES", 0)),
            str(r.sources.get("EE", 0)),
            str(r.sources.get("HPPL", 0)),
            str(r.sources.get("SEED", 0) + r.sources.get("SEED_NEW", 0)),
            f"{r.mismatched}/{r.probed}",
            "/".join(str(v.get(k, 0)) for k in ("PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG")),
            str(r.relabels),
            f"{r.expansions_passed}/{r.candidates}",
        )
    return Group(summary, table)


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


# --- the main job ---------------------------------------------------------------------------------------


async def run_demo(
    settings: Settings, workdir: Path, console: Console, *, scale: DemoScale, seed: int = 0
) -> DemoReport:
    """Run the whole loop; returns the report (also written to ``workdir``)."""
    from world import World
    from world.scoring import heldout_accuracy, label_noise
    from world.seed import build_seed_set, seed_events, write_jsonl

    started = time.monotonic()
    settings = demo_settings(settings, workdir, scale, seed)
    config_path = workdir / "looptool.toml"
    write_config(settings, config_path)
    console.rule(f"[bold]looptool demo[/] · run {settings.run_id} · {scale.rounds} rounds")
    await ensure_topics(settings.kafka, settings.run_id)

    world = World(settings.world.seed)  # type: ignore[union-attr]
    with console.status("synthesising the seed set (dual-tree tools, four-role dialogues, label noise)…"):
        synthesised = await build_seed_set(
            world,
            scale.dialogues,
            heldout=scale.heldout_dialogues,
            noise_rate=settings.world.noise_rate,  # type: ignore[union-attr]
        )
        seed_set, warm = split_warm_start(synthesised, scale.warm_start_samples, seed)
        async with EventProducer(settings.kafka) as producer:
            await producer.send_all(seed_events(seed_set, settings.run_id))
        write_jsonl(seed_set.samples, workdir / "seeds.jsonl", workdir / "truth.jsonl")
        write_jsonl(seed_set.heldout, workdir / "heldout.jsonl")
        drills = write_warm_start(world, warm, scale.copy_drills, workdir / "warmstart.jsonl", seed)
    console.print(
        f"D_seed: {len(seed_set.samples)} samples ({seed_set.noise_rate():.1%} wrong labels), "
        f"held-out: {len(seed_set.heldout)} clean samples; warm start: {len(warm)} more seeds "
        f"({sum(item.noise is not None for item in warm) / max(1, len(warm)):.1%} wrong labels) "
        f"+ {len(drills)} copy drills"
    )

    with console.status("building the tiny Qwen2 policy (tokenizer trained on the world's corpus)…"):
        model_path = build_initial_policy(
            world,
            synthesised.samples,
            settings.policy.model_path,  # type: ignore[arg-type]
            scale,
            seed,
            drills,
        )
    console.print(f"initial policy: {model_path}")
    opened = await open_first_round(run_log(settings), CurationPolicy.from_settings(settings))
    console.print(f"round 1 opened: {opened[-1].payload.total if opened else 'already open'} samples")

    logs = workdir / "logs"
    services = [
        Service("worker", ["worker"], config_path, logs / "worker.log"),
        Service("trainer", ["train"], config_path, logs / "trainer.log"),
    ]
    for service in services:
        service.start()
    try:
        progress, peak = await follow_until_trained(
            settings, services, console, rounds=scale.rounds, timeout_s=3600, started=started
        )
        peak = max(peak, sum(s.rss_bytes() for s in services))
    finally:
        for service in services:
            service.stop()

    console.print("evaluating each round's checkpoint on the held-out set…")
    rounds: list[RoundReport] = []
    from inference.transformers_backend import TransformersBackend

    backend = TransformersBackend(str(model_path), "initial", batch_size=32)
    sft_accuracy = None
    sft_folder = next(
        iter(sorted((settings.trainer.output_dir / settings.run_id).glob("round-001/attempt-*/sft"))), None
    )
    if sft_folder is not None:
        await backend.load(str(sft_folder), "sft")
        sft_accuracy = (
            await heldout_accuracy(backend, seed_set.heldout, max_tokens=scale.max_new_tokens)
        ).rate
    for round_ in range(1, scale.rounds + 1):
        closed = progress.ledger.closed[round_]
        members = [m.payload for m in progress.ledger.members.get(round_, {}).values()]
        noise = label_noise(world, ((m.tools, m.messages, m.label) for m in members))
        status = progress.ledger.status(round_)
        final = progress.final(round_)
        report = RoundReport(
            round=round_,
            size=closed.payload.total,
            sources=dict(closed.payload.counts),
            label_noise=noise.rate,
            probed=status.probed,
            mismatched=status.mismatched,
            verdicts=dict(status.verdicts),
            relabels=status.corrected,
            candidates=status.candidates,
            expansions_passed=status.passed,
        )
        if final is not None:
            await backend.load(final.payload.uri.removeprefix("file://"), final.payload.new_checkpoint_id)
            accuracy = await heldout_accuracy(backend, seed_set.heldout, max_tokens=scale.max_new_tokens)
            report.checkpoint_id = final.payload.new_checkpoint_id
            report.heldout_accuracy = accuracy.rate
            report.reward_mean = final.payload.metrics.get("round_reward_mean")
        rounds.append(report)
    await backend.close()

    replay_matches = await _replay_matches(settings, scale.rounds, progress)
    # The run's verdict analytics (what `looptool stats` prints), while the topics still exist.
    from views.analytics import plot_stats, stats_from_topics, tables_text

    stats = await stats_from_topics(settings)
    (workdir / "stats.txt").write_text(tables_text(stats), encoding="utf-8")
    plot_stats(stats, workdir / "stats", title=f"looptool stats · run {settings.run_id}")
    report = DemoReport(
        run_id=settings.run_id,
        seeds=len(seed_set.samples),
        seed_noise=seed_set.noise_rate(),
        heldout=len(seed_set.heldout),
        sft_accuracy=sft_accuracy,
        rounds=rounds,
        replay_matches=replay_matches,
        wall_time_s=time.monotonic() - started,
        peak_memory_gib=peak / 2**30,
        plot=str(workdir / "loop.png"),
    )
    plot_report(report, Path(report.plot))
    (workdir / "report.json").write_text(report.to_json(), encoding="utf-8")
    console.print(render_report(report))
    return report


def build_initial_policy(
    world: Any, samples: list[Any], folder: Path, scale: DemoScale, seed: int, drills: Sequence[Any] = ()
) -> Path:
    """The tiny policy: tokenizer trained on the seed corpus (rendered as the policy sees it), random init.

    ``drills`` (:mod:`world.drills`) join the tokenizer's corpus so the warm start's copy drills
    tokenize as the world's samples do.
    """
    from toolcall.parsing import render_action
    from toolcall.prompts import build_chat, prompt_phrases, render_tools
    from trainer.tiny_policy import IM_END, IM_START, build_tiny_policy
    from world.drills import RECORD_VALUES

    corpus = []
    for sample in [item.sample for item in samples] + list(drills[:50]):
        chat = build_chat(sample.tools, sample.messages)
        chat.append({"role": "assistant", "content": render_action(sample.label)})
        corpus.append("".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in chat))
    tools = [*(tool.spec for tool in world.toolset), RECORD_VALUES]
    return build_tiny_policy(
        folder,
        corpus,
        vocab_size=2048,
        hidden_size=scale.hidden,
        layers=scale.layers,
        heads=scale.hidden // 32,
        kv_heads=max(1, scale.hidden // 64),
        intermediate=scale.hidden * 3,
        seed=seed,
        max_position_embeddings=1024,
        phrases=[*prompt_phrases(), *(render_tools([tool]) for tool in tools)],
        words=world.vocabulary(),
    )


def split_warm_start(seed_set: Any, count: int, seed: int) -> tuple[Any, list[Any]]:
    """Set ``count`` seeds apart for the tiny policy's warm start; the loop never sees them.

    They come from D_seed (same noise rate), so the warm start adds no clean data; keeping them out of
    the rounds keeps the warm start from memorising the labels the probe then checks (see
    :func:`trainer.sft.warm_start_rows`).
    """
    from world.seed import SeedSet

    chosen = set(random.Random(f"warm-start-{seed}").sample(range(len(seed_set.samples)), count))
    pool = [item for index, item in enumerate(seed_set.samples) if index not in chosen]
    warm = [item for index, item in enumerate(seed_set.samples) if index in chosen]
    return SeedSet(samples=pool, heldout=seed_set.heldout), warm


def write_warm_start(world: Any, warm: Sequence[Any], drills: int, path: Path, seed: int) -> list[Any]:
    """The warm start's samples as ingest-format JSONL (the trainer's ``sft_data``); returns the drills."""
    from world.drills import copy_drills

    made = copy_drills(world.vocabulary(), drills, distractors=[t.spec for t in world.toolset], seed=seed)
    samples = [item.sample for item in warm] + made
    random.Random(f"warm-start-order-{seed}").shuffle(samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            # Not canonical JSON: sorted keys would list a drill's "fourth" before "second".
            json.dumps(
                {
                    "tools": [{"type": "function", "function": tool.to_openai()} for tool in sample.tools],
                    "messages": [m.model_dump(mode="json", exclude_defaults=True) for m in sample.messages],
                    "label": sample.label.model_dump(mode="json", exclude_defaults=True),
                },
                ensure_ascii=False,
            )
            + "\n"
            for sample in samples
        ),
        encoding="utf-8",
    )
    return made


async def _replay_matches(settings: Settings, round_: int, progress: Progress) -> bool:
    """D_J rebuilt from the topics alone equals its RoundClosed manifest and the live membership."""
    from views.replay import Cut, dataset_at

    with contextlib.suppress(Exception):
        dataset = await dataset_at(settings, Cut(round=round_))
        live = {sample_id: m.payload.content_hash for sample_id, m in progress.ledger.members[round_].items()}
        rebuilt = {member.sample_id: member.content_hash for member in dataset.members}
        return bool(dataset.verified) and rebuilt == live
    return False
