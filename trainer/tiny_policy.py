"""A small Qwen2-architecture causal LM built from scratch, with no model hub.

Tests and the CPU demo need a policy that loads through the same code paths as a real one
(transformers ``AutoModelForCausalLM``/``AutoTokenizer``, vLLM offline and server) yet trains and
decodes in seconds on a laptop CPU. :func:`build_tiny_policy` trains a byte-level BPE tokenizer on a
corpus, initialises a ``Qwen2ForCausalLM`` with seeded random weights and saves both as a normal
Hugging Face model folder.

The tokenizer speaks ChatML (``<|im_start|>role\\n...<|im_end|>\\n``) like Qwen's, so prompts built by
:func:`toolcall.prompts.build_chat` render the same way as for a real Qwen policy, and the tool-call
markup (``<tool_call>``, ``<think>``, ...) is one token each. Those markup tokens are *added* but not
*special*: decoding keeps them in the text, which the tool-call parser needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from common.logs import get_logger

log = get_logger(__name__)

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<|endoftext|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, IM_START, IM_END)
MARKUP_TOKENS: tuple[str, ...] = (
    "<tool_call>",
    "</tool_call>",
    "<think>",
    "</think>",
    "<tool_response>",
    "</tool_response>",
    "<tools>",
    "</tools>",
)

# Qwen2's pre-tokenizer split (letters, single digits, punctuation runs, newlines, spaces).
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# ChatML, as Qwen2 models use it. Content is plain text (toolcall.prompts renders tool calls and
# results into the message text), so the template only frames the turns.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') + '<|im_end|>' + '\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

DEFAULT_CORPUS: tuple[str, ...] = (
    "You are a helpful assistant with access to tools. Call a tool when it helps the user.",
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>',
    '<tool_call>\n{"name": "search_flights", "arguments": {"origin": "SFO", "to": "JFK"}}\n</tool_call>',
    '<tool_response>\n{"temperature": 21, "condition": "sunny"}\n</tool_response>',
    "<think>The user wants the weather, so I call get_weather with the city.</think>",
    '<tools>\n{"type": "function", "function": {"name": "get_weather", "parameters": {}}}\n</tools>',
    "The weather in Paris is sunny and 21 degrees. Is there anything else I can help with?",
    "Book a table for two at 7 pm tomorrow, and remind me one hour before.",
    "What is 12 plus 30? The answer is 42.",
)


def train_tokenizer(
    corpus: Iterable[str],
    vocab_size: int = 1024,
    min_frequency: int = 1,
    phrases: Iterable[str] = (),
    words: Iterable[str] = (),
    spaced_words: bool = False,
) -> Any:
    """A byte-level BPE tokenizer with a ChatML template, as a ``PreTrainedTokenizerFast``.

    Byte-level means every string is encodable (no unknown token) whatever the corpus held;
    ``vocab_size`` is an upper bound (a small corpus yields fewer merges). ``phrases`` become one
    token each: a corpus whose every prompt repeats a long fixed text (the Figure 7 instruction) then
    costs a tiny model a few tokens per prompt instead of hundreds, as a large vocabulary would.
    ``words`` (a closed world's entity values: cities, dates, codes) become one token each where they
    stand as whole words, so copying a value from the request into an argument is copying one token.
    With ``spaced_words`` each also gets a token with its leading space (" Paris"): in running text
    the value then directly follows its cue word ("from", "on") instead of a lone space token, so the
    token before a value says which argument it fills, as an induction head needs.
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    texts = [text for text in corpus if text]
    if not texts:
        raise ValueError("train_tokenizer needs a non-empty corpus")
    minimum = 256 + len(SPECIAL_TOKENS)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be at least {minimum} (256 bytes + special tokens)")

    tokenizer = Tokenizer(models.BPE())
    # Qwen2's own pipeline (NFC, its split regex, byte-level without regex): transformers rebuilds a
    # Qwen2 model's tokenizer with exactly this, so training with anything else would make the saved
    # tokenizer and the loaded one split text differently.
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # Markup is added as whole (non-special) tokens so a tool call costs a few tokens and decodes
    # back into the text; normalized=False keeps the literal match.
    tokenizer.add_tokens([AddedToken(token, special=False, normalized=False) for token in MARKUP_TOKENS])
    tokenizer.add_tokens([AddedToken(text, special=False, normalized=False) for text in phrases if text])
    words = [text for text in words if text]
    tokenizer.add_tokens(
        [AddedToken(text, special=False, normalized=False, single_word=True) for text in words]
    )
    if spaced_words:
        tokenizer.add_tokens([AddedToken(" " + text, special=False, normalized=False) for text in words])

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=PAD,
        unk_token=None,
        bos_token=None,
        padding_side="left",
        model_max_length=1 << 20,
        clean_up_tokenization_spaces=False,
    )
    wrapped.add_special_tokens({"additional_special_tokens": [IM_START, IM_END]})
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_tiny_policy(
    folder: str | Path,
    corpus: Iterable[str] | None = None,
    *,
    vocab_size: int = 1024,
    hidden_size: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 256,
    seed: int = 0,
    max_position_embeddings: int = 2048,
    initializer_range: float = 0.02,
    tie_word_embeddings: bool = True,
    phrases: Iterable[str] = (),
    words: Iterable[str] = (),
    spaced_words: bool = False,
) -> Path:
    """Build and save a randomly initialised (seeded) Qwen2 causal LM with its tokenizer.

    The folder holds ``config.json``, ``model.safetensors``, ``generation_config.json`` and the
    tokenizer files, and loads in transformers and vLLM. The same arguments give the same weights.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    if hidden_size % heads:
        raise ValueError(f"hidden_size {hidden_size} is not a multiple of heads {heads}")
    if heads % kv_heads:
        raise ValueError(f"heads {heads} is not a multiple of kv_heads {kv_heads}")
    head_dim = hidden_size // heads
    if head_dim < 32:
        # vLLM's CPU attention rejects head sizes below 32.
        raise ValueError(f"head_dim = hidden_size/heads = {head_dim}; vLLM needs at least 32")

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(
        corpus if corpus is not None else DEFAULT_CORPUS,
        vocab_size=vocab_size,
        phrases=phrases,
        words=words,
        spaced_words=spaced_words,
    )
    pad_id = tokenizer.convert_tokens_to_ids(PAD)
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)

    config = Qwen2Config(
        # Exactly the tokenizer's size: padded rows would be untrained ids that decode to nothing.
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_position_embeddings,
        initializer_range=initializer_range,
        tie_word_embeddings=tie_word_embeddings,
        use_sliding_window=False,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        architectures=["Qwen2ForCausalLM"],
    )
    # fork_rng: seeding must not disturb the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model = model.to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=None, eos_token_id=[eos_id], pad_token_id=pad_id, do_sample=False
    )
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    _check_tokenizer_config(folder)
    parameters = sum(p.numel() for p in model.parameters())
    log.info(
        "tiny_policy.built",
        folder=str(folder),
        parameters=parameters,
        vocab=len(tokenizer),
        hidden=hidden_size,
        layers=layers,
        seed=seed,
    )
    return folder


def _check_tokenizer_config(folder: Path) -> None:
    """Fail early if the saved tokenizer lost its chat template (vLLM would then refuse chats)."""
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    if not config.get("chat_template") and not (folder / "chat_template.jinja").exists():
        raise RuntimeError(f"tokenizer saved to {folder} has no chat template")
