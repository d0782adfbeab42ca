"""The policy path on families users post-train for tool calling: gpt-oss (harmony), SmolLM3,
Qwen2.5-Instruct and Llama 3.1/3.2 with tools (cut-down templates, tests/families.py). A multi-turn
prompt with tool results renders; the label's turn is what the template writes; a completion in the
policy prompt's <tool_call> format and in the family's own call format earns the reward when it calls
the label, and not otherwise."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.families import FAMILIES, build_tokenizer
from tests.trainer import toy
from toolcall.prompts import build_chat
from toolcall.templates import assistant_turn, end_token_ids, prompt_opens_trace, render_prompt
from toolcall.types import Message, ToolCall
from trainer.cpu_grpo import render_prompts, toolmatch_reward_for

NEW_FAMILIES = ("gpt_oss", "smollm3", "qwen25", "llama31_tools")
ROME = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'


def _history() -> list[Message]:
    return [
        Message(role="user", content="What is the weather in Paris?"),
        Message(
            role="assistant",
            content="",
            tool_calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})],
        ),
        Message(role="tool", content='{"temperature": 21}'),
        Message(role="user", content="And in Rome?"),
    ]


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_a_multi_turn_prompt_with_tool_results_renders_whole_and_opens_no_trace(family: str) -> None:
    tokenizer = build_tokenizer(FAMILIES[family])
    chat = build_chat([toy.WEATHER], _history())
    prompt = render_prompt(tokenizer, chat)
    for message in chat:
        for line in message["content"].splitlines():
            assert line.strip() in prompt, line
    assert not prompt_opens_trace(prompt)


# The label's turn as each template writes it after the generation prompt, through its end token.
LABEL_TURNS = {
    "gpt_oss": "<|channel|>final<|message|>" + ROME + "<|return|>",
    "smollm3": ROME + "<|im_end|>",
    "qwen25": ROME + "<|im_end|>",
    "llama31_tools": ROME + "<|eot_id|>",
}


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_the_label_turn_is_the_templates_and_ends_on_an_end_token(family: str) -> None:
    tokenizer = build_tokenizer(FAMILIES[family])
    (row,) = toy.rows(["Rome"])
    turn = assistant_turn(tokenizer, row.chat, row.target())
    assert turn == LABEL_TURNS[family]
    end = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(turn)[-1])
    assert end in end_token_ids(tokenizer, None)


# Completions as each family writes them, without the end token a backend drops: (calls Rome, calls
# Paris). The first pair is the policy prompt's own <tool_call> format (as the label's turn has it),
# the second the family's native call format, where it has one.
COMPLETIONS = {
    "gpt_oss": [
        (
            "<|channel|>analysis<|message|>The user asks about Rome.<|end|>"
            "<|start|>assistant<|channel|>final<|message|>" + ROME,
            "<|channel|>final<|message|>" + ROME.replace("Rome", "Paris"),
        ),
        (
            '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Rome"}',
            '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}',
        ),
    ],
    "smollm3": [("<think>\nThe user asks about Rome.\n</think>\n" + ROME, ROME.replace("Rome", "Paris"))],
    "qwen25": [(ROME, ROME.replace("Rome", "Paris"))],
    "llama31_tools": [
        (ROME, ROME.replace("Rome", "Paris")),
        (
            '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Rome"}}',
            '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        ),
    ],
}


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_the_grpo_reward_of_a_familys_completion_is_one_when_it_calls_the_label(family: str) -> None:
    """gpt-oss: the label's turn puts its <tool_call> blocks in the final channel, and that answer was
    read as text, so a completion calling the label earned no reward."""
    tokenizer = build_tokenizer(FAMILIES[family])
    (row,) = toy.rows(["Rome"])
    (prompt,) = render_prompts(tokenizer, [row])
    ends = end_token_ids(tokenizer, None)
    reward = toolmatch_reward_for([row], tokenizer, ends=set(ends))
    for right, wrong in COMPLETIONS[family]:
        completions = [right, wrong]
        ids = [[*tokenizer(text, add_special_tokens=False)["input_ids"], ends[0]] for text in completions]
        scores = reward(prompts=[prompt] * 2, completions=completions, row_index=[0, 0], completion_ids=ids)
        assert scores == [1.0, 0.0], (right, scores)


def test_a_gpt_oss_call_ends_the_completion_without_generation_config(tmp_path: Path) -> None:
    """gpt-oss ends a call with <|call|> and an answer with <|return|> (its tokenizer's EOS). In a
    folder without generation_config.json only <|return|> ended a completion, so the probe, the vLLM
    backend and the trainers decoded past a call into a made-up tool result, and the call read as a
    parse failure. The token that closes the template's call turn now ends it everywhere."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from inference.transformers_backend import TransformersBackend
    from inference.vllm_backend import stop_token_ids
    from tests.families import build_family_model
    from toolcall.parsing import parse_output
    from trainer.cpu_grpo import completion_ends

    folder = build_family_model("gpt_oss", tmp_path / "gpt_oss", generation_config=False)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    call_end = tokenizer.convert_tokens_to_ids("<|call|>")
    probe = TransformersBackend(folder, "gpt_oss")
    assert call_end in probe._eos_ids
    assert stop_token_ids(tokenizer, folder) == probe._eos_ids
    assert completion_ends(tokenizer, AutoModelForCausalLM.from_pretrained(folder)) == probe._eos_ids
    call = '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Rome"}'
    made_up = '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"t": 20}<|end|>'
    ids = tokenizer(call + "<|call|>" + made_up, add_special_tokens=False)["input_ids"]
    ended = probe._finish(ids, [-0.1] * len(ids), (), 128)
    assert ended.finish_reason == "stop" and ended.token_ids[-1] == call_end
    assert parse_output(ended.text).action == toy.rows(["Rome"])[0].label


@pytest.mark.parametrize("family", ["gpt_oss", "qwen25", "llama31_tools"])
def test_a_call_turn_in_the_familys_own_format_reads_back_as_its_call(family: str) -> None:
    """The templates' own tool path (tools given to the template, calls as ``tool_calls``, results as
    ``tool`` turns): what follows the generation prompt is the call as the family writes it, and the
    parser reads it back; the call turn ends on one of the completion's end tokens."""
    from toolcall.parsing import parse_output

    tokenizer = build_tokenizer(FAMILIES[family])
    tools = [{"type": "function", "function": toy.WEATHER.to_openai()}]
    call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}
    chat = [{"role": "user", "content": "And in Rome?"}]
    prompt = tokenizer.apply_chat_template(chat, tools=tools, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(
        [
            *chat,
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": "21"},
        ],
        tools=tools,
        tokenize=False,
    )
    assert "get_weather" in prompt and full.startswith(prompt)
    ends = end_token_ids(tokenizer, None)
    turn = full[len(prompt) :]
    end = next(at for at in range(len(turn)) if any(turn.startswith(tokenizer.decode([i]), at) for i in ends))
    parsed = parse_output(turn[:end])
    assert parsed.error is None and parsed.action == toy.rows(["Rome"])[0].label, turn


@pytest.mark.parametrize(
    ("opening", "closing"), [("<tool_call>", "</tool_call>"), ("<seed:tool_call>", "</seed:tool_call>")]
)
def test_a_call_tag_that_closes_a_templates_call_turn_does_not_end_a_completion(
    opening: str, closing: str
) -> None:
    """A template may write no end token after a call (GLM-style: the next role's token follows),
    and a tokenizer may mark </tool_call> special: that tag was taken for the call turn's end, so a
    completion stopped after its first call and never wrote the second a label asks for."""
    from tokenizers import AddedToken

    from toolcall.templates import call_turn_end_token

    tokenizer = build_tokenizer(FAMILIES["qwen25"])
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken(closing, special=True, normalized=False)]}
    )
    tokenizer.chat_template = (
        "{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] }}"
        "{%- for c in m['tool_calls'] or [] %}"
        "{{- '" + opening + "' + c['function']['name'] + '" + closing + "' }}{%- endfor %}"
        "{%- if m['role'] != 'assistant' %}{{- '<|im_end|>' }}{%- endif %}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )
    assert call_turn_end_token(tokenizer) is None
    assert end_token_ids(tokenizer, None) == [tokenizer.convert_tokens_to_ids("<|im_end|>")]


def test_smollm3s_no_think_flag_in_a_samples_system_text_closes_the_trace_in_the_prompt() -> None:
    """SmolLM3 reads /think and /no_think from the system text (the sample's own system message joins
    the policy's): with /no_think the prompt ends in an empty trace, which opens none, the flag is
    gone from the prompt, the label's turn follows it, and a bare call earns the reward."""
    tokenizer = build_tokenizer(FAMILIES["smollm3"])
    history = [Message(role="system", content="Answer briefly. /no_think"), *_history()]
    chat = build_chat([toy.WEATHER], history)
    prompt = render_prompt(tokenizer, chat)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n") and not prompt_opens_trace(prompt)
    assert "Reasoning Mode: /no_think" in prompt and "briefly. /no_think" not in prompt
    (row,) = toy.rows(["Rome"])
    row = dataclasses.replace(row, chat=chat)
    assert assistant_turn(tokenizer, chat, row.target()) == ROME + "<|im_end|>"
    ends = end_token_ids(tokenizer, None)
    reward = toolmatch_reward_for([row], tokenizer, ends=set(ends))
    completions = [ROME, "<think>\nRome.\n</think>\n" + ROME.replace("Rome", "Paris")]
    ids = [[*tokenizer(text, add_special_tokens=False)["input_ids"], ends[0]] for text in completions]
    assert reward(prompts=[prompt] * 2, completions=completions, row_index=[0, 0], completion_ids=ids) == [
        1.0,
        0.0,
    ]
