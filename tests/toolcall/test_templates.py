"""toolcall.templates: the chat-template rules that verl's reward manager shares with the probe."""

from __future__ import annotations

import subprocess
import sys

import pytest

from toolcall.templates import _is_template_error


def test_the_template_rules_import_neither_jinja2_nor_transformers() -> None:
    """verl's reward manager imports them in verl's environment, where only toolcall is ours."""
    code = (
        "import sys, toolcall.templates; "
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'jinja2','transformers','tokenizers','torch','numpy','inference','trainer','common'})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_a_templates_refusal_is_told_by_its_class_without_importing_jinja2() -> None:
    jinja2 = pytest.importorskip("jinja2")
    for error in (
        jinja2.TemplateError("refused"),
        jinja2.TemplateSyntaxError("bad", 1),
        jinja2.UndefinedError("missing"),
    ):
        assert _is_template_error(error)
    assert not _is_template_error(ValueError("no chat template"))


@pytest.mark.parametrize(
    ("prompt", "opens"),
    [
        (
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n",
            True,
        ),  # Qwen3-Thinking-2507, QwQ
        ("<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜><think>\n", True),  # DeepSeek-R1 distills
        ("<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜><think>", True),  # V3.1, thinking
        (
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
            False,
        ),  # Qwen3, off
        ("<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜></think>", False),  # V3.1, not thinking
        ("<seed:bos>user\nHi<seed:eos><seed:bos>assistant\n<seed:think>", True),  # Seed-OSS, thinking
        ("<seed:bos>user\nHi<seed:eos><seed:bos>assistant\n<seed:think></seed:think>", False),
        ("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", False),
        ("<|im_start|>user\nWhat does <think> do?<|im_end|>\n<|im_start|>assistant\n", False),
    ],
)
def test_a_prompt_opens_the_trace_when_it_ends_inside_an_unclosed_think(prompt: str, opens: bool) -> None:
    from toolcall.templates import prompt_opens_trace

    assert prompt_opens_trace(prompt) is opens


def test_the_rendered_prompt_of_a_template_that_opens_the_trace_says_so() -> None:
    from tests.families import FAMILIES, build_tokenizer
    from toolcall.templates import prompt_opens_trace, render_prompt

    chat = [{"role": "user", "content": "What is the weather in Paris?"}]
    assert prompt_opens_trace(render_prompt(build_tokenizer(FAMILIES["qwen3_thinking"]), chat))
    assert not prompt_opens_trace(render_prompt(build_tokenizer(FAMILIES["qwen3"]), chat))
