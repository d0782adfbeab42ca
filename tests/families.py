"""Tiny model folders in the shape of popular model families, for tests of the policy path.

Each family pairs a cut-down copy of its chat template (``tests/data/chat_templates``: the parts that
matter here, such as a template writing BOS itself, refusing a system message, demanding alternating
roles, or ending a turn with its own token) with its special tokens and a small randomly initialised
model of its architecture. Folders build in about a second on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).parent / "data" / "chat_templates"

CORPUS = (
    "You are an expert in composing functions. You are given a question and a set of possible functions.",
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>',
    '<tool_response>\n{"temperature": 21, "condition": "sunny"}\n</tool_response>',
    "The weather in Paris is sunny and 21 degrees. What is 12 plus 30? The answer is 42.",
)
MARKUP = ("<tool_call>", "</tool_call>", "<think>", "</think>", "<tool_response>", "</tool_response>")


@dataclass(frozen=True)
class Family:
    template: str  # file name under TEMPLATES
    arch: str
    specials: tuple[str, ...]
    eos: str
    bos: str | None = None
    pad: str | None = None
    # The tokenizer itself prepends BOS (as Llama's and Mistral's do) when asked for special tokens.
    adds_bos: bool = False
    generation_eos: tuple[str, ...] = ()


LLAMA3_SPECIALS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
)
GEMMA_SPECIALS = ("<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>")
CHATML_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
HARMONY_SPECIALS = (
    "<|startoftext|>",
    "<|endoftext|>",
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|channel|>",
    "<|constrain|>",
    "<|return|>",
    "<|call|>",
)

FAMILIES: dict[str, Family] = {
    "llama3": Family(
        "llama3.jinja",
        "llama",
        LLAMA3_SPECIALS,
        eos="<|eot_id|>",
        bos="<|begin_of_text|>",
        adds_bos=True,
        generation_eos=("<|end_of_text|>", "<|eot_id|>"),
    ),
    "mistral": Family(
        "mistral.jinja",
        "mistral",
        ("<unk>", "<s>", "</s>", "[INST]", "[/INST]"),
        eos="</s>",
        bos="<s>",
        adds_bos=True,
        generation_eos=("</s>",),
    ),
    "gemma2": Family(
        "gemma2.jinja",
        "gemma2",
        GEMMA_SPECIALS,
        eos="<eos>",
        bos="<bos>",
        pad="<pad>",
        adds_bos=True,
        generation_eos=("<eos>", "<end_of_turn>"),
    ),
    "gemma3": Family(
        "gemma3.jinja",
        "gemma3",
        GEMMA_SPECIALS,
        eos="<eos>",
        bos="<bos>",
        pad="<pad>",
        adds_bos=True,
        generation_eos=("<eos>", "<end_of_turn>"),
    ),
    "phi4": Family(
        "phi4.jinja",
        "phi3",
        ("<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
        eos="<|endoftext|>",
        pad="<|endoftext|>",
        generation_eos=("<|end|>", "<|endoftext|>"),
    ),
    "qwen3": Family(
        "qwen3.jinja",
        "qwen3",
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        eos="<|im_end|>",
        pad="<|endoftext|>",
        generation_eos=("<|im_end|>", "<|endoftext|>"),
    ),
    # The template opens the reasoning trace in the generation prompt (Qwen3-Thinking-2507, QwQ).
    "qwen3_thinking": Family(
        "qwen3_thinking.jinja",
        "qwen3",
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        eos="<|im_end|>",
        pad="<|endoftext|>",
        generation_eos=("<|im_end|>", "<|endoftext|>"),
    ),
    # Llama 3.1 / 3.2 with tool support: JSON calls with "parameters", <|python_tag|>, ipython results.
    "llama31_tools": Family(
        "llama31_tools.jinja",
        "llama",
        (*LLAMA3_SPECIALS, "<|eom_id|>", "<|python_tag|>"),
        eos="<|eot_id|>",
        bos="<|begin_of_text|>",
        adds_bos=True,
        generation_eos=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
    ),
    "qwen25": Family(
        "qwen25.jinja",
        "qwen2",
        CHATML_SPECIALS,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        generation_eos=("<|im_end|>", "<|endoftext|>"),
    ),
    # SmolLM3: Llama 3's vocabulary with ChatML turns, reasoning on by default (/think, /no_think).
    "smollm3": Family(
        "smollm3.jinja",
        "smollm3",
        ("<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"),
        eos="<|im_end|>",
        pad="<|end_of_text|>",
        generation_eos=("<|im_end|>",),
    ),
    # gpt-oss (harmony): the tokenizer's EOS is <|return|>; a call ends with <|call|>.
    "gpt_oss": Family(
        "gpt_oss.jinja",
        "gpt_oss",
        HARMONY_SPECIALS,
        eos="<|return|>",
        pad="<|endoftext|>",
        generation_eos=("<|return|>", "<|endoftext|>", "<|call|>"),
    ),
    "granite": Family(
        "granite.jinja",
        "granite",
        ("<|end_of_text|>", "<|start_of_role|>", "<|end_of_role|>"),
        eos="<|end_of_text|>",
        pad="<|end_of_text|>",
        generation_eos=("<|end_of_text|>",),
    ),
}


def build_tokenizer(family: Family) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=list(family.specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in MARKUP])
    if family.adds_bos:
        assert family.bos is not None
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{family.bos} $A",
            pair=f"{family.bos} $A {family.bos} $B",
            special_tokens=[(family.bos, tokenizer.token_to_id(family.bos))],
        )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=family.bos,
        eos_token=family.eos,
        pad_token=family.pad,
        clean_up_tokenization_spaces=False,
        model_max_length=1 << 20,
    )
    wrapped.add_special_tokens({"additional_special_tokens": list(family.specials)})
    wrapped.chat_template = (TEMPLATES / family.template).read_text(encoding="utf-8")
    return wrapped


def _model(arch: str, vocab: int, ids: dict[str, int | None]) -> Any:
    import transformers

    common: dict[str, Any] = {
        "vocab_size": vocab,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 2048,
        "initializer_range": 0.5,
        **{f"{name}_token_id": value for name, value in ids.items()},
    }
    if arch == "llama":
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**common))
    if arch == "mistral":
        return transformers.MistralForCausalLM(transformers.MistralConfig(**common, sliding_window=None))
    if arch == "gemma2":
        config = transformers.Gemma2Config(**common, head_dim=16, final_logit_softcapping=2.0)
        return transformers.Gemma2ForCausalLM(config)
    if arch == "gemma3":
        return transformers.Gemma3ForCausalLM(transformers.Gemma3TextConfig(**common, head_dim=16))
    if arch == "phi3":
        return transformers.Phi3ForCausalLM(transformers.Phi3Config(**common))
    if arch == "qwen3":
        return transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**common, head_dim=16))
    if arch == "qwen2":
        return transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common))
    if arch == "smollm3":
        return transformers.SmolLM3ForCausalLM(transformers.SmolLM3Config(**common))
    if arch == "gpt_oss":
        config = transformers.GptOssConfig(
            **common, head_dim=16, num_local_experts=2, num_experts_per_tok=1, sliding_window=16
        )
        return transformers.GptOssForCausalLM(config)
    if arch == "granite":
        # A large logits_scaling: logits computed without it are far from the model's own.
        return transformers.GraniteForCausalLM(transformers.GraniteConfig(**common, logits_scaling=8.0))
    raise ValueError(f"no tiny model for architecture {arch!r}")


def build_family_model(name: str, folder: Path, *, seed: int = 0, generation_config: bool = True) -> Path:
    """A tiny model folder of family ``name`` (a key of :data:`FAMILIES`) in ``folder``.

    ``generation_config=False`` leaves out generation_config.json, as some exported folders do."""
    import torch
    from transformers import GenerationConfig

    family = FAMILIES[name]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(family)

    def token_id(token: str | None) -> int | None:
        return None if token is None else int(tokenizer.convert_tokens_to_ids(token))

    ids = {"bos": token_id(family.bos), "eos": token_id(family.eos), "pad": token_id(family.pad)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _model(family.arch, len(tokenizer), ids).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos"],
        eos_token_id=[token_id(token) for token in family.generation_eos],
        pad_token_id=ids["pad"],
    )
    model.save_pretrained(folder)
    if not generation_config:
        (folder / "generation_config.json").unlink(missing_ok=True)
    tokenizer.save_pretrained(folder)
    return folder
