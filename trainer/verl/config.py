"""Settings of the verl backend (the ``[trainer.verl]`` section; the paper's Table 6), and the verl
config (Hydra overrides of ``verl.trainer.main_ppo``) they become for one round."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from common.settings import Section

# An extra override that turns on verl's quantized rollouts (rollout.quantization, null by default).
_QUANTIZED_ROLLOUT = re.compile(r"^\+*actor_rollout_ref\.rollout\.quantization=(?!null$|None$|$)")


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
        fp8 = [o for o in self.extra_overrides if _QUANTIZED_ROLLOUT.match(o)]
        if self.rollout_engine == "sglang" and fp8:
            # verl puts its quantization config in SGLang's json_model_override_args, which our
            # end-of-turn ids replace: the rollout would load unquantized, or stop at the wrong ids.
            raise ValueError(
                f"extra_overrides {fp8} quantize SGLang rollouts, which this backend does not support "
                "(their model config override carries the template's end tokens); use vLLM rollouts"
            )
        return self

    @property
    def n_gpus(self) -> int:
        return self.n_gpus_per_node * self.nnodes


REWARD_FUNCTION_PATH = "pkg://toolcall.reward"  # verl's load_module: "pkg://" imports by module name


REWARD_FUNCTION_NAME = "compute_score"
# trainer/verl/reward_manager.py, linked into the reward core under this module name (kept literal:
# that module imports verl, which this environment does not have).
REWARD_MANAGER_PATH = "pkg://looptool_reward_manager"
REWARD_MANAGER_CLASS = "ToolMatchRewardManager"


@dataclass(frozen=True)
class BatchPlan:
    """Batch sizes actually used for a round and the number of optimizer steps they give."""

    rows: int
    train_batch_size: int
    ppo_mini_batch_size: int
    steps_per_epoch: int
    total_steps: int

    @property
    def rows_unused_per_epoch(self) -> int:
        """verl's dataloader drops the last incomplete batch (a different subset each shuffled epoch)."""
        return self.rows - self.steps_per_epoch * self.train_batch_size


def plan_batches(rows: int, settings: VerlSettings) -> BatchPlan:
    """Scale the Table 6 batch sizes down to a round with few rows, keeping verl's divisibility rules.

    verl drops incomplete batches, so a batch larger than the dataset would train zero steps. Every
    rollout batch (prompts × rollouts) and every PPO mini-batch must split evenly over the GPUs, and
    the train batch must be a whole number of mini-batches.
    """
    if rows < 1:
        raise ValueError("a verl round needs at least one training row")
    gpus, group = settings.n_gpus, settings.rollout_n
    batch = min(settings.train_batch_size, rows)
    while batch > 0 and (batch * group) % gpus:
        batch -= 1
    mini = min(settings.ppo_mini_batch_size, batch)
    while mini > 0 and (batch % mini or (mini * group) % gpus):
        mini -= 1
    if batch == 0 or mini == 0:
        raise ValueError(
            f"no batch of at most {rows} prompts × {group} rollouts splits evenly over {gpus} GPUs; "
            "add rows, change rollout_n or use fewer GPUs"
        )
    steps_per_epoch = rows // batch
    return BatchPlan(
        rows=rows,
        train_batch_size=batch,
        ppo_mini_batch_size=mini,
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * settings.epochs_per_round,
    )


def _hydra_key(key: object) -> str:
    """A dictionary key as Hydra's override grammar takes it: unquoted, so an identifier."""
    if not isinstance(key, str) or not key.isidentifier():
        raise ValueError(f"key {key!r} is not an identifier: not passable to Hydra")
    return key


# Hydra's quoted values (its override grammar): a quote inside is escaped with a backslash, and so is
# each backslash of a run that precedes a quote or ends the value; other backslashes stay as they are.
_HYDRA_QUOTED_ESCAPE = re.compile(r"(\\*)('|\Z)")


def _escape_for_hydra(found: re.Match[str]) -> str:
    backslashes, quote = found.groups()
    return backslashes * 2 + ("\\'" if quote else "")


def hydra_value(value: Any) -> str:
    """A Python value as a Hydra command-line override value (strings always quoted; tables as
    ``{key:value}``, e.g. a chat-template switch whose value is a table)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"cannot pass a non-finite number to verl: {value}")
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        # OmegaConf resolves ${...} even in a quoted value: refuse it rather than pass something else.
        if "${" in value:
            raise ValueError(f"value {value!r} contains '${{': not passable to Hydra")
        return "'" + _HYDRA_QUOTED_ESCAPE.sub(_escape_for_hydra, value) + "'"
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_hydra_key(key)}:{hydra_value(item)}" for key, item in value.items()) + "}"
    raise TypeError(f"no Hydra form for {type(value).__name__}: {value!r}")


def verl_config(
    settings: VerlSettings,
    *,
    plan: BatchPlan,
    model_path: str | Path,
    train_file: str | Path,
    run_dir: str | Path,
    experiment_name: str,
    rollout_generation_config: str | Path | None = None,
    rollout_end_token_ids: Sequence[int] | None = None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
    chat_template: str | None = None,
) -> dict[str, Any]:
    """The round's verl settings as ``{dotted key: value}`` (overrides of verl's ``ppo_trainer``).

    ``rollout_generation_config``: a folder holding the generation_config.json vLLM's rollouts read
    instead of the model's (``--generation-config``; see
    :func:`trainer.verl.backend.write_rollout_generation_config`), so they stop where the probe does.
    ``rollout_end_token_ids``: the same ids for SGLang's rollouts, which read no such folder: they go
    to SGLang's ``json_model_override_args`` as config.json's ``eos_token_id`` (SGLang stops a request
    at that and the generation config's ``eos_token_id``).
    ``chat_template_kwargs``: what verl passes every ``apply_chat_template`` of the round (its
    dataset's and its rollouts'), such as the round's ``date_string``
    (:func:`trainer.verl.data.round_date`) and ``[policy] chat_template_kwargs``; values Hydra carries
    (:func:`hydra_value`). ``chat_template``: the model's chat template as verl is to render with it
    instead (:func:`trainer.verl.data.round_chat_template`: the round's date in it)."""
    run_dir = Path(run_dir)
    total_steps = plan.total_steps
    config: dict[str, Any] = {
        # GRPO: group-normalised advantages, no critic, no KL anywhere (Table 6), hence no reference model.
        "algorithm.adv_estimator": "grpo",
        "algorithm.norm_adv_by_std_in_grpo": True,
        "algorithm.use_kl_in_reward": False,
        "data.train_files": [str(train_file)],
        # verl always builds a validation set; validation never runs (val_before_train off, test_freq -1),
        # so a few training rows stand in for it.
        "data.val_files": [str(train_file)],
        "data.val_max_samples": min(plan.rows, 8),
        "data.prompt_key": "prompt",
        "data.reward_fn_key": "data_source",
        "data.train_batch_size": plan.train_batch_size,
        "data.max_prompt_length": settings.max_prompt_length,
        "data.max_response_length": settings.max_response_length,
        "data.filter_overlong_prompts": True,
        "data.truncation": "error",
        "data.shuffle": True,
        "data.seed": settings.seed,
        "actor_rollout_ref.model.path": str(model_path),
        "actor_rollout_ref.model.use_remove_padding": settings.attn_implementation == "flash_attention_2",
        "actor_rollout_ref.model.enable_gradient_checkpointing": settings.gradient_checkpointing,
        "actor_rollout_ref.actor.strategy": "fsdp",
        "actor_rollout_ref.actor.optim.lr": settings.learning_rate,
        "actor_rollout_ref.actor.ppo_mini_batch_size": plan.ppo_mini_batch_size,
        "actor_rollout_ref.actor.ppo_epochs": 1,
        "actor_rollout_ref.actor.use_dynamic_bsz": True,
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu": max(
            settings.max_token_len_per_gpu, settings.max_prompt_length + settings.max_response_length
        ),
        "actor_rollout_ref.actor.use_kl_loss": settings.use_kl_loss,
        "actor_rollout_ref.actor.kl_loss_coef": settings.kl_loss_coef,
        "actor_rollout_ref.actor.entropy_coeff": settings.entropy_coeff,
        "actor_rollout_ref.actor.clip_ratio_low": settings.clip_ratio_low,
        "actor_rollout_ref.actor.clip_ratio_high": settings.clip_ratio_high,
        "actor_rollout_ref.actor.loss_agg_mode": "token-mean",
        "actor_rollout_ref.actor.fsdp_config.param_offload": settings.param_offload,
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload": settings.optimizer_offload,
        # The optimizer is reset every round, so its state is never reloaded: save weights (+ rng/lr).
        "actor_rollout_ref.actor.checkpoint.save_contents": ["model", "extra"],
        "actor_rollout_ref.rollout.name": settings.rollout_engine,
        "actor_rollout_ref.rollout.n": settings.rollout_n,
        "actor_rollout_ref.rollout.temperature": settings.temperature,
        "actor_rollout_ref.rollout.top_p": 1.0,
        "actor_rollout_ref.rollout.do_sample": True,
        "actor_rollout_ref.rollout.gpu_memory_utilization": settings.gpu_memory_utilization,
        "actor_rollout_ref.rollout.tensor_model_parallel_size": settings.rollout_tensor_parallel_size,
        "actor_rollout_ref.rollout.seed": settings.seed,
        # Our manager, not verl's naive one: it keeps special tokens and tells the reward whether the
        # response was cut off (trainer/verl/reward_manager.py).
        "reward.reward_manager.source": "importlib",
        "reward.reward_manager.name": REWARD_MANAGER_CLASS,
        "reward.reward_manager.module.path": REWARD_MANAGER_PATH,
        "reward.custom_reward_function.path": REWARD_FUNCTION_PATH,
        "reward.custom_reward_function.name": REWARD_FUNCTION_NAME,
        "trainer.total_epochs": settings.epochs_per_round,
        "trainer.n_gpus_per_node": settings.n_gpus_per_node,
        "trainer.nnodes": settings.nnodes,
        "trainer.save_freq": settings.save_every_steps or max(total_steps, 1),
        "trainer.test_freq": -1,
        "trainer.val_before_train": False,
        # Optimizer reset + init from the previous round: fresh weights folder in, nothing resumed.
        "trainer.resume_mode": "disable",
        "trainer.default_local_dir": str(run_dir / "checkpoints"),
        "trainer.project_name": settings.project_name,
        "trainer.experiment_name": experiment_name,
        "trainer.logger": ["console", "file"],
        "hydra.run.dir": str(run_dir / "hydra"),
    }
    if rollout_generation_config is not None:
        if settings.rollout_engine != "vllm":
            raise ValueError("a rollout generation config folder is read by vLLM only")
        # engine_kwargs.vllm is an empty open dict in verl's config; verl passes its keys to
        # `vllm serve` as command-line options (build_cli_args_from_config): --generation_config DIR.
        key = "+actor_rollout_ref.rollout.engine_kwargs.vllm.generation_config"
        config[key] = str(rollout_generation_config)
    if chat_template is not None:
        # verl sets it on the tokenizer its dataset and its agent loop render prompts with
        config["actor_rollout_ref.model.custom_chat_template"] = chat_template
    if rollout_end_token_ids is not None and settings.rollout_engine == "sglang":
        # engine_kwargs.sglang is an empty open dict in verl's config; verl passes its keys to
        # SGLang's ServerArgs after its own (json_model_override_args: "{}" unless FP8, refused above).
        key = "+actor_rollout_ref.rollout.engine_kwargs.sglang.json_model_override_args"
        config[key] = json.dumps({"eos_token_id": list(rollout_end_token_ids)})
    for name, value in (chat_template_kwargs or {}).items():
        # data.apply_chat_template_kwargs is an empty open dict in verl's config (a new key needs "+")
        config[f"+data.apply_chat_template_kwargs.{_hydra_key(name)}"] = value
    if settings.attn_implementation != "flash_attention_2":
        # override_config is an open dict in verl's config: a new key needs Hydra's "+".
        config["+actor_rollout_ref.model.override_config.attn_implementation"] = settings.attn_implementation
    return config


def verl_overrides(config: Mapping[str, Any], extra: Sequence[str] = ()) -> list[str]:
    """``key=value`` command-line overrides for ``verl.trainer.main_ppo`` (``extra`` appended verbatim)."""
    return [f"{key}={hydra_value(value)}" for key, value in config.items()] + list(extra)
