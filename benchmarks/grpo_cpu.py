"""Benchmark: CPU GRPO (the ``cpu`` trainer backend, TRL's GRPOTrainer) on the demo's tiny policy.

Builds the tiny Qwen2 policy (:func:`trainer.tiny_policy.build_tiny_policy`) with a tokenizer trained
on the synthetic world's seed samples (the Figure 7 instruction pieces and each tool definition as
single tokens, as the demo's policy has them), gives it the SFT warm start on them, then times GRPO rounds of
the CPU backend on the same rows. Prints steps/s, samples/s (completions/s) and completion tokens/s
of GRPO, and steps/s of the warm start, and writes them to ``benchmarks/results/grpo_cpu.json``.
Model loading and saving are outside the timed GRPO steps (they are in the round wall time).

    .venv/bin/python -m benchmarks.grpo_cpu [--steps 8] [--group-size 8] [--prompts-per-step 2]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.harness import add_output_arguments, finish_machine_info, machine_info, save
from common.logs import LogSettings, configure_logging
from inference.transformers_backend import encode_prompt
from toolcall.prompts import prompt_phrases, render_tools
from trainer.base import RoundDataset
from trainer.config import TrainerSettings
from trainer.cpu_grpo import CpuGrpoBackend
from trainer.dataset import sample_row
from trainer.sft import sft_warm_start
from trainer.tiny_policy import build_tiny_policy
from world import World

console = Console()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dialogues", type=int, default=12, help="World dialogues giving the rows.")
    parser.add_argument("--steps", type=int, default=20, help="Timed GRPO steps.")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--prompts-per-step", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--sft-steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: best on shared cores).")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=1024)
    add_output_arguments(parser, "grpo_cpu")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    machine = machine_info()
    configure_logging(LogSettings(level="warning"))  # the progress bars say enough
    items = asyncio.run(World(0).samples(args.dialogues, seed="bench"))
    rows = tuple(sample_row(f"bench-{i}", item.sample) for i, item in enumerate(items))
    dataset = RoundDataset(round=1, rows=rows, content_hash="bench", manifest_event_id="bench")
    corpus = [message["content"] for row in rows for message in row.chat] + [row.target() for row in rows]
    # As the demo does: the fixed Figure 7 pieces and each tool definition become one token each.
    tool_lines = sorted({render_tools([tool]) for row in rows for tool in row.tools})
    phrases = (*prompt_phrases(), *tool_lines)
    with tempfile.TemporaryDirectory(prefix="grpo-bench-") as tmp:
        work = Path(tmp)
        model = build_tiny_policy(
            work / "tiny",
            corpus,
            vocab_size=args.vocab,
            hidden_size=args.hidden,
            layers=args.layers,
            seed=0,
            phrases=phrases,
        )
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model)
        prompt_tokens = [len(encode_prompt(tokenizer, row.chat)) for row in rows]
        parameters = _parameters(model)
        sft = sft_warm_start(
            rows,
            init_model=model,
            out_dir=work / "sft",
            steps=args.sft_steps,
            learning_rate=3e-3,
            batch_size=4,
            threads=args.threads,
        )
        settings = TrainerSettings(
            group_size=args.group_size,
            prompts_per_step=args.prompts_per_step,
            learning_rate=3e-4,
            max_new_tokens=args.max_new_tokens,
            max_steps_per_round=args.steps,
            epochs_per_round=1000,
            torch_threads=args.threads,
        )
        started = time.perf_counter()
        final = CpuGrpoBackend(settings).train_round(dataset, init_model=sft.model_dir, out_dir=work / "grpo")
        round_wall = time.perf_counter() - started
    metrics = final.metrics
    steps_per_s = metrics["steps_per_s"]
    samples_per_s = metrics["samples_per_s"]
    figures: dict[str, Any] = {
        "model": {
            "parameters": parameters,
            "hidden": args.hidden,
            "layers": args.layers,
            "vocab": len(tokenizer),
        },
        "rows": len(rows),
        "prompt_tokens_mean": sum(prompt_tokens) / len(prompt_tokens),
        "group_size": args.group_size,
        "prompts_per_step": args.prompts_per_step,
        "grpo_steps": int(metrics["steps"]),
        "grpo_steps_per_s": steps_per_s,
        "grpo_samples_per_s": samples_per_s,
        "grpo_completion_tokens_per_s": samples_per_s * metrics.get("response_length_mean", 0.0),
        "grpo_round_wall_s": round_wall,
        "grpo_reward_mean": metrics.get("reward_mean"),
        "sft_steps": sft.steps,
        "sft_steps_per_s": sft.steps / sft.wall_time_s,
        "sft_loss_first": sft.loss_first,
        "sft_loss_last": sft.loss_last,
    }
    table = Table("figure", "value", title="CPU GRPO (TRL GRPOTrainer) on the tiny policy")
    for key in (
        "grpo_steps_per_s",
        "grpo_samples_per_s",
        "grpo_completion_tokens_per_s",
        "grpo_round_wall_s",
        "grpo_reward_mean",
        "sft_steps_per_s",
        "prompt_tokens_mean",
    ):
        value = figures[key]
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    table.add_row("model parameters", str(parameters))
    table.add_row("batch", f"{args.prompts_per_step} prompts × G={args.group_size}, {args.threads} thread(s)")
    console.print(table)
    figures["machine"] = {**finish_machine_info(machine), "threads": args.threads}
    save(figures, args)


def _parameters(model_dir: Path) -> int:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    main()
