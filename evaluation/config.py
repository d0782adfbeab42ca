"""Settings of benchmark evaluation and decontamination (the ``[eval]`` section)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from common.settings import Section
from evaluation.reading import DEFAULT_OUTPUT_READING, OutputReading


class EvalSettings(Section):
    """Benchmark evaluation of checkpoints (``looptool eval``, the evaluate stage) and decontamination."""

    categories: list[str] | None = Field(
        default=None,
        description="BFCL v4 categories or groups (single_turn, multi_turn, non_live, live, ast, relevance); "
        "None: all, multi-turn included.",
    )
    bfcl: bool = Field(
        default=True,
        description="Score BFCL (the categories above); false: the held-out ToolMatch set only "
        "(heldout_path), e.g. for a world whose tools BFCL does not share.",
    )
    limit: int | None = Field(default=None, ge=1, description="First N items of each category; None: all.")
    every_n_steps: int = Field(
        default=1, ge=0, description="Evaluate checkpoints whose step is a multiple of N (0: final only)."
    )
    max_new_tokens: int = Field(default=512, ge=1)
    batch_size: int | None = Field(default=None, ge=1, description="Prompts per call (None: the policy's).")
    max_steps: int | None = Field(
        default=None,
        ge=1,
        description="Multi-turn steps per turn before a conversation is force-quit "
        "(None: BFCL's limit, 20; another value gives figures that are not BFCL's).",
    )
    output_reading: OutputReading = Field(
        default=DEFAULT_OUTPUT_READING,
        description="How BFCL scoring reads model outputs: 'bfcl' exactly as bfcl-eval's Qwen FC handler "
        "does (<tool_call>\\n JSON \\n</tool_call> blocks; others dropped), so figures equal `bfcl "
        "evaluate`'s on the same outputs; 'repair' with our parser, which repairs Python literals, a "
        "missing final </tool_call>, trailing commas (as the probe and held-out ToolMatch read them).",
    )
    heldout_path: Path | None = Field(
        default=None,
        description="Held-out ToolMatch set (JSONL samples, e.g. from `looptool seed --heldout-out`) "
        "that every evaluation also scores; the promotion gate weighs it.",
    )
    results_dir: Path = Field(
        default=Path("data/eval"), description="Per-item results, a file per checkpoint."
    )
    decontaminate: bool = Field(
        default=True,
        description="Ingest reports, curate dead-letters, samples that are eval-suite questions.",
    )
