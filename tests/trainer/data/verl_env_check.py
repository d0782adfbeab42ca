"""Runs inside the verl environment: verl's own code reads what trainer.verl wrote.

Usage: ``<verl python> verl_env_check.py REQUEST.json RESULT.json`` with the repository on PYTHONPATH.
REQUEST holds ``overrides`` (the exact list the backend passes to ``verl.trainer.main_ppo``) and
``cases`` (``{"index": row, "response": text}``: a model answer to score for that parquet row;
``"cut_off": true`` repeats it until the response budget ends it, without EOS; ``"end": TOKEN`` ends
it with that token instead of the tokenizer's EOS, and ``"fill": true`` repeats it so that this end is
the budget's last token).

What it does, each step with verl's own functions, in the order ``main_ppo`` and its trainer do:

1. compose ``ppo_trainer`` with the overrides (Hydra parses them as on the command line), then
   ``auto_set_device`` + ``validate_config`` as ``main_ppo.main`` does, and resolve every interpolation
   as the task runner does;
2. build the typed configs the trainer and workers build (algorithm, actor, rollout, checkpoint
   engine, model: the model config loads the tokenizer from ``actor_rollout_ref.model.path``);
3. build the train dataset with ``create_rl_dataset`` and a ``StatefulDataLoader`` with verl's sampler,
   ``collate_fn`` and ``drop_last``, as the trainer's ``_init_dataloader`` does, and render each row's
   prompt tokens with the agent loop's Continuous Token builder, as a rollout does;
4. score each case through ``RewardLoopWorker`` (the reward loop's worker, which loads
   ``reward.custom_reward_function`` and runs the configured reward manager on a DataProto).

It writes what it saw as JSON; the pytest side asserts on it. Standard library + verl only (no
project imports beyond what verl itself loads: the reward).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _plain(value: Any) -> Any:
    """numpy/omegaconf values as JSON-able Python values."""
    import numpy as np
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, np.ndarray):
        return [_plain(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def main(request_path: str, result_path: str) -> None:
    import numpy as np
    import torch
    import verl
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from torchdata.stateful_dataloader import StatefulDataLoader
    from verl import DataProto
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.utils import (
        create_rl_dataset,
        create_rl_sampler,
        need_critic,
        need_reference_policy,
    )
    from verl.utils.config import omega_conf_to_dataclass, validate_config
    from verl.utils.dataset.rl_dataset import collate_fn
    from verl.utils.device import auto_set_device
    from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    result: dict[str, Any] = {"verl_version": verl.__version__}

    # 1. config, exactly as main_ppo.main: compose → auto_set_device → validate_config.
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=request["overrides"])
    auto_set_device(config)
    result["need_reference_policy"] = need_reference_policy(config)
    result["need_critic"] = need_critic(config)
    validate_config(
        config=config,
        use_reference_policy=result["need_reference_policy"],
        use_critic=result["need_critic"],
    )
    OmegaConf.resolve(config)  # the task runner resolves every interpolation before building workers
    result["config"] = OmegaConf.to_container(config, resolve=True)

    # 2. the typed configs the trainer and workers instantiate.
    omega_conf_to_dataclass(config.algorithm)
    omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    rollout = omega_conf_to_dataclass(config.actor_rollout_ref.rollout)
    omega_conf_to_dataclass(config.actor_rollout_ref.rollout.checkpoint_engine)
    model = omega_conf_to_dataclass(config.actor_rollout_ref.model)
    tokenizer, processor = model.tokenizer, model.processor
    result["rollout"] = {"prompt_length": rollout.prompt_length, "response_length": rollout.response_length}

    # 3. the train dataset and dataloader, as the trainer's _init_dataloader builds them
    # (num_workers=0: worker processes only parallelise the same code).
    dataset = create_rl_dataset(
        config.data.train_files,
        config.data,
        tokenizer,
        processor,
        is_train=True,
        max_samples=config.data.get("train_max_samples", -1),
    )
    loader = StatefulDataLoader(
        dataset=dataset,
        batch_size=config.data.get("gen_batch_size", None) or config.data.train_batch_size,
        num_workers=0,
        drop_last=True,
        collate_fn=collate_fn,
        sampler=create_rl_sampler(config.data, dataset),
    )
    result["dataset_len"] = len(dataset)
    result["steps_per_epoch"] = len(dataset) // config.data.train_batch_size
    result["dataloader_batches"] = len(loader)
    batch = next(iter(loader))
    result["batch_keys"] = sorted(batch)
    result["batch_size"] = len(batch["raw_prompt"])
    items = [dataset[i] for i in range(len(dataset))]
    result["items"] = [
        {
            "raw_prompt": _plain(item["raw_prompt"]),
            "data_source": _plain(item["data_source"]),
            "reward_model": _plain(item["reward_model"]),
            "extra_info": _plain(item["extra_info"]),
            "index": _plain(item["index"]),
        }
        for item in items
    ]

    # each row's prompt tokens as verl's agent loop renders them for the rollout engine: its
    # Continuous Token builder, built as AgentLoopBase builds it (data.apply_chat_template_kwargs)
    builder = create_continuous_token_builder(
        tokenizer,
        hf_model_type=getattr(model.hf_config, "model_type", None),
        chat_template_kwargs=config.data.get("apply_chat_template_kwargs", {}),
        mm_processor_kwargs=config.data.get("mm_processor_kwargs", {}),
        processor=processor,
    )
    result["rollout_prompt_ids"] = [
        [int(token) for token in builder.build_initial_tokens(list(item["raw_prompt"]))] for item in items
    ]

    # 4. rewards through the reward loop worker (custom reward function + configured reward manager).
    worker = RewardLoopWorker(config)
    scores = []
    response_length = config.data.max_response_length
    for case in request["cases"]:
        item = items[case["index"]]
        prompt_text = tokenizer.apply_chat_template(
            list(item["raw_prompt"]), add_generation_prompt=True, tokenize=False
        )
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(case["response"], add_special_tokens=False)["input_ids"]
        end = tokenizer.convert_tokens_to_ids(case["end"]) if "end" in case else tokenizer.eos_token_id
        if case.get("cut_off"):  # the answer again and again until the budget ends it, with no EOS
            answer_ids = (answer_ids * (response_length // len(answer_ids) + 1))[:response_length]
        elif case.get("fill"):  # the answer again and again, and its end as the budget's last token
            repeated = answer_ids * (response_length // len(answer_ids) + 1)
            answer_ids = [*repeated[: response_length - 1], end]
        else:
            answer_ids = [*answer_ids, end][:response_length]
        padding = response_length - len(answer_ids)
        responses = torch.tensor([answer_ids + [tokenizer.pad_token_id] * padding])
        prompts = torch.tensor([prompt_ids])
        attention = torch.tensor([[1] * len(prompt_ids) + [1] * len(answer_ids) + [0] * padding])
        data = DataProto.from_dict(
            tensors={
                "prompts": prompts,
                "responses": responses,
                "input_ids": torch.cat([prompts, responses], dim=1),
                "attention_mask": attention,
            },
            non_tensors={
                "data_source": np.array([item["data_source"]], dtype=object),
                "reward_model": np.array([item["reward_model"]], dtype=object),
                "extra_info": np.array([dict(item["extra_info"])], dtype=object),
                "raw_prompt": np.array([list(item["raw_prompt"])], dtype=object),
            },
        )
        outputs = worker.loop.run_until_complete(worker.compute_score_batch(data))
        scores.append(_plain(outputs[0]))
    result["scores"] = scores
    Path(result_path).write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
