"""Generator text -> candidate sample: the ``INPUT:``/``OUTPUT:`` format of EDDE (Figures 13-14).

``INPUT:`` holds a conversation with role markers (``USER:``, ``ASSISTANT:``, ``TOOL:``; in an INPUT that
opens with a marker, also ``Human:`` and ``AI:``, other transcripts' user and assistant; a bare text is one
user turn) or is the chat API's list of messages (``[{"role": "user", "content": …}]``, read as the openai
dataset format reads its ``messages``), ``OUTPUT:`` the correct next step as ``<tool_call>`` blocks.
Assistant turns of the input may carry their own call blocks; tool turns may be ``<tool_response>`` blocks
(also in a ``USER:`` turn or right after the calls, as Qwen's template writes them) or be marked with
another format's name (``FUNCTION RESPONSE:``, ``OBSERVATION:``, ``TOOL RESULT:``). A reasoning trace before
the answer is ignored, also one whose ``<think>`` the chat template wrote in the prompt (everything before
the last ``</think>``), with any sample it drafted; a ``<think>`` never closed means no answer came,
whatever it drafted. Anything that does not read gives ``error`` with the reason; the parser never raises.
The seed's ``tools`` type the values of XML-argument calls (Qwen3-Coder's ``<function=NAME><parameter=P>``,
GLM-4.5's ``<arg_key>``), in the OUTPUT and in the INPUT's turns. An ``ASSISTANT:`` marker or quotes around
the OUTPUT are not part of it, nor is a line labelling its calls (``**Tool call:**`` over a fenced call;
repair ``call_label``); the turns a model goes on to write after its first step (``USER: Rome`` …)
are not either (repair ``output_continued``), and an OUTPUT that starts with another role's turn is refused.
A note on the sample that ends a user's turn of the INPUT (``(The user names the day, so …)``,
``Explanation: …``) is no part of it (repair ``input_commentary``). A paragraph of commentary after a
plain-text OUTPUT (``**Explanation:** …``, ``Note:``, ``(Note: …)``, ``This sample …``,
``In this example, …``, a rule, a heading) is no part of the answer (repair ``trailing_commentary``; an
``Explanation:`` label even on the line right after it), nor is a paragraph after the OUTPUT's calls in any
format (``[TOOL_CALLS][…]`` or a fenced call, then words). An answer with no section label that is one JSON
object (fenced or after a preface, as models that favour JSON write it) gives its INPUT and OUTPUT by its
keys: the labels in any case, or ``user_query``/``query``/``conversation``/``messages`` and
``tool_call``/``tool_calls``/``response``/``label``; a string value is read as the section's text, a message
list or call object as JSON. A section that holds only a filler (``N/A``, ``None``, ``—``) or the prompt's
placeholder is empty. A full-width colon (``：``, after labels and markers of a Chinese sample) is a colon,
and the roles and labels it names in Chinese (``用户：``, ``输入：`` …) are the markers and labels. A section
written wholly as a Markdown blockquote (``> USER: …``) is read without its quote marks. The close of a
wrapper opened before the OUTPUT label (a fence around the whole answer, ``<sample>``) ends the OUTPUT. An
OUTPUT of other JSON, or with neither a call nor a reply, is refused. An OUTPUT written as the chat API's
assistant message or as Claude's ``tool_use`` blocks is read as the INPUT's message list is. A note or label
before a text reply (``[No tool call]``, ``**Response:**``, ``(asks for clarification)``) is no part of it
(repair ``reply_note``), nor are tags around the whole OUTPUT (``<response>…</response>``); an OUTPUT that
describes the reply ("The assistant should ask …") is refused, and so is one that writes its call as YAML
(``- name: get_weather`` / ``arguments:``), which no reader reads. Calls listed as Python, one a bullet
(``- get_weather(city="Rome")``), are the calls (repair ``bulleted_calls``). A text OUTPUT that writes a
call of one of the seed's tools as code or prose (``get_weather(city="Rome")`` in backticks, "Call
get_weather with {…}") is refused: kept, it would teach the assistant to tell the user its calls. Words
between two ``<tool_call>`` blocks of the OUTPUT (``Alternative OUTPUT:``, ``Or, if …``) refuse it: the
second call may be no part of the step. An assistant marker with nothing after it that ends the INPUT is the
OUTPUT's turn, no empty turn. A section that opens with a role heading or marker (``#### User``,
``**Assistant**`` alone on its line) has its turns under such headings. The user's marker may name the
message (``User query:``, ``User request:``), be bracketed (``[User]:``) or quoted (``> USER:``) or numbered
(``1. USER:``); quotes around a bare INPUT are no part of it, nor is a ``Query:`` label that opens it. A
chat template's turns copied into the INPUT, or its assistant turn as the OUTPUT, (ChatML's
``<|im_start|>user``, Llama 3's headers, Gemma's ``<start_of_turn>``, GLM's ``<|user|>``, DeepSeek's
``<｜User｜>``, Mistral's ``[INST] … [/INST]``, ``<user>…</user>``) are read as role markers (the generation
prompt copied at its end, ``<|im_start|>assistant``, is no turn); a special token still in a turn after that
(``<|…|>`` of a template the reader does not know) refuses the sample rather than train on it as the user's
words; a token a sentence mentions (``What does <|endoftext|> mean?``: words on its line before and after
it, set off by spaces, quotes or punctuation, and no role in its name) is the user's words, in a template's
turn too. The section labels may be numbered (``1. INPUT:``), qualified by a word (``Expected Output:``) or
be tags around the parts (``<input>…</input>`` ``<output>…</output>``, as Claude writes a prompt's parts).
Of several samples listed under numbered headings (``### Sample 1``, ``Sample 2``, …) the first is the
answer (repair ``first_of_several_samples``), and so is the first of a JSON list of samples; several samples
written any other way are refused. A call object may name its function under ``function``, ``tool`` or
``action`` and give its arguments under ``args``, ``tool_input`` or ``action_input`` (Gemini's
``{"name", "args"}``, ``{"function": NAME, "arguments": …}``, a ReAct agent's
``{"tool": NAME, "tool_input": {…}}``; repair ``call_keys_renamed``), in the OUTPUT and the INPUT's
assistant turns, though the policy parser refuses those keys. An OUTPUT that is the agent's
``{"action": "Final Answer", "action_input": TEXT}`` is the text reply TEXT (repair ``react_final_answer``);
a ReAct step whose input is no argument object is refused. A newline or tab written raw inside a call's JSON
string is read as itself, by the policy parser (repair ``control_character_in_string``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from toolcall.formats.chat import chat_messages
from toolcall.formats.common import TOOL_RESPONSE_BLOCK, json_or_value
from toolcall.harmony import harmony_answer
from toolcall.parsing import ParsedOutput, parse_output
from toolcall.seed_prompts import strip_reasoning
from toolcall.specs import ToolSpec
from toolcall.types import Action, Message

# "INPUT:" / "**OUTPUT:**", or a heading alone on its line ("### INPUT", as Markdown-minded models write),
# either with a qualifier in parentheses ("**INPUT (multi-turn):**", "### OUTPUT (correct tool calls)").
# Only stars right after the colon close a bold label ("**OUTPUT:**"): after a space they open the
# content's own bold ("OUTPUT: **Response:** …").
# A colon may be the full-width "：" a model writing Chinese turns puts after labels and markers; an
# emoji or arrow may lead the label ("### 📥 INPUT", "**➡️ OUTPUT:**"), as chat-styled models decorate,
# and so may a number ("1. INPUT:", "2. OUTPUT:"), as a model that lists the parts writes them.
# A word may qualify the label before or after it, as models name the parts ("**Expected Output:**",
# "### New INPUT", "**Input conversation:**"). A model writing a Chinese sample may translate the
# labels: 输入 (input), 输出 (output).
_SECTION = re.compile(
    r"^[ \t*#>]*(?:\d{1,2}[.)][ \t]*)?(?:[\u2190-\u2bff\U0001f300-\U0001faff]\ufe0f?[ \t]*)?"
    r"(?:(?:expected|correct|new|target|ideal)[ \t]+)?(INPUT|OUTPUT|输入|输出)"
    r"(?:[ \t]+(?:conversation|dialogue|messages|context|query|calls?|tool[ \t]+calls?|response|step))?"
    r"(?:[ \t*]*\([^()\n]{1,80}\))?(?:[ \t*]*[:：]\**[ \t]*|[ \t*]*$\n?)",
    re.IGNORECASE | re.MULTILINE,
)
# The tool result's other names are those of exports the chat format reads (glaive's "FUNCTION
# RESPONSE", ModelScope's "observation"): a generator may use them instead of TOOL.
# Human:/AI: are the turns of other transcripts (Anthropic's Human/Assistant prompts, LangChain's
# Human/AI); in their capitals only, so that a line "ai: …" or "Ai: …" stays text.
# The user's marker may name what the turn holds ("**User query:**", "User request:"), be bracketed
# ("[User]:") or quoted as a Markdown blockquote ("> USER:"). A Chinese sample may name the roles in
# Chinese ("用户：", "助手："): read as the English names, else its dialogue was one user turn.
_ROLE = re.compile(
    r"^[ \t*>-]*(?:\d{1,3}[.)][ \t]+)?\[?"  # "1. USER:", as a model numbers the turns
    r"(USER(?:[ _](?:QUERY|REQUEST|MESSAGE|QUESTION))?|ASSISTANT|SYSTEM|TOOL"
    r"|TOOL[ _]?(?:RESPONSE|RESULT|OUTPUT)|FUNCTION(?:[ _]?(?:RESPONSE|RESULT|OUTPUT))?|OBSERVATION"
    r"|(?-i:HUMAN|Human|AI)|用户|助手|系统|工具(?:结果|返回)?|观察)\]?"
    r"[ \t*]*(?:\((?P<name>[^)\n]*)\))?[ \t*]*[:：][ \t*]*",
    re.IGNORECASE | re.MULTILINE,
)
_OTHER_NAMES = {"human": "user", "ai": "assistant"}
# The roles' names in a Chinese sample (用户 user, 助手 assistant, 系统 system; 工具 tool, 观察 observation).
_CHINESE_ROLES = {"用户": "user", "助手": "assistant", "系统": "system"}
# The turns of a chat template a generator copies into its INPUT, read as the role markers above:
# ChatML's <|im_start|>ROLE (Qwen), Llama 3's <|start_header_id|>ROLE<|end_header_id|>, Gemma's
# <start_of_turn>ROLE, GLM's and Phi-3's <|ROLE|>, DeepSeek's <｜User｜> and <｜Assistant｜>, Mistral's
# [INST] … [/INST] (the reply follows the close), and a turn in tags of its role's name on its own
# lines (<user>…</user>). Their closers and the sequence tokens go.
_TEMPLATE_OPENER = re.compile(
    r"<\|im_start\|>[ \t]*(?P<chatml>\w+)[ \t]*\n?"
    r"|<\|start_header_id\|>[ \t]*(?P<llama>\w+)[ \t]*<\|end_header_id\|>"
    r"|<start_of_turn>[ \t]*(?P<gemma>\w+)[ \t]*\n?"
    r"|<\|(?P<glm>user|assistant|system|observation)\|>"
    r"|<｜(?P<deepseek>User|Assistant)｜>"
    r"|^[ \t]*<(?P<tag>user|assistant|system|tool)>"
    r"|(?P<inst>\[INST\])|(?P<reply>\[/INST\])",
    re.MULTILINE,
)
_TEMPLATE_CLOSER = re.compile(
    r"<\|im_end\|>|<\|eot_id\|>|<\|eom_id\|>|<end_of_turn>|<\|end\|>|<\|endoftext\|>|<\|begin_of_text\|>"
    r"|<｜(?:begin|end)▁of▁sentence｜>|<bos>|<eos>|<s>|</s>|</(?:user|assistant|system|tool)>[ \t]*$",
    re.MULTILINE,
)
_TEMPLATE_ROLES = {"user": "USER", "system": "SYSTEM", "assistant": "ASSISTANT", "model": "ASSISTANT"}
# A special token left in a turn after that: a template the reader does not know, whose turns would
# be kept as the user's words with the tokens in them; the sample is refused instead. A token the
# user mentions in a sentence ("What does <|endoftext|> mean in GPT-2?") is words, not a turn marker:
# see _mentioned.
_SPECIAL_TOKEN = re.compile(r"<\|[^|<>\s]{1,40}\|>|<｜[^｜<>\s]{1,40}｜>|\[/?INST\]")
# What stands right before / after a token a sentence mentions: a space, a quote, a bracket; after
# it also punctuation ("… is <|endoftext|>?"). A template glues its tokens to the turns they wrap.
_MENTION_BEFORE = frozenset(" \t\"'`“‘(")
_MENTION_AFTER = frozenset(" \t\"'`”’),.;:?!")
# A token that names a role opens a turn wherever it stands ("Rome? <|bot|> Sure"): never a mention.
_ROLE_TOKEN = re.compile(
    r"user|human|assistant|bot|system|model|prompter|gpt|tool|function|observation|ipython|developer"
    r"|(?<![a-z])ai(?![a-z])|inst",
    re.IGNORECASE,
)
# An assistant marker with nothing after it that ends the INPUT: the OUTPUT's turn opened there (a
# template's generation prompt copied, <|im_start|>assistant; or "ASSISTANT:" written as the prompt's
# transcript would go on), no empty turn of the INPUT.
_GENERATION_PROMPT = re.compile(r"\s*\n[ \t*>-]*(?:ASSISTANT|(?-i:AI))[ \t*]*[:：][ \t*]*\Z", re.IGNORECASE)
# A label of the user's message that opens the INPUT ("Query: …"), as the USER: marker.
_OPENING_LABEL = re.compile(r"\A[ \t*]*(?:query|question|request)[ \t*]*[:：][ \t*]*", re.IGNORECASE)
# An INPUT written as the chat API's message list ([{"role": "user", "content": …}, …]), as JSON or
# as a Python literal.
_MESSAGE_LIST = re.compile(r"^\[\s*\{[^{}\[\]]*?[\"']role[\"']\s*:")  # "role" may follow "content"
# What stands in a section for nothing: the prompt's placeholders echoed, or the filler a model writes
# where it has no sample ("N/A", "None", "—"; under an OUTPUT heading after a refusal, say).
_PLACEHOLDER = re.compile(
    r"^[\[(]?\s*(content|new conversation.*|correct tool calls.*|n/?a|none|null|nil|empty|[-–—]+|\.{3}|…)"
    r"\s*[\])]?\.?$",
    re.IGNORECASE,
)


class ParsedExpansion(BaseModel):
    model_config = ConfigDict(frozen=True)

    messages: list[Message] = Field(default_factory=list)
    action: Action | None = None
    error: str | None = None
    repairs: list[str] = Field(default_factory=list)


def parse_expansion(raw: str, tools: Sequence[ToolSpec] | None = None) -> ParsedExpansion:
    """Read one generator answer into (context messages, next action); ``tools``: the seed's tools."""
    if not isinstance(raw, str):
        return ParsedExpansion(error=f"generator answer is not text ({type(raw).__name__})")
    harmony = harmony_answer(raw)
    if harmony is not None:  # gpt-oss returned raw: only its final channel is the answer
        if harmony.answer is None:
            return ParsedExpansion(error=harmony.problem)
        raw = harmony.answer
    # The trace as the seed prompts' answers are read: one the template opened ends at the last
    # </think> (R1, QwQ served without a reasoning parser), and samples drafted in it are not answers.
    text, trace_error = strip_reasoning(raw)
    if text is None:
        return ParsedExpansion(error=trace_error)
    first_sample = _first_of_numbered_samples(text) or _first_of_listed_samples(text)
    if first_sample is not None:
        text = first_sample
    sections = _sections(text)
    if isinstance(sections, str):
        return ParsedExpansion(error=sections)
    input_text, output_text = sections
    if not input_text or _PLACEHOLDER.match(input_text):
        return ParsedExpansion(error="INPUT: is empty")
    input_text = _template_turns_as_markers(input_text)
    input_text = _heading_turns_as_markers(_OPENING_LABEL.sub("USER: ", input_text, count=1))
    input_text = _GENERATION_PROMPT.sub("", input_text.rstrip())
    # Human:/AI: are turns only in an INPUT written as a transcript, one that opens with a role marker:
    # in a user's plain text ("My glossary:\nAI: artificial intelligence") such a line is the text.
    other_names = _ROLE.match(input_text) is not None
    try:
        messages = _conversation(input_text, tools, other_names=other_names)
    except ValueError as error:
        return ParsedExpansion(error=f"INPUT: {error}")
    for message in messages:
        token = None if message.role == "tool" else _marker_token(message.content)
        if token is not None:
            return ParsedExpansion(
                error=f"INPUT: a chat-template token {token.group()} in a {message.role} turn"
            )
    messages, annotated = _without_input_notes(messages)
    if not any(m.role == "user" for m in messages):
        return ParsedExpansion(error="INPUT: has no user turn")
    if messages[-1].role == "assistant":
        return ParsedExpansion(
            error="INPUT: ends with an assistant turn; the OUTPUT would not be its next step"
        )
    output_text, noted = _without_reply_notes(output_text)
    if noted and not output_text:
        return ParsedExpansion(messages=messages, error=_NOTE_ALONE)
    # A template's assistant turn copied as the OUTPUT (<|im_start|>assistant\n…<|im_end|>): its marker.
    output_text = _heading_turns_as_markers(_template_turns_as_markers(output_text))
    reply_tags = _REPLY_TAGS.fullmatch(output_text)
    if reply_tags is not None:
        output_text = reply_tags.group("inner")
    output_text, turn_error, continued = _assistant_turn(output_text, other_names=other_names)
    if turn_error is not None:
        return ParsedExpansion(messages=messages, error=f"OUTPUT: {turn_error}")
    repairs = ["output_continued"] if continued else []
    if first_sample is not None:
        repairs.append("first_of_several_samples")
    labelled = _CALL_LABEL.match(output_text)
    if labelled is not None:  # "**Tool call:**" on a line of its own over the call: its label
        unlabelled = output_text[labelled.end() :]
        trial = parse_output(_readable_calls(unlabelled)[0], tools)
        if trial.error is None and trial.action is not None and trial.action.calls:
            output_text = unlabelled
            repairs.append("call_label")
    output_text, call_repairs = _readable_calls(output_text)
    repairs.extend(call_repairs)
    parsed = _message_output(output_text, tools)
    if parsed is None:
        parsed = parse_output(output_text, tools)
        listed = _listed_calls(output_text)
        if parsed.action is not None and not parsed.action.calls and listed is not None:
            in_list = parse_output(listed, tools)
            if in_list.action is not None and in_list.action.calls:
                parsed = in_list
                repairs.append("bulleted_calls")
        if parsed.action is not None and not parsed.action.calls:
            # Text after calls is no part of the label; text alone is, so commentary must come off it.
            without, commentary = _without_commentary(output_text)
            if commentary:
                parsed = parse_output(without, tools)
                repairs.append("trailing_commentary")
        elif parsed.error is not None:
            before = _calls_before_commentary(output_text, tools)
            if before is not None:
                parsed = before
                repairs.append("trailing_commentary")
    if parsed.error is not None or parsed.action is None:
        return ParsedExpansion(messages=messages, error=f"OUTPUT: {parsed.error or 'empty'}")
    action = parsed.action
    between = _words_between_calls(output_text) if len(action.calls) > 1 else None
    if between is not None:
        return ParsedExpansion(
            messages=messages, error=f"OUTPUT: words between its calls ({between!r}): one step, or two?"
        )
    if not action.calls and not (action.text or "").strip():
        return ParsedExpansion(messages=messages, error="OUTPUT: holds neither a call nor a reply")
    if not action.calls and _is_json(action.text or ""):
        # {"content": "What time?"}, {}: JSON that is no call and no assistant message. As text it
        # would train the assistant to answer the user in JSON.
        return ParsedExpansion(
            messages=messages, error="OUTPUT: a JSON value that is neither a call nor an assistant message"
        )
    if not action.calls and action.text:
        reply, noted_in_turn = _without_reply_notes(action.text)
        noted = noted or noted_in_turn
        if not reply:
            return ParsedExpansion(messages=messages, error=_NOTE_ALONE)
        if _DESCRIBED_REPLY.match(reply):
            return ParsedExpansion(
                messages=messages, error="OUTPUT: describes the assistant's reply instead of giving it"
            )
        if _YAML_CALL_NAME.search(reply) and _YAML_CALL_ARGUMENTS.search(reply):
            return ParsedExpansion(
                messages=messages, error="OUTPUT: a call written as YAML (name: …, arguments: …), not read"
            )
        token = _marker_token(reply)
        if token is not None:  # a template the reader does not know, as in the INPUT's turns
            return ParsedExpansion(messages=messages, error=f"OUTPUT: a chat-template token {token.group()}")
        named = _tool_written_in(reply, tools or ())
        if named is not None:
            return ParsedExpansion(
                messages=messages,
                error=f"OUTPUT: a text reply that writes a call of {named} instead of making it",
            )
        action = action.model_copy(update={"text": _unquoted_turn(reply)})
        if _PLACEHOLDER.match(action.text):
            return ParsedExpansion(
                messages=messages, error=f"OUTPUT: is empty ({action.text!r} holds no step)"
            )
    if noted:
        repairs.append("reply_note")
    if annotated:
        repairs.append("input_commentary")
    return ParsedExpansion(messages=messages, action=action, repairs=[*parsed.repairs, *repairs])


# A line that names what follows as the OUTPUT's call(s) ("**Tool call:**", "Function calls:", "Here is
# the call:"); it is taken off only when calls follow it.
_CALL_LABEL = re.compile(
    r"\A[ \t]*[*_#]*[ \t]*(?:here(?:['’]s|[ \t]+is|[ \t]+are)[ \t]+the[ \t]+)?"
    r"(?:(?:tool|function|api)[ \t]+)?calls?[ \t]*[*_]*[ \t]*[:：][ \t]*[*_]*[ \t]*\n",
    re.IGNORECASE,
)

# What a model writes before a text reply to say what it is, not part of what the assistant says: a
# note that no tool is called or a stage direction, in brackets or parentheses ("[No tool call]",
# "*(asks for clarification)*") or as a line of its own ("No tool call needed."); a label naming the
# reply ("**Response:**", "**Assistant response (no tool call):**", "Clarification needed:").
_NO_CALL = (
    r"no[ \t]+(?:tool|function)?[ \t]*calls?(?:[ \t]+(?:is[ \t]+)?(?:needed|required|made))?"
    r"|no[ \t]+(?:tool|function)s?[ \t]+(?:is[ \t]+|are[ \t]+)?(?:needed|required|used|called)"
)
_REPLY_NOTE = re.compile(
    r"\A[ \t]*(?:"
    rf"[*_]*[\[(][ \t]*(?:[^\])\n]*?\b(?:{_NO_CALL}|clarif\w*|asks?|text[ \t-]+(?:response|reply|answer|only)"
    r"|plain[ \t-]+text)\b[^\])\n]*)[\])][*_]*[ \t]*[:.]?"
    rf"|[*_]*(?:{_NO_CALL})[ \t]*[.!]?[*_]*[ \t]*(?=\n|\Z)"
    r"|\*\*[^*\n]*\b(?:response|reply|answer|assistant|clarif\w*|question)\b[^*\n]*\*\*[ \t]*:?"
    r"|(?:clarification(?:[ \t]+(?:needed|question))?|(?:assistant|text)[ \t]+(?:response|reply)"
    r"|response|reply)[ \t]*:"
    r")[ \t]*\n?",
    re.IGNORECASE,
)
_NOTE_ALONE = "OUTPUT: a note that no tool is called, and no reply"
# A text OUTPUT that tells what the assistant does instead of saying it ("The assistant should ask
# for the time: …", "No tool call is made; the assistant asks …"): no reply to train on.
_DESCRIBED_REPLY = re.compile(
    r"(?:the[ \t]+)?(?:assistant|model)[ \t]+(?:should|must|will|would|needs[ \t]+to|asks|responds|replies)\b"
    rf"|(?:{_NO_CALL})\b[^\n]*\bthe[ \t]+(?:assistant|model)\b",
    re.IGNORECASE,
)


# A call written as YAML ("- name: get_weather" / "  arguments:" / "    city: Porto"), as a model that
# answers the whole sample in YAML writes it: no call the reader reads, and as a text reply it would
# train the assistant to say the call to the user. A name line and an arguments line give it away.
_YAML_CALL_NAME = re.compile(
    r"^[ \t]*(?:-[ \t]+)?(?:name|function|tool|action)[ \t]*:[ \t]*[\"']?[\w.-]+[\"']?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_YAML_CALL_ARGUMENTS = re.compile(
    r"^[ \t]*(?:-[ \t]+)?(?:arguments|parameters|args|tool_input|action_input)[ \t]*:",
    re.IGNORECASE | re.MULTILINE,
)


# What may stand between two call blocks of one step: a list's numbering, a fence's lines, "and".
_CALL_SEPARATOR = re.compile(r"(?:\s|\d{1,2}[.)]|[-*•,;]|```\w*|~~~\w*|\band\b)*", re.IGNORECASE)
_BETWEEN_CALL_BLOCKS = re.compile(r"</tool_call>(?P<between>.*?)<tool_call>", re.DOTALL)


def _words_between_calls(output: str) -> str | None:
    """The words a model wrote between two ``<tool_call>`` blocks of its OUTPUT, if any: after the
    first call it may offer another ("Alternative OUTPUT:", "Or, if the user meant Faro:"), which the
    call reader would add to the step as a parallel call. Which calls the step holds is not ours to
    guess; a list's numbering or an "and" between them is no such word."""
    for found in _BETWEEN_CALL_BLOCKS.finditer(output):
        between = found.group("between")
        if not _CALL_SEPARATOR.fullmatch(between):
            return " ".join(between.split())[:80]
    return None


# What a paragraph holding a call (or part of one) has and commentary has not.
_CALL_SHAPED = re.compile(r"[{\[<]|\w\(")


def _calls_before_commentary(output: str, tools: Sequence[ToolSpec] | None) -> ParsedOutput | None:
    """The calls of an OUTPUT that reads only without the paragraphs after them ("```json {…} ```" or
    "[TOOL_CALLS][…]", then "The call passes the city."): the longest run of leading paragraphs that
    reads as calls, when what follows holds nothing call-shaped (else a call may be among the words,
    and the OUTPUT stays unread). The words are about the calls, as text after <tool_call> blocks
    is; only calls: a text reply's words are its own."""
    cuts = [m.start() for m in re.finditer(r"\n[ \t]*\n", output)]
    for cut in reversed(cuts[-8:]):  # commentary is a few paragraphs; each try reads the calls again
        head = parse_output(output[:cut], tools)
        if head.error is None and head.action is not None and head.action.calls:
            return None if _CALL_SHAPED.search(output[cut:]) else head
    return None


def _tool_written_in(reply: str, tools: Sequence[ToolSpec]) -> str | None:
    """The seed's tool a text reply writes a call of, as code or by its identifier ("`get_weather(…)`",
    "**Tool call:** get_weather(city=…)", "Call `get_weather` with {…}", "[calls get_weather with …]"):
    the answer's call in a form no reader takes, kept as text it would train the assistant to tell the
    user its calls. A name that is a plain word ("search") counts only as code: followed by "(" or in
    backticks; a users' reply never needs a tool's identifier."""
    for tool in tools:
        name = re.escape(tool.name)
        identifier = not tool.name.isalpha()  # get_weather, maps.search: no word of a sentence
        pattern = rf"(?<![\w.]){name}\s*\(|`{name}`" + (rf"|(?<![\w.]){name}(?![\w.])" if identifier else "")
        if re.search(pattern, reply) is not None:
            return tool.name
    return None


# Tags a model wraps the whole OUTPUT in to say what it is ("<response>What time?</response>"), as
# <input>/<output> wrap the parts: no part of the reply.
_REPLY_TAGS = re.compile(
    r"\s*<(?P<tag>response|answer|reply|message)>\s*(?P<inner>.*?)\s*</(?P=tag)>\s*",
    re.IGNORECASE | re.DOTALL,
)


def _without_reply_notes(text: str) -> tuple[str, bool]:
    """A text reply without the notes and labels a model wrote before it (see ``_REPLY_NOTE``), and
    whether there were any."""
    stripped = text
    # A note is short: look at the reply's start only (the pattern is quadratic on a long line).
    while (note := _REPLY_NOTE.match(stripped[:300])) is not None and note.end() > 0:
        stripped = stripped[note.end() :]
    return stripped.strip(), stripped is not text


def _readable_calls(text: str) -> tuple[str, list[str]]:
    """A turn's calls as the call reader reads them: their keys renamed (see below); the repairs that
    took. (A newline written raw in a call's JSON string the call reader reads itself.)"""
    text, renamed = _calls_with_read_keys(text)
    return text, ["call_keys_renamed"] if renamed else []


# Call objects that name the function under "function" or give its arguments under "args" (Gemini's
# functionCall is {"name", "args"}; models write {"function": NAME, "arguments": …} after OpenAI's
# function object), or write a ReAct/LangChain agent's step ({"tool": NAME, "tool_input": {…}},
# {"action": NAME, "action_input": {…}}): generators write them as often as the prompt's {"name",
# "arguments"}. The policy parser refuses them on purpose (the format the policy is trained to write);
# a generator's sample is read through them. (ReAct's {"action": "Final Answer", "action_input":
# "text"} has no argument object: it is no call, and stays as written.)
_OTHER_CALL_KEY = re.compile(r'"(?:function|args|tool|tool_input|action|action_input)"\s*:')
_CALL_NAME_KEYS = ("name", "function", "tool", "action")
_CALL_ARGUMENT_KEYS = ("arguments", "parameters", "args", "tool_input", "action_input")


def _calls_with_read_keys(text: str) -> tuple[str, bool]:
    """``text`` with each call object written under other keys (see ``_OTHER_CALL_KEY``) rewritten as
    ``{"name": …, "arguments": …}``, and whether there was any; other JSON is left as written."""
    if _OTHER_CALL_KEY.search(text) is None:
        return text, False
    decoder = json.JSONDecoder(strict=False)  # a newline written raw in a string: as the call reader
    parts: list[str] = []
    position = 0
    renamed = False
    for opening in re.finditer(r"\{", text):
        if opening.start() < position:
            continue  # inside an object already rewritten
        try:
            value, end = decoder.raw_decode(text, opening.start())
        except (ValueError, RecursionError):
            continue
        call = _renamed_call(value)
        if call is not None:
            parts.append(text[position : opening.start()] + json.dumps(call, ensure_ascii=False))
            position, renamed = end, True
    parts.append(text[position:])
    return "".join(parts), renamed


def _renamed_call(value: Any) -> dict[str, Any] | None:
    """A call object under other keys (see ``_OTHER_CALL_KEY``) with the keys the call reader reads;
    None for any other value, and for a call already under them."""
    if not isinstance(value, dict):
        return None
    names = [key for key in _CALL_NAME_KEYS if isinstance(value.get(key), str)]
    arguments = [key for key in _CALL_ARGUMENT_KEYS if isinstance(value.get(key), dict)]
    if len(names) != 1 or len(arguments) != 1 or set(value) - {"id", "type"} != {*names, *arguments}:
        return None
    if (names[0], arguments[0]) in (("name", "arguments"), ("name", "parameters")):
        return None
    extra = {key: value[key] for key in ("id", "type") if key in value}
    return {"name": value[names[0]], "arguments": value[arguments[0]], **extra}


def _message_output(output: str, tools: Sequence[ToolSpec] | None) -> ParsedOutput | None:
    """An OUTPUT written as the chat API's assistant message (``{"role": "assistant", "content": …,
    "tool_calls": […]}``) or as Anthropic's ``tool_use`` blocks, read as the INPUT's message list is;
    None when it is no such JSON. The text reader would keep the JSON as the assistant's words."""
    try:
        value = json.loads(output)
    except (ValueError, RecursionError):
        return None
    react = _react_step(value)
    if react is not None:
        return react
    blocks = value if isinstance(value, list) else [value]
    if blocks and all(isinstance(b, dict) and b.get("type") in ("tool_use", "text") for b in blocks):
        if not any(b.get("type") == "tool_use" for b in blocks):
            return None
        value = {"role": "assistant", "content": blocks}
    if not isinstance(value, dict) or value.get("role") != "assistant":
        return None
    try:
        messages = chat_messages([value], tools or ())
    except (ValueError, TypeError, KeyError, AttributeError) as error:  # what a record's reading raises
        return ParsedOutput(error=f"the assistant message does not read: {error}")
    if len(messages) != 1 or not (messages[0].tool_calls or messages[0].content.strip()):
        return ParsedOutput(error="the assistant message holds neither calls nor text")
    message = messages[0]
    action = Action(calls=list(message.tool_calls)) if message.tool_calls else Action(text=message.content)
    return ParsedOutput(action=action, repairs=["chat_message_output"])


def _labels(text: str) -> tuple[list[re.Match[str]], list[re.Match[str]]]:
    """The answer's INPUT and OUTPUT labels."""
    sections = list(_SECTION.finditer(text))
    if any(m.group(1).isupper() for m in sections):
        # The prompt writes its labels in capitals; an "Input:" line in another case is the sample's
        # own text (a user's "Input: the numbers 1, 2"), not a second sample.
        sections = [m for m in sections if m.group(1).isupper()]
    inputs = [m for m in sections if m.group(1).upper() in ("INPUT", "输入")]
    outputs = [m for m in sections if m.group(1).upper() in ("OUTPUT", "输出")]
    return inputs, outputs


# A heading that numbers a sample ("### Sample 2", "**Example 3:**", "Training sample #1 (Porto)").
_SAMPLE_HEADING = re.compile(
    r"^[ \t#*>_]*(?:new[ \t]+)?(?:training[ \t]+)?(?:sample|example)[ \t]*#?[ \t]*"
    r"(?P<number>\d{1,2})\b[^\n]*$",
    re.IGNORECASE | re.MULTILINE,
)


def _first_of_numbered_samples(text: str) -> str | None:
    """The answer up to its second sample, when it lists several (asked for one, a model writes two to
    four): each sample's INPUT then OUTPUT, under a heading numbering it 1, 2, … in order. All were
    written under the one request's constraint, as answers to it, so the first is the request's
    sample (repair ``first_of_several_samples``); the others are not candidates (a request has one).
    None for any other answer: labels without such headings may be a draft and its revision, whose
    first is not the answer, and stay refused."""
    inputs, outputs = _labels(text)
    if len(inputs) < 2 or len(inputs) != len(outputs):
        return None
    second_heading = 0
    previous_end = 0
    for number, (start, end) in enumerate(zip(inputs, outputs, strict=True), 1):
        if not previous_end <= start.start() < end.start():
            return None  # not INPUT, OUTPUT, INPUT, OUTPUT, …
        headings = list(_SAMPLE_HEADING.finditer(text, previous_end, start.start()))
        if not headings or int(headings[-1].group("number")) != number:
            return None
        if number == 2:
            second_heading = headings[-1].start()
        previous_end = end.end()
    return text[:second_heading]


# A line of a list that holds one call written as Python ("- get_weather(city=\"Porto\")", "1. `f(x=1)`").
_LISTED_CALL = re.compile(
    r"[ \t]*(?:[-*•]|\d{1,2}[.)])[ \t]+(`?)(?P<call>[A-Za-z_][\w.]*\(.*\))\1[ \t]*", re.DOTALL
)


def _listed_calls(output: str) -> str | None:
    """An OUTPUT that lists its calls as Python, one a bullet, as the call reader reads such calls:
    one a line, without the bullets; None unless every line is such a bullet. Read as text, the list
    would train the assistant to write its calls to the user."""
    lines = [line for line in output.splitlines() if line.strip()]
    listed = [_LISTED_CALL.fullmatch(line) for line in lines]
    if not lines or any(match is None for match in listed):
        return None
    return "\n".join(match.group("call") for match in listed if match is not None)


# A ReAct agent's step ({"action": …, "action_input": …}, LangChain's {"tool": …, "tool_input": …}); one
# whose input is an argument object was read as a call already (see _OTHER_CALL_KEY).
_REACT_KEYS = ({"action", "action_input"}, {"tool", "tool_input"})


def _react_step(value: Any) -> ParsedOutput | None:
    """An OUTPUT written as a ReAct step that is no call: the agent's ``Final Answer`` is the text
    reply (repair ``react_final_answer``); a tool step whose input is no argument object reads as no
    call and is refused, not kept as the JSON text of a reply. None for any other value."""
    if not isinstance(value, dict) or set(value) not in _REACT_KEYS:
        return None
    name = value.get("action", value.get("tool"))
    given = value.get("action_input", value.get("tool_input"))
    if isinstance(name, str) and name.strip().lower() == "final answer" and isinstance(given, str):
        if not given.strip():
            return ParsedOutput(error="the ReAct Final Answer is empty")
        return ParsedOutput(action=Action(text=given.strip()), repairs=["react_final_answer"])
    return ParsedOutput(error=f"a ReAct step whose input is no argument object: {given!r}")


def _first_of_listed_samples(text: str) -> str | None:
    """The first sample of an answer written as one JSON list of samples (``[{"input": …, "output":
    …}, …]``), as JSON: a list orders its samples as numbered headings do, and every one answers the
    request (see ``_first_of_numbered_samples``). None for any other answer, one with section labels or
    more JSON after the list among them."""
    inputs, outputs = _labels(text)
    found = _JSON_START.search(text)
    if inputs or outputs or found is None:
        return None
    try:
        value, end = json.JSONDecoder().raw_decode(text, found.end() - 1)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list) or len(value) < 2 or _JSON_START.search(text, end) is not None:
        return None
    if any(_json_sample(item) is None for item in value):
        return None
    return json.dumps(value[0], ensure_ascii=False)


def _sections(text: str) -> tuple[str, str] | str:
    """The answer's INPUT and OUTPUT texts, or why there are not exactly one of each."""
    inputs, outputs = _labels(text)
    if not inputs and not outputs:
        tagged = _tagged_sections(text)
        if tagged is not None:
            return tagged
        json_sections = _json_sections(text)
        if json_sections is not None:
            return json_sections
    if not inputs:
        return "no INPUT: section"
    if not outputs:
        return "no OUTPUT: section"
    if len(inputs) > 1 or len(outputs) > 1:
        return f"expected one sample, found {len(inputs)} INPUT and {len(outputs)} OUTPUT sections"
    start, end = inputs[0], outputs[0]
    if end.start() < start.end():
        return "OUTPUT: comes before INPUT:"
    output = _before_wrapper_close(
        text[end.end() :], before_input=text[: start.start()], before_output=text[: end.start()]
    )
    return _unwrapped(text[start.end() : end.start()], brackets=True), _unwrapped(output, brackets=False)


# The parts in XML tags instead of labels, as Claude writes a prompt's parts: <input>…</input>
# <output>…</output>; a preface before them and commentary after them are no part of either.
_TAGGED_SECTION = re.compile(r"<(input|output)>(.*?)(?:</\1>|\Z)", re.IGNORECASE | re.DOTALL)


def _tagged_sections(text: str) -> tuple[str, str] | str | None:
    """The INPUT and OUTPUT of an answer that tags its parts (``<input>…</input>``), or why there are
    not exactly one of each in order; None when it tags none."""
    found = _TAGGED_SECTION.findall(text)
    if not found:
        return None
    kinds = [tag.lower() for tag, _ in found]
    if kinds != ["input", "output"]:
        return f"expected one <input> then one <output> section, found {' '.join(kinds)}"
    return _unwrapped(found[0][1], brackets=True), _unwrapped(found[1][1], brackets=False)


_FENCE_LINE = re.compile(r"[ \t]*(?:```|~~~)(?P<language>[\w-]*)[ \t]*")
_TAG_LINE = re.compile(r"^[ \t]*<(?P<tag>[A-Za-z][\w-]*)>[ \t]*$", re.MULTILINE)


def _before_wrapper_close(output: str, *, before_input: str, before_output: str) -> str:
    """The OUTPUT without the close of a wrapper around the sample, and without what follows that
    close (commentary). A wrapper opens before the INPUT label and is still open at the OUTPUT label:
    a fence (```` ``` ````, then ``INPUT:``) closes at the OUTPUT's first bare fence line that text
    precedes and no fence of its own opened; a tag line (``<sample>``) at its closing tag line. A text
    answer kept them as its last line. (A tag the INPUT's turns leave open, a ``<tool_call>`` never
    closed, is no wrapper: its close in the OUTPUT is the OUTPUT's own.)"""

    def fence_open(text: str) -> bool:
        return sum(1 for line in text.splitlines() if _FENCE_LINE.fullmatch(line)) % 2 == 1

    wrapped_in_fence = fence_open(before_input) and fence_open(before_output)
    tags = {
        m.group("tag")
        for m in _TAG_LINE.finditer(before_input)
        if f"</{m.group('tag')}>" not in before_output
    }
    if not wrapped_in_fence and not tags:
        return output
    inner_fence = False
    offset = 0
    for line in output.splitlines(keepends=True):
        bare = line.strip()
        fence = _FENCE_LINE.fullmatch(bare)
        if wrapped_in_fence and fence is not None:
            if fence.group("language") or inner_fence or not output[:offset].strip():
                inner_fence = not inner_fence  # the OUTPUT's own code block opens or closes
            else:
                return output[:offset]
        elif bare.startswith("</") and bare.endswith(">") and bare[2:-1] in tags:
            return output[:offset]
        offset += len(line)
    return output


# Keys a generator that answers with a JSON object gives the two parts: the prompt's labels in any case,
# or names for what they hold ({"user_query": …, "tool_call": {…}}; a dataset record's {"messages": […],
# "label": …}).
_JSON_INPUT_KEYS = frozenset(
    {"input", "user_query", "query", "user_input", "conversation", "messages", "dialogue"}
)
_JSON_OUTPUT_KEYS = frozenset(
    {
        "output",
        "tool_call",
        "tool_calls",
        "expected_output",
        "response",
        "label",
        "answer",
        "expected_response",
    }
)


# Where a JSON value of the answer may open: at a line's start (after a preface line or a fence's).
_JSON_START = re.compile(r"^[ \t]*[{\[]", re.MULTILINE)


def _json_sections(text: str) -> tuple[str, str] | str | None:
    """The INPUT and OUTPUT of an answer written as one JSON object (in a fence or after a preface,
    as models that favour JSON write it), as the sections' texts would hold them: a string as it is,
    calls or messages as JSON; why not, when it holds several samples (a list of them, one object
    after another, JSON that does not read after one); None when it holds no such object."""
    samples: list[tuple[Any, Any]] = []
    decoder = json.JSONDecoder()
    position = 0
    while (found := _JSON_START.search(text, position)) is not None:
        try:
            value, position = decoder.raw_decode(text, found.end() - 1)
        except (ValueError, RecursionError):  # not JSON (cut off?), or nested past what the decoder follows
            # No object inside a value that does not read is tried on its own: the first sample of a
            # list the budget cut is no answer.
            if samples:
                return "expected one sample, found more JSON after it that does not read"
            return None
        for item in value if isinstance(value, list) else [value]:
            sample = _json_sample(item)
            if sample is not None:
                samples.append(sample)
    if len(samples) > 1:
        return f"expected one sample, found {len(samples)} samples written as JSON objects"
    if not samples:
        return None
    texts = [item if isinstance(item, str) else json.dumps(item, ensure_ascii=False) for item in samples[0]]
    return texts[0].strip(), texts[1].strip()


def _json_sample(value: Any) -> tuple[Any, Any] | None:
    """A JSON object's input and output values, by their keys; None unless it has one of each."""
    if not isinstance(value, dict):
        return None
    by_kind: dict[str, list[Any]] = {"input": [], "output": []}
    for key, item in value.items():
        name = str(key).strip().lower()
        if name in _JSON_INPUT_KEYS:
            by_kind["input"].append(item)
        elif name in _JSON_OUTPUT_KEYS:
            by_kind["output"].append(item)
    if len(by_kind["input"]) != 1 or len(by_kind["output"]) != 1:
        return None
    written, step = by_kind["input"][0], by_kind["output"][0]
    if isinstance(written, dict):  # one message
        written = [written]
    return written, step


_EDGE_RULES = re.compile(r"^(?:\s*(?:-{3,}|\*{3,}|_{3,})[ \t]*\n)+|(?:\n[ \t]*(?:-{3,}|\*{3,}|_{3,})\s*)+$")
_WHOLE_FENCE = re.compile(r"^(?:```|~~~)[\w-]*[ \t]*\n(?P<body>.*?)\n?(?:```|~~~)$", re.DOTALL)
# Quotes, and the brackets of the prompt's "OUTPUT: [Correct tool calls …]" placeholder, copied.
_QUOTE_PAIRS = {'"': '"', "“": "”", "'": "'", "[": "]"}


# A section written wholly as a Markdown blockquote ("> USER: …" / "> and a second line"): every line
# quoted, blank lines aside. Its quote marks are no part of the turns (the markers read past them, the
# turns' other lines kept them).
_BLOCKQUOTE = re.compile(r"\A(?:[ \t]*(?:>[^\n]*)?(?:\n|\Z))+\Z")
_QUOTE_MARK = re.compile(r"^[ \t]*> ?", re.MULTILINE)


def _unwrapped(section: str, *, brackets: bool) -> str:
    """A section's content without the wrapping models copy from the prompt's ``INPUT: [content]`` or
    add themselves: a code fence around it, a blockquote, Markdown rules (``---``) at its edges and, for
    the INPUT, the brackets of the prompt's placeholder."""
    text = _EDGE_RULES.sub("", section.strip() + "\n").strip()
    fenced = _WHOLE_FENCE.match(text)
    if fenced is not None:
        text = fenced.group("body").strip()
    if _BLOCKQUOTE.match(text):
        text = _QUOTE_MARK.sub("", text).strip()
    if brackets and text.startswith("[") and text.endswith("]") and _ROLE.match(text[1:-1].lstrip()):
        text = text[1:-1].strip()
    return text


# A paragraph after the OUTPUT that talks about the sample ("**Explanation:** …", "### Note", "This
# sample teaches …", a rule and then anything): the prompt forbids it, and models add it anyway. A
# Markdown heading opens such a paragraph too ("### Why this sample"): a reply to a user has none; and
# so does a bold or italic label on why, the scenario or the sample's features ("**Why this works:**",
# "*Scenario focus: …*"), or "This demonstrates/teaches/tests …" after a check mark; a label in
# parentheses ("(Note: no tool is called …)") and "In this example, …" too. A label no reply to a user
# holds ("Explanation:", "Rationale:") opens it on the next line already, no blank line between.
_COMMENTARY = re.compile(
    r"\n[ \t*_]*(?:explanation|rationale)[ \t*_]*:"
    r"|\n[ \t]*\n(?:[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*(?:\n|$)"
    r"|[ \t>]*#{1,6}[ \t]"
    r"|[ \t*#>_(]*(?:explanation|rationale|reasoning|notes?|key points|error pattern[^:\n]*)[ \t*_]*:"
    r"|[ \t*#>_]*(?:explanation|rationale|notes?)[ \t*_]*\n"
    r"|[ \t>]*[*_]+[ \t]*(?:why|scenario|key features|design|purpose)\b[^:\n]*:"
    r"|[ \t*_]*(?:[✅✔✓]\ufe0f?[ \t]*)?(?:in )?this (?:(?:new )?(?:training )?(?:sample|example)"
    r"|demonstrates|teaches|tests|targets|shows|covers|addresses)\b)",
    re.IGNORECASE,
)


def _without_commentary(output: str) -> tuple[str, bool]:
    """A plain-text OUTPUT without the commentary after it, and whether there was any; a blank line
    must come before it (but before an "Explanation:" label), so a one-paragraph answer stays whole."""
    found = _COMMENTARY.search(output)
    if found is None:
        return output, False
    return output[: found.start()].rstrip(), True


def _mentioned(text: str, start: int, end: int) -> bool:
    """Whether the token at ``text[start:end]`` is mentioned inside a sentence, not used as a turn
    marker: words on its line before and after it, set off from it by a space, quote or punctuation.
    A token that opens or ends a line, is glued to the words it wraps (``Hi<|x|>Hello``) or names a
    role, is a template's marker."""
    if _ROLE_TOKEN.search(text[start:end]) is not None:
        return False
    line_before = text[:start].rpartition("\n")[2]
    line_after = text[end:].partition("\n")[0]
    return (
        bool(line_before.strip() and line_after.strip())
        and line_before[-1] in _MENTION_BEFORE
        and line_after[0] in _MENTION_AFTER
    )


def _marker_token(content: str) -> re.Match[str] | None:
    """The first special token of a turn used as a turn marker (not mentioned in a sentence)."""
    return next(
        (m for m in _SPECIAL_TOKEN.finditer(content) if not _mentioned(content, m.start(), m.end())), None
    )


# A turn's role written as a Markdown heading or a bold line of its own ("#### User", "**Assistant**",
# "### User (turn 2)"), the turn's text on the lines below, as chat-styled models lay out a dialogue.
_HEADING_ROLE = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*|(?P<bold>\*\*|__)[ \t]*)(?P<role>user|assistant|system|tool|human|ai|model)"
    r"(?:[ \t]*\([^()\n]{0,40}\))?[ \t]*:?[ \t]*(?(bold)(?P=bold))[ \t]*(?:\n|\Z)",
    re.IGNORECASE | re.MULTILINE,
)
_HEADING_ROLES = {"human": "USER", "ai": "ASSISTANT", "model": "ASSISTANT"}


def _heading_turns_as_markers(text: str) -> str:
    """``text`` with turns headed by their role (see ``_HEADING_ROLE``) written with role markers, when
    it opens with such a heading or another role marker (a transcript): an INPUT's dialogue was one
    user turn with the headings in it, an OUTPUT's "#### Assistant" part of the reply. In a user's own
    text (no marker opens it) such a line stays text."""
    if _HEADING_ROLE.match(text) is None and _ROLE.match(text) is None:
        return text

    def marker(heading: re.Match[str]) -> str:
        role = heading.group("role").lower()
        return f"{_HEADING_ROLES.get(role, role.upper())}: "

    return _HEADING_ROLE.sub(marker, text)


def _template_turns_as_markers(text: str) -> str:
    """``text`` with a chat template's turns (see ``_TEMPLATE_OPENER``) written with role markers,
    their closers gone."""

    def marker(opener: re.Match[str]) -> str:
        if opener.group("reply") is not None:
            # Mistral's reply follows [/INST]: none when the INPUT ends there or the next turn opens.
            rest = _TEMPLATE_CLOSER.sub("", text[opener.end() :]).lstrip()
            return "\n" if not rest or rest.startswith("[INST]") else "\nASSISTANT: "
        role = "user" if opener.group("inst") else next(r for r in opener.groups() if r is not None)
        return f"\n{_TEMPLATE_ROLES.get(role.lower(), 'TOOL')}: "

    if _TEMPLATE_OPENER.search(text) is not None:
        # A closer a user's sentence mentions ("What does <|endoftext|> mean?") is the user's words.
        text = _TEMPLATE_CLOSER.sub(
            lambda closer: closer.group() if _mentioned(closer.string, closer.start(), closer.end()) else "",
            _TEMPLATE_OPENER.sub(marker, text),
        ).strip()
    return text


def _assistant_turn(output: str, *, other_names: bool) -> tuple[str, str | None, bool]:
    """The OUTPUT's first assistant turn, the next step after the INPUT: without the ``ASSISTANT:``
    marker a model writes before it (as the INPUT's turns have theirs), and without the turns a model
    goes on to write after it (``USER: Rome`` / ``ASSISTANT: <tool_call>…``), which are no part of that
    step; whether there were such turns. (text, reason, False) when no assistant step comes first.
    ``other_names``: ``Human:``/``AI:`` are markers, as in the INPUT."""
    markers = _markers(output, other_names=other_names)
    start = 0
    if markers and markers[0].start() == 0 and _role_of(markers[0]) == "assistant":
        start, markers = markers[0].end(), markers[1:]
    if not markers:
        return output[start:].strip(), None, False
    step = output[start : markers[0].start()].strip()
    if not step:
        return (
            output,
            f"starts with a {markers[0].group(1).upper()}: turn, not the assistant's next step",
            False,
        )
    if parse_output(step).kind == "text" and (
        # A tool turn only follows calls, and a dialogue the model went on with has the assistant speak
        # again: otherwise the marker is a line of the text answer ("- Tool: a drill", "User: jane.doe").
        _role_of(markers[0]) == "tool" or not any(_role_of(m) == "assistant" for m in markers)
    ):
        return output[start:].strip(), None, False
    return step, None, True


def _markers(text: str, *, other_names: bool) -> list[re.Match[str]]:
    """The role markers of ``text``; ``Human:``/``AI:`` among them only with ``other_names``."""
    return [m for m in _ROLE.finditer(text) if other_names or m.group(1).lower() not in _OTHER_NAMES]


def _role_of(marker: re.Match[str]) -> str:
    """The role a marker gives its turn: Human's the user's, AI's the assistant's, and the tool
    result's other names the tool's."""
    role = re.split(r"[ _]", marker.group(1).lower())[0]  # "user query" is the user's, "tool_result" a tool's
    role = _OTHER_NAMES.get(role, _CHINESE_ROLES.get(role, role))
    return role if role in ("user", "assistant", "system") else "tool"


def _unquoted_turn(content: str) -> str:
    """A turn the model wrapped in one pair of quotes (``USER: "Weather in Rome?"``) or of the
    placeholder's brackets (``OUTPUT: [Which city?]``), a sentence's period after the quotes too
    (``OUTPUT: "What time would you like?".``)."""
    close = _QUOTE_PAIRS.get(content[:1])
    if close is None:
        return content
    body = content[:-1] if content.endswith(close + ".") else content
    if len(body) > 1 and body.endswith(close) and close not in body[1:-1]:
        return body[1:-1].strip()
    return content


def _conversation(text: str, tools: Sequence[ToolSpec] | None, *, other_names: bool) -> list[Message]:
    if _MESSAGE_LIST.match(text):
        messages = _listed_messages(text, tools)
        _check_results_answer_calls(messages)
        return messages
    markers = _markers(text, other_names=other_names)
    if not markers:
        return [Message(role="user", content=_unquoted_turn(text.strip()))]
    if text[: markers[0].start()].strip():
        raise ValueError("text before the first role marker")
    messages: list[Message] = []
    for index, marker in enumerate(markers):
        stop = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        content = text[marker.end() : stop].strip()
        role = _role_of(marker)
        # Qwen's chat template writes tool results as <tool_response> blocks, in a user turn; a model
        # that copies it puts them there, or straight after its calls with no marker at all.
        content, results = _split_results(content) if role != "tool" else (content, [])
        if role == "assistant":
            parsed = parse_output(_readable_calls(content)[0], tools)
            if parsed.error is not None:
                raise ValueError(f"assistant turn {index + 1} does not parse: {parsed.error}")
            action = parsed.action
            assert action is not None
            messages.append(
                Message(role="assistant", content=parsed.text or "", tool_calls=list(action.calls))
            )
            if not action.calls:
                messages[-1] = Message(role="assistant", content=content)
        elif role == "tool":
            responses = TOOL_RESPONSE_BLOCK.findall(content) or [content]
            # "TOOL (get_weather):", as the prompt shows the original sample's results, names the tool.
            name = " ".join((marker.group("name") or "").split()) or None
            # A fence around a result (```json … ```, as chat-styled models show JSON) is no part of it.
            answers = [_unwrapped(r, brackets=False) for r in responses]
            if any(_text_after_json(answer) for answer in answers):
                # The next turn written without its marker ("{"temp": 21}\nAnd in Porto?"): kept, the
                # user's words would be the tool's and the sample would end on the tool's turn.
                raise ValueError(f"tool turn {index + 1} has text after its JSON result")
            messages.extend(Message(role="tool", name=name, content=answer) for answer in answers)
        elif results and not content:
            pass  # a turn of tool results alone: they follow
        else:
            content = _unquoted_turn(content)
            if not content:
                raise ValueError(f"{role} turn {index + 1} is empty")
            messages.append(Message(role=role, content=content))  # type: ignore[arg-type]
        messages.extend(Message(role="tool", content=result) for result in results)
    _check_results_answer_calls(messages)
    return messages


# The last paragraph of a user's turn that is the generator's note on its sample, not the user's words:
# labelled as an explanation or the scenario ("Explanation: a single-turn request."), or a note, in
# parentheses, brackets or italics, that opens on the user, the assistant or the sample in the third
# person ("(The user names the day, so it must be passed.)", "**Note:** the user gives the day.").
# A user's own "Note: I need it in Celsius." or "(for my mum, the user of this account)" stays.
_INPUT_NOTE = re.compile(
    r"(?:\n[ \t]*\n|\n(?=[ \t]*[(\[*_]))(?P<note>"
    r"[ \t*_>]*(?:explanation|rationale|scenario(?:[ \t]+focus)?|error[ \t]+pattern)[ \t*_]*:[^\n]*"
    r"|[ \t>]*(?:[(\[*_]+[ \t]*(?:note[*_]*[ \t]*:[ \t*_]*)?|[*_]*note[*_]*[ \t]*:[ \t*_]*)"
    r"(?:the[ \t]+(?:user|assistant|model)|this[ \t]+(?:sample|example|scenario))\b[^\n]*"
    r")\s*\Z",
    re.IGNORECASE,
)


def _without_input_notes(messages: list[Message]) -> tuple[list[Message], bool]:
    """The INPUT's turns without the generator's note after a user's words (see ``_INPUT_NOTE``), and
    whether there was any: kept, the user would be trained to say it. A turn that is a note alone
    stays, and refuses as it would."""
    kept: list[Message] = []
    annotated = False
    for message in messages:
        note = _INPUT_NOTE.search(message.content) if message.role == "user" else None
        if note is not None and message.content[: note.start()].strip():
            message = message.model_copy(update={"content": message.content[: note.start()].rstrip()})
            annotated = True
        kept.append(message)
    return kept, annotated


def _is_json(text: str) -> bool:
    """Whether ``text`` is wholly one JSON object or list."""
    text = text.strip()
    if not text.startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _text_after_json(result: str) -> bool:
    """Whether a tool result opens with a JSON object or list and has text after it."""
    if not result.startswith(("{", "[")):
        return False
    try:
        _, end = json.JSONDecoder(strict=False).raw_decode(result)
    except (ValueError, RecursionError):
        return False
    return bool(result[end:].strip())


def _listed_messages(text: str, tools: Sequence[ToolSpec] | None) -> list[Message]:
    """An INPUT written as a list of chat messages, read as the openai dataset reader reads a record's
    ``messages`` (calls in ``tool_calls`` or in the content, tool results, the other exports' roles)."""
    try:
        return chat_messages(json_or_value(text, "the message list", python=True), tools or ())
    except (ValueError, TypeError, KeyError, AttributeError) as error:  # what a record's reading raises
        raise ValueError(f"the message list does not read: {error}") from error


def _check_results_answer_calls(messages: list[Message]) -> None:
    """A tool turn must answer calls: one right after a user turn is a line of that turn that looks
    like a marker ("- Tool: a hammer", "Function: f(x) = x²"), which split it."""
    previous: Message | None = None
    for number, message in enumerate(messages, 1):
        answers_calls = previous is not None and (previous.role == "tool" or bool(previous.tool_calls))
        if message.role == "tool" and not answers_calls:
            raise ValueError(f"tool turn {number} answers no call (a line of the turn before it?)")
        previous = message


def _split_results(content: str) -> tuple[str, list[str]]:
    """A turn's text before its trailing ``<tool_response>`` blocks, and those results; a result
    block followed by more text is not split (it is no trailing run of results)."""
    before, opened, rest = content.partition("<tool_response>")
    if not opened:
        return content, []
    results = TOOL_RESPONSE_BLOCK.findall(opened + rest)
    if not results or TOOL_RESPONSE_BLOCK.sub("", opened + rest).strip():
        return content, []
    return before.strip(), [result.strip() for result in results]
