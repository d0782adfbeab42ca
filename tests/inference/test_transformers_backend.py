"""TransformersBackend on a tiny random Qwen2 built locally (no hub)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from inference.base import InferenceBackend, InferenceError, SamplingConfig
from inference.transformers_backend import (
    TransformersBackend,
    encode_continuation,
    encode_prompt,
    render_prompt,
)

PROMPTS = [
    [
        {"role": "system", "content": "You are a helpful assistant with access to tools."},
        {"role": "user", "content": f"What is the weather in city number {i}? Answer with a tool call."},
    ]
    for i in range(6)
]


@pytest.fixture(scope="module")
def backend(tiny_policy_path: Path) -> TransformersBackend:
    return TransformersBackend(tiny_policy_path, "seed0", batch_size=4)


def test_implements_the_interface(backend: TransformersBackend) -> None:
    assert isinstance(backend, InferenceBackend)
    assert backend.name == "transformers" and backend.model_id == "seed0"


def test_prompt_is_the_tokenizers_chat_template(backend: TransformersBackend) -> None:
    text = render_prompt(backend.tokenizer, PROMPTS[0])
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant")
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")


async def test_greedy_is_deterministic_and_prompt_dependent(backend: TransformersBackend) -> None:
    first = await backend.generate(PROMPTS, SamplingConfig(max_tokens=12))
    second = await backend.generate(PROMPTS, SamplingConfig(max_tokens=12))
    assert first == second
    assert len(first) == len(PROMPTS) and all(len(options) == 1 for options in first)
    assert len({tuple(options[0].token_ids) for options in first}) > 1


async def test_greedy_batches_agree_with_one_prompt_at_a_time(tiny_policy_path: Path) -> None:
    batched = TransformersBackend(tiny_policy_path, "seed0", batch_size=6)
    single = TransformersBackend(tiny_policy_path, "seed0", batch_size=1)
    many = await batched.generate(PROMPTS, SamplingConfig(max_tokens=10))
    one = await single.generate(PROMPTS, SamplingConfig(max_tokens=10))
    # Left padding must not change what a prompt decodes to (up to float noise on near-ties).
    agree = sum(a[0].token_ids == b[0].token_ids for a, b in zip(many, one, strict=True))
    assert agree >= len(PROMPTS) - 1
    for a, b in zip(many, one, strict=True):
        if a[0].token_ids == b[0].token_ids:
            assert a[0].token_logprobs == pytest.approx(b[0].token_logprobs, abs=1e-4)


async def test_greedy_logprobs_are_those_of_argmax_tokens(backend: TransformersBackend) -> None:
    vocab = len(backend.tokenizer)
    for (generation,) in await backend.generate(PROMPTS, SamplingConfig(max_tokens=16)):
        assert len(generation.token_logprobs) == len(generation.token_ids) >= 1
        # The argmax of a distribution over V tokens has probability at least 1/V.
        assert all(-math.log(vocab) - 1e-5 <= lp <= 0.0 for lp in generation.token_logprobs)


async def test_length_and_eos_finish_reasons(backend: TransformersBackend) -> None:
    eos = backend.tokenizer.convert_tokens_to_ids("<|im_end|>")
    results = await backend.generate(PROMPTS, SamplingConfig(max_tokens=40))
    for (generation,) in results:
        if generation.finish_reason == "length":
            assert len(generation.token_ids) == 40
            assert eos not in generation.token_ids
        else:
            assert generation.finish_reason == "stop"
            assert generation.token_ids[-1] == eos and eos not in generation.token_ids[:-1]
        assert "<|im_end|>" not in generation.text


async def test_stop_strings_cut_text_and_tokens(backend: TransformersBackend) -> None:
    [(full,)] = await backend.generate(PROMPTS[:1], SamplingConfig(max_tokens=24))
    # Stop at a character from the middle of the greedy completion.
    candidates = [c for c in full.text[3:] if c.isprintable() and c != "\ufffd"]
    assert candidates, f"no usable stop character in {full.text!r}"
    stop = candidates[0]
    [(cut,)] = await backend.generate(PROMPTS[:1], SamplingConfig(max_tokens=24, stop=(stop,)))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop)]
    assert cut.token_ids == full.token_ids[: len(cut.token_ids)]
    assert stop in backend.tokenizer.decode(cut.token_ids)  # tokens keep the one that completed the stop
    assert cut.token_logprobs == pytest.approx(full.token_logprobs[: len(cut.token_ids)], abs=1e-5)


async def test_n_sampled_completions_follow_the_seed(backend: TransformersBackend) -> None:
    sampling = SamplingConfig(greedy=False, temperature=1.0, top_p=0.95, n=4, seed=7, max_tokens=10)
    first = await backend.generate(PROMPTS[:3], sampling)
    again = await backend.generate(PROMPTS[:3], sampling)
    other = await backend.generate(PROMPTS[:3], dataclasses.replace(sampling, seed=8))
    assert [len(options) for options in first] == [4, 4, 4]
    assert first == again
    assert first != other
    assert any(len({g.text for g in options}) > 1 for options in first)
    for options in first:
        for generation in options:
            assert len(generation.token_logprobs) == len(generation.token_ids)
            assert all(lp <= 0.0 and math.isfinite(lp) for lp in generation.token_logprobs)


async def test_score_matches_generate_logprobs(backend: TransformersBackend) -> None:
    results = await backend.generate(PROMPTS, SamplingConfig(max_tokens=16))
    # Teacher forcing the generated ids after the prompt gives back the log-probs decoding reported
    # (decoding ran left-padded with a KV cache; scoring runs right-padded in one forward pass).
    pairs = [
        (encode_prompt(backend.tokenizer, chat), options[0].token_ids)
        for chat, options in zip(PROMPTS, results, strict=True)
    ]
    for (generation,), scored in zip(results, backend.score_token_ids(pairs), strict=True):
        assert scored == pytest.approx(generation.token_logprobs, abs=1e-4)
    # score() on text is the same computation on the text's own tokenization.
    texts = [options[0].text for options in results]
    by_text = await backend.score(PROMPTS, texts)
    by_ids = backend.score_token_ids(
        [
            (prompt, encode_continuation(backend.tokenizer, text))
            for (prompt, _), text in zip(pairs, texts, strict=True)
        ]
    )
    assert by_text == by_ids


async def test_score_of_arbitrary_text_is_a_sane_log_likelihood(backend: TransformersBackend) -> None:
    texts = ['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', "", "ok"]
    scores = await backend.score(PROMPTS[:3], texts)
    assert [len(s) for s in scores] == [len(encode_continuation(backend.tokenizer, t)) for t in texts]
    assert scores[1] == []
    assert all(lp <= 0.0 and math.isfinite(lp) for s in scores for lp in s)
    with pytest.raises(ValueError, match="continuations"):
        await backend.score(PROMPTS[:2], texts)


async def test_load_switches_checkpoints(tiny_policy_factory: Callable[[int], Path]) -> None:
    switching = TransformersBackend(tiny_policy_factory(0), "seed0", batch_size=8)
    greedy = SamplingConfig(max_tokens=12)
    before = await switching.generate(PROMPTS, greedy)
    await switching.load(str(tiny_policy_factory(1)), "seed1")
    assert switching.model_id == "seed1"
    after = await switching.generate(PROMPTS, greedy)
    assert after != before
    assert (
        sum(a[0].token_ids != b[0].token_ids for a, b in zip(after, before, strict=True)) >= len(PROMPTS) // 2
    )
    await switching.load(str(tiny_policy_factory(0)), "seed0")
    assert await switching.generate(PROMPTS, greedy) == before


async def test_a_bad_checkpoint_is_refused_and_the_old_one_kept(
    backend: TransformersBackend, tmp_path: Path
) -> None:
    before = await backend.generate(PROMPTS[:2], SamplingConfig(max_tokens=6))
    with pytest.raises(InferenceError, match=r"no config\.json") as caught:
        await backend.load(str(tmp_path / "missing"), "broken")
    assert not caught.value.retryable
    assert backend.model_id == "seed0"
    assert await backend.generate(PROMPTS[:2], SamplingConfig(max_tokens=6)) == before


async def test_bad_requests_are_value_errors(backend: TransformersBackend) -> None:
    with pytest.raises(ValueError, match="n must be"):
        await backend.generate(PROMPTS[:1], SamplingConfig(n=0))
    with pytest.raises(ValueError, match="temperature"):
        await backend.generate(PROMPTS[:1], SamplingConfig(greedy=False, temperature=0.0))
    with pytest.raises(ValueError, match="at least one message"):
        await backend.generate([[]], SamplingConfig())
    assert await backend.generate([], SamplingConfig()) == []


def test_tool_call_tags_a_tokenizer_marks_special_stay_in_the_text(
    tiny_policy_path: Path, tmp_path: Path
) -> None:
    """Some tokenizers (Hermes-format fine-tunes) mark <tool_call> special; a decode that skipped
    special tokens turned every call into a text answer."""
    import shutil

    from toolcall.parsing import parse_output

    folder = tmp_path / "special-tags"
    shutil.copytree(tiny_policy_path, folder)
    special = TransformersBackend(folder, "special").tokenizer
    special.add_special_tokens({"additional_special_tokens": ["<tool_call>", "</tool_call>"]})
    special.save_pretrained(folder)
    backend = TransformersBackend(folder, "special")
    assert backend.tokenizer.convert_tokens_to_ids("<tool_call>") in backend.tokenizer.all_special_ids
    output = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    ids = backend.tokenizer(output, add_special_tokens=False)["input_ids"]
    ended = backend._finish([*ids, backend._eos_ids[0], backend._pad_id], [-0.1] * (len(ids) + 2), (), 64)
    assert ended.text == output and ended.finish_reason == "stop"  # EOS and padding left out
    assert parse_output(ended.text).kind == "calls"


def _policy_chats() -> dict[str, list[dict[str, str]]]:
    """Policy prompts whose turns a strict template refuses: build_chat writes a system turn, a tool
    result as a user turn (so a user turn follows it), and keeps a dataset's consecutive user turns."""
    from toolcall.prompts import build_chat
    from toolcall.specs import ToolSpec
    from toolcall.types import Message, ToolCall

    tool = ToolSpec.from_openai(
        {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    )
    call = Message(role="assistant", tool_calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})])
    conversations = {
        "one user turn": [Message(role="user", content="Weather in Paris?")],
        "two user turns": [
            Message(role="user", content="Hi"),
            Message(role="user", content="Weather in Paris?"),
        ],
        "a tool result, then the user": [
            Message(role="user", content="Weather in Paris?"),
            call,
            Message(role="tool", name="get_weather", content='{"t": 21}'),
            Message(role="user", content="Now Rome"),
        ],
    }
    return {name: build_chat([tool], messages) for name, messages in conversations.items()}


@pytest.mark.parametrize("family", ["gemma2", "gemma3", "mistral"])
def test_policy_prompts_render_with_templates_that_refuse_a_system_turn_or_repeated_roles(
    family: str, tmp_path: Path
) -> None:
    """Gemma 2 refuses a system turn; Mistral and Gemma 3 refuse two user turns in a row. Every policy
    prompt raised; now consecutive turns of one role are joined and, where the template refuses a
    system turn, the system text opens the first user turn. No text is lost."""
    from transformers import AutoTokenizer

    from tests.families import build_family_model

    tokenizer = AutoTokenizer.from_pretrained(build_family_model(family, tmp_path / family))
    for name, chat in _policy_chats().items():
        text = render_prompt(tokenizer, chat)
        for message in chat:
            for line in message["content"].splitlines():
                assert line.strip() in text, (name, line)
        assert encode_prompt(tokenizer, chat)


def test_a_template_that_takes_the_chat_as_it_is_renders_it_unchanged(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from tests.families import build_family_model

    tokenizer = AutoTokenizer.from_pretrained(build_family_model("phi4", tmp_path / "phi4"))
    for chat in _policy_chats().values():
        assert render_prompt(tokenizer, chat) == tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=False
        )


def test_a_dated_template_gets_the_conversations_date_not_the_machines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Llama 3.2's template writes "Today Date:" from the wall clock unless given ``date_string``:
    the same sample's prompt changed from day to day and contradicted its own conversation time."""
    import datetime

    import transformers.utils.chat_template_utils as chat_template_utils
    from transformers import AutoTokenizer

    from tests.families import build_family_model
    from toolcall.prompts import build_chat
    from toolcall.types import Message

    tokenizer = AutoTokenizer.from_pretrained(build_family_model("llama3", tmp_path / "llama3"))
    ask = [Message(role="user", content="What is on tomorrow?")]
    for time, date in (
        ("2025-03-14 10:00:00", "14 Mar 2025"),
        ("2024-11-02", "02 Nov 2024"),
        ("2025-07-04T08:30:00Z", "04 Jul 2025"),
        ("sometime in spring", "01 Jan 2026"),  # unreadable: one fixed date, not the clock
    ):
        chat = build_chat([], ask, current_time=time)
        prompts = []
        for day in (datetime.datetime(2030, 5, 6), datetime.datetime(2030, 5, 7)):

            class Clock(datetime.datetime):
                @classmethod
                def now(cls, tz: object = None, today: datetime.datetime = day) -> datetime.datetime:
                    return today

            monkeypatch.setattr(chat_template_utils, "datetime", Clock)
            prompts.append(encode_prompt(tokenizer, chat))
            assert f"Today Date: {date}\n" in render_prompt(tokenizer, chat)
        assert prompts[0] == prompts[1]


@pytest.mark.parametrize("family, end", [("phi4", "<|end|>"), ("gemma3", "<end_of_turn>")])
def test_the_template_s_end_of_turn_token_ends_a_completion_everywhere(
    family: str, end: str, tmp_path: Path
) -> None:
    """Without generation_config.json only the tokenizer's EOS stopped decoding (ChatML's <|im_end|>
    was a special case), so Phi's <|end|> and Gemma's <end_of_turn> did not: the probe decoded past
    the assistant's turn. The probe, the vLLM backend and the CPU GRPO trainer now share one rule."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from inference.transformers_backend import end_token_ids
    from inference.vllm_backend import stop_token_ids
    from tests.families import build_family_model
    from trainer.cpu_grpo import completion_ends

    folder = build_family_model(family, tmp_path / family, generation_config=False)
    assert not (folder / "generation_config.json").exists()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    end_id = tokenizer.convert_tokens_to_ids(end)
    model = AutoModelForCausalLM.from_pretrained(folder)
    ends = end_token_ids(tokenizer, model.generation_config.eos_token_id)
    assert end_id in ends and tokenizer.eos_token_id in ends
    probe = TransformersBackend(folder, family)
    assert probe._eos_ids == ends
    assert stop_token_ids(tokenizer, folder) == ends
    assert completion_ends(tokenizer, model) == ends
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    ids = tokenizer(call, add_special_tokens=False)["input_ids"]
    after = tokenizer(end + "\nThanks", add_special_tokens=False)["input_ids"]
    ended = probe._finish(ids + after, [-0.1] * len(ids + after), (), 64)
    assert ended.text == call and ended.finish_reason == "stop" and len(ended.token_ids) == len(ids) + 1
