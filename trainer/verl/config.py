"""Settings of the verl backend (the ``[trainer.verl]`` section; the paper's Table 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from common.settings import Section


class VerlSettings(Section):
    """How verl trains one round. Defaults are the paper's Table 6 where it gives them.

    The batch sizes are upper bounds: a round with fewer rows than a batch trains on smaller batches
    (see :func:`plan_batches`) instead of producing zero steps.
    """

    python: Path | None = Field(
        default=None,
        description="Interpreter of the verl environment (default: $LOOPTOOL_VERL_PYTHON, else .venv-verl).",
    )
    # Table 6
    train_batch_size: int = Field(default=128, ge=1)
    learning_rate: float = Field(default=1e-6, gt=0)
    ppo_mini_batch_size: int = Field(default=128, ge=1)
    use_kl_loss: bool = False
    kl_loss_coef: float = Field(default=0.001, ge=0, description="Only used when use_kl_loss is on.")
    entropy_coeff: float = Field(default=0.0, ge=0)
    clip_ratio_low: float = Field(default=0.2, gt=0)
    clip_ratio_high: float = Field(default=0.28, gt=0)
    rollout_n: int = Field(default=16, ge=1, description="Rollouts per prompt (the GRPO group size).")
    temperature: float = Field(default=1.0, gt=0)
    gpu_memory_utilization: float = Field(default=0.7, gt=0, le=1)
    max_prompt_length: int = Field(default=4096, ge=16)
    max_response_length: int = Field(default=1024, ge=1)
    epochs_per_round: int = Field(default=2, ge=1)
    # cluster shape and engine
    n_gpus_per_node: int = Field(default=8, ge=1)
    nnodes: int = Field(default=1, ge=1)
    rollout_engine: Literal["vllm", "sglang"] = "vllm"
    rollout_tensor_parallel_size: int = Field(default=1, ge=1)
    max_token_len_per_gpu: int = Field(
        default=16384, ge=1, description="Token budget of one packed micro-batch (dynamic batch size)."
    )
    attn_implementation: Literal["flash_attention_2", "sdpa", "eager"] = Field(
        default="flash_attention_2",
        description="Actor attention; anything but flash-attn turns off verl's padding removal (it packs "
        "sequences and needs flash-attn's variable-length kernels).",
    )
    param_offload: bool = False
    optimizer_offload: bool = False
    gradient_checkpointing: bool = True
    save_every_steps: int | None = Field(
        default=None, ge=1, description="Extra actor checkpoints every N steps; the last step always saves."
    )
    seed: int = 0
    project_name: str = "looptool"
    extra_overrides: list[str] = Field(
        default_factory=list, description="Hydra overrides appended last (site-specific settings)."
    )
    timeout_s: float | None = Field(default=None, gt=0, description="Kill verl after this long.")

    @model_validator(mode="after")
    def _check_ratios(self) -> VerlSettings:
        if self.rollout_n < 2:
            # GRPO normalises rewards within a prompt's group: one rollout has no group to compare.
            raise ValueError("rollout_n must be at least 2 for GRPO")
        return self

    @property
    def n_gpus(self) -> int:
        return self.n_gpus_per_node * self.nnodes
