"""The SFT warm start on models of other families: the loss is the model's own, and the target is
the assistant turn as the model's chat template writes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.families import build_family_model


@pytest.mark.parametrize("family", ["granite", "gemma2", "llama3"])
def test_the_completion_loss_is_the_cross_entropy_of_the_models_own_logits(
    family: str, tmp_path: Path
) -> None:
    """The loss ran the body and the head by hand, skipping what a model does after its head:
    Granite divides the logits by logits_scaling, Gemma 2 soft-caps them."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.sft import collate, completion_loss

    folder = build_family_model(family, tmp_path / family)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32").eval()
    examples = [(list(range(5, 45)), 30), (list(range(7, 40)), 20)]
    input_ids, attention, targets = collate(examples, 0)
    with torch.no_grad():
        ours = float(completion_loss(model, input_ids, attention, targets))
        logits = model(input_ids=input_ids, attention_mask=attention).logits
    where = targets != -100
    expected = float(torch.nn.functional.cross_entropy(logits[where].float(), targets[where]))
    assert ours == pytest.approx(expected, rel=1e-5)


TARGET = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


@pytest.mark.parametrize(
    "family, completion",
    [
        ("gemma3", TARGET + "<end_of_turn>"),  # not the tokenizer's EOS (<eos>)
        ("phi4", TARGET + "<|end|>"),  # not <|endoftext|>
        ("qwen3", "<think>\n\n</think>\n\n" + TARGET + "<|im_end|>"),  # the template's empty reasoning
        ("mistral", " " + TARGET + "</s>"),  # the template's leading space
        ("llama3", TARGET + "<|eot_id|>"),
    ],
)
def test_the_sft_target_is_the_assistant_turn_the_chat_template_writes(
    family: str, completion: str, tmp_path: Path
) -> None:
    """The target was the label plus the tokenizer's EOS; the model is trained on its turn as its
    template writes it (and as it has to write it for generation to stop)."""
    from transformers import AutoTokenizer

    from tests.trainer import toy
    from trainer.sft import tokenize_examples

    tokenizer = AutoTokenizer.from_pretrained(build_family_model(family, tmp_path / family))
    row = toy.rows(("Paris",))[0]
    assert row.target() == TARGET
    ((ids, prompt_length),) = tokenize_examples(tokenizer, [row])
    assert tokenizer.decode(ids[prompt_length:], skip_special_tokens=False) == completion
    assert ids[prompt_length:] == tokenizer(completion, add_special_tokens=False)["input_ids"]


def test_a_template_that_does_not_show_the_turn_falls_back_to_the_label_and_eos(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from tests.trainer import toy
    from trainer.sft import tokenize_examples

    tokenizer = AutoTokenizer.from_pretrained(build_family_model("phi4", tmp_path / "phi4"))
    # A template that writes no assistant turn of the history at all.
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] != 'assistant' %}{{ m['content'] }}<|end|>{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    ((ids, prompt_length),) = tokenize_examples(tokenizer, toy.rows(("Paris",)))
    assert tokenizer.decode(ids[prompt_length:], skip_special_tokens=False) == TARGET + "<|endoftext|>"
