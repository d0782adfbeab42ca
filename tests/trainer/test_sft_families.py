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
