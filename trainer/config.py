"""Settings of the trainer (the ``[trainer]`` section)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import Field, model_validator

from bus.config import RunSettings
from common.settings import Section
from streams.config import LoopSettings, PolicySettings
from trainer.verl.config import VerlSettings


class TrainerSettings(Section):
    """How ``looptool train`` trains each round (the ``[trainer]`` section).

    The algorithm is the paper's (Eq. 2 and Table 6): G sampled completions per prompt at
    temperature 1.0, the binary ToolMatch reward, group-normalised advantages, the clipped surrogate
    with Clip-Higher (ε_low 0.2, ε_high 0.28), no KL and no entropy term, a fresh optimizer each round
    and weights from the previous round's final checkpoint. The sizes default to small CPU values;
    ``verl`` holds the GPU backend's own settings (Table 6 sizes).
    """

    backend: Literal["cpu", "verl"] = "cpu"
    output_dir: Path = Field(default=Path("data/checkpoints"), description="Checkpoint folders go here.")
    # GRPO (CPU backend)
    group_size: int = Field(default=8, ge=2, description="G: sampled completions per prompt (paper: 16).")
    prompts_per_step: int = Field(default=8, ge=1, description="Prompts per optimizer step (paper: 128).")
    learning_rate: float = Field(default=1e-6, gt=0, description="Paper: 1e-6 (tiny models need ~1e-4).")
    epochs_per_round: int = Field(default=2, ge=1, description="Passes over D_j per round (paper: 2).")
    max_steps_per_round: int | None = Field(default=None, ge=1, description="Cap on optimizer steps.")
    max_new_tokens: int = Field(default=256, ge=1, description="Longest completion (paper: 1024).")
    max_prompt_tokens: int = Field(default=4096, ge=16, description="Longer prompts are dropped (logged).")
    temperature: float = Field(default=1.0, gt=0)
    clip_ratio_low: float = Field(default=0.2, gt=0)
    clip_ratio_high: float = Field(default=0.28, gt=0)
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay (verl's actor default).")
    max_grad_norm: float = Field(default=1.0, gt=0)
    publish_every_steps: int | None = Field(
        default=None, ge=1, description="Online mode: also publish an intermediate checkpoint every N steps."
    )
    # SFT warm start (round 1 only): a model trained from scratch must learn the output format first.
    keep_intermediate: int | None = Field(
        default=None,
        ge=0,
        description="Intermediate checkpoints kept on disk once a round's final is published (the newest; "
        "finals and the warm start are always kept; folders of abandoned attempts go too). None: keep all.",
    )
    sft_warmup_steps: int = Field(default=0, ge=0, description="0 = no warm start.")
    sft_learning_rate: float = Field(default=1e-4, gt=0)
    sft_batch_size: int = Field(default=8, ge=1)
    sft_data: Path | None = Field(
        default=None,
        description="JSONL samples the warm start trains on instead of round 1's own rows.",
    )
    seed: int = 0
    torch_threads: int | None = Field(
        default=None, ge=1, description="torch CPU threads (1 is fastest when cores are shared)."
    )
    sft_torch_threads: int | None = Field(
        default=None,
        ge=1,
        description="torch CPU threads for the round-1 warm start, which runs before the first "
        "checkpoint exists, while the probe has nothing to do (unset: torch_threads).",
    )
    data_wait_s: float = Field(
        default=30.0, ge=0, description="How long to wait for a round's members to become readable."
    )
    start_from: Literal["previous", "promoted"] = Field(
        default="previous",
        description="Round j starts from round j-1's final checkpoint (previous), or from the policy the "
        "promotion gate holds after round j-1's decision (promoted; needs the evaluate and promote stages).",
    )
    verl: VerlSettings = Field(default_factory=VerlSettings)

    @model_validator(mode="after")
    def _check(self) -> TrainerSettings:
        if self.clip_ratio_low >= 1:
            raise ValueError("clip_ratio_low must be below 1 (the ratio is clipped to [1-low, 1+high])")
        return self


class TrainerRunSettings(RunSettings, Protocol):
    """What the trainer service reads of the app's settings beside ``[trainer]``: the run, its cluster,
    the initial model (``[policy]``) and the prompts' default date (``[loop]``)."""

    @property
    def policy(self) -> PolicySettings: ...

    @property
    def loop(self) -> LoopSettings: ...
