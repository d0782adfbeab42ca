"""What a model's chat template writes, read off the template itself: the prompt a chat becomes, an
assistant turn as the model writes it, and the tokens that end a completion.

One rule for every side that renders prompts or decides where a completion ends: the probe
(:mod:`inference.transformers_backend`), the vLLM backend, the CPU GRPO trainer, the SFT warm start
and our verl reward manager (``trainer/verl/reward_manager.py``), which runs in verl's own
environment where only this package of ours is importable. So this module is pure, as the rest of
the package: ``tokenizer`` is any object with a Hugging Face tokenizer's methods
(``apply_chat_template``, ``convert_tokens_to_ids``, ...), and nothing here imports transformers or
jinja2 (a template's refusal is recognised by its class, see :func:`_is_template_error`).

``template_kwargs`` (``[policy] chat_template_kwargs``: Qwen3's ``enable_thinking``, gpt-oss's
``reasoning_effort``) go to every ``apply_chat_template`` here, so every side renders the same prompt;
a template that does not read one ignores it (Jinja leaves unknown variables alone). They may not
name what we pass ourselves (:data:`RESERVED_TEMPLATE_KWARGS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from toolcall.parsing import CALL_DELIMITERS
from toolcall.prompts import Chat, template_date_kwargs, template_variants

TemplateKwargs = Mapping[str, Any] | None

# What apply_chat_template takes as its own arguments, or hands the template itself (the chat, the
# tools, the generation prompt), and the conversation's date we give dated templates: a switch of
# one of these names would be taken from the caller or silently replace ours.
RESERVED_TEMPLATE_KWARGS = frozenset(
    {
        "conversation",
        "messages",
        "tools",
        "documents",
        "chat_template",
        "add_generation_prompt",
        "continue_final_message",
        "tokenize",
        "padding",
        "truncation",
        "max_length",
        "return_tensors",
        "return_dict",
        "return_assistant_tokens_mask",
        "tokenizer_kwargs",
        *template_date_kwargs([{"role": "user", "content": ""}]),
    }
)


def reserved_template_kwargs(template_kwargs: TemplateKwargs) -> list[str]:
    """The names in ``template_kwargs`` that we pass to ``apply_chat_template`` ourselves, sorted."""
    return sorted(set(template_kwargs or {}) & RESERVED_TEMPLATE_KWARGS)


def _template_arguments(chat: Chat, template_kwargs: TemplateKwargs) -> dict[str, Any]:
    """The keyword arguments every ``apply_chat_template`` of ``chat`` gets: the configured switches
    and the conversation's date (which wins: it is ours)."""
    return {**(template_kwargs or {}), **template_date_kwargs(chat)}


def template_chat(tokenizer: Any, chat: Chat, template_kwargs: TemplateKwargs = None) -> Chat:
    """The form of ``chat`` the tokenizer's chat template renders as a prompt (see :func:`render_prompt`)."""
    return _rendered(tokenizer, chat, template_kwargs)[0]


def render_prompt(tokenizer: Any, chat: Chat, template_kwargs: TemplateKwargs = None) -> str:
    """The prompt text a chat becomes: the tokenizer's chat template plus the assistant header.

    The chat goes to the template as it is when the template takes it, else with consecutive turns
    of one role joined, else also with the system turn folded into the first user turn
    (:func:`toolcall.prompts.template_variants`): templates refuse with ``raise_exception`` (Gemma 2
    has no system role; Mistral and Gemma 3 demand alternating roles, and a tool result is a user
    turn). The first refusal is raised when no form renders. A template that dates its prompt (Llama
    3.x's "Today Date:") gets the conversation's date (:func:`toolcall.prompts.template_date_kwargs`),
    not the machine's clock; every form gets ``template_kwargs`` too.
    """
    return _rendered(tokenizer, chat, template_kwargs)[1]


def _is_template_error(error: BaseException) -> bool:
    """Whether ``error`` is a Jinja ``TemplateError`` (a template's ``raise_exception`` raises one),
    told by its class so that this module needs no jinja2 import."""
    return any(
        cls.__name__ == "TemplateError" and cls.__module__.startswith("jinja2") for cls in type(error).__mro__
    )


def _rendered(tokenizer: Any, chat: Chat, template_kwargs: TemplateKwargs) -> tuple[Chat, str]:
    if not chat:
        raise ValueError("a prompt must hold at least one message")
    arguments = _template_arguments(chat, template_kwargs)
    first: Exception | None = None
    for variant in template_variants(list(chat)):
        try:
            text = tokenizer.apply_chat_template(
                variant, add_generation_prompt=True, tokenize=False, **arguments
            )
        except Exception as error:
            if not _is_template_error(error):
                raise
            first = first or error
            continue
        return variant, str(text)
    assert first is not None
    raise first


# What a template may raise for a chat it does not take (its own raise_exception, or a slip of its
# Jinja code on an unusual message); probing a template's assistant turn must not crash on it.
_TEMPLATE_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, KeyError, IndexError)


def assistant_turn(
    tokenizer: Any, chat: Chat, content: str, template_kwargs: TemplateKwargs = None
) -> str | None:
    """What the model writes for an assistant turn of ``content`` after ``chat``, as its chat template
    renders that turn: everything after the generation prompt up to and including the special token
    that closes the turn (Gemma's ``<end_of_turn>``, Phi's ``<|end|>``, Mistral's leading space and
    ``</s>``, Qwen3's empty ``<think>`` block before the content). None when the template does not
    show it: it raises, leaves the content out, renders the turn's start other than the generation
    prompt, or closes the turn with no special token."""
    try:
        form, prompt = _rendered(tokenizer, chat, template_kwargs)
        full = str(
            tokenizer.apply_chat_template(
                [*form, {"role": "assistant", "content": content}],
                tokenize=False,
                **_template_arguments(chat, template_kwargs),
            )
        )
    except Exception as error:
        if isinstance(error, _TEMPLATE_ERRORS) or _is_template_error(error):
            return None
        raise
    at = full.rfind(content) if content else -1
    if at == -1:
        return None
    opening = _opening(prompt, full[:at], form[-1]["content"].strip())
    closing = _closing(tokenizer, full[at + len(content) :])
    return None if opening is None or closing is None else opening + content + closing


def _opening(prompt: str, before: str, last: str) -> str | None:
    """What the template writes between the generation prompt and the turn's content. ``before`` is
    the history rendered up to the content; it usually starts with the prompt, but a template may
    render earlier turns otherwise once a reply follows (Mistral puts the system text in the *last*
    user turn), so the two are also lined up on the end of the prompt's last message."""
    if before.startswith(prompt):
        return before[len(prompt) :]
    if not last or (mark := prompt.rfind(last)) == -1 or (seen := before.rfind(last)) == -1:
        return None
    header, written = prompt[mark + len(last) :], before[seen + len(last) :]
    return written[len(header) :] if written.startswith(header) else None


def _special_tokens(tokenizer: Any) -> list[str]:
    """The tokenizer's special tokens, the longest first ("<|end|>" before "<|end")."""
    specials = {str(token) for token in tokenizer.all_special_tokens}
    specials.update(token.content for token in tokenizer.added_tokens_decoder.values() if token.special)
    return sorted((token for token in specials if token), key=len, reverse=True)


def _closing(tokenizer: Any, after: str) -> str | None:
    """The start of ``after`` through its first special token, when only whitespace precedes it."""
    rest = after.lstrip()
    for token in _special_tokens(tokenizer):
        if rest.startswith(token):
            return after[: len(after) - len(rest) + len(token)]
    return None


def _token_id(tokenizer: Any, token: str) -> int | None:
    """The id of ``token``, None when the tokenizer does not have it as one token."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    # An unknown token comes back as the unknown token's id (which may be a real end token, too).
    known = isinstance(token_id, int) and tokenizer.convert_ids_to_tokens(token_id) == token
    return int(token_id) if known else None


def turn_end_token(tokenizer: Any, template_kwargs: TemplateKwargs = None) -> int | None:
    """The id of the special token the chat template writes right after an assistant turn's content
    (ChatML's ``<|im_end|>``, Phi's ``<|end|>``, Gemma's ``<end_of_turn>``); None when it writes none."""
    content = "Hello."
    turn = assistant_turn(tokenizer, [{"role": "user", "content": "Hi"}], content, template_kwargs)
    if turn is None:
        return None
    return _token_id(tokenizer, turn[turn.index(content) + len(content) :].strip())


# A call the template is shown to learn how it closes an assistant turn that calls a tool.
_PROBE_FUNCTION = "get_weather"
_PROBE_CALL = {"type": "function", "function": {"name": _PROBE_FUNCTION, "arguments": {"city": "Paris"}}}


def call_turn_end_token(tokenizer: Any, template_kwargs: TemplateKwargs = None) -> int | None:
    """The id of the special token that closes an assistant turn holding a tool call (``tool_calls``),
    as the chat template writes it: gpt-oss's ``<|call|>``, where a text answer ends with
    ``<|return|>``. A model answering in its own call format stops there, and a folder whose
    generation config does not name it would decode past the call into a made-up tool result. None
    when the template refuses or leaves out such a turn, or ends it with no special token or with a
    call delimiter (:data:`toolcall.parsing.CALL_DELIMITERS`: a special ``</tool_call>``), after
    which a completion's next call follows."""
    chat: Chat = [{"role": "user", "content": "Hi"}]
    arguments = _template_arguments(chat, template_kwargs)
    call_turn = {"role": "assistant", "content": "", "tool_calls": [_PROBE_CALL]}
    try:
        prompt = str(
            tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False, **arguments)
        )
        full = str(tokenizer.apply_chat_template([*chat, call_turn], tokenize=False, **arguments))
    except Exception as error:
        if isinstance(error, _TEMPLATE_ERRORS) or _is_template_error(error):
            return None
        raise
    turn = full[len(prompt) :].rstrip() if full.startswith(prompt) else ""
    if _PROBE_FUNCTION not in turn:
        return None
    token = next((token for token in _special_tokens(tokenizer) if turn.endswith(token)), None)
    return None if token is None or token in CALL_DELIMITERS else _token_id(tokenizer, token)


def end_token_ids(
    tokenizer: Any, generation_eos: int | Sequence[int] | None, template_kwargs: TemplateKwargs = None
) -> list[int]:
    """The token ids that end a policy completion, sorted: the tokenizer's EOS, the generation
    config's (``generation_eos``: one id, a list or None), the special token the chat template
    writes right after an assistant turn's content (:func:`turn_end_token`:
    ChatML's ``<|im_end|>``, Phi's ``<|end|>``, Gemma's ``<end_of_turn>``) and the one that closes
    an assistant turn holding a call (:func:`call_turn_end_token`: gpt-oss's ``<|call|>``), which a
    folder without generation_config.json names nowhere else. The probe, the vLLM backend, the CPU
    trainer and verl (its rollouts and our reward manager) all stop, and read a completion as
    finished, at exactly these; the template's turns are rendered with ``template_kwargs``."""
    ends: set[int] = set()
    if isinstance(generation_eos, int):
        ends.add(generation_eos)
    elif generation_eos is not None:
        ends.update(int(token) for token in generation_eos)
    if tokenizer.eos_token_id is not None:
        ends.add(int(tokenizer.eos_token_id))
    for template_end in (
        turn_end_token(tokenizer, template_kwargs),
        call_turn_end_token(tokenizer, template_kwargs),
    ):
        if template_end is not None:
            ends.add(template_end)
    return sorted(ends)


# The tag a reasoning model's trace opens with; Qwen3-Thinking-2507 and QwQ end their generation
# prompt with "<|im_start|>assistant\n<think>\n", DeepSeek-R1's distills with "<｜Assistant｜><think>\n",
# V3.1 in thinking mode with "<｜Assistant｜><think>". Qwen3's hybrid template with thinking off writes
# "<think>\n\n</think>\n\n": a trace opened and closed, so the answer starts at once. ByteDance
# Seed-OSS opens its trace with "<seed:think>" (the parser reads its tags as <think> and </think>).
_TRACE_OPENS = ("<think>", "<seed:think>")


def prompt_opens_trace(prompt: str) -> bool:
    """Whether the rendered generation prompt (:func:`render_prompt`) ends inside a reasoning trace it
    opened: the completion then starts in the trace, with no ``<think>`` of its own, and its answer
    begins only after ``</think>`` (:func:`toolcall.parsing.parse_output`'s ``trace_opened``). Every
    side that renders a policy prompt decides it here: the probe's backends, the CPU GRPO reward, our
    verl reward manager, held-out scoring."""
    return prompt.rstrip().endswith(_TRACE_OPENS)
