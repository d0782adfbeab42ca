"""The GPU check's steps that run inside the verl environment (standard library + verl only).

``scripts/gpu_check.py`` runs this file with the verl environment's interpreter, the repository on
PYTHONPATH; each command prints one JSON object on its last output line.

    <verl python> scripts/gpu_check_verl.py versions
    <verl python> scripts/gpu_check_verl.py validate OVERRIDES.json
    <verl python> scripts/gpu_check_verl.py fsdp-checkpoint MODEL_DIR CHECKPOINT_ROOT STEP

- ``versions``: verl, torch (and its CUDA), transformers, vLLM, Ray and flash-attn as installed here.
- ``validate``: what ``verl.trainer.main_ppo`` does before it starts Ray: compose ``ppo_trainer`` with
  the backend's exact Hydra overrides, ``auto_set_device``, ``validate_config``, resolve every
  interpolation; and whether the modules the launch imports next are installed. A dry run uses it
  to catch a bad override before a GPU is spent on it.
- ``fsdp-checkpoint``: a real verl FSDP actor checkpoint of MODEL_DIR (weights nudged so they differ),
  written by verl's own ``FSDPCheckpointManager`` on a one-process gloo group on the CPU, with the
  trainer's step tracker. It stands in for a trained checkpoint where none exists (the dry run, or a
  GPU run whose GRPO check failed), so the merge and reload checks still run.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any


def versions() -> dict[str, Any]:
    """Installed versions (package metadata: nothing heavy is imported but torch, for its CUDA)."""
    from importlib import metadata

    found: dict[str, Any] = {"python": sys.version.split()[0]}
    for name in ("verl", "torch", "transformers", "vllm", "ray", "flash-attn"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    if found["torch"]:
        import torch

        found["torch_cuda"] = torch.version.cuda
        found["cuda_available"] = bool(torch.cuda.is_available())
    return found


def validate(overrides_path: str) -> dict[str, Any]:
    import verl
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    overrides = json.loads(Path(overrides_path).read_text(encoding="utf-8"))
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    auto_set_device(config)
    validate_config(
        config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
    )
    OmegaConf.resolve(config)
    rollout = config.actor_rollout_ref.rollout
    # What the launch imports beyond verl's config (found, not imported: importing vLLM is slow).
    launch = ["transfer_queue", "ray", str(rollout.name)]
    return {
        "launch_modules": {name: importlib.util.find_spec(name) is not None for name in launch},
        "overrides": len(overrides),
        "train_batch_size": int(config.data.train_batch_size),
        "ppo_mini_batch_size": int(config.actor_rollout_ref.actor.ppo_mini_batch_size),
        "rollout_n": int(rollout.n),
        "rollout_name": str(rollout.name),
        "rollout_enforce_eager": bool(rollout.enforce_eager),
        "max_prompt_length": int(config.data.max_prompt_length),
        "max_response_length": int(config.data.max_response_length),
        "total_epochs": int(config.trainer.total_epochs),
        "use_kl_loss": bool(config.actor_rollout_ref.actor.use_kl_loss),
        "clip_ratio": [
            float(config.actor_rollout_ref.actor.clip_ratio_low),
            float(config.actor_rollout_ref.actor.clip_ratio_high),
        ],
        "reward_function": f"{config.reward.custom_reward_function.path}:"
        f"{config.reward.custom_reward_function.name}",
    }


def fsdp_checkpoint(model_dir: str, checkpoint_root: str, step: int) -> dict[str, Any]:
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(probe.getsockname()[1])
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,), mesh_dim_names=("fsdp",))
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
        with torch.no_grad():
            generator = torch.Generator().manual_seed(step)
            for parameter in model.parameters():
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.01)
        for layer in model.model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        manager = FSDPCheckpointManager(
            model=model,
            optimizer=None,
            lr_scheduler=None,
            processing_class=AutoTokenizer.from_pretrained(model_dir),
            checkpoint_config={"save_contents": ["model"], "load_contents": ["model"]},
        )
        root = Path(checkpoint_root)
        actor = root / f"global_step_{step}" / "actor"
        manager.save_checkpoint(str(actor), global_step=step)
        (root / "latest_checkpointed_iteration.txt").write_text(str(step), encoding="utf-8")
    finally:
        dist.destroy_process_group()
    return {"actor_dir": str(actor), "step": step}


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "versions":
        result = versions()
    elif command == "validate":
        result = validate(args[0])
    elif command == "fsdp-checkpoint":
        result = fsdp_checkpoint(args[0], args[1], int(args[2]))
    else:
        raise SystemExit(f"unknown command {command!r}: versions, validate or fsdp-checkpoint")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
