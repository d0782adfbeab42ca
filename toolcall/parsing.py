"""Model output -> a typed action: ``<think>`` split off, ``<tool_call>`` blocks read, free text kept.

The paper's format (Figure 7): an optional reasoning trace ``<think>…</think>``, then one or more
``<tool_call>{"name": …, "arguments": {…}}</tool_call>`` blocks, or plain text when no call is right
(a clarification question, "no suitable tool"). OpenAI-style ``tool_calls`` JSON is read too.
An explicit empty call list, ``[]`` alone or where calls are written (a ``<tool_call>`` block, after a
family's call token, in a code fence), is that no-call answer (``empty_call_list``): xLAM's and
SmolLM2's tool prompts ask for it when no tool fits. It carries no words, so its text is the text
outside it (the words after a ``[]`` line that opens the output, bare or fenced: ``[]\nI cannot help``;
calls after it a failure), or none; ToolMatch matches two no-call answers whatever their text (a clarification
label too), as it does labels. An empty block (``<tool_call></tool_call>``) says nothing: a failure.

Repairs are made only where the intent is unambiguous, and every one is reported in
:attr:`ParsedOutput.repairs`: a missing final ``</tool_call>``, a Markdown code fence inside a block,
a control character typed raw into a JSON string (a newline in code), trailing commas, Python
literals (single quotes, ``True``/``None``), ``arguments`` given as a JSON string, ``parameters``
instead of ``arguments``, several JSON objects in one block, and a whole output
that is calls in another family's untagged form (``untagged_calls``: Llama's bare JSON, also after
``<|python_tag|>`` or in Llama 4's ``<|python_start|>…<|python_end|>`` (its Python list too),
Mistral's list after ``[TOOL_CALLS]`` and its ``[TOOL_CALLS]NAME[ARGS]{ARGS}`` per call (a Magistral
``[THINK]`` trace before them read as ``<think>``), Phi-4-mini's and Granite's after ``<|tool_call|>``
or in ``functools[…]``, Granite-20B-FunctionCalling's ``<function_call> {"name": …, "arguments": …}``
per call (nothing after the last; its ``no_function`` alone, what its prompt asks for when no function
fits, is the no-call answer unless a tool has that name, and beside calls a failure), GigaChat 3.1's
after ``<|function_call|>`` and GigaChat 3's after ``<|message_sep|>`` and ``function call<|role_sep|>``,
any of them in a code fence; text before one of these call tokens
kept, as Mistral Small 3.2 and Magistral write a sentence before ``[TOOL_CALLS]`` (a token after text
with no call after it, named in prose, leaves the output text); ``pythonic_calls``:
``[get_weather(city="Paris")]`` (a name no identifier is, ``Market Trends API``, only one of the
sample's tools), and Gemma's ``get_weather(city="Paris")``, bare when it is the whole
output (several as statements, ``get_weather(city="Paris"); get_time(zone="CET")``, as Llama 3.x
writes them after ``<|python_tag|>``), or in a ``tool_code`` fence that ends it (text before the fence kept);
``deepseek_calls``: DeepSeek's tool-call tokens, V3's and R1-0528's ``function<｜tool▁sep｜>NAME`` with
the arguments in a ``json`` fence and V3.1's ``NAME<｜tool▁sep｜>{ARGS}``, text before them kept;
``kimi_calls``: Kimi K2's ``<|tool_call_begin|>functions.NAME:0<|tool_call_argument_begin|>{ARGS}``
in a ``<|tool_calls_section_begin|>`` section (or its singular ``<|tool_call_section_begin|>``), read on
the same rules; ``plamo3_calls``: PLaMo 3's ``<|plamo:begin_tool_request:plamo|>`` calls (a name, then
JSON arguments) in a ``<|plamo:begin_tool_requests:plamo|>`` section, read on the same rules;
Cohere Command A's and R7B's ``<|START_ACTION|>[{"tool_name": …, "parameters": …}]<|END_ACTION|>``
(its ``<|START_THINKING|>`` trace and ``<|START_RESPONSE|>`` answer read as such), and Command-R's
same list in a code fence after ``Action:`` at a line's start (its header ``json``, ``JSON``, ``json JSON``
or none; the fence perhaps on the next line; a plan before it kept as text;
cut off before the closing fence, or text after it, a failure; the list read as one JSON value first,
so a fence or ``<|END_ACTION|>`` inside a string argument is data); an action of Cohere's
``directly_answer`` alone is a text answer, the text after it (Command A's ``<|START_RESPONSE|>``,
Command-R's ``Answer:`` line, else its ``Grounded answer:``, else the text), none if nothing follows;
``directly_answer`` beside calls is a failure;
``harmony``: gpt-oss's raw completion, a message to ``functions.NAME`` a call with its JSON arguments,
the ``analysis`` channel the trace, the ``final`` channel the answer (read as any output, so its
``<tool_call>`` blocks are calls: gpt-oss's template writes a label's turn there); ``xml_arguments``: a
``<tool_call>`` block holding Qwen3-Coder's ``<function=NAME><parameter=P>VALUE</parameter>`` or
GLM-4.5's ``NAME<arg_key>P</arg_key><arg_value>VALUE</arg_value>``, each value typed by the tool's
schema, given as ``tools``: a value that may be a string or not, with no schema to say, is a failure);
the same ``<function=NAME><parameter=P>`` calls without their ``<tool_call>`` tags, one after another
(``untagged_calls``; text before them kept, after them or a call cut off a failure);
a ``<tool_call>`` block holding Python calls (``get_weather(city="Paris")`` or a list of them) reads
them as ``pythonic_calls``; another family's own call tags read as ``<tool_call>`` blocks:
``seed_calls``, ByteDance Seed-OSS's
``<seed:tool_call>`` around Qwen3-Coder's XML (its ``<seed:think>`` trace read as ``<think>``);
``nemotron_calls``, Nemotron's ``<TOOLCALL>[{"name": …, "arguments": …}, …]</TOOLCALL>``;
``tool_calls_list``, Hunyuan-A13B's and Jamba's ``<tool_calls>[…]</tool_calls>`` (Hunyuan's
``<answer>`` wrapper read as Cohere's); ``hy_calls``, Tencent Hy3's and Hy4's ``<tool_calls>`` around
``<tool_call>`` blocks (the wrapper dropped, cut off before its end a failure), each GLM-4.5's form
with Hy3's ``<tool_sep>`` after the name (MBZUAI K2's the same with ``ifm|`` in every tag);
``minimax_calls``, MiniMax-M1's ``<tool_calls>`` of JSON
calls one a line and MiniMax-M2's ``<minimax:tool_call>`` of ``<invoke name="NAME"><parameter
name="P">VALUE</parameter></invoke>`` (values typed as Qwen3-Coder's), either cut off before its
closing tag a failure (more calls may have followed); ``function_calls``, the same ``<invoke>`` calls
in Claude-style ``<function_calls>`` tags, read alike (OLMo 3's Python calls there, one a line, too);
``dots_calls``, dots.llm's ``<dots_function_call>`` around such calls or a JSON call;
``qwen25_coder_calls``, Qwen2.5-Coder's JSON call in ``<tools>`` tags; ``step_audio_calls``,
Step-Audio 2's ``<tool_call>function\nNAME\n{ARGS}</tool_call>``; ``solar_calls``, Solar Open 2's
``<|tool_call:start|>NAME<|tool_arg:start|>P<|tool_arg:value|>VALUE<|tool_arg:end|><|tool_call:end|>``,
GLM-4.5's form in its own tokens (its ``<|think:start|>`` trace read as ``<think>``);
``minicpm_calls``, MiniCPM-5's untagged ``<function name="NAME"><param name="P">VALUE</param></function>``
calls amid text, read as ``<invoke>`` calls in ``<tool_call>`` blocks (one not closed a failure);
``dsml_calls``, DeepSeek-V3.2's DSML, the same calls with ``｜DSML｜`` in every tag
(``<｜DSML｜function_calls>``) and each parameter's ``string="true"`` (its text) or ``"false"`` (JSON)
typing it, schema or not (DeepSeek-V4's in ``<｜DSML｜tool_calls>`` tags; ``gcml_calls``, GigaChat 3.5's
with ``｜GCML｜`` for ``｜DSML｜``); ``step3_calls``, StepFun
Step-3's ``<｜tool_calls_begin｜>`` section of
``<｜tool_call_begin｜>function<｜tool_sep｜>`` calls, each an ``<invoke>`` with ``steptml:`` in its tags
(values typed by the schema), cut off before ``<｜tool_calls_end｜>`` a failure;
``functiongemma_calls``, Google FunctionGemma's
``<start_function_call>call:NAME{KEY:VALUE,…}<end_function_call>`` per call, a string between
``<escape>`` tokens and any other value bare (``3``, ``true``, ``null``) or in braces or brackets,
typed as written (a bare word, or a name with no ``{…}`` after it, a failure); ``gemma4_calls``,
Gemma 4's same calls in ``<|tool_call>…<tool_call|>``, a string between ``<|"|>`` tokens;
``longcat_calls``, Meituan LongCat's ``<longcat_tool_call>`` around a JSON call or GLM-4.5's form in
``longcat_``-prefixed tags;
``apertus_calls``, Apertus's ``<|tools_prefix|>[{NAME: {ARGS}}, …]<|tools_suffix|>`` (such a list read
in any block); ``lfm2_calls``, Liquid LFM2's ``<|tool_call_start|>[…]<|tool_call_end|>`` around a
Python (or JSON) call list; ``internlm_calls``, InternLM2's
``<|action_start|><|plugin|>`` before a ``{"name": …, "parameters": …}`` call and ``<|action_end|>``
(an output ending inside that two-token opening was cut off: a failure; its ``<|interpreter|>`` code
is not read, a failure). An opening tag followed by no call (named in prose) is text.
``function_tag_calls``: Llama 3.1's custom-tool form that Functionary v3.1 writes,
``<function=NAME>{ARGS}</function>`` per call (text before them kept); ``functionary_messages``:
Functionary v3.2's completion of a prompt ending in ``>>>``, a line ``all`` then text, or a function's
name then its JSON arguments (with the sample's ``tools`` known, one of theirs unless the output wrote
``>>>`` first: ``json`` over an object is a text answer's), each further message after ``>>>``.
Anything else that looks like a call but does not read as one (a call amid text without tags (a JSON
call object, a Python call list on a line of its own, or a bare Python call of one of the sample's tools
on a line of its own outside a code fence), an
untagged call (JSON, a Python list, Gemma's) cut off before its first bracket or ``tool_code`` fence closed, a
call object under other keys such as ``{"function": …, "args": {…}}``, a call whose JSON (or Python
literal) gives a key twice (``json.loads`` would keep the last: a guess), a
DeepSeek or Kimi block cut off before its end token, a harmony completion whose analysis never ended
or that came with no final answer, calls drafted in a ``<think>`` trace that never closed and goes on
after them, any output that never closed the trace its chat template opened in the prompt:
``trace_opened``) is a parse failure with the reason, never a guess, and never a plain-text answer.

Pure: no I/O, and :func:`parse_output` never raises on any input text.
"""

from __future__ import annotations

import ast
import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from toolcall.harmony import harmony_answer, harmony_messages
from toolcall.pytypes import TypeExpressionError, parse_python_calls
from toolcall.rules import json_type_of, type_accepts
from toolcall.specs import ToolSpec
from toolcall.types import Action, ToolCall

OutputKind = Literal["calls", "text", "error"]

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?\s*```(.*)$", re.DOTALL)
# How other model families start an untagged call (the tokens survive a decode that keeps specials).
_FOREIGN_OPEN, _FOREIGN_CLOSE = "<|tool_call|>", "<|/tool_call|>"  # Phi-4-mini closes it, Granite not
_MISTRAL_CALLS = "[TOOL_CALLS]"
# Phi-4-mini as vLLM's phi4_mini_json parser reads it: functools[{"name": ..., "arguments": ...}, ...].
_PHI_FUNCTOOLS = "functools["
# Llama 4 may wrap its calls (a Python list, or JSON) in <|python_start|>...<|python_end|>.
_PYTHON_START, _PYTHON_END = "<|python_start|>", "<|python_end|>"
# IBM's Granite-20B-FunctionCalling: '<function_call> {"name": ..., "arguments": ...}' per call, no
# closing tag (as BFCL's Granite handler reads it).
_GRANITE_CALL = "<function_call>"
# Its prompt asks for '<function_call> {"name": "no_function", "arguments": {}}' when no function fits or
# the question lacks a required value: the no-call answer, unless a sample offers a tool of that name.
_GRANITE_NO_FUNCTION = "no_function"
# Sber's GigaChat 3.1 writes '<|function_call|>{"name": ..., "arguments": ...}' after its text; GigaChat 3
# ends the text message and opens a "function call" one: '<|message_sep|>\n\nfunction call<|role_sep|>\n'
# (read as 3.1's token).
_GIGACHAT_CALL = "<|function_call|>"
_GIGACHAT3_CALL = re.compile(r"(?:<\|message_sep\|>\s*)?function call<\|role_sep\|>")
_FOREIGN_PREFIXES = (
    "<|python_tag|>",
    _PYTHON_START,
    _MISTRAL_CALLS,
    _FOREIGN_OPEN,
    _GRANITE_CALL,
    _GIGACHAT_CALL,
)
# Mistral's tokenizers from v11 on (Mistral Small 3.1+, Magistral, Devstral) write each call as
# [TOOL_CALLS]NAME[ARGS]{ARGS} (v11: [CALL_ID]ID before [ARGS]; [ARGS] is gone when a server decoded
# without special tokens), and a trace as [THINK]...[/THINK].
_MISTRAL_HEAD = re.compile(r"\s*([A-Za-z_][\w.\-]*)\s*(?:\[CALL_ID\]\s*[A-Za-z0-9]*\s*)?(?:\[ARGS\])?\s*")
# Other families' trace tokens (opening, closing), read as <think> and </think> here and by the judge's
# and verifier's answer reading (toolcall.verdicts).
TRACE_TOKEN_PAIRS: tuple[tuple[str, str], ...] = (
    ("[THINK]", "[/THINK]"),  # Magistral
    ("<|START_THINKING|>", "<|END_THINKING|>"),  # Cohere Command A / R7B
    ("<seed:think>", "</seed:think>"),  # ByteDance Seed-OSS
    ("◁think▷", "◁/think▷"),  # Moonshot's Kimi thinking models (Kimi-VL-Thinking, k1.5)
    ("<scratch_pad>", "</scratch_pad>"),  # Nous Hermes 3 and 4, planning before their <tool_call>s
    ("<|think:start|>", "<|think:end|>"),  # Upstage Solar Open 2
    ("<|plamo:begin_think:plamo|>", "<|plamo:end_think:plamo|>"),  # PLaMo 3
)
# Each token and the tag it reads as (the policy parser, strip_reasoning of LLM-role answers).
TRACE_TOKENS = {
    token: tag for pair in TRACE_TOKEN_PAIRS for token, tag in zip(pair, ("<think>", "</think>"), strict=True)
}
# Cohere Command A / R7B: calls as <|START_ACTION|>[{"tool_call_id": "0", "tool_name": NAME,
# "parameters": {ARGS}}, ...]<|END_ACTION|>, an answer in <|START_RESPONSE|>...<|END_RESPONSE|> (or
# <|START_TEXT|>...<|END_TEXT|>).
_COHERE_ACTION, _COHERE_ACTION_END = "<|START_ACTION|>", "<|END_ACTION|>"
_COHERE_ANSWER = re.compile(r"^<\|START_(RESPONSE|TEXT)\|>(.*?)(?:<\|END_\1\|>)?$", re.DOTALL)
# Hunyuan-A13B writes its answer, text or calls, in <answer>...</answer> after its <think> trace, and
# ERNIE-4.5's thinking models a text answer in <response>...</response>.
_TAGGED_ANSWER = re.compile(r"^<(answer|response)>(.*?)(?:</\1>)?$", re.DOTALL)
_COHERE_CALL_KEYS = {"tool_call_id", "tool_name", "parameters"}
# Cohere's older Command-R writes the same list as 'Action: ```json\n[{"tool_name": NAME, "parameters":
# {ARGS}}, ...]\n```' at the start of a line (a "Plan:" line may come before it in multi-step use). The
# fence's header line varies in what it writes ("```JSON", "```json JSON", "``` json"), and the fence may
# open on the line after "Action:": the list after it says what it is.
_COMMAND_R_ACTION = re.compile(r"(?:\A|\n)[ \t]*Action:\s*```[\w \t.+-]*\s*(?=[\[{])")
_COMMAND_R_ACTION_END = "```"
# Cohere's tool-use prompts offer a "directly_answer" tool: choosing it alone means "answer in text"
# (Command-R then writes "Relevant Documents: …", "Answer: …", "Grounded answer: …"), never a call.
_DIRECTLY_ANSWER = "directly_answer"
_COMMAND_R_ANSWER = re.compile(
    r"^[ \t]*Answer:[ \t]*(.*?)(?=^[ \t]*Grounded answer:|\Z)", re.DOTALL | re.MULTILINE
)
_COMMAND_R_GROUNDED_ANSWER = re.compile(r"^[ \t]*Grounded answer:[ \t]*(.*)", re.DOTALL | re.MULTILINE)
# Call markers of formats the loop does not read: named in the parse failure (a <function=NAME> tag
# with no JSON after it, nor in <tool_call> tags as Qwen3-Coder's: an untagged or cut-off call).
# Meta's CWM writes '<tool: function>\nterminal CMD\n</tool>', a tool's raw text input (not read: whose
# parameter it fills is the tool's own convention).
_FOREIGN_MARKERS = {
    "<function=": "Llama",
    "<|action_start|><|interpreter|>": "InternLM code-interpreter",
    "<tool: function>": "CWM",
}
# Llama 3.1's custom-tool form, which Functionary v3.1 writes: <function=NAME>{ARGS}</function> per call.
_FUNCTION_TAG = re.compile(r"<function=([^>\n]+)>")
_FUNCTION_END = "</function>"
# Functionary v3.2: the generation prompt ends with ">>>", so an output opens with a recipient line,
# "all" before text for the user or a function's name before its JSON arguments; every further message
# starts ">>>RECIPIENT" and a newline. A python tool's raw code is not read (a failure).
_V32_PROMPT, _V32_TEXT = ">>>", "all"
_V32_RECIPIENT = re.compile(r"([A-Za-z_][\w.\-]*)[ \t]*\n")
_V32_NEXT = re.compile(r">>>(?=[A-Za-z_][\w.\-]*[ \t]*\n)")
_V32_CUT_OFF = re.compile(r">>>[\w.\-]*[ \t]*\Z")  # the output ends inside a recipient line
# DeepSeek's tool-call tokens (V3, R1-0528, V3.1), written with fullwidth bars and "▁" as its tokenizer
# has them: <｜tool▁calls▁begin｜> (<｜tool▁call▁begin｜> HEAD <｜tool▁sep｜> REST <｜tool▁call▁end｜>)+
# <｜tool▁calls▁end｜>. V3 writes HEAD "function" (the call's type) and REST the name, a newline and the
# arguments in a json fence; V3.1 writes HEAD the name and REST the arguments.
_DS_CALLS_BEGIN, _DS_CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
_DS_CALL_BEGIN, _DS_CALL_END = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>"
_DS_SEP = "<｜tool▁sep｜>"
# V3's REST up to its arguments: a name on its own line, then the fence's opening line.
_DS_V3_NAME = re.compile(r"[ \t]*([^\n]+?)[ \t]*\n[ \t]*```[A-Za-z]*[ \t]*\n")
_DS_V3_TYPE = "function"


@dataclass(frozen=True)
class _CallTokens:
    """A family that writes its calls in special tokens: a section of calls, each a head (the
    function's name or id), a separator, then its JSON arguments."""

    family: str
    calls_begin: str
    calls_end: str
    call_begin: str
    call_end: str
    sep: str
    repair: str
    head_name: re.Pattern[str]  # the function's name in a call's head (group "name")
    # Other spellings of its tokens the family writes (written, read as), replaced before reading.
    variants: tuple[tuple[str, str], ...] = ()

    @property
    def tokens(self) -> tuple[str, ...]:
        written = tuple(variant for variant, _ in self.variants)
        return (self.calls_begin, self.calls_end, self.call_begin, self.call_end, self.sep, *written)


_DEEPSEEK = _CallTokens(
    "DeepSeek",
    _DS_CALLS_BEGIN,
    _DS_CALLS_END,
    _DS_CALL_BEGIN,
    _DS_CALL_END,
    _DS_SEP,
    "deepseek_calls",
    re.compile(r"(?P<name>.*)", re.DOTALL),
)
# Kimi K2: <|tool_calls_section_begin|> (<|tool_call_begin|> functions.NAME:INDEX
# <|tool_call_argument_begin|> {ARGS} <|tool_call_end|>)+ <|tool_calls_section_end|>; the id's
# "functions." and ":INDEX" are no part of the name. It also writes the section tokens singular,
# <|tool_call_section_begin|> (vLLM's kimi_k2 parser reads both).
_KIMI = _CallTokens(
    "Kimi K2",
    "<|tool_calls_section_begin|>",
    "<|tool_calls_section_end|>",
    "<|tool_call_begin|>",
    "<|tool_call_end|>",
    "<|tool_call_argument_begin|>",
    "kimi_calls",
    re.compile(r"(?:functions\.)?(?P<name>.*?)(?::\d+)?", re.DOTALL),
    (
        ("<|tool_call_section_begin|>", "<|tool_calls_section_begin|>"),
        ("<|tool_call_section_end|>", "<|tool_calls_section_end|>"),
    ),
)


# PLaMo 3 (vLLM's plamo3 parser), each tag written "<|plamo:NAME:plamo|>": <|plamo:begin_tool_requests:plamo|>
# (<|plamo:begin_tool_request:plamo|><|plamo:begin_tool_name:plamo|>NAME<|plamo:end_tool_name:plamo|>
# <|plamo:begin_tool_arguments:plamo|><|plamo:constrain|>json<|plamo:msg|>{ARGS}
# <|plamo:end_tool_arguments:plamo|><|plamo:end_tool_request:plamo|>)+ <|plamo:end_tool_requests:plamo|>.
def _plamo(name: str) -> str:
    return f"<|plamo:{name}:plamo|>"


_PLAMO3 = _CallTokens(
    "PLaMo 3",
    _plamo("begin_tool_requests"),
    _plamo("end_tool_requests"),
    _plamo("begin_tool_request") + _plamo("begin_tool_name"),
    _plamo("end_tool_arguments") + _plamo("end_tool_request"),
    _plamo("end_tool_name") + _plamo("begin_tool_arguments") + "<|plamo:constrain|>json<|plamo:msg|>",
    "plamo3_calls",
    re.compile(r"(?P<name>.*)", re.DOTALL),
)
_TOKEN_FAMILIES = (_DEEPSEEK, _KIMI, _PLAMO3)


@dataclass(frozen=True)
class _CallTags:
    """A family that wraps its calls in tags of its own where the paper writes ``<tool_call>``: its
    blocks are read as ``<tool_call>`` blocks (their content in any form a block holds)."""

    family: str
    opening: str
    closing: str
    # What a block's content starts with: an opening tag followed by anything else names the tag in
    # prose, and stays text. Nothing after it is a block cut off at the end.
    content: re.Pattern[str]
    # A block may hold several calls: one without its closing tag may have been cut off before more.
    many_calls: bool
    repair: str
    # The first of the tokens an opening is written in, when it is more than one: an output ending on
    # it was cut off inside the opening, a block with nothing in it (never text).
    first_token: str = ""
    # Its tags wrap <tool_call> blocks (the calls' own tags), not calls: they are dropped.
    holds_blocks: bool = False


# ByteDance Seed-OSS: <seed:tool_call><function=NAME><parameter=P>VALUE</parameter></function>
# </seed:tool_call> per call, Qwen3-Coder's XML arguments in its own tags.
_SEED = _CallTags(
    "Seed-OSS",
    "<seed:tool_call>",
    "</seed:tool_call>",
    re.compile(r"\s*(?:<function=|\Z)"),
    False,
    "seed_calls",
)
# NVIDIA Nemotron (Llama-Nemotron, Nemotron-Nano): <TOOLCALL>[{"name": ..., "arguments": ...}, ...]
# </TOOLCALL>, all calls in one JSON list, whose own end says whether it was cut off (Nemotron-Nano-v2
# may write one call object without the list).
_NEMOTRON = _CallTags(
    "Nemotron", "<TOOLCALL>", "</TOOLCALL>", re.compile(r"\s*(?:[\[{]|\Z)"), False, "nemotron_calls"
)
# MiniMax-M1: <tool_calls>\n{"name": ..., "arguments": ...}\n...</tool_calls>, one JSON call a line;
# MiniMax-M2: <minimax:tool_call><invoke name="NAME"><parameter name="P">VALUE</parameter>...</invoke>
# ...</minimax:tool_call>, XML arguments typed by the tool's schema as Qwen3-Coder's are.
_MINIMAX_M1 = _CallTags(
    "MiniMax-M1", "<tool_calls>", "</tool_calls>", re.compile(r"\s*(?:\{|\Z)"), True, "minimax_calls"
)
_MINIMAX_M2 = _CallTags(
    "MiniMax-M2",
    "<minimax:tool_call>",
    "</minimax:tool_call>",
    re.compile(r"\s*(?:<invoke\b|\Z)"),
    True,
    "minimax_calls",
)
# Claude-style: <function_calls><invoke name="NAME"><parameter name="P">VALUE</parameter>...</invoke>...
# </function_calls>, MiniMax-M2's <invoke> calls in other tags (values typed by the tool's schema);
# OLMo 3 writes Python calls in the same tags, one a line: <function_calls>\nNAME(P=VALUE)\n...
_CLAUDE = _CallTags(
    "Claude-style",
    "<function_calls>",
    "</function_calls>",
    re.compile(r"\s*(?:<invoke\b|[A-Za-z_][\w.]*\((?:\s*\)|\s*[A-Za-z_]\w*\s*=)|\Z)"),
    True,
    "function_calls",
)
# Rednote's dots.llm: <dots_function_call><invoke name="NAME"><parameter name="P">VALUE</parameter>
# </invoke>...</dots_function_call> (MiniMax-M2's calls, values typed by the tool's schema), or a JSON call.
_DOTS = _CallTags(
    "dots.llm",
    "<dots_function_call>",
    "</dots_function_call>",
    re.compile(r"\s*(?:<invoke\b|\{|\Z)"),
    True,
    "dots_calls",
)
# MiniCPM-5 writes each call untagged, amid text: <function name="NAME"><param name="P">VALUE</param>...
# </function> (vLLM's minicpm5 parser), a value perhaps in <![CDATA[...]]>; read as MiniMax-M2's <invoke>.
_MINICPM_FUNCTION = re.compile(r'<function name="([^"\n<>]+)">(?=\s*(?:<param name=|</function>))')
_MINICPM_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)
# MBZUAI's K2 (vLLM's k2_horizon parser) writes Hy3's wrapper and blocks with "ifm|" in every tag:
# <ifm|tool_calls><ifm|tool_call>NAME<ifm|arg_key>P</ifm|arg_key><ifm|arg_value>V</ifm|arg_value>
# </ifm|tool_call></ifm|tool_calls> (GLM's form, or a JSON call): read without the mark.
_IFM_TAG = re.compile(r"<(/?)ifm\|(tool_calls|tool_call|arg_key|arg_value)>")
# StepFun's Step-Audio 2 writes a block's call as three parts, one a line: its type "function", the name,
# and the JSON arguments (<tool_call>function\nNAME\n{ARGS}</tool_call>, vLLM's step_audio_2 parser).
_TYPED_CALL = re.compile(r"function[ \t]*\n[ \t]*([A-Za-z_][\w.\-]*)[ \t]*\n(\s*\{.*)", re.DOTALL)
# Upstage Solar Open 2: <|tool_call:start|>NAME\n<|tool_arg:start|>P<|tool_arg:value|>VALUE<|tool_arg:end|>...
# <|tool_call:end|> per call: GLM-4.5's form in its own tokens (values typed by the tool's schema).
_SOLAR_ARGUMENT_TOKENS = (
    ("<|tool_arg:start|>", "<arg_key>"),
    ("<|tool_arg:value|>", "</arg_key><arg_value>"),
    ("<|tool_arg:end|>", "</arg_value>"),
)
_SOLAR = _CallTags(
    "Solar Open 2",
    "<|tool_call:start|>",
    "<|tool_call:end|>",
    re.compile(r"\s*(?:[A-Za-z_][\w.\-]*\s*(?:<\|tool_arg:start\|>|<\|tool_call:end\|>)|\Z)"),
    False,
    "solar_calls",
)
# Qwen2.5-Coder writes a JSON call in the <tools> tags its prompt lists the tools in (vLLM's qwen2_5_coder
# parser): <tools>{"name": ..., "arguments": ...}</tools> per call.
_QWEN25_CODER = _CallTags(
    "Qwen2.5-Coder", "<tools>", "</tools>", re.compile(r"\s*\{"), False, "qwen25_coder_calls"
)
# Tencent Hunyuan-A13B and AI21 Jamba: <tool_calls>[{"name": ..., "arguments": ...}, ...]</tool_calls>,
# MiniMax-M1's tags around one JSON list (whose own end says whether it was cut off).
_TOOL_CALLS_LIST = _CallTags(
    "Hunyuan/Jamba", "<tool_calls>", "</tool_calls>", re.compile(r"\s*\["), False, "tool_calls_list"
)
# Tencent Hy3 / Hy4 (Hunyuan's successors): <tool_calls><tool_call>NAME<tool_sep><arg_key>P</arg_key>
# <arg_value>VALUE</arg_value>...</tool_call>...</tool_calls>, GLM-4.5's calls (Hy4 without <tool_sep>) in
# <tool_call> blocks wrapped in <tool_calls>.
_HY_SEP = "<tool_sep>"
_HY_CALL_NAME = re.compile(rf"([A-Za-z_][\w.\-]*)\s*{_HY_SEP}")
_HY_WRAPPER = _CallTags(
    "Hy3",
    "<tool_calls>",
    "</tool_calls>",
    re.compile(rf"\s*{_OPEN}"),
    True,
    "hy_calls",
    holds_blocks=True,
)
# InternLM2 / 2.5: text, then <|action_start|><|plugin|>\n{"name": ..., "parameters": ...}<|action_end|>,
# one call a block (lmdeploy's internlm2 parser); <|action_start|><|interpreter|> is code, not read.
_INTERNLM_ACTION, _INTERNLM_PLUGIN, _INTERNLM_END = "<|action_start|>", "<|plugin|>", "<|action_end|>"
_INTERNLM = _CallTags(
    "InternLM2",
    _INTERNLM_ACTION + _INTERNLM_PLUGIN,
    _INTERNLM_END,
    re.compile(r"\s*(?:\{|\Z)"),
    False,
    "internlm_calls",
    first_token=_INTERNLM_ACTION,
)
# DeepSeek-V3.2's DSML: the Claude-style calls with "｜DSML｜" in every tag, <｜DSML｜function_calls>
# <｜DSML｜invoke name="NAME"><｜DSML｜parameter name="P" string="true|false">VALUE</｜DSML｜parameter>...
# </｜DSML｜invoke>...</｜DSML｜function_calls>; string="false" says the value is JSON, "true" raw text.
_DSML_MARK = "｜DSML｜"
_DSML = _CallTags(
    "DeepSeek-V3.2",
    f"<{_DSML_MARK}function_calls>",
    f"</{_DSML_MARK}function_calls>",
    re.compile(rf"\s*(?:<{_DSML_MARK}invoke\b|\Z)"),
    True,
    "dsml_calls",
)
# Sber's GigaChat 3.5 writes the same calls with "｜GCML｜" where DSML writes "｜DSML｜", in
# <｜GCML｜tool_calls>…</｜GCML｜tool_calls> (vLLM's gigachat35 parser).
_GCML_MARK = "｜GCML｜"
_GCML = _CallTags(
    "GigaChat 3.5",
    f"<{_GCML_MARK}tool_calls>",
    f"</{_GCML_MARK}tool_calls>",
    re.compile(rf"\s*(?:<{_GCML_MARK}invoke\b|\Z)"),
    True,
    "gcml_calls",
)
# DeepSeek-V4 keeps V3.2's DSML calls but wraps them in <｜DSML｜tool_calls>…</｜DSML｜tool_calls>.
_DSML_V4 = _CallTags(
    "DeepSeek-V4",
    f"<{_DSML_MARK}tool_calls>",
    f"</{_DSML_MARK}tool_calls>",
    _DSML.content,
    True,
    "dsml_calls",
)
# StepFun's Step-3: <｜tool_calls_begin｜> (<｜tool_call_begin｜>function<｜tool_sep｜><steptml:invoke
# name="NAME"><steptml:parameter name="P">VALUE</steptml:parameter>...</steptml:invoke><｜tool_call_end｜>)+
# <｜tool_calls_end｜>: DeepSeek's layout in its own tokens (plain "_", no "▁"), each call MiniMax-M2's
# <invoke> with "steptml:" in its tags (values typed by the tool's schema).
_STEP3_MARK = "steptml:"
_STEP3_CALL_BEGIN, _STEP3_CALL_END, _STEP3_SEP = (
    "<｜tool_call_begin｜>",
    "<｜tool_call_end｜>",
    "<｜tool_sep｜>",
)
_STEP3_CALL = re.compile(
    rf"\s*{_STEP3_CALL_BEGIN}\s*(?P<type>[^<]*?)\s*{_STEP3_SEP}(?P<invoke>.*?){_STEP3_CALL_END}\s*", re.DOTALL
)
_STEP3 = _CallTags(
    "Step-3",
    "<｜tool_calls_begin｜>",
    "<｜tool_calls_end｜>",
    re.compile(rf"\s*(?:{_STEP3_CALL_BEGIN}|\Z)"),
    True,
    "step3_calls",
)
# Google's FunctionGemma: <start_function_call>call:NAME{KEY:VALUE,...}<end_function_call> per call, a
# string written <escape>TEXT<escape>, any other value bare (3, true, null) or as {…} or […] of values.
_GEMMA_CALL, _GEMMA_ESCAPE = "call:", "<escape>"
_FUNCTIONGEMMA = _CallTags(
    "FunctionGemma",
    "<start_function_call>",
    "<end_function_call>",
    re.compile(rf"\s*(?:{_GEMMA_CALL}|\Z)"),
    False,
    "functiongemma_calls",
)
# Google's Gemma 4: FunctionGemma's calls in its own tokens, <|tool_call>call:NAME{KEY:VALUE,...}<tool_call|>
# per call, a string written <|"|>TEXT<|"|> (where FunctionGemma writes <escape>).
_GEMMA4_QUOTE = '<|"|>'
_GEMMA4 = _CallTags(
    "Gemma 4",
    "<|tool_call>",
    "<tool_call|>",
    re.compile(rf"\s*(?:{_GEMMA_CALL}|\Z)"),
    False,
    "gemma4_calls",
)
# Meituan's LongCat: <longcat_tool_call>{"name": ..., "arguments": ...}</longcat_tool_call> (Flash), or
# NAME<longcat_arg_key>P</longcat_arg_key><longcat_arg_value>VALUE</longcat_arg_value>… (GLM's form,
# values typed by the tool's schema), one call a block.
_LONGCAT = _CallTags(
    "LongCat",
    "<longcat_tool_call>",
    "</longcat_tool_call>",
    re.compile(r"\s*(?:\{|[A-Za-z_][\w.\-]*\s*(?:<longcat_arg_key>|</longcat_tool_call>)|\Z)"),
    False,
    "longcat_calls",
)
# Liquid LFM2: <|tool_call_start|>[NAME(P=VALUE), ...]<|tool_call_end|> (or a JSON list of calls), its
# closing token Kimi K2's call-end token too: read here first, so no Kimi reading sees it.
_LFM2 = _CallTags(
    "LFM2", "<|tool_call_start|>", "<|tool_call_end|>", re.compile(r"\s*(?:\[|\Z)"), False, "lfm2_calls"
)
# Swiss AI's Apertus: <|tools_prefix|>[{NAME: {ARGS}}, ...]<|tools_suffix|>, each call keyed by its name.
_APERTUS = _CallTags(
    "Apertus", "<|tools_prefix|>", "<|tools_suffix|>", re.compile(r"\s*(?:\[|\Z)"), False, "apertus_calls"
)
_TAG_FAMILIES = (
    _SEED,
    _NEMOTRON,
    _MINIMAX_M1,
    _MINIMAX_M2,
    _CLAUDE,
    _DSML,
    _DSML_V4,
    _GCML,
    _STEP3,
    _TOOL_CALLS_LIST,
    _HY_WRAPPER,
    _DOTS,
    _QWEN25_CODER,
    _SOLAR,
    _INTERNLM,
    _FUNCTIONGEMMA,
    _GEMMA4,
    _LONGCAT,
    _LFM2,
    _APERTUS,
)
# The tags and tokens that delimit calls inside an output, ours and other families': a chat template
# may end a call turn with one (a tokenizer may mark </tool_call> special, and GLM-style templates
# write no end token after a call), but a completion goes on after it, to its next call.
CALL_DELIMITERS: frozenset[str] = frozenset(
    {
        _OPEN,
        _CLOSE,
        _FOREIGN_OPEN,
        _FOREIGN_CLOSE,
        _MISTRAL_CALLS,
        _COHERE_ACTION,
        _COHERE_ACTION_END,
        *(token for family in _TOKEN_FAMILIES for token in family.tokens),
        *(tag for tags in _TAG_FAMILIES for tag in (tags.opening, tags.closing)),
        _INTERNLM_ACTION,
        _INTERNLM_PLUGIN,
        _STEP3_CALL_BEGIN,
        _STEP3_CALL_END,
        _STEP3_SEP,
        *(token for token, _ in _SOLAR_ARGUMENT_TOKENS),
    }
)
_CALL_KEYS = {"name", "arguments", "parameters", "id", "type"}
# Keys a call object is written with, by the formats read and by others (ReAct's "action" and
# "action_input", "tool"/"tool_input", "function"/"args"): an object of a name and its arguments
# under other keys is a call the loop does not read, never a text answer.
_NAME_KEYS = frozenset({"name", "function", "function_name", "tool", "tool_name", "action", "api_name"})
_ARGUMENT_KEYS = frozenset(
    {"arguments", "parameters", "args", "params", "kwargs", "input", "tool_input", "action_input"}
)
_EMBEDDED_CALL = re.compile(
    r"""[{]\s*["'](?:""" + "|".join(sorted(_NAME_KEYS | _ARGUMENT_KEYS)) + r""")["']\s*:"""
)
_PYTHONIC = re.compile(r"^\[\s*[A-Za-z_][\w.]*\s*\(.*\)\s*,?\s*\]$", re.DOTALL)  # Python allows a last ","
# A call list opened by a name no identifier is: a call only when it is one of the sample's tools
# (ToolACE's may hold spaces or hyphens: "Market Trends API", "get-weather"); prose otherwise.
_PYTHONIC_TOOL_NAME = re.compile(
    r"^\[\s*([A-Za-z_][\w.\-]*(?:[ \t]+\w[\w.\-]*)*)\s*\(.*\)\s*,?\s*\]$", re.DOTALL
)
_PYTHONIC_LINE = re.compile(
    r"^[ \t]*(\[[ \t]*[A-Za-z_][\w.]*[ \t]*\(.*\)[ \t]*,?[ \t]*\])[ \t]*$", re.MULTILINE
)
# A bare Python call on a line of its own (group 2 its name).
_BARE_CALL_LINE = re.compile(r"^[ \t]*(([A-Za-z_][\w.]*)[ \t]*\(.*\))[ \t]*$", re.MULTILINE)
_FENCED_CODE = re.compile(r"```.*?```", re.DOTALL)
# How an output that is nothing but calls opens: a JSON call object (alone or first in a list), a Python
# call list, or a lone Python call with its first keyword argument (prose "f(x) = …" gives none).
_CALL_START = re.compile(
    r"(?:\[\s*)?"
    + _EMBEDDED_CALL.pattern
    + r"|\[\s*[A-Za-z_][\w.]*\s*\(|[A-Za-z_][\w.]*\((?:\s*[^\W\d][\w-]*\s*=(?!=)|\s*$)"
)
# A code fence's opening line, for an output cut off before the fence closed.
_OPENING_FENCE = re.compile(r"```([\w.+-]*)[ \t]*\n")
# One call without the list brackets (Gemma): a name glued to its "(", the call the whole content.
_CALL_NAME = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")
_BARE_CALL = re.compile(r"^[A-Za-z_][\w.]*\(.*\)$", re.DOTALL)
_TOOL_CODE_FENCE = re.compile(r"^```tool_code[ \t]*\n(.*?)\n?\s*```$", re.DOTALL)
# What opens calls after text: a family's call token, or Gemma's tool_code fence at a line's start.
_CALL_OPENINGS = (*_FOREIGN_PREFIXES, "\n```tool_code")
# What follows such an opening when it opens calls: a list or object, a name before its arguments
# (Mistral's [ARGS], a "(" or "{"), or nothing (cut off there); anything else names it in prose.
_OPENS_A_CALL = re.compile(r"\s*(?:[\[{]|[A-Za-z_][\w.\-]*\s*(?:\[ARGS\]|\[CALL_ID\]|[({])|\Z)")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
# An explicit empty call list on the first line of an output, words after it ("[]\nI cannot help."):
# the no-call answer, its text those words (a "[]" inside a sentence is prose).
_EMPTY_LIST = re.compile(r"\[\s*\]")
_EMPTY_LIST_LINE = re.compile(_EMPTY_LIST.pattern + r"[ \t]*\n")
# Chat-template tokens a decode may leave at the end of the text.
_TAGS_IN_JSON = re.compile(r"</?(?:tool_call|think)>")
# ChatML, Llama 3 (<|eot_id|>, <|eom_id|>, <|end_of_text|>) and 4 (<|eot|>, <|eom|>), Mistral, DeepSeek,
# Phi (<|end|>), Gemma (<end_of_turn>, <eos>), GLM (<|observation|>, <|user|>: its turn ends there),
# Seed-OSS (<seed:eos>), MiniMax-M1 (<end_of_sentence>) and M2 ([e~[), Apertus (<|assistant_end|>),
# PLaMo 3 (<|plamo:tag|>).
_END_TOKENS = re.compile(
    r"(?:(?:<\|im_end\|>|<\|endoftext\|>|<\|end_of_text\|>|<\|eot_id\|>|<\|eom_id\|>|<\|eot\|>|<\|eom\|>|"
    r"</s>|<｜end▁of▁sentence｜>|<\|end\|>|<end_of_turn>|<eos>|<\|observation\|>|<\|user\|>|"
    r"<\|END_OF_TURN_TOKEN\|>|<seed:eos>|<end_of_sentence>|\[e~\[|<\|assistant_end\|>|<\|plamo:tag\|>)\s*)+$"
)
# A completion in gpt-oss's harmony format: it opens with a channel (the prompt wrote "<|start|>assistant"),
# perhaps after the recipient, or with a further message.
_HARMONY_START = re.compile(r"^\s*(?:<\|start\|>|(?:to=\S+\s*)?<\|channel\|>)")
_HARMONY_FUNCTIONS = "functions."
# Calls whose arguments are XML, one element per parameter, inside <tool_call> tags: Qwen3-Coder's
# <function=NAME><parameter=P>VALUE</parameter>...</function>, and GLM-4.5's
# NAME<arg_key>P</arg_key><arg_value>VALUE</arg_value>... . A value is text: a string as it is, any
# other value as JSON (or its Python form, "True"), so only the tool's schema says which "3" is.
_XML_FUNCTION = re.compile(r"<function=([^>\n]+)>(.*?)</function>", re.DOTALL)
_XML_PARAMETER = re.compile(r"<parameter=([^>\n]+)>(.*?)</parameter>", re.DOTALL)
# Such a call without its <tool_call> tags (vLLM's Qwen3-Coder and Step-3.5 parsers read it too): a
# <function=NAME> tag followed by its first parameter, or by its end.
_XML_FUNCTION_START = re.compile(r"<function=[^>\n]+>\s*(?:<parameter=|</function>)")
# Each tag of an <invoke> call may carry DSML's (or GCML's) mark or Step-3's "steptml:" (the same in its
# closing tag), and a parameter DSML's string attribute.
_INVOKE_MARK = f"(?:{_DSML_MARK}|{_GCML_MARK}|{_STEP3_MARK})?"
_INVOKE = re.compile(
    rf'\s*<(?P<mark>{_INVOKE_MARK})invoke name="(?P<name>[^"\n]+)">(?P<body>.*?)</(?P=mark)invoke>\s*',
    re.DOTALL,
)
_INVOKE_PARAMETER = re.compile(
    rf'<(?P<mark>{_INVOKE_MARK})parameter name="(?P<key>[^"\n]+)"(?: string="(?P<string>true|false)")?>'
    r"(?P<value>.*?)</(?P=mark)parameter>",
    re.DOTALL,
)
# LongCat writes GLM's form with its own prefix: <longcat_arg_key>P</longcat_arg_key><longcat_arg_value>….
_GLM_CALL = re.compile(r"([A-Za-z_][\w.\-]*)\s*(?=<(?:longcat_)?arg_key>|$)(.*)", re.DOTALL)
_GLM_ARGUMENT = re.compile(
    r"<(?P<prefix>(?:longcat_)?)arg_key>(?P<key>.*?)</(?P=prefix)arg_key>\s*"
    r"<(?P=prefix)arg_value>(?P<value>.*?)</(?P=prefix)arg_value>",
    re.DOTALL,
)
_NOT_A_LITERAL = object()
_NO_ANSWER = "reasoning trace never closed: the answer never came (cut off by the token budget?)"
# A call body while tags are looked for elsewhere: a private-use mark no tokenizer emits.
_MASK = re.compile("\ue000(\\d+)\ue001")
# A family block that may hold several calls and lost its closing tag: it may have been cut off
# before more calls, so it is no answer (the index of its family in _TAG_FAMILIES).
_CUT_OFF = re.compile("^\ue002(\\d+)\ue003")


class _RepeatedKeys(dict[str, Any]):
    """A JSON object that wrote a key more than once (``json.loads`` keeps the last silently): which
    value was meant is a guess, so a call holding one is refused (:func:`_call_from_object`)."""

    repeated: tuple[str, ...] = ()


def _object_from_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) == len(keys):
        return dict(pairs)
    value = _RepeatedKeys(pairs)
    value.repeated = tuple(sorted({key for key in keys if keys.count(key) > 1}))
    return value


# Every JSON the parser reads goes through this decoder, so a repeated key is never lost unseen.
_JSON = json.JSONDecoder(object_pairs_hook=_object_from_pairs)
# JSON with a control character typed raw into a string (a newline in a code argument): JSON forbids
# it, but it can only be itself. Read so only after strict JSON failed, and reported.
_RAW_CONTROL_JSON = json.JSONDecoder(object_pairs_hook=_object_from_pairs, strict=False)
_RAW_CONTROL = "control_character_in_string"


def _decode(text: str, repairs: list[str]) -> Any:
    """``text`` as one JSON value (raises ``json.JSONDecodeError``); raw control characters repaired."""
    value, end = _raw_decode(text, _after_spaces(text, 0), repairs)
    if text[end:].strip():
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def _raw_decode(text: str, position: int, repairs: list[str]) -> tuple[Any, int]:
    """One JSON value from ``position`` and the index after it (raises ``json.JSONDecodeError``)."""
    try:
        return _JSON.raw_decode(text, position)
    except json.JSONDecodeError:
        value = _RAW_CONTROL_JSON.raw_decode(text, position)
        repairs.append(_RAW_CONTROL)
        return value


class ParsedOutput(BaseModel):
    """What a model said: its action (calls or a plain-text answer), or why it could not be read."""

    model_config = ConfigDict(frozen=True)

    action: Action | None = None
    think: str | None = None
    text: str | None = None  # free text outside the reasoning and the call blocks
    error: str | None = None
    repairs: list[str] = Field(default_factory=list)

    @property
    def kind(self) -> OutputKind:
        if self.error is not None or self.action is None:
            return "error"
        return "calls" if self.action.calls else "text"


class CallFormatError(ValueError):
    """A call block or tool_calls entry that does not read as a call; the message says why."""


def render_call(call: ToolCall) -> str:
    """One call in the paper's output format."""
    body = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
    # A tag inside a string value would end the block or start a trace: write its "<" as a JSON escape.
    body = _TAGS_IN_JSON.sub(lambda m: "\\u003c" + m.group(0)[1:], body)
    return f"{_OPEN}\n{body}\n{_CLOSE}"


def render_action(action: Action) -> str:
    """An action as the model should write it: call blocks one per line, or the plain-text answer."""
    if action.calls:
        return "\n".join(render_call(call) for call in action.calls)
    return action.text or ""


def unwrap_answer(text: str) -> str:
    """``text`` without a family's answer wrapper (Cohere's ``<|START_RESPONSE|>``/``<|START_TEXT|>``,
    Hunyuan's ``<answer>``, ERNIE's ``<response>``): the wrapper's content is the answer. Read after
    the trace is split off."""
    if answer := _COHERE_ANSWER.match(text):
        return answer.group(2).strip()
    if answer := _TAGGED_ANSWER.match(text):
        return answer.group(2).strip()
    return text


def parse_output(
    text: str, tools: Sequence[ToolSpec] | None = None, *, trace_opened: bool = False
) -> ParsedOutput:
    """Parse one model output. Never raises: unreadable output gives ``error`` with the reason.

    ``tools``: the sample's tools, which type the values of XML-argument calls (Qwen3-Coder,
    GLM-4.5, Seed-OSS, MiniMax-M2, Claude-style ``<function_calls>``; DSML's parameters type
    themselves); without them such a value that could be a string or not is a failure.
    They also tell Functionary v3.2's untagged ``NAME`` line over JSON from a text answer's ``word``
    over an object: only a tool's name opens a call.
    ``trace_opened``: the prompt ended inside a ``<think>`` trace the chat template opened
    (:func:`toolcall.templates.prompt_opens_trace`: Qwen3-Thinking-2507, DeepSeek-R1 distills, QwQ,
    Seed-OSS's ``<seed:think>``),
    so the output starts inside it: everything before its first ``</think>`` is the trace, and an
    output with no ``</think>`` never reached its answer (a failure, whatever calls it drafted)."""
    try:
        return _parse(text, {tool.name: tool for tool in tools or ()}, trace_opened)
    except (RecursionError, MemoryError) as error:  # pathological nesting in a JSON body
        return ParsedOutput(error=f"output too deeply nested to read ({type(error).__name__})")


def _parse(text: str, tools: Mapping[str, ToolSpec], trace_opened: bool) -> ParsedOutput:
    if not isinstance(text, str):
        return ParsedOutput(error=f"output must be text, got {type(text).__name__}")
    repairs: list[str] = []
    if _HARMONY_START.match(text):
        harmony = _harmony_output(text, repairs, tools)
        if harmony is not None:
            return harmony
    # Call bodies are set aside first: a tag inside one of their JSON strings is data, not markup.
    masked, bodies = _mask_call_bodies(_IFM_TAG.sub(r"<\1\2>", text.lstrip("\ufeff")))
    for token, tag in TRACE_TOKENS.items():  # other families' trace tokens (call bodies are masked)
        masked = masked.replace(token, tag)
    opened_trace = None
    if trace_opened and not masked.lstrip().startswith("<think>"):  # it wrote the tag again: as usual
        # The first </think> ends the trace (call bodies are masked: one in a JSON string is data).
        opened_trace, closed, masked = masked.partition("</think>")
        if not closed:  # calls drafted in the trace are no answer, nor is the trace itself
            return ParsedOutput(think=_unmask(opened_trace.strip(), bodies) or None, error=_NO_ANSWER)
    body, think = _split_think(masked, repairs)
    if opened_trace is not None:
        think = "\n".join(t for t in (opened_trace.strip(), think) if t) or None
    body = _END_TOKENS.sub("", body).strip()
    body = unwrap_answer(body)
    # After the trace is split off: a family's block drafted there stays in the trace as written.
    body = _family_blocks_as_tool_calls(_minicpm_calls_as_tool_calls(body, repairs), repairs)
    if bodies and not _MASK.search(body):  # every call block sat in the trace: drafts, not the answer
        think, bodies = _unmask(think, bodies), []
    if not body and "unclosed_think" in repairs:
        return ParsedOutput(
            think=_unmask(think, bodies),
            error=_NO_ANSWER,
            repairs=repairs,
        )
    for family in _TOKEN_FAMILIES:
        if not any(token in body for token in family.tokens):
            continue
        if bodies or _OPEN in body or _CLOSE in body:
            return ParsedOutput(
                think=_unmask(think, bodies),
                text=_unmask(body, bodies),
                error=f"{family.family} tool-call tokens and <tool_call> blocks in one output",
                repairs=repairs,
            )
        return _token_calls_output(body, think, family, repairs)
    if bodies:
        return _parse_blocks(body, _unmask(think, bodies), bodies, repairs, tools)
    if _OPEN not in body and _CLOSE not in body:
        openai = _openai_message(body)
        if openai is not None:
            return openai.model_copy(update={"think": think})
        if not body:
            return ParsedOutput(think=think, error="empty output (no tool call and no answer text)")
        untagged = _untagged(body, repairs, tools)
        if untagged is not None:
            return untagged.model_copy(update={"think": think})
        return ParsedOutput(action=Action(text=body), think=think, text=body, repairs=repairs)
    return _parse_blocks(body, think, [], repairs, tools)


def _minicpm_calls_as_tool_calls(text: str, repairs: list[str]) -> str:
    """``text`` with each of MiniCPM's ``<function name="NAME"><param name="P">V</param></function>``
    rewritten as a ``<tool_call>`` block of the same ``<invoke>`` call MiniMax-M2 writes (a CDATA
    section's content its value); one with no ``</function>`` as a block cut off at the end."""
    parts: list[str] = []
    position, found = 0, False
    while (opening := _MINICPM_FUNCTION.search(text, position)) is not None:
        found = True
        end = text.find(_FUNCTION_END, opening.end())
        invoke = f'<invoke name="{opening.group(1)}">'
        if end == -1:  # cut off: an unclosed block and invoke, read as a failure
            parts.append(text[position : opening.start()] + _OPEN + invoke + text[opening.end() :])
            position = len(text)
            break
        body = _MINICPM_CDATA.sub(r"\1", text[opening.end() : end])
        body = body.replace("<param name=", "<parameter name=").replace("</param>", "</parameter>")
        parts.append(text[position : opening.start()] + _OPEN + invoke + body + "</invoke>" + _CLOSE)
        position = end + len(_FUNCTION_END)
    parts.append(text[position:])
    if found:
        repairs.append("minicpm_calls")
    return "".join(parts)


def _family_blocks_as_tool_calls(text: str, repairs: list[str]) -> str:
    """``text`` with each block in a family's own call tags rewritten as a ``<tool_call>`` block; one
    that may hold several calls and was cut off before its closing tag is marked so (:data:`_CUT_OFF`)
    and read as a failure, unless it sat in a trace (a draft)."""
    for tags in _TAG_FAMILIES:
        if tags.first_token:
            # A decode that puts spaces between special tokens (vLLM's default) splits the opening.
            rest = re.escape(tags.opening.removeprefix(tags.first_token))
            text = re.sub(rf"{re.escape(tags.first_token)}\s+(?={rest})", tags.first_token, text)
        if tags.first_token and text.endswith(tags.first_token):  # cut off inside the opening
            text = text.removesuffix(tags.first_token) + tags.opening
        if tags.opening not in text:
            continue
        parts: list[str] = []
        position, found = 0, False
        while (start := text.find(tags.opening, position)) != -1:
            after = start + len(tags.opening)
            if not tags.content.match(text, after):  # the tag named in prose, not a block
                parts.append(text[position:after])
                position = after
                continue
            found = True
            end = text.find(tags.closing, after)
            following = text.find(tags.opening, after)
            if end == -1 or (following != -1 and following < end):
                mark = f"\ue002{_TAG_FAMILIES.index(tags)}\ue003" if tags.many_calls else ""
                # as a <tool_call> without its close; a wrapper's blocks follow a block of the mark alone
                parts.append(text[position:start] + _OPEN + mark + (_CLOSE if tags.holds_blocks else ""))
                position = after
                continue
            inner = text[after:end] if tags.holds_blocks else _OPEN + text[after:end] + _CLOSE
            parts.append(text[position:start] + inner)
            position = end + len(tags.closing)
        parts.append(text[position:])
        text = "".join(parts)
        if found:
            repairs.append(tags.repair)
    return text


def _parse_blocks(
    body: str, think: str | None, bodies: list[str], repairs: list[str], tools: Mapping[str, ToolSpec]
) -> ParsedOutput:
    blocks, outside, error = _blocks(body, repairs)
    blocks, outside = [_unmask(block, bodies) or "" for block in blocks], _unmask(outside, bodies) or ""
    if error is not None:
        return ParsedOutput(think=think, text=outside or None, error=error, repairs=repairs)
    calls: list[ToolCall] = []
    for index, block in enumerate(blocks):
        try:
            calls.extend(_calls_from_block(block, repairs, tools))
        except CallFormatError as failure:
            where = f"tool call {index + 1}" if len(blocks) > 1 else "tool call"
            return ParsedOutput(
                think=think, text=outside or None, error=f"{where}: {failure}", repairs=repairs
            )
    if not calls:  # every block an empty call list (an empty block failed above): no call is right
        return _no_call(outside, repairs).model_copy(update={"think": think})
    return ParsedOutput(action=Action(calls=calls), think=think, text=outside or None, repairs=repairs)


def _no_call(text: str, repairs: list[str]) -> ParsedOutput:
    """The answer of an explicit empty call list (``[]``, in a block or untagged: xLAM's and
    SmolLM2's prompts ask for it when no tool fits): no call, with the text outside it, if any, as
    the answer's text. ToolMatch matches two no-call answers whatever their text, as for labels."""
    repairs.append("empty_call_list")
    return ParsedOutput(action=Action(text=text or None), text=text or None, repairs=repairs)


def _harmony_output(text: str, repairs: list[str], tools: Mapping[str, ToolSpec]) -> ParsedOutput | None:
    """A gpt-oss completion returned raw: the analysis channel is the trace, a message to
    ``functions.NAME`` is a call with its JSON arguments, the final channel the answer, read as any
    output is (``<tool_call>`` blocks in it are calls)."""
    messages = harmony_messages(text)
    if not messages:
        return None
    think = "\n".join(m.content.strip() for m in messages if m.channel == "analysis" and m.content.strip())
    think = think or None
    calls: list[ToolCall] = []
    for message in messages:
        if message.recipient is None:
            continue
        if not message.recipient.startswith(_HARMONY_FUNCTIONS):
            return ParsedOutput(
                think=think,
                error=f"harmony: a message to {message.recipient!r}, not to one of the functions",
                repairs=repairs,
            )
        name = message.recipient[len(_HARMONY_FUNCTIONS) :]
        content = message.content.strip()
        try:
            if not content:
                raise CallFormatError("no arguments")
            values = _json_values(content, repairs)
            if len(values) != 1:
                raise CallFormatError(f"{len(values)} JSON values as arguments, not one object")
            calls.append(_call_from_object({"name": name, "arguments": values[0]}, repairs))
        except CallFormatError as failure:  # cut off inside the arguments, or not JSON
            return ParsedOutput(
                think=think, error=f"harmony: the call of {name!r}: {failure}", repairs=repairs
            )
    reading = harmony_answer(text)
    answer = reading.answer if reading is not None else None
    if calls:
        repairs.append("harmony")
        return ParsedOutput(action=Action(calls=calls), think=think, text=answer, repairs=repairs)
    if answer is None:  # only the analysis came, or it was cut off: no answer, never the trace as one
        problem = reading.problem if reading is not None else "no message"
        return ParsedOutput(think=think, error=f"harmony: {problem}", repairs=repairs)
    # The policy prompt asks for <tool_call> blocks, and gpt-oss's template writes a label's turn in
    # the final channel: a policy trained on it answers with its calls there.
    inner = _parse(answer, tools, False)
    thoughts = "\n".join(t for t in (think, inner.think) if t) or None
    return inner.model_copy(update={"think": thoughts, "repairs": [*repairs, "harmony", *inner.repairs]})


def _token_calls_output(
    body: str, think: str | None, family: _CallTokens, repairs: list[str]
) -> ParsedOutput:
    """An output holding a family's tool-call tokens: its calls, and the text outside the blocks."""
    for written, token in family.variants:
        body = body.replace(written, token)
    calls: list[ToolCall] = []
    outside: list[str] = []
    position = 0
    while (begin := body.find(family.calls_begin, position)) != -1:
        outside.append(body[position:begin])
        try:
            block_calls, position = _token_block(body, begin + len(family.calls_begin), family, repairs)
        except CallFormatError as failure:
            text = _join(outside) or None
            return ParsedOutput(
                think=think, text=text, error=f"{family.family} tool call: {failure}", repairs=repairs
            )
        calls.extend(block_calls)
    outside.append(body[position:])
    text = _join(outside)
    stray = next((token for token in family.tokens if token in text), None)
    if stray is not None:  # a call token outside a block: a block that never opened
        return ParsedOutput(
            think=think,
            text=text,
            error=f"{family.family} tool call: {stray} outside a {family.calls_begin} block",
            repairs=repairs,
        )
    if not calls:
        return ParsedOutput(think=think, text=text or None, error="tool call block is empty", repairs=repairs)
    repairs.append(family.repair)
    return ParsedOutput(action=Action(calls=calls), think=think, text=text or None, repairs=repairs)


def _token_block(
    body: str, position: int, family: _CallTokens, repairs: list[str]
) -> tuple[list[ToolCall], int]:
    """The calls of the block whose content starts at ``position``, and the index after its end token.

    A block without its end token was cut off (the token budget ran out, perhaps before more calls):
    a failure, never the calls read so far."""
    calls: list[ToolCall] = []
    while True:
        position = _after_spaces(body, position)
        if body.startswith(family.calls_end, position):
            return calls, position + len(family.calls_end)
        if position >= len(body):
            raise CallFormatError(f"the block is cut off (no {family.calls_end})")
        if not body.startswith(family.call_begin, position):
            raise CallFormatError(
                f"text where a call or {family.calls_end} should be: {body[position : position + 40]!r}"
            )
        call, position = _token_call(body, position + len(family.call_begin), family, repairs)
        calls.append(call)


def _token_call(body: str, start: int, family: _CallTokens, repairs: list[str]) -> tuple[ToolCall, int]:
    """One call from after its call-begin token (DeepSeek's in V3's form or V3.1's), and the index
    after its call-end token."""
    sep = body.find(family.sep, start)
    end = body.find(family.call_end, start)
    if end == -1:
        raise CallFormatError(f"a call is cut off (no {family.call_end})")
    if sep == -1 or end < sep:
        raise CallFormatError(f"a call without {family.sep} between its name and its arguments")
    head = body[start:sep].strip()
    rest = sep + len(family.sep)
    v3 = _DS_V3_NAME.match(body, rest) if family is _DEEPSEEK else None
    if v3 is not None:  # V3 / R1-0528: the type before the separator, the name on the line after it
        if head != _DS_V3_TYPE:
            raise CallFormatError(
                f"a call of type {head[:40]!r} (V3 writes {_DS_V3_TYPE!r} before {_DS_SEP})"
            )
        name = _token_call_name(v3.group(1), family)
        return _token_call_arguments(body, v3.end(), name, True, family, repairs)
    return _token_call_arguments(body, rest, _token_call_name(head, family), False, family, repairs)


def _token_call_name(head: str, family: _CallTokens) -> str:
    written = head.strip()
    name = family.head_name.fullmatch(written)
    found = name.group("name").strip() if name else ""
    if not found or "\n" in found or any(token in found for token in family.tokens):
        raise CallFormatError(f"{written[:60]!r} is not a function name")
    return found


def _token_call_arguments(
    body: str, start: int, name: str, fenced: bool, family: _CallTokens, repairs: list[str]
) -> tuple[ToolCall, int]:
    """The call ``name`` with the arguments written from ``start`` (in V3, inside a json fence whose
    opening line is already read), and the index after the call's end token."""
    decoder = _JSON
    first = _after_spaces(body, start)
    try:  # one JSON value, then the end token: a token inside one of its strings is data
        value, after = decoder.raw_decode(body, first)
    except (json.JSONDecodeError, RecursionError):
        pass
    else:
        close = _after_spaces(body, after)
        if fenced and body.startswith("```", close):  # V3's fence closes before the end token
            close = _after_spaces(body, close + 3)
        elif fenced:
            close = -1
        if close != -1 and body.startswith(family.call_end, close):
            call = _call_from_object({"name": name, "arguments": value}, repairs)
            return call, close + len(family.call_end)
    # Otherwise the text up to the end token, read as a block's content is (repairs reported).
    end = body.find(family.call_end, start)
    if end == -1:
        raise CallFormatError(f"the call of {name!r} is cut off (no {family.call_end})")
    content = body[start:end].strip()
    if fenced:
        if not content.endswith("```"):
            raise CallFormatError(f"the arguments of {name!r} are in a json fence that is not closed")
        content = content[:-3].strip()
    elif fence := _FENCE.match(content):
        if fence.group(2).strip():
            raise CallFormatError(f"text after the code fence of {name!r}: {fence.group(2).strip()[:60]!r}")
        content = fence.group(1).strip()
        repairs.append("code_fence")
    if not content:
        repairs.append("missing_arguments")
        return ToolCall(name=name, arguments={}), end + len(family.call_end)
    values = _json_values(content, repairs)
    if len(values) != 1:
        raise CallFormatError(f"the arguments of {name!r} are {len(values)} JSON values, not one object")
    return _call_from_object({"name": name, "arguments": values[0]}, repairs), end + len(family.call_end)


def _untagged(body: str, repairs: list[str], tools: Mapping[str, ToolSpec]) -> ParsedOutput | None:
    """A whole output that is calls without ``<tool_call>`` tags, in another family's form; a call
    amid text, or a format the loop does not read, is a failure saying so; None: a text answer."""
    body = _GIGACHAT3_CALL.sub(_GIGACHAT_CALL, body)
    if body.startswith(_COHERE_ACTION):
        try:
            calls, after = _cohere_calls(body[len(_COHERE_ACTION) :], _COHERE_ACTION_END, repairs)
        except CallFormatError as failure:
            return ParsedOutput(text=body, error=f"Cohere tool call: {failure}", repairs=repairs)
        if not calls:
            answer = unwrap_answer(after) or None
            return ParsedOutput(action=Action(text=answer), text=answer, repairs=repairs)
        repairs.append("untagged_calls")
        return ParsedOutput(action=Action(calls=calls), repairs=repairs)
    if (command_r := _COMMAND_R_ACTION.search(body)) is not None:
        try:
            calls, after = _cohere_calls(body[command_r.end() :], _COMMAND_R_ACTION_END, repairs)
        except CallFormatError as failure:
            return ParsedOutput(text=body, error=f"Command-R action: {failure}", repairs=repairs)
        plan = body[: command_r.start()].strip()
        if not calls:
            answer = _command_r_answer(after)
            return ParsedOutput(action=Action(text=answer), text=answer or plan or None, repairs=repairs)
        repairs.append("untagged_calls")
        return ParsedOutput(action=Action(calls=calls), text=plan or None, repairs=repairs)
    try:
        function_tags = _function_tag_calls(body, repairs)
        xml_functions = None if function_tags else _untagged_xml_function_calls(body, tools, repairs)
    except CallFormatError as failure:
        return ParsedOutput(text=body, error=f"<function=…> tool call: {failure}", repairs=repairs)
    if function_tags is not None:
        text, calls = function_tags
        repairs.append("function_tag_calls")
        return ParsedOutput(action=Action(calls=calls), text=text or None, repairs=repairs)
    if xml_functions is not None:
        text, calls = xml_functions
        repairs.append("untagged_calls")
        return ParsedOutput(action=Action(calls=calls), text=text or None, repairs=repairs)
    functionary = _functionary_messages(body, repairs, tools)
    if functionary is not None:
        return functionary
    markers = [found for prefix in _CALL_OPENINGS if (found := body.find(prefix)) != -1]
    start = min(markers, default=0)
    opening = next((o for o in _CALL_OPENINGS if body.startswith(o, start)), "")
    if start > 0 and _OPENS_A_CALL.match(body, start + len(opening)):
        # A family's call token after text (Mistral Small 3.2 and Magistral write a sentence before
        # [TOOL_CALLS], Gemma before its tool_code fence): the text is kept, and what the token opens
        # is read as if it began the output (a fence with text after it is no such output: text).
        before, after = body[:start].strip(), body[start:].lstrip()
        if (calls := _untagged(after, repairs, tools)) is not None:
            if calls.action is not None and not calls.action.calls:  # an empty call list: text answers
                text = _join([before, calls.text or ""]) or None
                return calls.model_copy(update={"action": Action(text=text), "text": text})
            return calls.model_copy(update={"text": before or None if calls.error is None else body})
    if body.startswith(_GRANITE_CALL):
        try:
            calls = _granite_calls(body, repairs, tools)
        except CallFormatError as failure:
            return ParsedOutput(text=body, error=f"Granite tool call: {failure}", repairs=repairs)
        if not calls:
            return _no_call("", repairs)
        repairs.append("untagged_calls")
        return ParsedOutput(action=Action(calls=calls), repairs=repairs)
    content, marked = body, False
    for prefix in _FOREIGN_PREFIXES:
        if content.startswith(prefix):
            content, marked = content[len(prefix) :].strip(), True
    if content.startswith(_PHI_FUNCTOOLS):  # the name glued to the list: never the start of a sentence
        content, marked = content[len(_PHI_FUNCTOOLS) - 1 :], True
    if body.startswith(_PYTHON_START):
        content = content.removesuffix(_PYTHON_END).strip()
    if body.startswith(_FOREIGN_OPEN):  # Phi-4-mini's blocks, each closed: their lists one after another
        content = " ".join(content.replace(_FOREIGN_OPEN, " ").split(_FOREIGN_CLOSE)).strip()
    tool_code = _TOOL_CODE_FENCE.match(content)
    fenced = _FENCE.match(content)
    if tool_code:
        content = tool_code.group(1).strip()
    elif fenced and not fenced.group(2).strip():
        content = fenced.group(1).strip()
    if body.startswith(_MISTRAL_CALLS) and not content.startswith(("{", "[")):
        try:
            calls = _mistral_calls(body, repairs)
        except CallFormatError as failure:
            return ParsedOutput(text=body, error=f"Mistral tool call: {failure}", repairs=repairs)
        repairs.append("untagged_calls")
        return ParsedOutput(action=Action(calls=calls), repairs=repairs)
    # A lone call without brackets counts where nothing but a call can be meant: the whole output,
    # after a family's call marker, or in Gemma's tool_code fence; code in any other fence is an answer.
    bare = _BARE_CALL.match(content) is not None and (tool_code is not None or marked or content == body)
    if (words := _words_after_empty_call_list(content)) is not None:
        if _untagged(words, [], tools) is not None:  # calls (or a failure) after it: not its words
            return ParsedOutput(
                text=body,
                error="an empty call list ([]) followed by more than a text answer: no call, or calls?",
                repairs=repairs,
            )
        return _no_call(words, repairs)
    try:
        if content.startswith(("{", "[")) and (calls := _bare_json_calls(content, repairs)) is not None:
            if not calls:
                return _no_call("", repairs)
            repairs.append("untagged_calls")
            return ParsedOutput(action=Action(calls=calls), repairs=repairs)
        named = _PYTHONIC_TOOL_NAME.match(content)
        if _PYTHONIC.match(content) or bare or (named and named.group(1) in tools):
            calls = _pythonic_calls(content if content.startswith("[") else f"[{content}]", repairs, tools)
            repairs.append("pythonic_calls")
            return ParsedOutput(action=Action(calls=calls), repairs=repairs)
    except CallFormatError as failure:
        return ParsedOutput(
            text=body, error=f"tool call without <tool_call> tags: {failure}", repairs=repairs
        )
    for marker, family in _FOREIGN_MARKERS.items():
        if marker in body:
            return ParsedOutput(
                text=body,
                error=f"a {family}-style tool call ({marker}); calls are read in <tool_call> tags",
                repairs=repairs,
            )
    if marked:  # a family's call marker, then no call it reads
        return ParsedOutput(
            text=body, error="a tool-call marker without a readable call after it", repairs=repairs
        )
    if _cut_off_call(content):
        return ParsedOutput(
            text=body,
            error="a tool call without <tool_call> tags, cut off before its end (the token budget?)",
            repairs=repairs,
        )
    if (embedded := _embedded_call(body, tools)) is not None:
        return ParsedOutput(text=body, error=embedded, repairs=repairs)
    return None


def _words_after_empty_call_list(content: str) -> str | None:
    """The words after an empty call list that opens ``content`` on a line of its own, bare or in a
    code fence; None when it does not open so, or nothing follows it."""
    if (line := _EMPTY_LIST_LINE.match(content)) is not None:
        words = content[line.end() :]
    elif (fence := _FENCE.match(content)) is not None and _EMPTY_LIST.fullmatch(fence.group(1).strip()):
        words = fence.group(2)
    else:
        return None
    return words.strip() or None


def _cut_off_call(content: str) -> bool:
    """Whether ``content`` (an output, its family's call marker off) opens as untagged calls and ends
    before they close: their first bracket still open, or Gemma's ``tool_code`` fence never closed.
    Such an output is a call the token budget cut, never a text answer."""
    fence = _OPENING_FENCE.match(content)
    if fence is not None and not _FENCE.match(content):
        if fence.group(1) == "tool_code":  # Gemma's fence holds calls only: more may have followed
            return True
        content = content[fence.end() :]
    return _CALL_START.match(content) is not None and _first_bracket_left_open(content)


def _first_bracket_left_open(text: str) -> bool:
    """Whether the first bracket ``text`` opens is still open at its end (perhaps inside a string
    literal, JSON's or Python's): what it opened was cut off. Text after it closes does not count."""
    depth, quote, index = 0, "", 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1  # the escaped character is part of the string
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth <= 0:
                return False
        index += 1
    return depth > 0


def _function_tag_calls(body: str, repairs: list[str]) -> tuple[str, list[ToolCall]] | None:
    """The text before the first call and the calls, when ``body`` ends in calls written
    ``<function=NAME>{ARGS}</function>`` (one after another); None when its first ``<function=NAME>``
    is followed by no JSON object (not this form)."""
    first = _FUNCTION_TAG.search(body)
    if first is None or not body.startswith("{", _after_spaces(body, first.end())):
        return None
    calls: list[ToolCall] = []
    position = first.start()
    while position < len(body):
        tag = _FUNCTION_TAG.match(body, position)
        if tag is None:
            raise CallFormatError(f"text after call {len(calls)}: {body[position : position + 60]!r}")
        name = tag.group(1).strip()
        try:  # one JSON object: a </function> inside one of its strings is data
            arguments, after = _raw_decode(body, _after_spaces(body, tag.end()), repairs)
        except (json.JSONDecodeError, RecursionError) as error:
            raise CallFormatError(f"the arguments of {name!r} are not JSON (cut off?)") from error
        close = _after_spaces(body, after)
        if not body.startswith(_FUNCTION_END, close):
            raise CallFormatError(
                f"the call of {name!r} has no {_FUNCTION_END} after its arguments (cut off?)"
            )
        calls.append(_call_from_object({"name": name, "arguments": arguments}, repairs))
        position = _after_spaces(body, close + len(_FUNCTION_END))
    return body[: first.start()].strip(), calls


def _untagged_xml_function_calls(
    body: str, tools: Mapping[str, ToolSpec], repairs: list[str]
) -> tuple[str, list[ToolCall]] | None:
    """The text before the first call and the calls, when ``body`` ends in Qwen3-Coder's XML calls
    without their ``<tool_call>`` tags (``<function=NAME><parameter=P>…</parameter></function>``, one
    after another); None when no ``<function=NAME>`` opens a parameter or closes at once."""
    first = _XML_FUNCTION_START.search(body)
    if first is None:
        return None
    calls: list[ToolCall] = []
    position = first.start()
    while position < len(body):
        function = _XML_FUNCTION.match(body, position)
        if function is None:
            where = body[position : position + 60]
            raise CallFormatError(
                f"a call without its </function> (cut off?), or text after the calls: {where!r}"
            )
        calls.append(_xml_function_call(function.group(0), tools, repairs))
        position = _after_spaces(body, function.end())
    return body[: first.start()].strip(), calls


# A name no word of prose is: one with an inner "_" or "." (get_forecast, math.factorial).
_FUNCTION_SHAPED = re.compile(r"\w[_.]\w")


def _functionary_messages(
    body: str, repairs: list[str], tools: Mapping[str, ToolSpec]
) -> ParsedOutput | None:
    """Functionary v3.2's messages (a line ``all`` then text, or a name then its JSON arguments, each
    further one after ``>>>``): the calls and the text; None when ``body`` does not open as one (a
    first line that is no recipient, or a name not followed by JSON arguments, or, with the sample's
    ``tools`` known and no ``>>>`` before it, a plain word that is none of theirs)."""
    marked = body.startswith(_V32_PROMPT)  # the prompt did not end with it: the output wrote it
    content = body.removeprefix(_V32_PROMPT)
    first = _V32_RECIPIENT.match(content)
    if first is None:  # also a text answer opening with a Python prompt: ">>> print(1)"
        return None
    if not marked and first.group(1) != _V32_TEXT:
        if not content.startswith("{", first.end()):
            return None
        # A text answer may show an object under a word ("json", "Result"): untagged, a call is opened
        # by one of the sample's tools, or by a name shaped like a function's (snake_case or dotted:
        # a tool the policy made up is a wrong call, never a text answer); with none known, any name.
        name = first.group(1)
        if tools and name not in tools and not _FUNCTION_SHAPED.search(name):
            return None
    splits = list(_V32_NEXT.finditer(content))  # each before a recipient line, by its lookahead
    heads = [first, *(_V32_RECIPIENT.match(content, split.end()) for split in splits)]
    ends = [*(split.start() for split in splits), len(content)]
    texts: list[str] = []
    calls: list[ToolCall] = []
    for head, end in zip(heads, ends, strict=True):
        if head is None:
            continue
        name, written = head.group(1), content[head.end() : end].strip()
        try:
            if name == _V32_TEXT:
                if _V32_CUT_OFF.search(written):
                    raise CallFormatError("cut off inside the recipient of the next message")
                texts.append(written)
                continue
            if not written.startswith("{"):
                raise CallFormatError(
                    f"the arguments of {name!r} are not a JSON object (raw code is not read)"
                )
            try:
                arguments, after = _raw_decode(written, 0, repairs)
            except (json.JSONDecodeError, RecursionError) as error:
                raise CallFormatError(f"the arguments of {name!r} are not JSON (cut off?)") from error
            if written[after:].strip():
                raise CallFormatError(
                    f"text after the arguments of {name!r}: {written[after:][:40].strip()!r}"
                )
            calls.append(_call_from_object({"name": name, "arguments": arguments}, repairs))
        except CallFormatError as failure:
            return ParsedOutput(text=body, error=f"Functionary message: {failure}", repairs=repairs)
    text = _join(texts)
    repairs.append("functionary_messages")
    if calls:
        return ParsedOutput(action=Action(calls=calls), text=text or None, repairs=repairs)
    if not text:
        return ParsedOutput(
            error="Functionary message: empty (no tool call and no answer text)", repairs=repairs
        )
    return ParsedOutput(action=Action(text=text), text=text, repairs=repairs)


def _cohere_calls(action: str, action_end: str, repairs: list[str]) -> tuple[list[ToolCall], str]:
    """The list of ``{"tool_call_id", "tool_name", "parameters"}`` up to ``action_end`` (Command A's
    ``<|END_ACTION|>``, Command-R's closing fence), and the text after it. No calls: the action chose
    ``directly_answer`` alone, a text answer (the text after it); calls leave no text after them."""
    values, end = _cohere_action_values(action, action_end, repairs)
    after = action[end + len(action_end) :].strip()
    items = [item for value in values for item in (value if isinstance(value, list) else [value])]
    calls = []
    answers_directly = False
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("tool_name"), str):
            raise CallFormatError("an action entry needs a string 'tool_name'")
        if unknown := sorted(set(item) - _COHERE_CALL_KEYS):
            raise CallFormatError(f"unexpected keys in the action of {item['tool_name']!r}: {unknown}")
        # The entry is rebuilt as a call object below: a key it gives twice would be lost unseen there.
        if repeated := _repeated_keys(item):
            raise CallFormatError(
                f"the action of {item['tool_name']!r} gives the key {repeated[0]!r} more than once: "
                "which value is meant is ambiguous"
            )
        if item["tool_name"] == _DIRECTLY_ANSWER:
            answers_directly = True
            continue
        calls.append(
            _call_from_object({"name": item["tool_name"], "arguments": item.get("parameters")}, repairs)
        )
    if answers_directly and calls:
        names = ", ".join(repr(call.name) for call in calls)
        raise CallFormatError(
            f"{_DIRECTLY_ANSWER!r} (answer in text) with calls of {names}: an answer or calls, not both"
        )
    if answers_directly:
        return [], after
    if not calls:
        raise CallFormatError("an empty action")
    if after:
        raise CallFormatError(f"text after {action_end}: {after[:60]!r}")
    return calls, after


def _cohere_action_values(action: str, action_end: str, repairs: list[str]) -> tuple[list[Any], int]:
    """The JSON value(s) of an action and where its ``action_end`` starts. One JSON value is read with
    the decoder first, so an ``action_end`` inside one of its strings (a fence in a code argument) is
    data; only JSON that needs a repair is cut at the first ``action_end``."""
    start = _after_spaces(action, 0)
    try:
        value, value_end = _JSON.raw_decode(action, start)
    except (json.JSONDecodeError, RecursionError):
        pass
    else:
        end = _after_spaces(action, value_end)
        if action.startswith(action_end, end):
            return [value], end
    end = action.find(action_end)
    if end == -1:
        raise CallFormatError(f"the action is cut off (no {action_end})")
    return _json_values(action[:end].strip(), repairs), end


def _command_r_answer(after_action: str) -> str | None:
    """The answer Command-R writes after a ``directly_answer`` action: its "Answer:" (up to the
    "Grounded answer:" that repeats it with citations), else its "Grounded answer:", else the text."""
    for pattern in (_COMMAND_R_ANSWER, _COMMAND_R_GROUNDED_ANSWER):
        if (answer := pattern.search(after_action)) is not None:
            return answer.group(1).strip() or None
    return after_action.strip() or None


def _mistral_calls(body: str, repairs: list[str]) -> list[ToolCall]:
    """``[TOOL_CALLS]NAME[ARGS]{...}`` once per call, nothing else after: the calls, in order."""
    calls: list[ToolCall] = []
    position = 0
    while position < len(body):
        if not body.startswith(_MISTRAL_CALLS, position):
            raise CallFormatError(f"text after call {len(calls)}: {body[position : position + 60]!r}")
        head = _MISTRAL_HEAD.match(body, position + len(_MISTRAL_CALLS))
        if head is None:
            raise CallFormatError(f"no function name after {_MISTRAL_CALLS}")
        try:  # one JSON object: a [TOOL_CALLS] inside one of its strings is data
            arguments, position = _raw_decode(body, head.end(), repairs)
        except (json.JSONDecodeError, RecursionError) as error:
            raise CallFormatError(
                f"the arguments of {head.group(1)!r} are not JSON (cut off?): {error.msg}"
                if isinstance(error, json.JSONDecodeError)
                else f"the arguments of {head.group(1)!r} are too deeply nested"
            ) from error
        calls.append(_call_from_object({"name": head.group(1), "arguments": arguments}, repairs))
        position = _after_spaces(body, position)
    return calls


def _granite_calls(body: str, repairs: list[str], tools: Mapping[str, ToolSpec]) -> list[ToolCall]:
    """``<function_call> {"name": …, "arguments": …}`` once per call, nothing else after: the calls,
    in order. Each call is read as one JSON value, so a ``<function_call>`` inside a string is data.
    None when the output calls ``no_function`` alone (no tool fits) and no tool has that name; that
    beside calls is a failure (an answer or calls, not both)."""
    calls: list[ToolCall] = []
    position = 0
    while position < len(body):
        if not body.startswith(_GRANITE_CALL, position):
            raise CallFormatError(f"text after call {len(calls)}: {body[position : position + 60]!r}")
        try:
            value, position = _raw_decode(body, _after_spaces(body, position + len(_GRANITE_CALL)), repairs)
        except (json.JSONDecodeError, RecursionError) as error:
            raise CallFormatError(
                f"call {len(calls) + 1} is not JSON (cut off?): {error.msg}"
                if isinstance(error, json.JSONDecodeError)
                else f"call {len(calls) + 1} is too deeply nested"
            ) from error
        calls.append(_call_from_object(value, repairs))
        position = _after_spaces(body, position)
    if _GRANITE_NO_FUNCTION in tools or all(call.name != _GRANITE_NO_FUNCTION for call in calls):
        return calls
    if others := [call.name for call in calls if call.name != _GRANITE_NO_FUNCTION]:
        raise CallFormatError(
            f"{_GRANITE_NO_FUNCTION!r} (no function fits) with calls of {', '.join(map(repr, others))}: "
            "an answer or calls, not both"
        )
    return []


def _is_call_object(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and ("arguments" in value or "parameters" in value)
        and set(value) <= _CALL_KEYS
    )


def _bare_json_calls(content: str, repairs: list[str]) -> list[ToolCall] | None:
    """Calls when ``content`` is call objects (one, several, or a list of them) and nothing else, none
    when it is empty lists only (no call is right); the repairs it took are added to ``repairs`` only then."""
    found: list[str] = []
    try:
        values = _json_values(content, found)
    except CallFormatError:
        return None
    if values and all(value == [] for value in values):
        repairs.extend(found)
        return []
    items = [item for value in values for item in (value if isinstance(value, list) else [value])]
    if not items or not all(_is_call_object(item) for item in items):
        return None
    calls = [_call_from_object(item, found) for item in items]
    repairs.extend(found)
    return calls


def _pythonic_calls(content: str, repairs: list[str], tools: Mapping[str, ToolSpec]) -> list[ToolCall]:
    """``[f(a=1), g.h(b="x")]``: keyword arguments with literal values, as BFCL's Python form.

    Read as tool datasets are (:func:`toolcall.pytypes.parse_python_calls`: parameter names as
    written, ``from`` and ``league-id`` included), but a name must be an identifier, dotted or not,
    or the name of one of the sample's ``tools`` as written (ToolACE's ``Market Trends API``)."""
    try:
        parsed = parse_python_calls(content)
    except TypeExpressionError as error:
        raise CallFormatError(str(error)) from error
    calls = []
    for call in parsed:
        if not _CALL_NAME.match(call.name) and call.name not in tools:
            raise CallFormatError(
                f"{call.name[:40]!r} is not a function name, as f or tools.f, nor one of the tools"
            )
        if call.positional:
            raise CallFormatError(f"{call.name}: arguments must be given by name (a=1), not by position")
        calls.append(_call_from_object({"name": call.name, "arguments": call.keywords}, repairs))
    return calls


def _embedded_call(body: str, tools: Mapping[str, ToolSpec]) -> str | None:
    """Why ``body`` is no text answer, when a call object (``{"name": …, "arguments": …}``), or an
    object shaped like one under other keys, sits somewhere inside it, or a line of it is a Python
    call list (``[get_weather(city="Paris")]``), or a bare Python call of one of the sample's
    ``tools`` (Granite's ``get_weather(city="Paris")`` after its text; another name may be code)."""
    for line in _PYTHONIC_LINE.finditer(body):  # a Python call list on a line of its own
        try:
            _pythonic_calls(line.group(1), [], {})
        except CallFormatError:
            continue
        return "a tool call amid text, without <tool_call> tags"
    # Code in a fence amid prose is an answer's (a tool_code fence with prose after it included).
    for line in _BARE_CALL_LINE.finditer(_FENCED_CODE.sub("", body)):
        if line.group(2) not in tools:
            continue
        try:
            _pythonic_calls(f"[{line.group(1)}]", [], tools)
        except CallFormatError:
            continue
        return "a tool call amid text, without <tool_call> tags"
    decoder = _JSON
    for match in _EMBEDDED_CALL.finditer(body):
        try:
            value, _ = decoder.raw_decode(body, match.start())
        except (json.JSONDecodeError, RecursionError):
            continue
        if _is_call_object(value):
            return "a tool call amid text, without <tool_call> tags"
        if _shaped_like_call(value):
            return (
                f"a JSON object shaped like a tool call, with the keys {sorted(value)}: a call is read "
                'as {"name": …, "arguments": …}'
            )
    return None


def _shaped_like_call(value: Any) -> bool:
    """A small object holding a function's name and an object of arguments, under any known keys."""
    return (
        isinstance(value, dict)
        and len(value) <= 4
        and any(isinstance(value.get(key), str) for key in _NAME_KEYS)
        and any(isinstance(value.get(key), dict) for key in _ARGUMENT_KEYS)
    )


def _mask_call_bodies(text: str) -> tuple[str, list[str]]:
    """``text`` with the JSON body of every well-formed ``<tool_call>`` block replaced by a mark, and
    the bodies; a block whose body is not one JSON value followed by ``</tool_call>`` is left as it is."""
    if _OPEN not in text:
        return text, []
    decoder = _JSON
    bodies: list[str] = []
    parts: list[str] = []
    position = 0
    while (start := text.find(_OPEN, position)) != -1:
        begin = start + len(_OPEN)
        first = _after_spaces(text, begin)
        end = None
        if text.startswith(("{", "["), first):
            try:
                _, after = decoder.raw_decode(text, first)
            except (json.JSONDecodeError, RecursionError):
                pass
            else:
                close = _after_spaces(text, after)
                end = close if text.startswith(_CLOSE, close) else None
        if end is None:
            parts.append(text[position:begin])
            position = begin
            continue
        parts.append(text[position:begin] + f"\ue000{len(bodies)}\ue001")
        bodies.append(text[begin:end])
        position = end
    parts.append(text[position:])
    return "".join(parts), bodies


def _after_spaces(text: str, position: int) -> int:
    """The first position from ``position`` on that is not whitespace (no copy of the rest)."""
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _unmask(text: str | None, bodies: list[str]) -> str | None:
    if text is None or not bodies:
        return text
    return _MASK.sub(lambda m: bodies[int(m.group(1))], text)


def _split_think(text: str, repairs: list[str]) -> tuple[str, str | None]:
    thoughts = [m.strip() for m in _THINK.findall(text)]
    body = _THINK.sub("", text)
    if "</think>" in body:  # the template opened <think> in the prompt; only the close is in the output
        before, _, body = body.rpartition("</think>")
        thoughts.insert(0, before.replace("<think>", "").strip())
    elif "<think>" in body:
        before, _, after = body.partition("<think>")
        marks = (
            _OPEN,
            *(family.calls_begin for family in _TOKEN_FAMILIES),
            *(tags.opening for tags in _TAG_FAMILIES),
        )
        opens = [found for found in (after.find(mark) for mark in marks) if found != -1]
        if opens and not _text_after_calls(after):
            # A reasoning trace that was never closed, followed by calls and nothing else: keep them.
            thoughts.append(after[: min(opens)].strip())
            body = before + after[min(opens) :]
        else:  # no calls, or the trace goes on after them: they are drafts, and no answer came
            thoughts.append(after.strip())
            body = before
        repairs.append("unclosed_think")
    think = "\n".join(t for t in thoughts if t) or None
    return body, think


def _text_after_calls(text: str) -> bool:
    """Whether words follow the last call block of ``text`` (its bodies masked)."""
    closes = (
        _CLOSE,
        *(family.calls_end for family in _TOKEN_FAMILIES),
        *(tags.closing for tags in _TAG_FAMILIES),
    )
    ends = [found + len(close) for close in closes if (found := text.rfind(close)) != -1]
    return bool(ends) and bool(_END_TOKENS.sub("", text[max(ends) :]).strip())


def _blocks(body: str, repairs: list[str]) -> tuple[list[str], str, str | None]:
    """Split ``body`` into call block contents and the text outside them."""
    blocks: list[str] = []
    outside: list[str] = []
    rest = body
    while rest:
        start = rest.find(_OPEN)
        stray_close = rest.find(_CLOSE)
        if stray_close != -1 and (start == -1 or stray_close < start):
            return blocks, _join(outside), "a </tool_call> without its opening <tool_call>"
        if start == -1:
            outside.append(rest)
            break
        outside.append(rest[:start])
        rest = rest[start + len(_OPEN) :]
        end = rest.find(_CLOSE)
        next_open = rest.find(_OPEN)
        if end == -1 or (next_open != -1 and next_open < end):
            if next_open != -1:
                return blocks, _join(outside), "a <tool_call> is not closed before the next one opens"
            blocks.append(rest)  # the last block lacks its closing tag: the output was cut at the end
            repairs.append("unclosed_tool_call")
            break
        blocks.append(rest[:end])
        rest = rest[end + len(_CLOSE) :]
    return blocks, _join(outside), None


def _join(parts: list[str]) -> str:
    return "\n".join(p.strip() for p in parts if p.strip())


def _calls_from_block(block: str, repairs: list[str], tools: Mapping[str, ToolSpec]) -> list[ToolCall]:
    content = block.strip()
    if cut_off := _CUT_OFF.match(content):
        tags = _TAG_FAMILIES[int(cut_off.group(1))]
        raise CallFormatError(
            f"a {tags.family} block is cut off (no {tags.closing}): more calls may have followed"
        )
    if content.startswith("<function="):
        return [_xml_function_call(content, tools, repairs)]
    if content.startswith(("<invoke", f"<{_DSML_MARK}invoke", f"<{_GCML_MARK}invoke")):
        return _invoke_calls(content, tools, repairs)
    if content.startswith(_STEP3_CALL_BEGIN):
        return _step3_calls(content, tools, repairs)
    if content.startswith(_GEMMA_CALL):
        return [_functiongemma_call(content, repairs)]
    if (hy := _HY_CALL_NAME.match(content)) is not None:  # Hy3's separator after the name: GLM's form
        content = hy.group(1) + content[hy.end() :]
    for token, glm_tag in _SOLAR_ARGUMENT_TOKENS:  # Solar Open 2's argument tokens: GLM's tags
        content = content.replace(token, glm_tag)
    if (typed := _TYPED_CALL.fullmatch(content)) is not None:  # Step-Audio 2: type, name, JSON lines
        arguments = _json_values(typed.group(2).strip(), repairs)
        if len(arguments) != 1:
            raise CallFormatError(f"the arguments of {typed.group(1)!r} are {len(arguments)} JSON values")
        repairs.append("step_audio_calls")
        return [_call_from_object({"name": typed.group(1), "arguments": arguments[0]}, repairs)]
    if "arg_key>" in content or (_CALL_NAME.match(content) and content not in ("true", "false", "null")):
        glm = _GLM_CALL.fullmatch(content)
        if glm is not None:
            return [_glm_call(glm.group(1), glm.group(2), tools, repairs)]
    if _PYTHONIC.match(content) or _BARE_CALL.match(content):  # the tags say call; Python says which
        calls = _pythonic_calls(content if content.startswith("[") else f"[{content}]", repairs, tools)
        repairs.append("pythonic_calls")
        return calls
    fenced = _FENCE.match(content)
    if fenced:
        if fenced.group(2).strip():
            raise CallFormatError(f"text after the code fence in the block: {fenced.group(2).strip()[:60]!r}")
        content = fenced.group(1).strip()
        repairs.append("code_fence")
    if not content:
        raise CallFormatError("empty block")
    values = _json_values(content, repairs)
    if len(values) > 1:
        repairs.append("several_calls_in_one_block")
    calls = []
    for value in values:
        if isinstance(value, list):  # a JSON list of calls in one block
            repairs.append("list_of_calls_in_one_block")
            calls.extend(_call_from_object(_name_keyed_call(item), repairs) for item in value)
        else:
            calls.append(_call_from_object(value, repairs))
    return calls


def _name_keyed_call(item: Any) -> Any:
    """Apertus's list item ``{NAME: {ARGS}}`` as a call object; any other item as it is (a key that
    names a call's part, or one written twice, is no function's name)."""
    if isinstance(item, dict) and len(item) == 1 and not isinstance(item, _RepeatedKeys):
        ((name, arguments),) = item.items()
        if isinstance(arguments, dict) and name not in _CALL_KEYS | _NAME_KEYS | _ARGUMENT_KEYS:
            return {"name": name, "arguments": arguments}
    return item


_GEMMA_NAME = re.compile(rf"{_GEMMA_CALL}\s*([A-Za-z_][\w.\-]*)")
_GEMMA_KEY = re.compile(r"[^\s:,{}\[\]<]+")
_GEMMA_BARE = re.compile(r"[^\s,{}\[\]<]+")


def _functiongemma_call(content: str, repairs: list[str]) -> ToolCall:
    """FunctionGemma's ``call:NAME{KEY:VALUE,...}``: its values typed as written, no schema needed;
    a string between ``<escape>`` tokens, or Gemma 4's ``<|"|>``."""
    head = _GEMMA_NAME.match(content)
    if head is None:
        raise CallFormatError(f"no function name after {_GEMMA_CALL!r}: {content[:40]!r}")
    name, start = head.group(1), _after_spaces(content, head.end())
    if not content.startswith("{", start):  # its template writes {} for none: a name alone was cut off
        raise CallFormatError(f"the arguments of {name!r} are not a {{…}} object (cut off?)")
    escape = _GEMMA4_QUOTE if _GEMMA4_QUOTE in content else _GEMMA_ESCAPE
    arguments, end = _gemma_value(content, start, escape)
    if content[end:].strip():
        raise CallFormatError(f"text after the arguments of {name!r}: {content[end:][:40].strip()!r}")
    return _call_from_object({"name": name, "arguments": arguments}, repairs)


def _gemma_value(text: str, position: int, escape: str) -> tuple[Any, int]:
    """The value written at ``position`` and the index after it."""
    position = _after_spaces(text, position)
    if text.startswith(escape, position):
        start = position + len(escape)
        end = text.find(escape, start)
        if end == -1:
            raise CallFormatError(f"a string whose closing {escape} never came (cut off?)")
        return text[start:end], end + len(escape)
    if text.startswith(("{", "["), position):
        return _gemma_container(text, position, escape)
    bare = _GEMMA_BARE.match(text, position)
    try:
        value = _JSON.decode(bare.group()) if bare else _NOT_A_LITERAL
    except json.JSONDecodeError:
        value = _NOT_A_LITERAL
    # Only a number, a boolean or null is written bare: a string is escaped, a bare word is no value.
    if bare is None or value is _NOT_A_LITERAL or isinstance(value, str | list | dict):
        where = text[position : position + 40]
        raise CallFormatError(f"no value at {where!r}: a string is written {escape}…{escape} (cut off?)")
    return value, bare.end()


def _gemma_container(text: str, position: int, escape: str) -> tuple[dict[str, Any] | list[Any], int]:
    """The ``{KEY:VALUE,...}`` object or ``[VALUE,...]`` list opening at ``position``."""
    keyed = text[position] == "{"
    close = "}" if keyed else "]"
    items: dict[str, Any] = {}
    values: list[Any] = []
    position = _after_spaces(text, position + 1)
    if text.startswith(close, position):
        return (items if keyed else values), position + 1
    while True:
        if keyed:
            key, position = _gemma_key(text, position, escape)
            if key in items:
                raise CallFormatError(
                    f"the key {key!r} is given more than once: which value is meant is ambiguous"
                )
            items[key], position = _gemma_value(text, position, escape)
        else:
            value, position = _gemma_value(text, position, escape)
            values.append(value)
        position = _after_spaces(text, position)
        if text.startswith(",", position):
            position += 1
        elif text.startswith(close, position):
            return (items if keyed else values), position + 1
        else:
            raise CallFormatError(
                f"no ',' or {close!r} after a value (cut off?): {text[position : position + 40]!r}"
            )


def _gemma_key(text: str, position: int, escape: str) -> tuple[str, int]:
    """An object's key (bare, or escaped as a string is) and the index after its ``:``."""
    position = _after_spaces(text, position)
    if text.startswith(escape, position):
        key, position = _gemma_value(text, position, escape)
    elif (bare := _GEMMA_KEY.match(text, position)) is not None:
        key, position = bare.group(), bare.end()
    else:
        raise CallFormatError(f"no key at {text[position : position + 40]!r} (cut off?)")
    position = _after_spaces(text, position)
    if not text.startswith(":", position):
        raise CallFormatError(f"no ':' after the key {key!r} (cut off?)")
    return key, position + 1


def _xml_function_call(content: str, tools: Mapping[str, ToolSpec], repairs: list[str]) -> ToolCall:
    """Qwen3-Coder's ``<function=NAME><parameter=P>VALUE</parameter>...</function>``."""
    function = _XML_FUNCTION.fullmatch(content)
    if function is None:
        raise CallFormatError("a <function=...> call without its </function> (cut off?), or text after it")
    name = function.group(1).strip()
    pairs = [(m.group(1), m.group(2), None) for m in _XML_PARAMETER.finditer(function.group(2))]
    if _XML_PARAMETER.sub("", function.group(2)).strip():
        raise CallFormatError(f"text between the parameters of {name!r}, or a parameter not closed")
    call = _xml_call(name, pairs, tools, repairs, framed=True)
    repairs.append("xml_arguments")
    return call


def _invoke_calls(content: str, tools: Mapping[str, ToolSpec], repairs: list[str]) -> list[ToolCall]:
    """MiniMax-M2's ``<invoke name="NAME"><parameter name="P">VALUE</parameter>...</invoke>``, one or
    more, nothing else between them; DSML's, its parameters saying ``string="true"`` or ``"false"``."""
    calls: list[ToolCall] = []
    position = 0
    while position < len(content):
        invoke = _INVOKE.match(content, position)
        if invoke is None:
            where = content[position : position + 40]
            raise CallFormatError(f"an <invoke> without its </invoke> (cut off?), or text: {where!r}")
        name, body = invoke.group("name").strip(), invoke.group("body")
        if _INVOKE_PARAMETER.sub("", body).strip():
            raise CallFormatError(f"text between the parameters of {name!r}, or a parameter not closed")
        pairs = [
            (
                m.group("key"),
                m.group("value"),
                None if m.group("string") is None else m.group("string") == "true",
            )
            for m in _INVOKE_PARAMETER.finditer(body)
        ]
        calls.append(_xml_call(name, pairs, tools, repairs))
        position = invoke.end()
    repairs.append("xml_arguments")
    return calls


def _step3_calls(content: str, tools: Mapping[str, ToolSpec], repairs: list[str]) -> list[ToolCall]:
    """Step-3's ``<｜tool_call_begin｜>function<｜tool_sep｜><steptml:invoke …>…<｜tool_call_end｜>``, one
    or more, nothing else between them."""
    calls: list[ToolCall] = []
    position = 0
    while position < len(content):
        call = _STEP3_CALL.match(content, position)
        if call is None:
            where = content[position : position + 40]
            raise CallFormatError(f"a call without its {_STEP3_CALL_END} (cut off?), or text: {where!r}")
        if call.group("type") != "function":
            raise CallFormatError(f"a call of type {call.group('type')[:40]!r}, not 'function'")
        invoke = call.group("invoke").strip()
        if not invoke.startswith(f"<{_STEP3_MARK}invoke"):
            raise CallFormatError(f"no <{_STEP3_MARK}invoke> in a call: {invoke[:40]!r}")
        calls.extend(_invoke_calls(invoke, tools, repairs))
        position = call.end()
    return calls


def _glm_call(name: str, rest: str, tools: Mapping[str, ToolSpec], repairs: list[str]) -> ToolCall:
    """GLM-4.5's ``NAME<arg_key>P</arg_key><arg_value>VALUE</arg_value>...``."""
    pairs = [(m.group("key"), m.group("value"), None) for m in _GLM_ARGUMENT.finditer(rest)]
    if _GLM_ARGUMENT.sub("", rest).strip():
        raise CallFormatError(f"text between the arguments of {name!r}, or an argument not closed")
    call = _xml_call(name, pairs, tools, repairs)
    repairs.append("xml_arguments")
    return call


# An XML argument: its name, its value as written, and whether the call says the value is a string
# (DSML's string="true"/"false"; None where the format does not say).
_XmlArgument = tuple[str, str, bool | None]


def _xml_call(
    name: str,
    pairs: list[_XmlArgument],
    tools: Mapping[str, ToolSpec],
    repairs: list[str],
    *,
    framed: bool = False,
) -> ToolCall:
    tool = tools.get(name)
    arguments: dict[str, Any] = {}
    for raw_key, raw_value, is_string in pairs:
        key = raw_key.strip()
        if key in arguments:
            raise CallFormatError(f"{name}.{key} is given twice")
        arguments[key] = _xml_value(tool, name, key, raw_value, is_string, framed)
    return _call_from_object({"name": name, "arguments": arguments}, repairs)


def _xml_value(
    tool: ToolSpec | None, name: str, key: str, raw: str, is_string: bool | None, framed: bool
) -> Any:
    """One XML argument's value, typed as the call says (``is_string``) or else by the tool's schema.
    ``framed``: Qwen3-Coder's template frames a value in newlines, which are no part of it; GLM's,
    MiniMax-M2's and DSML's write it as it is (a code string's last newline is its own)."""
    text = raw.removeprefix("\n").removesuffix("\n") if framed else raw
    if is_string:
        return text
    if is_string is False:  # written as JSON: what it reads as, whatever the schema declares
        value = _xml_literal(text.strip())
        if value is _NOT_A_LITERAL:
            raise CallFormatError(
                f'{name}.{key} = {text[:40]!r} is marked string="false" but is no JSON value'
            )
        return value
    schema = tool.parameters.properties.get(key) if tool is not None else None
    types = schema.types if schema is not None else ()
    if types and set(types) <= {"string"}:
        return text
    value = _xml_literal(text.strip())
    if not types:  # untyped: only text that is no other JSON value is surely a string
        if value is _NOT_A_LITERAL or isinstance(value, str):
            return text
        raise CallFormatError(
            f"{name}.{key} = {text[:40]!r} may be a string or the {json_type_of(value)} it reads as; "
            "the tool's schema, which would say, is not known"
        )
    if value is _NOT_A_LITERAL:
        return text
    declared = type_accepts(types, value)
    # Text that is a value of no declared type is what the model wrote: a string where a string may
    # stand, else the value as written (ToolMatch then reports the wrong type, as for a JSON call).
    return text if not declared and "string" in types else value


def _xml_literal(text: str) -> Any:
    """A JSON value, or a Python literal (a template's ``| string`` writes True and None)."""
    try:
        return _JSON.decode(text)
    except (json.JSONDecodeError, RecursionError):
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _NOT_A_LITERAL
    if not (isinstance(value, str | int | float | bool | list | tuple | dict) or value is None):
        return _NOT_A_LITERAL
    try:
        return _as_json(value)
    except CallFormatError:
        return _NOT_A_LITERAL


def _json_values(content: str, repairs: list[str]) -> list[Any]:
    """One JSON value, or several written one after another (one per line)."""
    try:
        return [_JSON.decode(content)]
    except json.JSONDecodeError:
        pass
    decoder = _JSON
    values: list[Any] = []
    position = 0
    try:
        while position < len(content):
            value, end = decoder.raw_decode(content, position)
            values.append(value)
            position = end
            while position < len(content) and content[position] in " \t\r\n,;":
                position += 1
        if len(values) > 1:
            return values
    except json.JSONDecodeError:
        pass
    return [_repaired_json(content, repairs)]


def _repaired_json(content: str, repairs: list[str]) -> Any:
    try:
        value = _RAW_CONTROL_JSON.decode(content)
    except json.JSONDecodeError:
        pass
    else:
        repairs.append(_RAW_CONTROL)
        return value
    without_commas = _TRAILING_COMMA.sub(r"\1", content)
    if without_commas != content:
        try:
            value = _JSON.decode(without_commas)
        except json.JSONDecodeError:
            pass
        else:
            repairs.append("trailing_comma")
            return value
    try:  # a Python literal (single quotes, True/False/None): literal_eval evaluates no code
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # model garbage ("1st") is not worth a warning
            tree = ast.parse(content.lstrip(" \t"), mode="eval")
            value = ast.literal_eval(tree)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as error:
        raise CallFormatError(f"not valid JSON: {_json_reason(content)}") from error
    if repeated := _repeated_literal_keys(tree):  # a dict display keeps the last silently, as JSON does
        raise CallFormatError(
            f"the key {repeated!r} is given more than once: which value is meant is ambiguous"
        )
    if not isinstance(value, dict | list):
        raise CallFormatError(f"not valid JSON: {_json_reason(content)}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise CallFormatError(f"not valid JSON: {_json_reason(content)}") from error
    value = _as_json(value)
    repairs.append("python_literal")
    return value


def _repeated_literal_keys(tree: ast.AST) -> Any:
    """The first key a dict display in ``tree`` writes twice, or None."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = [key.value for key in node.keys if isinstance(key, ast.Constant)]
            repeated = next((key for index, key in enumerate(keys) if key in keys[:index]), None)
            if repeated is not None:
                return repeated
    return None


def _as_json(value: Any) -> Any:
    """A Python literal as the JSON value it spells: a tuple is an array; a key must be a string (JSON
    would write the key 1 as "1", a guess)."""
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise CallFormatError(f"an object key that is not a string: {key!r}")
        return {key: _as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_json(item) for item in value]
    return value


def _json_reason(content: str) -> str:
    try:
        json.loads(content)
    except json.JSONDecodeError as error:
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    return "unreadable"


def _call_from_object(value: Any, repairs: list[str]) -> ToolCall:
    if not isinstance(value, dict):
        raise CallFormatError(f"a call must be a JSON object, got {type(value).__name__}")
    repeated = _repeated_keys(value)
    if "function" in value and isinstance(value["function"], dict) and "name" not in value:
        value = value["function"]  # an OpenAI tool_calls entry inside a block
        repairs.append("openai_call_in_block")
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CallFormatError("a call needs a non-empty string 'name'")
    if "arguments" in value:
        arguments = value["arguments"]
    elif "parameters" in value:
        arguments = value["parameters"]
        repairs.append("parameters_key")
    else:
        arguments = {}
        repairs.append("missing_arguments")
    unknown = sorted(set(value) - {"name", "arguments", "parameters", "id", "type"})
    if unknown:
        raise CallFormatError(f"unexpected keys in call {name!r}: {unknown}")
    if isinstance(arguments, str):
        try:
            arguments = _decode(arguments, repairs) if arguments.strip() else {}
        except json.JSONDecodeError as error:
            raise CallFormatError(
                f"arguments of {name!r} are a string that is not JSON: {error.msg}"
            ) from error
        repairs.append("arguments_as_string")
    if arguments is None:
        arguments = {}
        repairs.append("null_arguments")
    if not isinstance(arguments, dict):
        raise CallFormatError(f"arguments of {name!r} must be an object, got {type(arguments).__name__}")
    if not _finite(arguments):
        raise CallFormatError(f"arguments of {name!r} hold a number that is not finite (NaN or Infinity)")
    if repeated := repeated or _repeated_keys(arguments):
        raise CallFormatError(
            f"the call of {name!r} gives the key {repeated[0]!r} more than once: which value is meant is "
            "ambiguous"
        )
    return ToolCall(name=name.strip(), arguments=arguments)


def _repeated_keys(value: Any) -> tuple[str, ...]:
    """The keys written twice in the first JSON object, at any depth of ``value``, that repeats one."""
    if isinstance(value, _RepeatedKeys):
        return value.repeated
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ()
    return next((repeated for item in items if (repeated := _repeated_keys(item))), ())


def _finite(value: Any) -> bool:
    """No NaN or Infinity anywhere (JSON has neither; Python's json module reads both)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(item) for item in value)
    return True


def parse_openai_tool_calls(tool_calls: Any) -> Action:
    """OpenAI ``tool_calls`` (``[{"type": "function", "function": {"name", "arguments"}}]``) -> Action.

    Raises :class:`CallFormatError` (a ``ValueError``) with the reason when an entry is not a call.
    """
    if not isinstance(tool_calls, list) or not tool_calls:
        raise CallFormatError("tool_calls must be a non-empty list")
    repairs: list[str] = []
    calls = []
    for index, entry in enumerate(tool_calls):
        if not isinstance(entry, dict):
            raise CallFormatError(f"tool_calls[{index}] must be an object")
        function = entry.get("function", entry)
        if not isinstance(function, dict):
            raise CallFormatError(f"tool_calls[{index}].function must be an object")
        try:
            calls.append(
                _call_from_object({k: v for k, v in function.items() if k != "description"}, repairs)
            )
        except CallFormatError as error:
            raise CallFormatError(f"tool_calls[{index}]: {error}") from error
    return Action(calls=calls)


def _openai_message(body: str) -> ParsedOutput | None:
    """A whole output that is an OpenAI assistant message (or its ``tool_calls`` list) as JSON."""
    if not body.startswith(("{", "[")):
        return None
    try:
        value = _JSON.decode(body)
    except (json.JSONDecodeError, RecursionError):
        return None
    tool_calls = value.get("tool_calls") if isinstance(value, dict) else None
    if tool_calls is None and isinstance(value, list) and value and isinstance(value[0], dict):
        if "function" not in value[0]:
            return None
        tool_calls = value
    if isinstance(value, dict) and "tool_calls" in value and tool_calls in (None, []):
        # A message that calls nothing ("tool_calls": null or []): its content is the answer.
        content = value.get("content")
        if isinstance(content, str) and content.strip():
            return ParsedOutput(action=Action(text=content.strip()), text=content.strip())
        return ParsedOutput(error="OpenAI message with no tool calls and no content")
    if tool_calls is None:
        return None
    try:
        action = parse_openai_tool_calls(tool_calls)
    except CallFormatError as error:
        return ParsedOutput(error=f"OpenAI tool_calls: {error}")
    content = value.get("content") if isinstance(value, dict) else None
    text = content.strip() if isinstance(content, str) and content.strip() else None
    return ParsedOutput(action=action, text=text)
