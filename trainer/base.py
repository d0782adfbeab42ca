"""What every trainer backend shares: the settings, a round's dataset, checkpoints, the interface.

A round of LoopTool training takes D_j (one :class:`TrainingRow` per CuratedSample: the policy chat
of Figure 7 built by :func:`toolcall.prompts.build_chat`, the label and the tools the binary
ToolMatch reward needs), starts from the previous round's final checkpoint with a fresh optimizer,
and ends in a Hugging Face folder (config, safetensors weights, tokenizer with its chat template)
that both inference backends load. The CPU backend (:mod:`trainer.cpu_grpo`) and the verl backend
(:mod:`trainer.verl.backend`) implement :class:`TrainerBackend`.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from inference.base import missing_model_files
from toolcall.parsing import render_action
from toolcall.reward import reward as toolmatch_reward
from toolcall.specs import ToolSpec
from toolcall.types import Action, Message

Chat = list[dict[str, str]]
CHECKPOINT_MANIFEST = "looptool_checkpoint.json"


@dataclass(frozen=True)
class TrainingRow:
    """One GRPO prompt of D_j: (T, c_t, a*_t) and the chat the policy sees."""

    sample_id: str
    source: str
    tools: tuple[ToolSpec, ...]
    messages: tuple[Message, ...]
    label: Action
    chat: Chat
    ground_truth: str  # toolcall.reward.ground_truth_json(tools, label): what verl's reward reads back

    def reward(self, output: str, *, truncated: bool = False, trace_opened: bool = False) -> int:
        """Eq. (1): 1 iff the output parses and ToolMatches the label (cut off: only matching calls;
        ``trace_opened``: the prompt opened a reasoning trace, see :func:`toolcall.reward.reward`)."""
        return toolmatch_reward(
            self.tools, self.messages, self.label, output, truncated=truncated, trace_opened=trace_opened
        )

    def target(self) -> str:
        """The label as the model should write it (the SFT warm start's completion)."""
        return render_action(self.label)


@dataclass(frozen=True)
class RoundDataset:
    """D_j as the trainer uses it, with the manifest it was checked against."""

    round: int
    rows: tuple[TrainingRow, ...]
    content_hash: str
    manifest_event_id: str

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class CheckpointInfo:
    """A checkpoint folder a backend wrote, and what its CheckpointPublished event reports."""

    path: Path
    round: int
    step: int
    final: bool
    metrics: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0


OnCheckpoint = Callable[[CheckpointInfo], None]


class TrainingInterrupted(RuntimeError):
    """Training stopped on request before the round finished; no final checkpoint exists."""


@runtime_checkable
class TrainerBackend(Protocol):
    """Trains one round. Blocking (the service runs it in a worker thread)."""

    name: str

    def train_round(
        self,
        dataset: RoundDataset,
        *,
        init_model: Path,
        out_dir: Path,
        on_checkpoint: OnCheckpoint | None = None,
        stop: threading.Event | None = None,
    ) -> CheckpointInfo:
        """Train on ``dataset`` from the HF folder ``init_model``; write checkpoints under ``out_dir``.

        ``on_checkpoint`` is called (from the training thread) for each intermediate checkpoint;
        the final one is returned. When ``stop`` is set the backend ends early and raises
        :class:`TrainingInterrupted`.
        """
        ...


# --- checkpoint folders ------------------------------------------------------------------------


def has_chat_template(folder: Path) -> bool:
    """Whether the tokenizer in ``folder`` has a chat template: ``chat_template.jinja`` or one in
    ``tokenizer_config.json``, what ``AutoTokenizer`` reads. ``chat_template.json`` does not count: it
    is a processor's file, which the tokenizer never reads."""
    if (folder / "chat_template.jinja").is_file():
        return True
    config = folder / "tokenizer_config.json"
    return config.is_file() and bool(json.loads(config.read_text(encoding="utf-8")).get("chat_template"))


def check_hf_folder(folder: Path) -> None:
    """Raise ValueError unless ``folder`` holds what transformers and vLLM need to load a policy."""
    missing = missing_model_files(folder, weights=("*.safetensors",))
    if "tokenizer" not in missing and not has_chat_template(folder):
        missing.append("chat template")
    if missing:
        raise ValueError(f"{folder} is not a loadable policy folder: missing {', '.join(missing)}")


def saved_dtype(folder: Path) -> str | None:
    """The dtype a model folder's ``config.json`` says its weights are in ("bfloat16", ...), if any."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = config.get("dtype") or config.get("torch_dtype") if isinstance(config, dict) else None
    return value if isinstance(value, str) else None


def save_hf_checkpoint(
    model: Any, tokenizer: Any, folder: Path, info: dict[str, Any] | None = None, *, dtype: str | None = None
) -> Path:
    """Save model (safetensors) and tokenizer (with chat template) to ``folder``, atomically.

    Everything is written to a sibling temporary folder first and renamed into place, so a crash
    never leaves a half-written folder under the final name. ``info`` goes to
    ``looptool_checkpoint.json``, written last (its presence means the folder is complete).
    ``dtype`` (the initial policy's, e.g. "bfloat16"): the weights are saved in it, whatever the
    training used (the CPU trains in float32; a bf16 policy's checkpoints were twice its size).
    """
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    use_cache = getattr(model.config, "use_cache", None)
    model.config.use_cache = True  # training may have turned the KV cache off; inference wants it
    try:
        _save_weights(model, partial, dtype)
        tokenizer.save_pretrained(partial)
        check_hf_folder(partial)
        if info is not None:
            (partial / CHECKPOINT_MANIFEST).write_text(json.dumps(info, indent=1, sort_keys=True), "utf-8")
    except BaseException:
        # A full disk (or any failure) must not leave a half model behind: a retry writes another
        # attempt's folder, so nothing else would ever remove this one, and it holds the space.
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        model.config.use_cache = use_cache
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(partial, folder)
    return folder


def _save_weights(model: Any, folder: Path, dtype: str | None) -> None:
    import torch

    target = getattr(torch, dtype, None) if dtype else None
    current = next(model.parameters()).dtype
    if not isinstance(target, torch.dtype) or not target.is_floating_point or target == current:
        model.save_pretrained(folder, safe_serialization=True)
        return
    state = {k: v.to(target) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    model.save_pretrained(folder, safe_serialization=True, state_dict=state)
    # transformers writes the dtype of the model's parameters; the weights on disk are ``dtype``.
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["dtype"] = dtype
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_checkpoint_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest a completed checkpoint folder carries, or None (absent or unreadable)."""
    path = Path(folder) / CHECKPOINT_MANIFEST
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def mean_of(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v == v]  # drop NaN
    return sum(finite) / len(finite) if finite else None
