"""Judge and verifier text -> decision: what a careful reader takes from a real model's answer.

The judge is asked (Figure 10) for ``RESPONSE 1 INCORRECT``, ``RESPONSE 2 INCORRECT``, ``BOTH_CORRECT``
or ``BOTH_INCORRECT`` on the first line, then ``Error Analysis:`` and ``Correct Approach:``. Real
judges wrap that in Markdown, put it behind a label (``**Verdict:**``, ``## Judgment``, ``Final
Answer:``, or the format line's options echoed as one: ``CORRECT/INCORRECT: INCORRECT``), write an
analysis first, answer in a sentence ("Response 2 is incorrect."), in JSON or in a fenced block, after
a reasoning trace. The reader takes all of these, on four rules:

1. **Only the answer counts.** A leading ``<think>…</think>`` trace (or one in another family's tokens:
   Magistral's ``[THINK]``, Cohere's, Seed-OSS's) is skipped, also one whose opening tag sat in the chat
   template (``trace_opened``, or its closing token alone at a line end, ``</think>`` or another
   family's); a trace that never closed means the answer never came; an answer wrapper (Cohere's
   ``<|START_RESPONSE|>``) is taken off. vLLM's separate reasoning field is never read for the decision.
2. **Quotes never count.** The prompt's data blocks (``<response_1>…</response_1>`` and the rest) and
   tool calls the judge copies, Markdown blockquotes, inline quotes, JSON objects other than the
   answer's own, and the Figure 10 sections (``Error Analysis:``/``Correct Approach:``, which run to
   the next label) are the judge's evidence, not its decision: a sample's text quoted there changes
   nothing.
3. **The decision is unique.** Explicit decisions (a decision line, a labelled decision, a JSON field)
   must all agree, and every clear statement about one response ("Response 1 is correct") must agree
   with them; otherwise the answer is UNPARSEABLE with the reason. A decision may follow a claim's mild
   lead-in ("I'd say RESPONSE 2 INCORRECT.", "I believe the answer is ...", "If I had to choose, ...":
   the prompt demands a choice); the judge saying it has not settled ("it could be either", "I'm not
   sure") voids it. With no explicit decision, clear statements decide ("Response 2 is incorrect."
   alone means RESPONSE 2 INCORRECT); a statement that only one response is correct decides nothing,
   nor does a line naming several decisions
   (the prompt's list of options restated, a change of mind mid-line), nor a list of single decisions
   naming several that a line leads into as options ("Options:", "The choices are:"). A judge that
   changed its mind and answered again inside its sections (a decision line of its own, at the margin
   and not led into as a quote, followed by its own ``Error Analysis:``) voids a decision that differs;
   such a block never decides alone, and one that restates the decision changes nothing. So does a
   second thought in a section ("Wait, actually Response 1 is correct.", "On second thought,
   BOTH_INCORRECT"), and another decision the judge's own words name outside the sections without
   stating it ("My first reading: RESPONSE 1 INCORRECT." then "I now think it's BOTH_CORRECT.").
4. **The project's own verdict names are never the judge's words.** ``LABEL_WRONG``, ``PRED_WRONG``,
   ``BOTH_WRONG`` (a sample may demand them) anywhere in the judge's own words (rule 2) make the
   answer UNPARSEABLE.

Which response was the label is recorded per case, so "response k incorrect" maps to LABEL_WRONG when
k is the label's position and to PRED_WRONG otherwise. The verifier's CORRECT/INCORRECT answers are
read on the same rules (:func:`read_verification`); its reason is its own justification, so a clear
statement there that contradicts its decision makes it unreadable (a failed check downstream).
Nothing here raises on any input.
"""

from __future__ import annotations

import bisect
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from toolcall.harmony import harmony_answer
from toolcall.parsing import TRACE_TOKEN_PAIRS, unwrap_answer

Verdict = Literal["PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG", "UNPARSEABLE"]
VERDICTS: tuple[str, ...] = ("PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG")
DECISIONS: tuple[str, ...] = (
    "RESPONSE 1 INCORRECT",
    "RESPONSE 2 INCORRECT",
    "BOTH_CORRECT",
    "BOTH_INCORRECT",
)
# The grammar as a regex, for engines that can constrain decoding to it (vLLM structured outputs).
VERDICT_REGEX = (
    r"(RESPONSE [12] INCORRECT|BOTH_CORRECT|BOTH_INCORRECT)\n"
    r"Error Analysis: [^\n]{1,400}\nCorrect Approach: [^\n]{1,400}"
)
# The tags that delimit a sample's data in the judge, generator and verifier prompts
# (toolcall.prompts.DATA_TAGS adds "think"): defined here, once, because what is inside them is read
# as quoted data, never as the judge's words.
SAMPLE_DATA_TAGS: tuple[str, ...] = (
    "tools",
    "conversation",
    "response_1",
    "response_2",
    "original_sample",
    "correct_response",
    "incorrect_response",
    "error_analysis",
    "candidate",
    "schema_check",
)
# Blocks whose content is the sample, never the judge's words: the sample's data tags and copied tool
# calls (not "think", which is the judge's own trace).
QUOTED_TAGS: tuple[str, ...] = (*SAMPLE_DATA_TAGS, "tool_call", "tool_response")


class ParsedVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    decision: str | None = None  # the Figure 10 decision read, e.g. "RESPONSE 2 INCORRECT"
    from_statements: bool = False  # read from statements ("Response 2 is incorrect."), no decision given
    # A second thought ("Wait, ...", "Let me re-check") began after the decision: an answer the budget
    # cut may have been turning there.
    reconsidered: bool = False
    error_analysis: str = ""
    correct_approach: str = ""
    raw: str = ""
    reason: str | None = None  # why it is UNPARSEABLE


class ParsedVerification(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: bool | None  # None: no decision could be read
    decision: Literal["CORRECT", "INCORRECT"] | None = None
    from_statements: bool = False  # read from a statement ("The candidate is correct."), no decision given
    reconsidered: bool = False  # a second thought began after the decision (see ParsedVerdict)
    reason: str = ""  # the verifier's own reason
    raw: str = ""
    problem: str | None = None  # why no decision could be read


# --- shared text pieces ---------------------------------------------------------------------------

_TRACE_OPEN = re.compile(r"<(think|thinking)>", re.IGNORECASE)
_TEMPLATE_TRACE_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_BLOCK_OPEN = re.compile(r"(<|&lt;)(" + "|".join(QUOTED_TAGS) + r")>", re.IGNORECASE)
_LONE_TAG = re.compile(r"(?:<|&lt;)/?(?:" + "|".join(QUOTED_TAGS) + r"|think|thinking)>", re.IGNORECASE)
_FENCE = re.compile(r"^\s*(?:```|~~~)")
_BLOCKQUOTE = re.compile(r"^\s*>")
_INLINE_QUOTE = re.compile(r"\"[^\"\n]*\"|“[^”\n]*”|`[^`\n]*`|«[^»\n]*»|(?<!\w)'[^'\n]*'(?!\w)")
_LATEX = re.compile(r"\\(?:boxed|text|textbf|mathrm|texttt|mathbf)\s*\{([^{}]*)\}")
_EMPHASIS = re.compile(r"\*+|`+|~~|(?<!\w)_+(?=\w)|(?<=\w)_+(?!\w)")
_LEADING_JUNK = re.compile(r"^[^\w\[(]+")
_LIST_NUMBER = re.compile(r"^\d{1,2}[.)]\s+")
_KEY_JUNK = re.compile(r"[^A-Za-z0-9]+")
# Where a list of options or a second thought splits a line into the decisions it names.
_OPTION_BREAK = re.compile(r"[,;:/|—–.!?]|\s-\s|\s(?:or|and|vs\.?|versus|then)\s", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CHECK = "✅✔✓☑"
_CROSS = "❌✗✘✖🚫"
# What may follow a decision or claim that ends there: punctuation, or a check or cross mark that
# restates it ("**RESPONSE 1 INCORRECT** ❌").
_PUNCT_FOLLOW = r"\s*(?:$|[.,;:!)\]\"'”’—–(" + _CHECK + _CROSS + r"]|-{1,2}(?:\s|$))"
_ADV = (
    r"(?:(?:clearly|definitely|indeed|actually|also|therefore|thus|hence|entirely|fully|completely|"
    r"equally|still|simply|plainly|obviously|certainly|ultimately|both)\s+)*"
)
_POS = r"correct|right|accurate|valid"
_NEG = r"incorrect|wrong|invalid|inaccurate|erroneous"
_COPULA = r"(?:\s+(?:is|was)|['’]s)(?P<not>\s+not|n['’]t)?\s+(?(not)|" + _ADV + r")"
_DISCOURSE = (
    r"(?:(?:so|thus|therefore|hence|overall|finally|ultimately|consequently|accordingly|in\s+conclusion|"
    r"in\s+summary|in\s+short|to\s+conclude|to\s+summari[sz]e)\s*[,:]?\s+)?"
)
_DISCOURSE_PREFIX = re.compile(r"^" + _DISCOURSE, re.IGNORECASE)
# What the judge calls its decision ("my final verdict", "the correct classification").
_DECISION_NAME = (
    r"(?:(?:my|the|our)\s+)?(?:(?:final|overall|correct|right)\s+)?"
    r"(?:verdict|decision|judge?ment|answer|result|conclusion|evaluation|assessment|outcome|classification)"
)
# A JSON key that names the decision as a label does ("verdict", "final_answer", "classification").
_DECISION_KEY = re.compile(_DECISION_NAME, re.IGNORECASE)
# An arrow between a label and its value ("Verdict → BOTH_CORRECT", "Response 1 -> ✅") stands for a colon.
_ARROW = r"-+>|[→⇒➜➔⟶]"
_DECISION_LABEL = re.compile(
    r"^" + _DISCOURSE + _DECISION_NAME + r"(?:\s*\([^()]{0,40}\))?"
    r"(?P<sep>\s*(?:[:：=]|"
    + _ARROW
    + r"|[-–—](?:\s|$))|\s+(?:is|would\s+be|will\s+be)\b|\s*$)\s*(?P<value>.*)$",
    re.IGNORECASE,
)
# The prompt's list of options written as the label of the decision ("CORRECT/INCORRECT: INCORRECT",
# "[RESPONSE 1 INCORRECT/…/BOTH_INCORRECT]: BOTH_CORRECT"): a model that echoes the format line's
# placeholder as a label. Only the value after the colon is the model's choice.
_OPTIONS_AS_LABEL = re.compile(r"^\[?(?P<options>[^:：\[\]]{3,160}?)\s*\]?(?P<sep>\s*[:：])\s*(?P<value>.*)$")
_OPTION_SEPARATOR = re.compile(r"\s*[/|]\s*|\s+or\s+", re.IGNORECASE)
# Words that may open a clause that states a claim ("Therefore, I think Response 2 is incorrect").
_CLAIM_LEAD_WORDS = (
    r"^(?:(?:and|but|while|whereas|although|though|however|so|thus|therefore|hence|overall|clearly|"
    r"ultimately|finally|because|since|as|consequently|accordingly|also|here|in\s+conclusion|in\s+summary|"
    r"in\s+short|in\s+my\s+(?:view|assessment|judge?ment|opinion)|in\s+this\s+case|as\s+a\s+result|"
    r"for\s+this\s+reason|this\s+means(?:\s+that)?|which\s+means(?:\s+that)?|that\s+means|meaning|"
    # a second thought states a claim too ("Hmm, actually both are incorrect.")
    r"actually|in\s+fact|wait|hmm+|on\s+second\s+thought|on\s+(?:further\s+)?reflection)\s*)*"
    # "I have determined that ...", "I've concluded that ...": the perfect tense states the claim too
    r"(?:(?:i|we)(?:(?:\s+have|['’]ve)?\s+"
    r"(?:think|believe|concluded?|find|found|judge|would\s+say|determined?|"
    r"can\s+confirm|am\s+confident|are\s+confident)|['’]d\s+say)(?:\s+that)?\s*|it\s+is\s+clear\s+that\s*|"
    r"it['’]s\s+clear\s+that\s*)?"
)
_CLAIM_LEAD = re.compile(_CLAIM_LEAD_WORDS + r"(?P<only>only\s*)?$", re.IGNORECASE)
# The same lead-in before a decision, which may name what it states ("I believe the answer is
# RESPONSE 2 INCORRECT.", "my verdict is ..."); a hedge ("it might be", "perhaps") matches neither.
_DECISION_LEAD = re.compile(
    _CLAIM_LEAD_WORDS + r"(?:" + _DECISION_NAME + r"\s+(?:is|would\s+be|will\s+be)\s*)?(?P<only>only\s*)?$",
    re.IGNORECASE,
)
# Where a new clause starts: punctuation, or a conjunction (kept, as _CLAIM_LEAD allows it).
_CLAUSE_BREAK = re.compile(r"[,;:—–(]|(?=\b(?:and|but|while|whereas|although|though)\b)", re.IGNORECASE)
_CONDITIONAL = re.compile(
    r"^\W*(?:if|unless|assuming|suppose|supposing|were|had|should|whether|when|once|even\s+if|otherwise)\b",
    re.IGNORECASE,
)
_CONDITIONAL_AT = re.compile(_CONDITIONAL.pattern.removeprefix("^"), re.IGNORECASE)  # matched at a position
# A clause that sets a condition on the clause after it ("if X, Response 2 is incorrect"); not a
# concession ("(even if verbose), Response 2 is incorrect"), which leaves the claim standing.
_CONDITION_CLAUSE = re.compile(
    r"^\W*(?:(?:and|but|so|or)\s+)?(?:if|unless|assuming|suppos(?:e|ing)|provided|otherwise)\b", re.IGNORECASE
)
# The judge answering the prompt's demand to choose ("If I had to choose, RESPONSE 2 INCORRECT."): a
# condition the judge is under, so the choice after it stands (a reversal after it still voids it).
_FORCED_CHOICE = re.compile(
    r"^\W*if\s+(?:i|we)\s+(?:had|have|were|was)\s+to\s+(?:choose|pick|decide|commit)"
    r"(?:\s+(?:one|between\s+(?:them|the\s+two)))?\s*[,:—–]\s*",
    re.IGNORECASE,
)
# The judge saying it has not settled on one decision ("it could be either", "hard to say"): whatever
# decision it also wrote is no commitment. _UNDECIDED names the decision's doubt wherever it stands,
# in the sections too; _NON_COMMITMENT adds doubts a section may hold about the sample ("hard to say
# whether the unit matters"), so counts outside the sections only.
_UNDECIDED_WORDS = (
    r"could\s+(?:really\s+|just\s+as\s+well\s+)?(?:be|go)\s+either(?:\s+way)?|"
    r"either\s+(?:one|response|answer)\s+could\s+be|toss[\s-]?up|coin[\s-]?flip|too\s+close\s+to\s+call|"
    r"(?:i\s*['’]?\s*a?m|i\s+am)\s+torn|can(?:not|['’]t)\s+decide"
)
_UNDECIDED = re.compile(r"\b(?:" + _UNDECIDED_WORDS + r")\b", re.IGNORECASE)
_NON_COMMITMENT = re.compile(
    r"\b(?:" + _UNDECIDED_WORDS + r"|(?:hard|difficult|impossible)\s+to\s+(?:say|tell|decide|call)|"
    r"(?:i\s*['’]?\s*a?m|i\s+am)\s+(?:not\s+(?:entirely\s+|completely\s+|fully\s+)?sure|unsure|uncertain)|"
    r"can(?:not|['’]t)\s+be\s+(?:sure|certain))\b"
    # not a doubt about something in the sample ("hard to say what the user meant", "not sure why")
    r"(?!\s+(?:why|what|how|where|who|when)\b)",
    re.IGNORECASE,
)
# A condition after a decision ("RESPONSE 2 INCORRECT, unless the API defaults to miles"), or a hedge
# ("RESPONSE 2 INCORRECT, probably"): the judge has not settled it, so it is no decision.
_CONDITION_AFTER = r"(?:only\s+if|if|unless|assuming|provided|as\s+long\s+as|probably|maybe|perhaps|possibly)"
_UNCONDITIONED = r"(?!\s*[,;:—–-]?\s*" + _CONDITION_AFTER + r"\b)"
_HEDGE_FOLLOW = re.compile(
    r"(?:but|though|although|except|yet|only|if|unless|when|provided|assuming|apart|other\s+than|save)\b",
    re.IGNORECASE,
)
# A qualification later in the clause of a claim that seemed clear ("correct so far, but ...",
# "correct as far as the city goes", "correct too, except the nights").
_LATER_HEDGE = re.compile(
    r"\b(?:but|though|although|yet|however|except|apart\s+from|other\s+than|save\s+for|only\s+if|unless|"
    r"provided|assuming|so\s+far|as\s+far\s+as|as\s+long\s+as|insofar|to\s+the\s+extent|partly|partially)\b",
    re.IGNORECASE,
)
_GOOD_FOLLOW = re.compile(
    r"(?:because|since|as|and|while|whereas|so|given|due|too|as\s+well|also|here|overall|"
    r"in\s+this\s+case|after\s+all)\b",
    re.IGNORECASE,
)


def _plain(line: str) -> str:
    """A line without Markdown/LaTeX decoration, list markers, headers, emoji and leading quotes."""
    text = line
    for _ in range(3):
        text = _LATEX.sub(r"\1", text)
    text = _EMPHASIS.sub("", text).replace("$", " ").strip()
    text = _LEADING_JUNK.sub("", text)
    return _LIST_NUMBER.sub("", text).strip()


def _key(text: str) -> str:
    return _KEY_JUNK.sub("", text).upper()


def _clean(text: str) -> str:
    return " ".join(_EMPHASIS.sub("", text).split()).strip(" \"'*:")


def _unquoted(line: str) -> str:
    return _INLINE_QUOTE.sub(" ", line)


def _sentences(line: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(line) if s.strip()]


def _json_objects(text: str) -> Iterator[tuple[int, int, Any]]:
    """Top-level JSON values that open at the start of a line (the answer's own JSON, or a quote)."""
    decoder = json.JSONDecoder()
    position = 0
    while True:
        start = text.find("{", position)
        if start < 0:
            return
        line_start = text.rfind("\n", 0, start) + 1
        if text[line_start:start].strip():
            position = start + 1
            continue
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            position = start + 1
            continue
        yield start, end, value
        position = end


def _normal_key(key: object) -> str:
    return " ".join(re.split(r"[\s_\-]+", str(key).strip().lower())).strip()


def _answer_text(
    raw: str, reasoning: str | None, trace_opened: bool, starts_with_decision: Callable[[str], bool]
) -> tuple[str | None, str | None]:
    """The answer with any reasoning trace removed, or (None, why)."""
    text = raw.replace("\r\n", "\n").strip()
    harmony = harmony_answer(text)
    if harmony is not None:  # gpt-oss returned raw: its analysis channel is the trace
        if harmony.answer is None:
            return None, harmony.problem
        text = harmony.answer
    for opening, closing in TRACE_TOKEN_PAIRS:  # another family's trace tokens, kept in the text
        if text.startswith(opening):
            text = "<think>" + text[len(opening) :].replace(closing, "</think>", 1)
            break
        # A lone closing token: the chat template opened the trace. It reads as a lone </think> (below:
        # with trace_opened, or at a line end before an answer), as the prompts escape every family's
        # trace tokens in the data they quote, as they do <think>'s.
        if closing in text and opening not in text:
            text = text.replace(closing, "</think>", 1)
            break
    if trace_opened and not _TRACE_OPEN.match(text):  # the template opened it: it ends at </think>
        close = _TEMPLATE_TRACE_CLOSE.search(text)
        if close is None:
            return None, "reasoning trace never closed: the answer never came (cut off by the token budget?)"
        text = text[close.end() :].strip()
    while True:
        opening = _TRACE_OPEN.match(text)
        if opening is None:
            break
        close = re.search(rf"</{opening.group(1)}\s*>", text[opening.end() :], re.IGNORECASE)
        if close is None:
            return None, "reasoning trace never closed: the answer never came (cut off by the token budget?)"
        text = text[opening.end() + close.end() :].strip()
    close = _TEMPLATE_TRACE_CLOSE.search(text)
    if close is not None:
        before, after = text[: close.start()], text[close.end() :]
        # A trace opened by the chat template ends at its first </think>, which stands at the end of
        # its line. A </think> the judge writes later (quoting a response) follows an opening tag, or
        # sits inside a sentence, or comes after an answer that already began with its decision.
        template_trace = (
            _TRACE_OPEN.search(before) is None
            and not after.split("\n", 1)[0].strip()
            and not starts_with_decision(before)
        )
        if template_trace:
            text = after.strip()
    text = unwrap_answer(text)
    if not text:
        return None, empty_answer_reason(reasoning)
    return text, None


def empty_answer_reason(reasoning: str | None) -> str:
    """Why an answer with no text gave nothing to read: only a reasoning trace came back, or nothing."""
    if reasoning and reasoning.strip():
        return (
            f"no answer, only reasoning ({len(reasoning)} chars): cut off by the token budget, or the "
            "reasoning parser kept the answer in the reasoning field"
        )
    return "empty answer"


# --- one reading of an answer ---------------------------------------------------------------------

# How much text after a decision's first word :meth:`_Reader.token` needs to see (a decision, the
# punctuation or reason word after it).
_TOKEN_WINDOW = 80

# Quoted blocks and JSON objects are cut out before the lines are read, leaving a slot that sections
# (the judge's evidence) fill back in and the decision scan reads as nothing.
_QUOTE_SLOT = "\x00quote:{}\x00"
_QUOTE_SLOTS = re.compile(r"\x00quote:(\d+)\x00")
_JSON_SLOT = "\x00json:{}\x00"
_JSON_SLOT_LINE = re.compile(r"^\x00json:(\d+)\x00$")
_JSON_SLOTS = re.compile(r"\n?\x00json:(\d+)\x00\n?")
# Either kind of slot, where a line is only looked at (how the line before a block ends).
_ANY_SLOT = re.compile(r"\x00[^\x00]*\x00")

# A sentence in which the judge takes its answer back for a second look.
_SECOND_THOUGHT = re.compile(
    r"^(?:(?:but|however|actually|oh|oops|no|hmm+|ok(?:ay)?)\s*[,.!:]?\s*)*"
    r"(?:wait\b|hold\s+on\b|on\s+(?:second|further)\s+thought|on\s+(?:further\s+)?reflection|"
    r"upon\s+(?:further\s+|closer\s+)?(?:review|reflection|inspection)|correction\b|scratch\s+that|"
    r"i\s+(?:made\s+an?\s+(?:mistake|error)|was\s+wrong|misread|stand\s+corrected)|"
    r"let\s+me\s+(?:reconsider|re-?check|double[\s-]check|re-?evaluate|revise|correct|re-?read))",
    re.IGNORECASE,
)

# A second answer block inside a section (the judge changed its mind and answered again) against a
# quoted one (a sample's forged Figure 10 answer, copied into the analysis). Only a line of the
# answer's own can open a block: it starts at the margin, as the answer's first line does (an indented
# line is code, a list's body or a copied turn of the prompt's conversation, whose further lines are
# indented), and is no list item and opens no quote.
_INDENTED = re.compile(r"^\s")
_LIST_ITEM = re.compile(r"^(?:[-+*•]|\d{1,2}[.)])\s+")
_OPENS_QUOTE = re.compile(r"^[*_#\s]*[\"“«'‘]")
# A line that finishes the judge's own sentence; one that does not (ends mid-quote, with a tag) runs
# on into the next line.
_SENTENCE_DONE = re.compile(r"[.!?。！？][\"'”’)\]]*$")
_INTRODUCES = re.compile(r"[:：]$")
# The judge announcing its own answer again ("Let me restate my verdict:", "Corrected answer:").
_OWN_ANSWER_INTRO = re.compile(
    r"\b(?:(?:(?:my|our)\s+(?:(?:final|revised|corrected|updated|amended|new)\s+)?|"
    r"(?:final|revised|corrected|updated|amended|new)\s+)"
    r"(?:answer|verdict|decision|judge?ment|conclusion|assessment)|correction|"
    r"let\s+me\s+(?:correct|revise|restate|redo|fix|reconsider))\b",
    re.IGNORECASE,
)

# A line that leads into the prompt's options restated as a list ("Options:", "The choices are:",
# "I must answer with one of the following:"); one announcing the judge's own answer never does.
_OPTIONS_INTRO = re.compile(
    r"\b(?:options|choices|alternatives|possible\s+(?:verdicts|decisions|answers|outcomes)|"
    r"one\s+of(?:\s+the\s+following)?)\b[^:：]{0,40}[:：]$",
    re.IGNORECASE,
)


@dataclass
class _Reading:
    decisions: list[tuple[str, str]] = field(default_factory=list)  # (decision, evidence)
    claims: list[tuple[int, bool, str]] = field(default_factory=list)  # (subject, is correct, evidence)
    forbidden: list[str] = field(default_factory=list)
    sections: dict[str, list[str]] = field(default_factory=dict)
    prose: list[str] = field(default_factory=list)
    in_sections: list[str] = field(default_factory=list)  # decision-like lines found inside sections
    # (decision, evidence): decisions that open an answer block of their own inside an earlier
    # block's sections. They never decide; one that differs from the decision read voids it.
    later_blocks: list[tuple[str, str]] = field(default_factory=list)
    qualified: list[tuple[int, str]] = field(default_factory=list)  # (subject, evidence): hedged claims
    # (subject, evidence): claims a degree or doubt leaves neither way ("partially correct"), in the
    # sections too where the reader checks them; they void a decision that calls the subject correct.
    hedged: list[tuple[int, str]] = field(default_factory=list)
    # Lines naming several decisions (the prompt's list of options, or a change of mind mid-line).
    listed: list[str] = field(default_factory=list)
    # (decisions named, claims, evidence): what the judge said inside its sections after a second
    # thought ("Wait, actually Response 1 is correct."): it never decides, and voids a decision it
    # contradicts.
    revisions: list[tuple[set[str], list[tuple[int, bool]], str]] = field(default_factory=list)
    # (subject, is correct, evidence): clear statements in the answer's own sections, read only where
    # the reader checks them against the decision (:attr:`_Reader.sections_must_agree`).
    section_claims: list[tuple[int, bool, str]] = field(default_factory=list)
    uncommitted: list[str] = field(default_factory=list)  # the judge's own words saying it did not settle
    # (decision, denied, evidence): a decision the judge's own words name without stating it ("My first
    # reading was X", "I now think it's X"): one that differs from the decision read voids it, as the
    # judge may have changed its mind either way; one named only to deny it ("this is not a
    # BOTH_CORRECT case") voids that decision alone.
    mentioned: list[tuple[str, bool, str]] = field(default_factory=list)
    reconsidered: bool = False  # a second thought began after a decision had been read


class _Reader:
    """The reading rules; a subclass gives the vocabulary (judge or verifier)."""

    subjects: ClassVar[tuple[int, ...]]
    implies: ClassVar[Mapping[str, tuple[bool, ...]]]  # decision -> correct? per subject
    token_keys: ClassVar[Mapping[str, str]]  # a whole clause that is a decision, as _key() spells it
    section_label: ClassVar[re.Pattern[str]]  # a line opening a section of the answer format
    section_midline: ClassVar[re.Pattern[str]]  # the same label after a decision on one line
    section_keys: ClassVar[Mapping[str, str]]  # label or JSON key (normalised) -> section
    block_section: ClassVar[str]  # the section a decision is followed by in the answer format
    # JSON keys (normalised) of the decision besides the names a decision label has (_DECISION_KEY)
    decision_keys: ClassVar[frozenset[str]] = frozenset()
    forbidden: ClassVar[re.Pattern[str] | None] = None  # names that are never the model's own words
    token_start: ClassVar[re.Pattern[str]]  # where a decision may begin inside a sentence
    # Whether a clear statement in the sections must agree with the decision. The verifier's reason is
    # its own justification ("CORRECT\nReason: the call is incorrect ..." contradicts itself); the
    # judge's Error Analysis is evidence where it may restate what a sample claims.
    sections_must_agree: ClassVar[bool] = False

    # vocabulary (subclasses) --------------------------------------------------------------------

    def token(self, plain: str, *, opening: bool = False) -> str | None:
        """The decision ``plain`` starts with (then nothing, punctuation or a reason), if any.

        ``opening``: the text opens the answer or a labelled decision (where the verifier's
        "Yes."/"No." answer its question).
        """
        raise NotImplementedError

    def subject_label(self, plain: str) -> tuple[int, str] | None:
        """(subject, value) for a line labelled with one subject, e.g. "Response 1: Correct"."""
        return None

    def _subject_segments(self, line: str) -> list[tuple[int | None, str]] | None:
        """The segments of a line that labels the subjects in turn between ``|``: "Response 1: correct
        | Response 2: incorrect" (other segments, such as "Verdict: …", come as (None, text)), or a
        table row "| Response 1 | ✅ correct | Response 2 | ❌ incorrect |"; (subject, value) for each
        labelled one. None for any other line."""
        if "|" not in line:
            return None
        cells = [cell.strip() for cell in line.strip().strip("|").split("|") if cell.strip()]
        labels = [self.subject_label(_plain(cell)) for cell in cells]
        segments: list[tuple[int | None, str]] = [
            label if label is not None else (None, cell) for label, cell in zip(labels, cells, strict=True)
        ]
        if sum(label is not None for label in labels) < 2:  # the table form: a subject's cell, its value's
            heads = [self.subject_label(_plain(cell) + ":") for cell in cells[::2]]
            if len(cells) < 4 or len(cells) % 2 or any(head is None or head[1].strip() for head in heads):
                return None
            segments = [(head[0], value) for head, value in zip(heads, cells[1::2], strict=True) if head]
        return segments

    def _subject_columns(self, lines: list[str]) -> dict[int, str]:
        """The rows of Markdown tables whose columns are the subjects, each as a row that labels them
        in turn (:meth:`_subject_segments`), by line index.

        The header names one subject per cell (``| Response 1 | Response 2 |``), after at most one
        empty cell heading a column of row labels; a row counts when its label, if there is that
        column, names a decision ("Verdict"), and when a cell marks a subject (✅, "Correct"), so that
        every subject's cell must then be clear. Any other header (an unnamed extra column, a subject
        twice) or row is read as any table is, so decides nothing.
        """
        rewritten: dict[int, str] = {}
        table_end = 0  # a table's rows are no header of another, so each line is looked at once
        for index, line in enumerate(lines[:-1]):
            if index < table_end:
                continue
            separator = lines[index + 1]
            if not (line.lstrip().startswith("|") and separator.lstrip().startswith("|")) or _table_row(
                separator
            ):
                continue
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            labelled = cells[1:] if cells[0] == "" else cells
            heads = [self.subject_label(_plain(cell) + ":") for cell in labelled]
            subjects = [head[0] for head in heads if head is not None and not head[1].strip()]
            if (
                len(subjects) != len(labelled)
                or sorted(subjects) != sorted(self.subjects)
                or len(subjects) < 2
            ):
                continue
            table_end = index + 2
            for row in range(index + 2, len(lines)):
                values = [cell.strip() for cell in lines[row].strip().strip("|").split("|")]
                if not lines[row].lstrip().startswith("|") or len(values) != len(cells):
                    break
                table_end = row + 1
                if len(labelled) < len(cells) and not self._names_decision(values[0]):
                    continue  # the row's label must name a decision
                values = values[len(cells) - len(labelled) :]
                if not any(_value_polarity(value) is not None or _mixed_marks(value) for value in values):
                    continue  # a row that describes the responses ("calls get_weather") judges neither
                rewritten[row] = " | ".join(
                    f"{_plain(head)}: {value}" for head, value in zip(labelled, values, strict=True)
                )
        return rewritten

    def _names_decision(self, cell: str) -> bool:
        """Whether a table cell heads the decision's row or column ("Verdict", "Final Decision")."""
        label = self.decision_label(_plain(cell))
        return label is not None and not label.group("value").strip()

    def _subject_rows(self, lines: list[str]) -> dict[int, tuple[int, str | None]]:
        """The rows of Markdown tables whose rows are the subjects, by line index: (subject, the row as
        a line that labels it, "Response 2: ❌ Incorrect"), or (subject, None) where the table says
        something about the subject that is not one clear mark.

        A row names a subject in its first cell ("| Response 1 | ✅ |"), or with the first column's
        header ("| Response | Verdict |" over "| 1 | ✅ |"). A table counts when such a row and any
        row mark (✅, "Incorrect"); the mark is then read from the one column whose header names a
        decision ("Verdict"), as the response table reads the row a decision names. Without that one
        column, or with a marking row that names no subject ("| Overall | ✅ |"), no row is clear;
        nor is a row whose other cells mark otherwise than its decision's cell.
        """
        found: dict[int, tuple[int, str | None]] = {}
        table_end = 0  # a table's rows are no header of another, so each line is looked at once
        for index, line in enumerate(lines[:-1]):
            if index < table_end or not line.lstrip().startswith("|"):
                continue
            separator = lines[index + 1]
            if not separator.lstrip().startswith("|") or _table_row(separator):
                continue
            header = [cell.strip() for cell in line.strip().strip("|").split("|")]
            table_end = index + 2
            if self._row_subject("", header[0]) is not None:
                continue  # no header: the first row names a subject too, so every row is read as any row
            rows: list[tuple[int, list[str], tuple[int, str] | None]] = []
            for row in range(index + 2, len(lines)):
                values = [cell.strip() for cell in lines[row].strip().strip("|").split("|")]
                if not lines[row].lstrip().startswith("|") or len(values) != len(header):
                    break
                table_end = row + 1
                rows.append((row, values, self._row_subject(header[0], values[0])))
            marking = [
                (row, values, named)
                for row, values, named in rows
                if any(_value_polarity(value) is not None or _mixed_marks(value) for value in values[1:])
            ]
            if not marking or all(named is None for _, _, named in rows):
                continue  # no table of verdicts per subject: its rows are read as any table's
            columns = [column for column in range(1, len(header)) if self._names_decision(header[column])]
            column = columns[0] if len(columns) == 1 else None
            clear = column is not None and all(named is not None for _, _, named in marking)
            for row, values, named in rows:
                if named is None:
                    continue
                subject, name = named
                value = values[column] if clear and column is not None else ""
                polarity = _value_polarity(value)
                others = [values[other] for other in range(1, len(values)) if other != column]
                if polarity is None or any(
                    _mixed_marks(other) or _value_polarity(other) not in (None, polarity) for other in others
                ):
                    found[row] = (subject, None)
                else:
                    found[row] = (subject, f"{name}: {value}")
        return found

    def _row_subject(self, column_header: str, cell: str) -> tuple[int, str] | None:
        """(subject, its name) for a table row's first cell that names a subject, alone ("Response 1")
        or after its column's header ("Response" over "1")."""
        for name in (_plain(cell), f"{_plain(column_header)} {_plain(cell)}"):
            label = self.subject_label(name + ":")
            if label is not None and not label[1].strip():
                return label[0], name
        return None

    def sentence_claims(self, sentence: str) -> list[tuple[int, bool]]:
        """Clear statements about the subjects in one sentence (quotes already removed)."""
        raise NotImplementedError

    def json_claims(self, key: str, value: Any) -> list[tuple[int, bool | None]]:
        """(subject, is correct) for a JSON field (normalised key) that judges a subject; None where it
        judges it, but not clearly either way ("partially correct")."""
        return []

    def denied_decisions(self, text: str) -> set[str]:
        """The decisions ``text`` names only to deny them ("not BOTH_CORRECT", "rather than ...")."""
        return set()

    def qualified_subjects(self, sentence: str) -> list[int]:
        """Subjects of claims a hedge qualifies ("Response 2 is correct so far, but ..."): no clear
        claim, yet they say the answer is not silent about that subject."""
        return []

    # reading ------------------------------------------------------------------------------------

    def starts_with_decision(self, text: str) -> bool:
        """Whether the first line is a decision (so the answer began there, not after a trace)."""
        first = next((line for line in text.split("\n") if line.strip()), "")
        plain = _plain(first)
        label = self.decision_label(plain)
        return self.token(self._head(plain)) is not None or bool(label and self.token(label.group("value")))

    def decision_label(self, plain: str) -> re.Match[str] | None:
        """The label of a labelled decision (``Verdict: …``, ``Final Answer -``, or the prompt's options
        as the label: ``CORRECT/INCORRECT: …``), with its ``sep`` and the ``value`` after it."""
        return _DECISION_LABEL.match(plain) or self._options_label(plain)

    def _options_label(self, plain: str) -> re.Match[str] | None:
        """``plain`` labelled with the options themselves: two or more decisions, each alone, joined by
        ``/``, ``|`` or "or", then a colon; the options name no choice, the value does."""
        match = _OPTIONS_AS_LABEL.match(plain)
        if match is None:
            return None
        options = [
            self.token_keys.get(_key(option)) for option in _OPTION_SEPARATOR.split(match.group("options"))
        ]
        if None in options or len(set(options)) < 2:
            return None
        return match

    def _head(self, plain: str) -> str:
        match = self.section_midline.search(plain)
        return plain[: match.start()] if match and match.start() > 0 else plain

    def _decision_in(self, plain: str, *, opening: bool = False) -> str | None:
        label = self.decision_label(plain)
        return self.token(label.group("value") if label else plain, opening=opening or label is not None)

    def _is_boundary(self, plain: str, following: str | None) -> bool:
        """A line that ends a section: a decision label ("Verdict:", "## Final Answer").

        ``following``: the next non-blank line (plain), if any. A bare label with nothing under it
        (the last line, or one right before another section) heads nothing: it is the section's
        own text, e.g. an analysis that reads just "Result".
        """
        label = self.decision_label(plain)
        if label is None:
            return False
        if not label.group("value").strip() and (following is None or self.section_label.match(following)):
            return False
        return (
            not re.search(r"\b(?:is|be)\s*$", label.group("sep"))
            or self.token(label.group("value")) is not None
        )

    @staticmethod
    def _next_plain(lines: list[str], index: int) -> str | None:
        return next((p for line in lines[index + 1 :] if (p := _plain(line))), None)

    def _restated_options(self, lines: list[str]) -> dict[int, str]:
        """The lines of list items that restate the options: after a line leading into options
        (:data:`_OPTIONS_INTRO`), a list whose every item is one decision, naming several. They are
        the prompt's options, not the judge's decisions; a list of decisions under any other line
        ("Verdict:") is read item by item, so two different ones still disagree. Each item's index
        maps to the list as evidence."""
        restated: dict[int, str] = {}
        for index, line in enumerate(lines):
            intro = _plain(line).rstrip()
            if not _OPTIONS_INTRO.search(intro) or _OWN_ANSWER_INTRO.search(intro):
                continue
            items: list[int] = []
            named: set[str] = set()
            for position in range(index + 1, len(lines)):
                item = lines[position]
                if not item.strip():
                    continue
                if not _LIST_ITEM.match(item.lstrip()):
                    break
                decision = self.token(_plain(item))
                if decision is None or len(self.named_decisions(item)) > 1:
                    named.clear()  # an item that is no single option: no list of options
                    break
                items.append(position)
                named.add(decision)
            if len(named) > 1:
                evidence = f"{intro} {', '.join(_plain(lines[item]) for item in items)}"[:120]
                restated.update(dict.fromkeys(items, evidence))
        return restated

    def read(self, text: str) -> _Reading:
        reading = _Reading()
        text = text.replace("\x00", " ")  # the slot markers below are ours alone
        # JSON first, so that tags inside its strings are not taken for blocks; then the quoted
        # blocks, which drop any JSON object they hold (a copied response is not the answer).
        objects: list[tuple[Any, str]] = []
        pieces, last = [], 0
        for start, end, value in _json_objects(text):
            pieces += [text[last:start], "\n" + _JSON_SLOT.format(len(objects)) + "\n"]
            objects.append((value, text[start:end]))
            last = end
        text = "".join([*pieces, text[last:]])
        text, quotes = _cut_blocks(text)

        def restored(line: str) -> str:
            line = _QUOTE_SLOTS.sub(lambda m: quotes[int(m.group(1))], line)
            return _JSON_SLOTS.sub(lambda m: objects[int(m.group(1))][1], line)

        section: str | None = None
        opening = True
        revising = False  # the judge took its answer back inside a section ("Wait, ...")
        in_fence = fence_quotes = False  # a fence opened inside a section quotes (code, a sample)
        lines = text.split("\n")
        restated = self._restated_options(lines)
        columns = self._subject_columns(lines)
        rows = self._subject_rows(lines)
        for index, line in enumerate(lines):
            if section is None and index in columns:  # a table's row of one mark per subject's column
                line = columns[index]
            elif section is None and index in rows:  # a table's row of one subject's verdict
                subject, labelled = rows[index]
                if labelled is None:  # said about the subject, but no one clear mark
                    reading.qualified.append((subject, _plain(_table_row(line))[:120]))
                    reading.prose.append(_clean(_table_row(line)))
                    opening = False
                    continue
                line = labelled
            if _FENCE.match(line):
                in_fence = not in_fence
                fence_quotes = in_fence and section is not None
                continue
            if not line.strip() or _BLOCKQUOTE.match(line):
                continue
            slot = _JSON_SLOT_LINE.match(line.strip())
            if slot is not None:
                value, source = objects[int(slot.group(1))]
                if section is None:
                    self._read_json(value, reading)
                    opening = False
                else:  # JSON inside a section is quoted evidence
                    reading.sections[section].append(source)
                continue
            if self._subject_segments(line) is None:  # a row that labels each subject stays one line
                line = _table_row(line)
            line = _tag_as_label(line)
            scanned = _LONE_TAG.sub(" ", _QUOTE_SLOTS.sub(" ", line))
            plain = _plain(scanned)
            if not plain:
                if section is not None:
                    reading.sections[section].append(restored(line))
                continue
            started = self.section_label.match(plain)
            if started is not None:
                section = self._fill(reading, _plain(restored(line)))
                self._note_section_claims(started.group("value"), reading)
                if _UNDECIDED.search(_unquoted(started.group("value"))):
                    reading.uncommitted.append(plain[:120])
                continue
            if section is not None and not self._is_boundary(plain, self._next_plain(lines, index)):
                section = self._fill(reading, restored(line), section)
                self._note_section_claims(scanned, reading)
                if _UNDECIDED.search(_plain(_unquoted(scanned))):  # "Honestly, it could be either."
                    reading.uncommitted.append(plain[:120])
                revising = self._second_thought(_plain(_unquoted(scanned)), reading, revising)
                if self._decision_in(plain) or self.subject_label(plain):
                    reading.in_sections.append(plain)
                    block = None if fence_quotes else self._opens_answer_block(lines, index, plain)
                    if block is not None:
                        reading.later_blocks.append((block, plain[:120]))
                continue
            section = None
            if index in restated:  # the prompt's options listed again: no decision of the judge's
                if restated[index] not in reading.listed:
                    reading.listed.append(restated[index])
                opening = False
                continue
            if reading.decisions and any(
                _SECOND_THOUGHT.match(s) for s in _sentences(_plain(_unquoted(scanned)))
            ):
                reading.reconsidered = True
            midline = self.section_midline.search(plain)
            if midline is not None and midline.start() > 0 and self._decision_in(plain[: midline.start()]):
                whole = _plain(restored(line))
                rest = self.section_midline.search(whole)
                section = self._fill(reading, whole[rest.start() :] if rest else plain[midline.start() :])
                self._note_section_claims(plain[midline.end() :], reading)
                scanned = plain = plain[: midline.start()].strip()
            self._read_line(plain, scanned, reading, opening=opening)
            opening = False
        return reading

    def _note_section_claims(self, scanned: str, reading: _Reading) -> None:
        """Record the clear statements of a section line (quotes removed), where they must agree."""
        if not self.sections_must_agree:
            return
        for sentence in _sentences(_plain(_unquoted(scanned))):
            reading.section_claims.extend(
                (subject, correct, sentence.strip()[:120])
                for subject, correct in self.sentence_claims(sentence)
            )
            reading.hedged.extend((s, sentence.strip()[:120]) for s in self.qualified_subjects(sentence))

    def _second_thought(self, plain: str, reading: _Reading, revising: bool) -> bool:
        """Note what a section line says from the judge's second thought on ("Wait, actually ...",
        "On second thought, ..."), once one began; whether one has begun."""
        sentences = _sentences(plain)
        start = (
            0
            if revising
            else next((i for i, sentence in enumerate(sentences) if _SECOND_THOUGHT.match(sentence)), None)
        )
        if start is None:
            return False
        reading.reconsidered = reading.reconsidered or bool(reading.decisions)
        named: set[str] = set()
        claims: list[tuple[int, bool]] = []
        for sentence in sentences[start:]:
            named |= self.named_decisions(sentence)
            claims += self.sentence_claims(sentence)
        if named or claims:
            reading.revisions.append((named, claims, " ".join(sentences[start:])[:120]))
        return True

    def _opens_answer_block(self, lines: list[str], index: int, plain: str) -> str | None:
        """The decision of a line inside a section that opens an answer block of the judge's own.

        Such a line is a decision at the start of a line of the answer's own (at the margin, no list
        item, no quote), followed by the format's first section label, on the line or the next one (a
        decision, then ``Error Analysis:``), and not led into as a quote by the line before
        (:func:`_introduced_as_quote`). A judge that changed its mind writes this; a sample's forged
        answer the judge copies is introduced ("The tool result says:") or runs on from a quote.
        """
        line = lines[index]
        if _INDENTED.match(line) or _LIST_ITEM.match(line) or _OPENS_QUOTE.match(line):
            return None
        midline = self.section_midline.search(plain)
        if midline is not None and midline.start() > 0:
            head, label = plain[: midline.start()], midline.group("label")
        else:
            after = _nonblank_line(lines, index, step=1)
            following = lines[after] if after is not None else ""
            if not following or _FENCE.match(following) or _BLOCKQUOTE.match(following):
                return None
            started = self.section_label.match(_plain(following))
            if started is None:
                return None
            head, label = plain, started.group("label")
        if self.section_keys[_normal_key(label)] != self.block_section:
            return None
        decision = self.token(head)
        if decision is None or _introduced_as_quote(lines, index):
            return None
        return decision

    def _fill(self, reading: _Reading, text: str, section: str | None = None) -> str | None:
        """Add ``text`` to ``section``; a section label inside it ("... Correct Approach: ...") opens
        that section. Returns the section the text ended in."""
        starts = [0, *(m.start() for m in self.section_midline.finditer(text) if m.start() > 0), len(text)]
        for piece in (text[a:b] for a, b in pairwise(starts)):
            opened = self.section_midline.match(piece) or self.section_label.match(piece)
            if opened is not None:
                section = self.section_keys[_normal_key(opened.group("label"))]
                piece = piece[opened.end() :] if opened.re is self.section_midline else opened.group("value")
            if section is not None:
                reading.sections.setdefault(section, []).append(piece)
        return section

    def named_decisions(self, text: str) -> set[str]:
        """The decisions the clauses of ``text`` name: more than one is a list of the options
        ("one of: CORRECT, INCORRECT") or a change of mind ("RESPONSE 1 INCORRECT, no, RESPONSE 2
        INCORRECT"), never a choice."""
        named = set()
        plain = _plain(_unquoted(text))
        options = self._options_label(plain)  # the options as a label name none: the value after it may
        for clause in _OPTION_BREAK.split(options.group("value") if options else plain):
            label = self.decision_label(clause.strip())
            value = label.group("value") if label else clause
            decision = self.token(value) or self.token_keys.get(_key(value))
            if decision is not None:
                named.add(decision)
        return named

    def _read_line(self, plain: str, line: str, reading: _Reading, *, opening: bool) -> None:
        evidence = plain[:120]
        free = _plain(_unquoted(line))
        if _NON_COMMITMENT.search(free) is not None:
            reading.uncommitted.append(evidence)
        if (segments := self._subject_segments(line)) is not None:
            # one verdict per subject on one line: each must be clear, or the line says nothing clear
            for subject, value in segments:
                if subject is None:  # another segment ("Verdict: …") is read on its own
                    self._read_line(_plain(value), value, reading, opening=False)
                    continue
                polarity = _value_polarity(value)
                if polarity is None:
                    reading.qualified.append((subject, evidence))
                else:
                    reading.claims.append((subject, polarity, evidence))
            reading.prose.append(_clean(line))
            return
        named = self.named_decisions(line)
        if len(named) > 1:
            reading.listed.append(evidence)
            reading.prose.append(_clean(line))
            return
        label = self.decision_label(plain)
        value = label.group("value") if label else plain
        if self.forbidden is not None and (
            _key(value) in _FORBIDDEN_KEYS or self.forbidden.search(_plain(_unquoted(line)))
        ):
            reading.forbidden.append(evidence)
        labelled = self.subject_label(plain)
        polarity = _value_polarity(labelled[1]) if labelled else None
        if labelled is not None and polarity is not None:
            reading.claims.append((labelled[0], polarity, evidence))
        elif labelled is not None and _mixed_marks(labelled[1]):  # "Response 1: ✅ ❌": said, but unclear
            reading.qualified.append((labelled[0], evidence))
        else:
            if labelled is not None and _VERDICT_WORD.search(_unquoted(labelled[1])):
                # "Response 1: partially correct": said, but not clearly (its sentences are still read)
                reading.qualified.append((labelled[0], evidence))
            decision = self.token(value, opening=opening or label is not None) or self.token_keys.get(
                _key(value)
            )
            if decision is not None:
                if named and decision not in named:
                    # "RESPONSE 1 INCORRECT, or maybe BOTH_INCORRECT ...": BOTH_INCORRECT covers the
                    # single one it names, so the line names one decision, but not the one read
                    reading.listed.append(evidence)
                    reading.prose.append(_clean(line))
                    return
                reading.decisions.append((decision, evidence))
                if _key(value) not in self.token_keys:  # the decision with its reason on one line,
                    reading.prose.append(_clean(line))  # which must agree with it
                    for sentence in _sentences(free):
                        reading.claims.extend((s, p, evidence) for s, p in self.sentence_claims(sentence))
                return
        stated = False
        for sentence in _sentences(free):
            # A decision that opens a clause ("Based on the evaluation, BOTH_CORRECT."), or led in as a
            # claim may be ("I'd say RESPONSE 2 INCORRECT."); the rest of its sentence is read as well.
            decision = self._clause_decision(sentence)
            if decision is not None:
                stated = True
                reading.decisions.append((decision, sentence.strip()[:120]))
            reading.claims.extend((s, p, sentence.strip()[:120]) for s, p in self.sentence_claims(sentence))
            hedged = [(s, sentence.strip()[:120]) for s in self.qualified_subjects(sentence)]
            reading.qualified.extend(hedged)
            reading.hedged.extend(hedged)
        if named and not stated:
            mention = next(iter(named))
            reading.mentioned.append((mention, mention in self.denied_decisions(line), evidence))
        if not (label and not value.strip()):
            reading.prose.append(_clean(line))

    def _clause_decision(self, sentence: str) -> str | None:
        """The decision in ``sentence`` that opens a clause, alone or after a claim's lead-in ("I'd
        say", "I think"), unless a condition holds it ("If ISO codes are expected, ...")."""
        last_clause = re.split(r"[,:;—–]", sentence)[-1]
        # Only where a decision word begins, and a window of text after it: a decision is short, and a
        # long answer with many words must stay linear to read.
        for word in self.token_start.finditer(sentence):
            rest = sentence[word.start() :]
            decision = self.token(rest[:_TOKEN_WINDOW]) or (
                self.token_keys.get(_key(rest)) if len(rest) <= min(len(last_clause), _TOKEN_WINDOW) else None
            )
            if decision is not None:
                allowed = _claim_allowed(sentence, word.start(), _DECISION_LEAD)
                return decision if allowed is not None and not allowed.group("only") else None
        return None

    def _read_json(self, value: Any, reading: _Reading, depth: int = 0) -> None:
        if not isinstance(value, dict) or depth > 2:
            return
        for raw_key, item in value.items():
            key = _normal_key(raw_key)
            evidence = f"{raw_key}: {item}"[:120]
            if isinstance(item, dict):
                # {"response_1": {"is_correct": false}}: the inner keys are said of the outer key's subject
                nested = [
                    claim
                    for inner, value in item.items()
                    for claim in self.json_claims(f"{key} {_normal_key(inner)}", value)
                ]
                if nested:
                    self._add_json_claims(nested, evidence, reading)
                else:  # {"evaluation": {"verdict": ...}}
                    self._read_json(item, reading, depth + 1)
            # A key that is the prompt's options ("CORRECT/INCORRECT") labels a decision as "verdict" does.
            elif (
                key in self.decision_keys
                or _DECISION_KEY.fullmatch(key)
                or self._options_label(f"{raw_key}:")
            ) and isinstance(item, str):
                label = self.decision_label(_plain(item))  # a value that repeats a label before its choice
                if len(self.named_decisions(item)) > 1:
                    reading.listed.append(evidence)
                elif self.forbidden is not None and (
                    _key(item) in _FORBIDDEN_KEYS or self.forbidden.search(item)
                ):
                    reading.forbidden.append(evidence)
                elif decision := self.token(label.group("value") if label else _plain(item), opening=True):
                    reading.decisions.append((decision, evidence))
                else:
                    for sentence in _sentences(_plain(_unquoted(item))):
                        reading.claims.extend((s, p, evidence) for s, p in self.sentence_claims(sentence))
            elif key in self.section_keys and isinstance(item, str):
                reading.sections.setdefault(self.section_keys[key], []).append(item)
                self._note_section_claims(item, reading)
            else:
                self._add_json_claims(self.json_claims(key, item), evidence, reading)

    @staticmethod
    def _add_json_claims(claims: list[tuple[int, bool | None]], evidence: str, reading: _Reading) -> None:
        for subject, correct in claims:
            if correct is None:
                reading.qualified.append((subject, evidence))
            else:
                reading.claims.append((subject, correct, evidence))

    # deciding -----------------------------------------------------------------------------------

    def decide(self, reading: _Reading) -> tuple[str | None, str | None]:
        """(decision, None), or (None, why there is no single decision)."""
        decision, problem = self._single_decision(reading)
        if decision is None:
            return None, problem
        # A later answer block that restates the decision changes nothing; one that differs means
        # the judge changed its mind, and which answer it meant is not ours to guess.
        for later, evidence in reading.later_blocks:
            if later != decision:
                return None, (
                    f"changed its mind: a second answer block decides {later} ({evidence!r}) after {decision}"
                )
        # A second thought inside the sections that names or implies another decision: the same.
        implied = dict(zip(self.subjects, self.implies[decision], strict=True))
        for subject, correct, evidence in reading.section_claims:
            if implied[subject] != correct:
                return None, f"the decision {decision} contradicts its own reason: {evidence!r}"
        for named, claims, evidence in reading.revisions:
            if named - {decision} or any(implied[subject] != correct for subject, correct in claims):
                return None, f"changed its mind after deciding {decision}: {evidence!r}"
        for mentioned, denied, evidence in reading.mentioned:
            if denied and mentioned == decision:
                return None, f"denies {decision}, the decision read: {evidence!r}"
            if not denied and mentioned != decision:
                return None, f"names {mentioned} too, without stating it ({evidence!r}): which did it mean?"
        return decision, None

    def _single_decision(self, reading: _Reading) -> tuple[str | None, str | None]:
        if reading.forbidden:
            return (
                None,
                f"uses the project's verdict names, not the judge's vocabulary: {reading.forbidden[0]!r}",
            )
        distinct = list(dict.fromkeys(d for d, _ in reading.decisions))
        if reading.uncommitted and (distinct or reading.claims):
            return None, f"no commitment to one decision: {reading.uncommitted[0]!r}"
        if len(distinct) > 1:
            first = next(e for d, e in reading.decisions if d == distinct[0])
            second = next(e for d, e in reading.decisions if d == distinct[1])
            return None, f"two different decisions: {distinct[0]} ({first!r}) and {distinct[1]} ({second!r})"
        known: dict[int, tuple[bool, str]] = {}
        for subject, polarity, evidence in reading.claims:
            if subject in known and known[subject][0] != polarity:
                return None, f"contradicts itself: {known[subject][1]!r} and {evidence!r}"
            known.setdefault(subject, (polarity, evidence))
        if distinct:
            implied = dict(zip(self.subjects, self.implies[distinct[0]], strict=True))
            for subject, (polarity, evidence) in known.items():
                if implied[subject] != polarity:
                    return None, f"the decision {distinct[0]} contradicts {evidence!r}"
            # "CORRECT … The candidate is partially correct.": what the decision calls correct, the
            # answer only half says is; a subject it calls incorrect may well be partly right.
            for subject, evidence in reading.hedged:
                if implied[subject] and subject not in known:
                    return None, f"the decision {distinct[0]} is qualified: {evidence!r}"
            return distinct[0], None
        hedged = [(subject, evidence) for subject, evidence in reading.qualified if subject not in known]
        if hedged:  # a decision from the other subject alone would read past what it says about this one
            return None, f"no decision, only a qualified claim: {hedged[0][1]!r}"
        decision = self.from_claims({s: p for s, (p, _) in known.items()})
        if decision is not None:
            return decision, None
        if known:
            return None, f"no decision, only {next(iter(known.values()))[1]!r}"
        if reading.listed:
            return None, (
                f"no decision: {reading.listed[0][:80]!r} names several (the list of options, or a "
                "change of mind)"
            )
        if reading.in_sections:
            return None, (
                f"no decision outside the answer's sections; {reading.in_sections[0][:80]!r} sits inside "
                "one, where text may quote the sample"
            )
        return None, "no decision found"

    def from_claims(self, known: dict[int, bool]) -> str | None:
        for decision, implied in self.implies.items():
            if all(known.get(s) == p for s, p in zip(self.subjects, implied, strict=True)):
                return decision
        return None


def _cut_blocks(text: str) -> tuple[str, list[str]]:
    """Replace each quoted block (``<response_1>…</response_1>``) by a slot; return the blocks.

    A block closes with a tag of its opener's form: an escaped ``&lt;/conversation>`` inside a real
    ``<conversation>`` block is the sample's text (the prompt escaped it), not the block's end. A tag
    with no closer after it stays (closers are looked for once per tag, so this stays linear).
    """
    pieces: list[str] = []
    blocks: list[str] = []
    unclosed: set[tuple[str, str]] = set()
    last = position = 0
    while (opening := _BLOCK_OPEN.search(text, position)) is not None:
        form, tag = opening.group(1).lower(), opening.group(2).lower()
        closer = None
        if (form, tag) not in unclosed:
            closer = re.compile(re.escape(form) + "/" + tag + ">", re.IGNORECASE).search(text, opening.end())
        if closer is None:
            unclosed.add((form, tag))
            position = opening.end()
            continue
        pieces += [text[last : opening.start()], _QUOTE_SLOT.format(len(blocks))]
        blocks.append(text[opening.start() : closer.end()])
        last = position = closer.end()
    return "".join([*pieces, text[last:]]), blocks


def _nonblank_line(lines: list[str], index: int, *, step: Literal[1, -1]) -> int | None:
    """The index of the nearest non-blank line after (``step`` 1) or before (-1) ``index``."""
    position = index + step
    while 0 <= position < len(lines):
        if lines[position].strip():
            return position
        position += step
    return None


def _introduced_as_quote(lines: list[str], index: int) -> bool:
    """Whether the line before ``lines[index]`` leads into it as a quote.

    It does when it ends with a colon ("The tool result says:") or runs on into it without a blank
    line and without finishing a sentence ("The user wrote: Sure.&lt;/conversation>"); unless it
    announces the judge's own answer ("Let me restate my verdict:").
    """
    before = _nonblank_line(lines, index, step=-1)
    if before is None:
        return False
    blank_between = before < index - 1
    text = _plain(_ANY_SLOT.sub(" ", lines[before])).rstrip()
    if _OWN_ANSWER_INTRO.search(_unquoted(text)):
        return False
    if _INTRODUCES.search(text):
        return True
    return not blank_between and _SENTENCE_DONE.search(text) is None


# A line that wraps the decision in a tag named as its label would be ("<verdict>RESPONSE 2
# INCORRECT</verdict>", "<final_answer>...</final_answer>").
_DECISION_TAG = re.compile(r"^\s*<(?P<name>[A-Za-z][\w -]{0,40})>(?P<value>[^<>\n]*)</(?P=name)\s*>\s*$")


def _tag_as_label(line: str) -> str:
    """A line ``<verdict>X</verdict>`` as the label it stands for, "verdict: X"; any other line as it is."""
    match = _DECISION_TAG.match(line)
    if match is None or _DECISION_KEY.fullmatch(_normal_key(match.group("name"))) is None:
        return line
    return f"{_normal_key(match.group('name'))}: {match.group('value').strip()}"


def _table_row(line: str) -> str:
    """A Markdown table row reads as "first cell: other cells" ("| Response 2 | Incorrect |")."""
    if not line.lstrip().startswith("|"):
        return line
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if all(re.fullmatch(r":?-+:?", c) for c in cells if c):  # GFM: one hyphen is enough
        return ""
    values = cells[1:]
    gap = next((index for index, cell in enumerate(values) if not cell), None)
    if gap is not None and any(values[gap:]):
        # A cell after an empty one ("| Response 2 | | ✅ |"): a checkbox row, whose mark means what
        # its column's header says. Read without that header, its position says nothing.
        return f"{cells[0]}: a mark in an unnamed column"
    return f"{cells[0]}: {', '.join(c for c in values if c)}" if len(cells) > 1 else cells[0]


# A word that judges correctness: a response's label whose value holds one but reads neither way
# ("partially correct") says something unclear about it.
_VERDICT_WORD = re.compile(r"\b(?:" + _POS + "|" + _NEG + r")\b", re.IGNORECASE)


def _mixed_marks(value: str) -> bool:
    """Whether ``value`` holds a check and a cross: two marks, no one verdict."""
    return any(mark in value for mark in _CHECK) and any(mark in value for mark in _CROSS)


def _value_polarity(value: str) -> bool | None:
    """Correct (True) / incorrect (False) for a labelled value such as "✅ Correct — it calls ..."."""
    stripped = value.strip()
    if _mixed_marks(stripped):
        return None
    first = stripped[:1]
    mark = None if not first else True if first in _CHECK else False if first in _CROSS else None
    word = re.match(
        r"[^\w]*(?:(?P<neg>incorrect|wrong|invalid|inaccurate|erroneous|not\s+correct)|(?P<pos>"
        + _POS
        + r"))"
        + r"(?="
        + _PUNCT_FOLLOW
        + r"|\s+(?:because|since|as|and|while|whereas)\b)",
        _plain(stripped) or stripped,
        re.IGNORECASE,
    )
    polarity = None if word is None else word.group("pos") is not None
    if mark is not None and polarity is not None and mark != polarity:
        return None
    return polarity if polarity is not None else mark


def _claim_allowed(sentence: str, start: int, lead: re.Pattern[str] = _CLAIM_LEAD) -> re.Match[str] | None:
    """The ``lead`` before a claim at ``start`` when it opens a clause (not "if ...", "not that ...")."""
    forced = _FORCED_CHOICE.match(sentence)
    begin = forced.end() if forced is not None and start >= forced.end() else 0  # where the sentence is read
    if _CONDITIONAL_AT.match(sentence, begin) or sentence.rstrip().endswith("?"):
        return None
    clauses = _last_clauses(sentence, begin, start)
    # "It depends: if five was meant, Response 2 is incorrect": the condition just before the claim
    # holds it, wherever the sentence began.
    if len(clauses) > 1 and _CONDITION_CLAUSE.match(clauses[-2]):
        return None
    return lead.match(clauses[-1].strip())


@functools.lru_cache(maxsize=64)
def _clause_breaks(sentence: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(starts, ends) of the clause breaks in ``sentence``, found once per sentence, so that a sentence
    of many claims reads in linear time."""
    breaks = list(_CLAUSE_BREAK.finditer(sentence))
    return tuple(b.start() for b in breaks), tuple(b.end() for b in breaks)


def _last_clauses(sentence: str, begin: int, start: int) -> list[str]:
    """The last two clauses (or the only one) of ``sentence[begin:start]``, as :data:`_CLAUSE_BREAK`
    splits it."""
    starts, ends = _clause_breaks(sentence)
    first = bisect.bisect_left(starts, begin)  # breaks that begin inside the text read
    last = bisect.bisect_left(starts, start)  # ... and before the claim (none can end after it)
    if last <= first:
        return [sentence[begin:start]]
    final = sentence[ends[last - 1] : start]
    if last - 1 == first:
        return [sentence[begin : starts[first]], final]
    return [sentence[ends[last - 2] : starts[last - 1]], final]


_QUESTION_FOLLOW = re.compile(r"\s*\?")
_PUNCT_FOLLOWS = re.compile(_PUNCT_FOLLOW)
_PUNCT_THEN_HEDGE = re.compile(r"\s*,?\s*" + _HEDGE_FOLLOW.pattern, re.IGNORECASE)
_FOLLOW_GAP = re.compile(r"\s*[,;]?\s*")


@functools.lru_cache(maxsize=8)
def _contrasts(subject: re.Pattern[str]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """A contrast right after a claim ("but Response 2 ..."), and one later in its sentence."""
    return (
        re.compile(r"(?:but|though|although|yet)\s+" + subject.pattern, re.IGNORECASE),
        re.compile(
            r"(?:but|though|although|yet|however|whereas|while)\s*,?\s*" + subject.pattern, re.IGNORECASE
        ),
    )


@functools.lru_cache(maxsize=64)
def _uncontrasted_hedges(sentence: str, subject: re.Pattern[str]) -> tuple[int, ...]:
    """Where the qualifications of ``sentence`` begin that contrast no other subject, in order: found
    once per sentence, so that a sentence of many claims reads in linear time."""
    later = _contrasts(subject)[1]
    return tuple(
        hedge.start()
        for hedge in _LATER_HEDGE.finditer(sentence)
        if later.match(sentence, hedge.start()) is None
    )


def _follow_ok(sentence: str, end: int, subject: re.Pattern[str]) -> bool:
    """A claim ending at ``end`` counts when nothing qualifies it ("correct in ...", "correct but
    incomplete"). Read in place (patterns matched at ``end``), never on a copy of the rest."""
    if _QUESTION_FOLLOW.match(sentence, end):
        return False
    if _PUNCT_FOLLOWS.match(sentence, end) and not _PUNCT_THEN_HEDGE.match(sentence, end):
        return True
    after = _FOLLOW_GAP.match(sentence, end).end()  # type: ignore[union-attr]  # it matches empty
    if _HEDGE_FOLLOW.match(sentence, after):
        return _contrasts(subject)[0].match(sentence, after) is not None
    if not _GOOD_FOLLOW.match(sentence, after):
        return False
    # "correct because ..., but Response 2 ..." contrasts the other subject; any other qualification
    # later in the sentence ("correct so far", "correct here, apart from the unit") hedges the claim.
    hedges = _uncontrasted_hedges(sentence, subject)
    return bisect.bisect_left(hedges, after) == len(hedges)


# --- the judge (Figure 10) ------------------------------------------------------------------------

_RESPONSE = (
    r"(?:the\s+)?(?:(?P<ord>first|second)\s+response|response\s*(?:#|no\.?)?\s*(?P<num>[12]|one|two)\b)"
    r"(?:\s*\([^()]{0,60}\))?"
)
_RESPONSE_SUBJECT = re.compile(_RESPONSE, re.IGNORECASE)
_ANY_SUBJECT = re.compile(
    r"(?:the\s+)?(?:(?:first|second)\s+response|response\s*#?\s*(?:[12]|one|two)\b|both|neither)",
    re.IGNORECASE,
)
_JUDGE_TOKEN = re.compile(
    r"\[?\s*(?:response\s*\[?\s*(?:#|no\.?)?\s*(?P<num>[12]|one|two)\s*\]?[\s_-]*incorrect|"
    r"both[\s_-]*(?P<both>correct|incorrect))\s*\]?(?=" + _PUNCT_FOLLOW + r"|\s+(?:error[\s_-]*analysis|"
    # a conjunction too: what follows is read with the decision and must agree with it
    r"correct[\s_-]*approach|because|since|as|due|and|but|while|whereas|though|although)\b)" + _UNCONDITIONED,
    re.IGNORECASE,
)
# A decision named anywhere, whatever follows it (for a line naming several; never to read one).
_JUDGE_NAMED = re.compile(
    r"(?<![A-Za-z0-9])(?:response\s*(?:#|no\.?)?\s*(?P<num>[12]|one|two)[\s_-]*incorrect|"
    r"both[\s_-]*(?P<both>correct|incorrect))(?![A-Za-z0-9])",
    re.IGNORECASE,
)
# Words that deny the decision named right after ("this is not a BOTH_CORRECT case", "rather than
# RESPONSE 1 INCORRECT") or before ("BOTH_INCORRECT is ruled out").
_DENIAL_BEFORE = re.compile(
    r"(?:\bnot|n['’]t|\bnever|\brather\s+than|\binstead\s+of)\s+(?:(?:a|an|the)\s+)?$", re.IGNORECASE
)
_DENIAL_AFTER = re.compile(
    r"\s+(?:is|was)\s+(?:ruled\s+out|excluded|out\s+of\s+the\s+question)\b", re.IGNORECASE
)
_ONE_CLAIM = re.compile(
    _RESPONSE
    + _COPULA
    + r"(?:(?P<excl>the\s+(?:only\s+)?(?:(?P<xpos>correct|right)|(?P<xneg>incorrect|wrong))"
    r"\s+(?:one|response|answer))|(?P<pos>" + _POS + r")|(?P<neg>" + _NEG + r"))\b",
    re.IGNORECASE,
)
# A claim a degree qualifies ("Response 1 is partially correct", "... is probably wrong"): no clear claim.
# A degree or a doubt that leaves a claim neither way ("partially correct", "probably incorrect").
_DEGREE = (
    r"(?:partially|partly|mostly|largely|somewhat|almost|nearly|half|technically|essentially|mainly|"
    r"generally|arguably|probably|likely|possibly|maybe|perhaps)\s+(?:" + _POS + "|" + _NEG + r")\b"
)
_ONE_DEGREE = re.compile(_RESPONSE + _COPULA + _DEGREE, re.IGNORECASE)
_ONE_ELLIPSIS = re.compile(_RESPONSE + r"\s+(?:is|was)(?:\s+not|n['’]t)(?=\s*(?:$|[.,;!]))", re.IGNORECASE)
_BOTH_CLAIM = re.compile(
    r"(?:both(?:\s+of\s+(?:them|the(?:\s+two)?\s+responses))?(?:\s+responses)?|"
    r"(?P<plural>the\s+two\s+responses|the\s+responses|they|response\s*1\s+and\s+response\s*2|"
    r"responses\s*1\s+and\s*2))\s+(?:are|were)\s+(?(plural)both\s+|)"
    + _ADV
    + r"(?:(?P<pos>"
    + _POS
    + r")|(?P<neg>"
    + _NEG
    + r"))\b",
    re.IGNORECASE,
)
_NEITHER_CLAIM = re.compile(
    r"(?:neither(?:\s+response|\s+of\s+(?:them|the(?:\s+two)?\s+responses))?|"
    r"none\s+of\s+(?:them|the(?:\s+two)?\s+responses))\s+(?:is|was|are|were)\s+"
    + _ADV
    + r"(?:(?P<pos>"
    + _POS
    + r")|(?P<neg>"
    + _NEG
    + r"))\b",
    re.IGNORECASE,
)
# The project's verdict names (and the paper's REF_WRONG): a judge that uses them was told to by a sample.
_JUDGE_FORBIDDEN = re.compile(
    r"(?<![A-Za-z0-9])(?:(?:label|pred|prediction|ref|reference)[\s_-]?wrong|both[_-]wrong)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_FORBIDDEN_KEYS = frozenset(
    {"LABELWRONG", "PREDWRONG", "PREDICTIONWRONG", "REFWRONG", "REFERENCEWRONG", "BOTHWRONG"}
)
# "Response 1: ✅ Correct", or with no separator before a check or cross mark ("**Response 1** ✅").
_RESPONSE_LABEL = re.compile(
    r"^"
    + _RESPONSE
    + r"\s*(?:[:：=]|"
    + _ARROW
    + r"|[-–—](?:\s|$)|(?=["
    + _CHECK
    + _CROSS
    + r"]))\s*(?P<value>.*)$",
    re.IGNORECASE,
)


def _response_number(match: re.Match[str]) -> int:
    groups = match.groupdict()
    word = (groups.get("ord") or groups.get("num") or "").lower()
    return {"first": 1, "second": 2, "1": 1, "2": 2, "one": 1, "two": 2}[word]


def _judge_decision(match: re.Match[str]) -> str:
    """The decision a match of :data:`_JUDGE_TOKEN` or :data:`_JUDGE_NAMED` names."""
    if match.group("num"):
        return f"RESPONSE {_response_number(match)} INCORRECT"
    return "BOTH_CORRECT" if match.group("both").lower() == "correct" else "BOTH_INCORRECT"


class _JudgeReader(_Reader):
    subjects = (1, 2)
    implies: ClassVar[Mapping[str, tuple[bool, ...]]] = {
        "RESPONSE 1 INCORRECT": (False, True),
        "RESPONSE 2 INCORRECT": (True, False),
        "BOTH_CORRECT": (True, True),
        "BOTH_INCORRECT": (False, False),
    }
    token_keys: ClassVar[Mapping[str, str]] = {
        "RESPONSE1INCORRECT": "RESPONSE 1 INCORRECT",
        "RESPONSE2INCORRECT": "RESPONSE 2 INCORRECT",
        "RESPONSEONEINCORRECT": "RESPONSE 1 INCORRECT",
        "RESPONSETWOINCORRECT": "RESPONSE 2 INCORRECT",
        "BOTHCORRECT": "BOTH_CORRECT",
        "BOTHINCORRECT": "BOTH_INCORRECT",
    }
    section_label = re.compile(
        r"^(?P<label>error[\s_-]*analysis|correct[\s_-]*approach)(?:\s*\([^()]{0,40}\))?"
        r"\s*(?:[:：=]|[-–—](?:\s|$)|$)\s*(?P<value>.*)$",
        re.IGNORECASE,
    )
    section_midline = re.compile(
        r"(?<![A-Za-z])(?P<label>error[\s_-]*analysis|correct[\s_-]*approach)\s*[:：]\s*", re.IGNORECASE
    )
    section_keys: ClassVar[Mapping[str, str]] = {
        "error analysis": "analysis",
        "erroranalysis": "analysis",
        "correct approach": "approach",
        "correctapproach": "approach",
        # JSON answers name their fields more freely
        "analysis": "analysis",
        "explanation": "analysis",
        "reasoning": "analysis",
        "rationale": "analysis",
        "reason": "analysis",
        "approach": "approach",
        "fix": "approach",
        "suggestion": "approach",
    }
    block_section = "analysis"
    forbidden = _JUDGE_FORBIDDEN
    token_start = re.compile(r"(?<!\w)(?=\[?(?:response|both)(?![A-Za-z]))", re.IGNORECASE)

    def token(self, plain: str, *, opening: bool = False) -> str | None:
        plain = _plain(plain)
        match = _JUDGE_TOKEN.match(plain) or _JUDGE_TOKEN.match(_DISCOURSE_PREFIX.sub("", plain))
        return None if match is None else _judge_decision(match)

    def subject_label(self, plain: str) -> tuple[int, str] | None:
        match = _RESPONSE_LABEL.match(plain)
        return (_response_number(match), match.group("value")) if match else None

    def sentence_claims(self, sentence: str) -> list[tuple[int, bool]]:
        claims: list[tuple[int, bool]] = []
        for match in _ONE_CLAIM.finditer(sentence):
            lead = _claim_allowed(sentence, match.start())
            if lead is None or not _follow_ok(sentence, match.end(), _ANY_SUBJECT):
                continue
            subject = _response_number(match)
            other = 3 - subject
            if match.group("excl"):  # "Response 1 is the correct one"
                if not match.group("not"):
                    correct = match.group("xpos") is not None
                    claims += [(subject, correct), (other, not correct)]
                continue
            correct = (match.group("pos") is not None) != bool(match.group("not"))
            claims.append((subject, correct))
            if lead.group("only") and correct:  # "only Response 1 is correct"
                claims.append((other, False))
        for match in _ONE_ELLIPSIS.finditer(sentence):  # "..., while Response 2 is not."
            if claims and _claim_allowed(sentence, match.start()) is not None:
                claims.append((_response_number(match), not claims[-1][1]))
        for pattern, both in ((_BOTH_CLAIM, True), (_NEITHER_CLAIM, False)):
            for match in pattern.finditer(sentence):
                if _claim_allowed(sentence, match.start()) is None:
                    continue
                if not _follow_ok(sentence, match.end(), _ANY_SUBJECT):
                    continue
                correct = (match.group("pos") is not None) == both
                claims += [(1, correct), (2, correct)]
        return claims

    def qualified_subjects(self, sentence: str) -> list[int]:
        hedged = [
            match
            for match in _ONE_CLAIM.finditer(sentence)
            if _claim_allowed(sentence, match.start()) is not None
            and not _follow_ok(sentence, match.end(), _ANY_SUBJECT)
        ]
        hedged += [
            m for m in _ONE_DEGREE.finditer(sentence) if _claim_allowed(sentence, m.start()) is not None
        ]
        return [_response_number(match) for match in hedged]

    def named_decisions(self, text: str) -> set[str]:
        named = super().named_decisions(text)
        # A decision anywhere in a clause, under a condition too ("or maybe BOTH_INCORRECT if ..."), is
        # named all the same: the judge's decisions are words no sentence uses otherwise.
        plain = _plain(_unquoted(text))
        options = self._options_label(plain)  # the options as a label name none (as above)
        for match in _JUDGE_NAMED.finditer(options.group("value") if options else plain):
            named.add(_judge_decision(match))
        if "BOTH_INCORRECT" in named:  # "BOTH_INCORRECT - Response 1 incorrect, Response 2 incorrect"
            named -= {"RESPONSE 1 INCORRECT", "RESPONSE 2 INCORRECT"}
        return named

    def denied_decisions(self, text: str) -> set[str]:
        plain = _plain(_unquoted(text))
        denied: set[str] = set()
        affirmed: set[str] = set()
        for match in _JUDGE_NAMED.finditer(plain):
            decision = _judge_decision(match)
            before = _DENIAL_BEFORE.search(plain, max(0, match.start() - 40), match.start())
            (denied if before or _DENIAL_AFTER.match(plain, match.end()) else affirmed).add(decision)
        return denied - affirmed

    def from_claims(self, known: dict[int, bool]) -> str | None:
        if len(known) == 1 and False in known.values():  # "Response 2 is incorrect." says it all
            return f"RESPONSE {next(iter(known))} INCORRECT"
        return super().from_claims(known)

    def json_claims(self, key: str, value: Any) -> list[tuple[int, bool | None]]:
        match = re.fullmatch(r"response\s*([12])(?:\s*(?:is\s*)?(correct|verdict|status|assessment))?", key)
        if match is None:
            return []
        subject = int(match.group(1))
        if isinstance(value, bool):
            return [(subject, value)] if match.group(2) in (None, "correct") else []
        if not isinstance(value, str):
            return []
        polarity = _value_polarity(value)
        if polarity is None and (_VERDICT_WORD.search(value) or _mixed_marks(value)):
            return [(subject, None)]  # "partially correct": said, but not clearly either way
        return [] if polarity is None else [(subject, polarity)]


# --- the verifier (CORRECT / INCORRECT) -----------------------------------------------------------

_CANDIDATE = (
    r"(?:(?:the|this)\s+(?:candidate(?:['’]s)?\s+|proposed\s+)?(?:next\s+step|step|response|answer|"
    r"tool\s+calls?|function\s+calls?|calls?|sample|candidate|output|action)|it)"
)
_CANDIDATE_SUBJECT = re.compile(_CANDIDATE, re.IGNORECASE)
_CANDIDATE_DEGREE = re.compile(r"\b" + _CANDIDATE + _COPULA + _DEGREE, re.IGNORECASE)
# PASS / FAIL too: verifiers trained on test-style prompts answer so when asked CORRECT / INCORRECT.
# "CORRECT, but the nights should be 3", "Yes, but the unit is wrong": a qualified decision is none.
_UNQUALIFIED = (
    r"(?!\s*[,;:—–-]?\s*(?:but|though|although|yet|except|apart\s+from|other\s+than|so\s+far|as\s+far\s+as|"
    + _CONDITION_AFTER
    + r")\b)"
)
_VERIFIER_TOKEN = re.compile(
    r"\[?\s*(?:(?P<neg>incorrect|not\s+correct|fail(?:ed)?)|(?P<pos>correct|pass(?:ed)?))\s*\]?(?="
    + _PUNCT_FOLLOW
    + r"|\s+(?:reason|"
    r"because|since|as|due)\b)" + _UNQUALIFIED,
    re.IGNORECASE,
)
_YES_NO = re.compile(r"(?:(?P<pos>yes)|(?P<neg>no))(?=\s*(?:$|[.,;:!—–]|-\s))" + _UNQUALIFIED, re.IGNORECASE)
# A decision named anywhere in the capitals the prompt writes it in ("so I would now call it
# INCORRECT"), whatever follows it (for a line naming one or several; never to read one). In other
# cases the words are ordinary ("the date is incorrect").
_VERIFIER_NAMED = re.compile(
    r"(?<![A-Za-z])(?:(?P<neg>INCORRECT|NOT\s+CORRECT|FAIL(?:ED)?)|(?P<pos>CORRECT|PASS(?:ED)?))(?![A-Za-z])"
)
_VERIFIER_CLAIM = re.compile(
    _CANDIDATE
    + r"(?:\s+(?:is|was|are|were)|['’]s)(?P<not>\s+not|n['’]t)?\s+(?(not)|"
    + _ADV
    + r")(?:(?P<pos>"
    + _POS
    + r")|(?P<neg>"
    + _NEG
    + r"))\b",
    re.IGNORECASE,
)


class _VerifierReader(_Reader):
    subjects = (0,)
    implies: ClassVar[Mapping[str, tuple[bool, ...]]] = {"CORRECT": (True,), "INCORRECT": (False,)}
    token_keys: ClassVar[Mapping[str, str]] = {
        "CORRECT": "CORRECT",
        "INCORRECT": "INCORRECT",
        "NOTCORRECT": "INCORRECT",
        "PASS": "CORRECT",
        "PASSED": "CORRECT",
        "FAIL": "INCORRECT",
        "FAILED": "INCORRECT",
    }
    section_label = re.compile(
        r"^(?P<label>reasons?)(?:\s*\([^()]{0,40}\))?\s*(?:[:：=]|[-–—](?:\s|$)|$)\s*(?P<value>.*)$",
        re.IGNORECASE,
    )
    section_midline = re.compile(r"(?<![A-Za-z])(?P<label>reasons?)\s*[:：]\s*", re.IGNORECASE)
    section_keys: ClassVar[Mapping[str, str]] = {
        "reason": "reason",
        "reasons": "reason",
        # JSON answers name their fields more freely
        "explanation": "reason",
        "rationale": "reason",
        "justification": "reason",
        "reasoning": "reason",
        "analysis": "reason",
    }
    block_section = "reason"
    decision_keys = frozenset({"verification", "status", "label"})
    token_start = re.compile(r"(?<!\w)(?=\[?(?:incorrect|not\s+correct|fail|correct|pass))", re.IGNORECASE)
    sections_must_agree = True

    def token(self, plain: str, *, opening: bool = False) -> str | None:
        plain = _plain(plain)
        for text in (plain, _DISCOURSE_PREFIX.sub("", plain)):
            match = _VERIFIER_TOKEN.match(text) or (_YES_NO.match(text) if opening else None)
            if match is not None:
                return "CORRECT" if match.group("pos") else "INCORRECT"
        return None

    def named_decisions(self, text: str) -> set[str]:
        named = super().named_decisions(text)
        plain = _plain(_unquoted(text))
        options = self._options_label(plain)  # the options as a label name none (as the judge's)
        for match in _VERIFIER_NAMED.finditer(options.group("value") if options else plain):
            named.add("CORRECT" if match.group("pos") else "INCORRECT")
        return named

    def sentence_claims(self, sentence: str) -> list[tuple[int, bool]]:
        claims = []
        for match in _VERIFIER_CLAIM.finditer(sentence):
            if _claim_allowed(sentence, match.start()) is None:
                continue
            if not _follow_ok(sentence, match.end(), _CANDIDATE_SUBJECT):
                continue
            claims.append((0, (match.group("pos") is not None) != bool(match.group("not"))))
        return claims

    def qualified_subjects(self, sentence: str) -> list[int]:
        return [
            0 for m in _CANDIDATE_DEGREE.finditer(sentence) if _claim_allowed(sentence, m.start()) is not None
        ]

    def json_claims(self, key: str, value: Any) -> list[tuple[int, bool | None]]:
        if key in ("correct", "is correct", "valid", "is valid", "passed", "pass") and isinstance(
            value, bool
        ):
            return [(0, value)]
        return []


_JUDGE = _JudgeReader()
_VERIFIER = _VerifierReader()


# --- public API -----------------------------------------------------------------------------------


def parse_verdict(
    raw: str,
    label_position: Literal[1, 2] | int,
    *,
    reasoning: str | None = None,
    trace_opened: bool = False,
) -> ParsedVerdict:
    """Read a judge answer; ``label_position`` says whether the label was shown as response 1 or 2.

    ``raw`` is the answer's content. ``reasoning`` is a separate reasoning field (vLLM's
    ``reasoning_content``), never read for the decision: it only explains an empty answer.
    ``trace_opened``: the chat template opened a reasoning trace (DeepSeek-R1, QwQ), so the answer
    starts after the first ``</think>`` (or another family's closing token, e.g. Seed-OSS's
    ``</seed:think>``) and there is none without it. Left False, such a trace is still recognised by
    its closing token alone at a line end.
    """
    if not isinstance(raw, str):
        if raw is None:
            return ParsedVerdict(verdict="UNPARSEABLE", raw="", reason=empty_answer_reason(reasoning))
        return ParsedVerdict(verdict="UNPARSEABLE", raw=repr(raw), reason="judge answer is not text")
    if label_position not in (1, 2):
        return ParsedVerdict(
            verdict="UNPARSEABLE", raw=raw, reason=f"invalid label position {label_position!r}"
        )
    answer, problem = _answer_text(raw, reasoning, trace_opened, _JUDGE.starts_with_decision)
    if answer is None:
        return ParsedVerdict(verdict="UNPARSEABLE", raw=raw, reason=problem)
    reading = _JUDGE.read(answer)
    decision, problem = _JUDGE.decide(reading)
    if decision is None:
        return ParsedVerdict(verdict="UNPARSEABLE", raw=raw, reason=problem)
    if decision.startswith("RESPONSE"):
        verdict: Verdict = "LABEL_WRONG" if int(decision.split()[1]) == label_position else "PRED_WRONG"
    else:
        verdict = "BOTH_CORRECT" if decision == "BOTH_CORRECT" else "BOTH_WRONG"
    analysis = reading.sections.get("analysis")
    approach = reading.sections.get("approach")
    return ParsedVerdict(
        verdict=verdict,
        decision=decision,
        from_statements=not reading.decisions,
        reconsidered=reading.reconsidered,
        error_analysis=_clean(" ".join(analysis))[:1000]
        if analysis
        else _clean(" ".join(reading.prose))[:600],
        correct_approach=_clean(" ".join(approach))[:1000] if approach else "",
        raw=raw,
    )


def read_verification(
    raw: Any, *, reasoning: str | None = None, trace_opened: bool = False
) -> ParsedVerification:
    """Read a verifier answer (CORRECT / INCORRECT and a reason) on the judge's reading rules."""
    if raw is None:
        return ParsedVerification(passed=None, problem=empty_answer_reason(reasoning))
    if not isinstance(raw, str):
        return ParsedVerification(passed=None, raw=repr(raw), problem="answer is not text")
    answer, problem = _answer_text(raw, reasoning, trace_opened, _VERIFIER.starts_with_decision)
    if answer is None:
        return ParsedVerification(passed=None, raw=raw, problem=problem)
    reading = _VERIFIER.read(answer)
    decision, problem = _VERIFIER.decide(reading)
    reason_lines = reading.sections.get("reason")
    reason = _clean(" ".join(reason_lines)) if reason_lines else _clean(" ".join(reading.prose))[:600]
    if decision is None:
        return ParsedVerification(passed=None, reason=reason, raw=raw, problem=problem)
    return ParsedVerification(
        passed=decision == "CORRECT",
        decision="CORRECT" if decision == "CORRECT" else "INCORRECT",
        from_statements=not reading.decisions,
        reconsidered=reading.reconsidered,
        reason=reason,
        raw=raw,
    )
