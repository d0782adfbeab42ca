"""The tiny local Qwen2 policy: tokenizer, chat template, seeded weights, loadable folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from trainer.tiny_policy import MARKUP_TOKENS, build_tiny_policy, train_tokenizer

CORPUS = ["The weather in Paris is sunny.", '{"name": "get_weather", "arguments": {"city": "Paris"}}']


def test_tokenizer_round_trips_any_text_and_keeps_markup_as_single_tokens() -> None:
    tokenizer = train_tokenizer(CORPUS, vocab_size=400)
    for text in [
        '<tool_call>\n{"name": "x"}\n</tool_call>',
        "héllo wörld ✓ 12345",
        "<think>a</think>\n\n  b",
    ]:
        assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    for token in MARKUP_TOKENS:
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1
        # Added but not special: decoding with skip_special_tokens keeps it (the parser needs it).
        assert tokenizer.decode(ids, skip_special_tokens=True) == token
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert (
        tokenizer.decode(
            tokenizer("<|im_end|>", add_special_tokens=False)["input_ids"], skip_special_tokens=True
        )
        == ""
    )


def test_chat_template_is_chatml() -> None:
    tokenizer = train_tokenizer(CORPUS, vocab_size=400)
    chat = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.apply_chat_template(chat, tokenize=False).endswith("U<|im_end|>\n")


def test_small_vocab_and_empty_corpus_are_refused() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(CORPUS, vocab_size=100)
    with pytest.raises(ValueError, match="non-empty corpus"):
        train_tokenizer(["", ""])


def test_head_dim_below_32_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="head_dim"):
        build_tiny_policy(tmp_path, CORPUS, hidden_size=64, heads=4, kv_heads=2)


def test_folder_loads_in_transformers_with_the_same_tokenization(
    tiny_policy_factory: Callable[[int], Path],
) -> None:
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_policy_factory(0)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["hidden_size"] // config["num_attention_heads"] >= 32
    assert model.config.vocab_size == len(tokenizer)
    # transformers rebuilds a Qwen2 tokenizer's pipeline on load; it must split text as trained.
    trained = Tokenizer.from_file(str(folder / "tokenizer.json"))  # the pipeline as trained and saved
    for text in ["The answer is 12345, ok?", '{"city": "Paris"}\n\n  x', "wörld"]:
        assert (
            tokenizer(text, add_special_tokens=False)["input_ids"]
            == trained.encode(text, add_special_tokens=False).ids
        )
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [tokenizer.convert_tokens_to_ids("<|im_end|>")]


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    def weights(folder: Path) -> dict:
        return load_file(folder / "model.safetensors")

    first = weights(build_tiny_policy(tmp_path / "a", CORPUS, vocab_size=300, seed=3))
    again = weights(build_tiny_policy(tmp_path / "b", CORPUS, vocab_size=300, seed=3))
    other = weights(build_tiny_policy(tmp_path / "c", CORPUS, vocab_size=300, seed=4))
    assert first.keys() == again.keys() == other.keys()
    assert all((first[name] == again[name]).all() for name in first)
    assert any(not (first[name] == other[name]).all() for name in first)
