"""verl's reward manager for the ToolMatch reward: reads each rollout as the probe reads an output.

verl's own ``naive`` manager decodes a response with ``skip_special_tokens=True`` and tells the
reward nothing about its length. Two things then go wrong for tool calls:

- a tokenizer that marks ``<tool_call>`` special (several chat models do) loses the tags, so every
  call reads as a text answer;
- a response cut off at ``data.max_response_length`` looks finished, so a cut-off text answer
  matches a no-call label and earns the reward, which the probe and the CPU trainer refuse
  (:func:`toolcall.match.counts_as_match`).

This manager decodes with special tokens kept (end tokens and padding left out) and passes
``extra_info["truncated"]``: the response filled its whole budget and its last token is not one
that ends a completion, by the probe's rule (:func:`end_token_ids`, the template's end-of-turn token
included). It also passes ``extra_info["trace_opened"]``: the rollout's prompt, as verl rendered it,
ends inside a reasoning trace its chat template opened (:func:`prompt_opens_trace`, the probe's
rule: Qwen3-Thinking-2507, DeepSeek-R1 distills), so the response's answer starts after
``</think>``. :func:`toolcall.reward.compute_score` reads both.

It runs inside verl's environment only (``reward.reward_manager.source=importlib``): it imports verl
and the pure reward core, nothing else of this project. :func:`trainer.verl.process.reward_core_path`
links it beside ``toolcall`` as :data:`MODULE`.
"""

from __future__ import annotations

from typing import Any

from verl import DataProto
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from toolcall.templates import end_token_ids as template_end_token_ids
from toolcall.templates import prompt_opens_trace

MODULE = "looptool_reward_manager"  # its module name on verl's PYTHONPATH
CLASS = "ToolMatchRewardManager"


def generation_eos(model_path: str | None) -> int | list[int] | None:
    """The model folder's generation-config EOS, read as the probe and vLLM read it
    (:func:`inference.vllm_backend.stop_token_ids`): generation_config.json, else the generation config
    transformers derives from config.json; None without a folder."""
    if not model_path:
        return None
    from transformers import AutoConfig, GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model_path).eos_token_id
    except OSError:  # no generation_config.json: transformers derives one from config.json
        return GenerationConfig.from_model_config(AutoConfig.from_pretrained(model_path)).eos_token_id


def end_token_ids(
    tokenizer: Any, model_path: str | None, template_kwargs: dict[str, Any] | None = None
) -> frozenset[int]:
    """The ids that end a response, by the probe's own rule (:func:`toolcall.templates.end_token_ids`):
    the tokenizer's EOS, the generation config's (Llama 3 stops at ``<|eot_id|>`` and ``<|eom_id|>``
    while its tokenizer's EOS is another) and the special token the chat template writes after an
    assistant turn (Phi's ``<|end|>``, Gemma's ``<end_of_turn>``, which a folder without
    generation_config.json names nowhere else), its turns rendered with the round's
    ``template_kwargs`` as verl renders its prompts."""
    return frozenset(template_end_token_ids(tokenizer, generation_eos(model_path), template_kwargs))


def read_response(
    response_ids: list[int], budget: int, ends: frozenset[int], padding: int | None, tokenizer: Any
) -> tuple[str, bool]:
    """(text, truncated) of one response's valid token ids: special tokens kept, ends and padding
    left out; cut off when it used the whole ``budget`` without ending."""
    truncated = len(response_ids) >= budget and (not response_ids or response_ids[-1] not in ends)
    kept = [token for token in response_ids if token not in ends and token != padding]
    return tokenizer.decode(kept, skip_special_tokens=False), truncated


def opened_trace(prompt_ids: list[int], tokenizer: Any) -> bool:
    """Whether a prompt's valid token ids end inside a reasoning trace its template opened, read from
    its text as the probe reads the prompt it renders (special tokens kept)."""
    return prompt_opens_trace(tokenizer.decode(prompt_ids, skip_special_tokens=False))


class ToolMatchRewardManager(RewardManagerBase):
    """One score per rollout, from :func:`toolcall.reward.compute_score` (``compute_score``)."""

    def __init__(
        self,
        config: Any,
        tokenizer: Any,
        compute_score: Any,
        reward_router_address: str | None = None,
        reward_model_tokenizer: Any = None,
    ) -> None:
        super().__init__(config, tokenizer, compute_score)
        if compute_score is None:
            from toolcall.reward import compute_score as toolmatch_score

            compute_score = toolmatch_score
        self.compute_score = compute_score
        del reward_router_address, reward_model_tokenizer  # no reward model: the reward is a rule
        model_path = config.get("actor_rollout_ref", {}).get("model", {}).get("path")
        # The switches verl renders every prompt with ([policy] chat_template_kwargs, the round's date).
        template_kwargs = dict(config.get("data", {}).get("apply_chat_template_kwargs", None) or {})
        self.ends = end_token_ids(tokenizer, model_path, template_kwargs)
        self.padding = tokenizer.pad_token_id

    async def run_single(self, data: DataProto) -> dict[str, Any]:
        item = data[-1:][0]  # several sequences (multi-turn): the last is the answer
        responses = item.batch["responses"]
        budget = int(responses.shape[-1])
        valid = int(item.batch["attention_mask"][-budget:].sum())
        ids = [int(token) for token in responses[:valid].tolist()]
        prompts = item.batch["prompts"]  # left-padded: the valid ids end where the response starts
        prompt_valid = int(item.batch["attention_mask"][: int(prompts.shape[-1])].sum())
        prompt_ids = [int(token) for token in prompts[prompts.shape[-1] - prompt_valid :].tolist()]
        text, truncated = await self.loop.run_in_executor(
            None, lambda: read_response(ids, budget, self.ends, self.padding, self.tokenizer)
        )
        trace_opened = await self.loop.run_in_executor(None, lambda: opened_trace(prompt_ids, self.tokenizer))
        extra_info = dict(item.non_tensor_batch.get("extra_info", {}) or {})
        extra_info["truncated"] = truncated
        extra_info["trace_opened"] = trace_opened
        ground_truth = item.non_tensor_batch["reward_model"]["ground_truth"]
        data_source = item.non_tensor_batch["data_source"]
        score = await self.loop.run_in_executor(
            None,
            lambda: self.compute_score(
                data_source=data_source, solution_str=text, ground_truth=ground_truth, extra_info=extra_info
            ),
        )
        score = float(score["score"] if isinstance(score, dict) else score)
        return {"reward_score": score, "reward_extra_info": {"acc": score, "truncated": float(truncated)}}
