"""Runs inside the verl environment: writes a real verl FSDP actor checkpoint of a model on CPU.

Usage: ``<verl python> verl_fsdp_checkpoint.py MODEL_DIR CHECKPOINT_ROOT STEP``.

The actor is wrapped with FSDP2 (``fully_shard``) on a one-process gloo group, perturbed so its
weights differ from ``MODEL_DIR``'s, and saved by verl's own ``FSDPCheckpointManager`` into
``CHECKPOINT_ROOT/global_step_STEP/actor``, the folder verl's trainer saves; the trainer's step tracker
``latest_checkpointed_iteration.txt`` is written the way the trainer writes it. The perturbed full
state dict is saved to ``CHECKPOINT_ROOT/expected_state.pt`` for the caller to compare the merge with.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(model_dir: str, checkpoint_root: str, step: int) -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,), mesh_dim_names=("fsdp",))
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
        with torch.no_grad():
            generator = torch.Generator().manual_seed(step)
            for parameter in model.parameters():
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.01)
        expected = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
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
        manager.save_checkpoint(str(root / f"global_step_{step}" / "actor"), global_step=step)
        (root / "latest_checkpointed_iteration.txt").write_text(str(step))
        torch.save(expected, root / "expected_state.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
