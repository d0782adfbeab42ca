"""BFCL multi-turn: run a policy through a conversation as BFCL's inference does, and score it as
bfcl-eval's evaluation does.

Inference (:class:`Conversation`, driven for many conversations at once by
:func:`run_conversations`) follows bfcl-eval's multi-turn protocol (``BaseHandler.inference_multi_turn_FC``):
per turn the user's messages are added, then the model takes steps: each output is read, its calls
are executed on the conversation's own BFCL API instances and their results are added as tool
messages, until an output makes no call (a text answer, or output that does not read as calls); a
turn with more than ``max_steps`` steps (BFCL's ``MAXIMUM_STEP_LIMIT``, 20) force-quits the whole
conversation. At a turn where a ``miss_func`` entry's held-out functions arrive, they join the tool
list and the user message is BFCL's "I have updated some more functions you can choose from. What
about now?" (the function-calling variant; BFCL's prompting variant, which its Qwen FC handler uses
for local models, pastes the docs into that message instead, a layout our policy is not trained on).
Prompts are the policy's own (:func:`toolcall.prompts.build_chat`); outputs are read as bfcl-eval's
``QwenFCHandler.decode_execute`` reads them (:mod:`evaluation.reading`; the ``repair`` reading uses
our parser instead), both to execute a step's calls and to score them.

Scoring (:func:`score_conversation`) is bfcl-eval's ``_evaluate_single_multi_turn_entry``: a
conversation with fewer turns than the ground truth (force-quit) fails; otherwise every step's output
is decoded into call strings (steps that decode to nothing are dropped) and bfcl-eval's
``multi_turn_checker`` decides, by executing model and ground-truth calls turn by turn and comparing
state and results. Decoding is ours (:func:`decode_step`, by default bfcl-eval's rules);
``benchmarks/bfcl_multi_turn_parity.py`` shows it gives bfcl-eval's verdicts on the same outputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evaluation.bfcl_multi_turn import (
    ApiNamespace,
    additional_function_prompt,
    call_string,
    check_conversation,
    max_step_limit,
    methods_of,
)
from evaluation.reading import DEFAULT_OUTPUT_READING, DecodeError, OutputReading, decode_execute
from evaluation.suite import MultiTurnItem
from inference.base import Chat, InferenceBackend, InferenceError, SamplingConfig
from toolcall.parsing import parse_output
from toolcall.prompts import DEFAULT_CURRENT_TIME, build_chat
from toolcall.specs import ToolSpec
from toolcall.types import Message, ToolCall

FORCE_TERMINATED = "multi_turn:force_terminated"
INFERENCE_ERROR = "multi_turn:inference_error"


def read_calls(
    raw_output: str, reading: OutputReading = DEFAULT_OUTPUT_READING, tools: Sequence[ToolSpec] | None = None
) -> list[tuple[Any, dict[str, Any]]]:
    """One step's calls as ``(name, arguments)``, read as bfcl-eval's ``decode_execute`` reads them
    (``bfcl``) or by our parser (``repair``, ``tools`` typing XML-argument values); empty when the
    output makes no call or does not decode."""
    if reading == "bfcl":
        try:
            return decode_execute(raw_output)
        except DecodeError:
            return []
    if reading != "repair":
        raise ValueError(f"unknown output reading {reading!r} (bfcl or repair)")
    parsed = parse_output(raw_output, tools)
    if parsed.error is not None or parsed.action is None:
        return []
    return [(call.name, call.arguments) for call in parsed.action.calls]


def decode_step(
    raw_output: str,
    methods: frozenset[str],
    reading: OutputReading = DEFAULT_OUTPUT_READING,
    tools: Sequence[ToolSpec] | None = None,
) -> list[str]:
    """One step's output as BFCL call strings (empty when it makes no call or does not read as calls)."""
    calls = read_calls(raw_output, reading, tools)
    return [call_string(name, arguments, methods) for name, arguments in calls]


@dataclass
class Transcript:
    """What the model said in one conversation: per turn, each step's raw output."""

    turns: list[list[str]] = field(default_factory=list)
    force_terminated: bool = False
    inference_error: str | None = None

    @property
    def steps(self) -> int:
        """Model outputs in the conversation."""
        return sum(len(turn) for turn in self.turns)


class Conversation:
    """One BFCL multi-turn entry in progress: :meth:`prompt` gives the next step's chat, :meth:`feed`
    takes the model's output for it (executing its calls). ``done`` once every turn ended or the
    conversation was force-quit."""

    def __init__(
        self,
        item: MultiTurnItem,
        *,
        max_steps: int | None = None,
        current_time: str = DEFAULT_CURRENT_TIME,
        reading: OutputReading = DEFAULT_OUTPUT_READING,
    ) -> None:
        self.item = item
        self.reading = reading
        self.max_steps = max_step_limit() if max_steps is None else max_steps
        self.current_time = current_time
        self.methods = methods_of(item.involved_classes)
        self.namespace = ApiNamespace(
            item.id, item.initial_config, list(item.involved_classes), item.long_context
        )
        self.tools = item.tools()
        self.messages: list[Message] = []
        self.transcript = Transcript()
        self.turn = -1
        self.turn_steps = 0
        self.done = False
        self._next_turn()

    def _next_turn(self) -> None:
        self.turn += 1
        if self.turn >= len(self.item.question):
            self.finish()
            return
        turn_messages = self.item.question[self.turn]
        held_out = self.item.held_out_tools(self.turn)
        if held_out:
            self.tools = [*self.tools, *held_out]
            turn_messages = [{"role": "user", "content": additional_function_prompt()}]
        for message in turn_messages:
            self.messages.append(Message(role=message["role"], content=str(message.get("content") or "")))
        self.transcript.turns.append([])
        self.turn_steps = 0

    def prompt(self) -> Chat:
        return build_chat(self.tools, self.messages, self.current_time)

    def feed(self, raw_output: str) -> None:
        """Take the model's output for the current step: execute its calls, or end the turn."""
        if self.done:
            raise RuntimeError(f"{self.item.id}: the conversation is over")
        self.transcript.turns[-1].append(raw_output)
        calls = read_calls(raw_output, self.reading, self.tools)
        parsed = parse_output(raw_output, self.tools)  # the text around the calls, for the history
        if not calls:
            text = parsed.action.text if parsed.action is not None and parsed.action.text else raw_output
            self.messages.append(Message(role="assistant", content=text.strip()))
            self._next_turn()
            return
        results = self.namespace.execute([call_string(n, a, self.methods) for n, a in calls])
        tool_calls = [ToolCall(name=str(name), arguments=arguments) for name, arguments in calls]
        self.messages.append(Message(role="assistant", content=parsed.text or "", tool_calls=tool_calls))
        for call, result in zip(tool_calls, results, strict=True):
            self.messages.append(Message(role="tool", name=call.name, content=result))
        self.turn_steps += 1
        if self.turn_steps > self.max_steps:  # BFCL: `count > MAXIMUM_STEP_LIMIT` force-quits
            self.transcript.force_terminated = True
            self.finish()

    def fail(self, reason: str) -> None:
        """The backend could not answer for this conversation (e.g. its prompt outgrew the model)."""
        self.transcript.inference_error = reason
        self.finish()

    def finish(self) -> None:
        self.done = True
        self.namespace.close()


async def run_conversations(
    backend: InferenceBackend,
    items: Sequence[MultiTurnItem],
    *,
    max_tokens: int = 512,
    batch_size: int = 16,
    max_steps: int | None = None,
    current_time: str = DEFAULT_CURRENT_TIME,
    on_done: Callable[[MultiTurnItem, Transcript], None] | None = None,
    reading: OutputReading = DEFAULT_OUTPUT_READING,
) -> list[Transcript]:
    """Run every conversation to its end, greedily; each backend call batches the next step of up to
    ``batch_size`` conversations (``batch_size`` are in flight at a time, so API state stays small).

    A prompt the backend rejects as input (``InferenceError.input_fault``, e.g. longer than the model's
    context) ends that conversation as an inference error; other backend failures propagate.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    sampling = SamplingConfig(greedy=True, max_tokens=max_tokens)
    transcripts: list[Transcript | None] = [None] * len(items)
    pending = list(range(len(items)))[::-1]
    active: dict[int, Conversation] = {}
    try:
        while pending or active:
            while pending and len(active) < batch_size:
                index = pending.pop()
                active[index] = Conversation(
                    items[index], max_steps=max_steps, current_time=current_time, reading=reading
                )
            stepping = [(index, conv) for index, conv in active.items() if not conv.done]
            if stepping:
                await _step(backend, [conv for _, conv in stepping], sampling)
            for index in [i for i, conv in active.items() if conv.done]:
                conversation = active.pop(index)
                transcripts[index] = conversation.transcript
                if on_done is not None:
                    on_done(conversation.item, conversation.transcript)
    finally:
        for conversation in active.values():
            conversation.finish()
    return [t for t in transcripts if t is not None]


async def _step(
    backend: InferenceBackend, conversations: list[Conversation], sampling: SamplingConfig
) -> None:
    try:
        generations = await backend.generate([c.prompt() for c in conversations], sampling)
    except InferenceError as error:
        if not error.input_fault:
            raise
        if len(conversations) == 1:
            conversations[0].fail(str(error))
            return
        for conversation in conversations:  # isolate the prompt(s) the backend refuses
            await _step(backend, [conversation], sampling)
        return
    for conversation, (generation, *_) in zip(conversations, generations, strict=True):
        conversation.feed(generation.text)


@dataclass(frozen=True)
class MultiTurnResult:
    """The verdict on one conversation, with what the model said and how it was read."""

    id: str
    category: str
    correct: bool
    made_call: bool
    turns: list[list[str]]
    decoded: list[list[list[str]]]
    steps: int
    force_terminated: bool = False
    error_type: str | None = None
    error_message: str | None = None
    details: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The same flat row as a single-turn :class:`~evaluation.scoring.ItemResult` (JSON strings for
        the nested values), plus the step count."""
        return {
            "id": self.id,
            "category": self.category,
            "correct": self.correct,
            "made_call": self.made_call,
            "raw_output": json.dumps(self.turns, ensure_ascii=False),
            "decoded": json.dumps(self.decoded, ensure_ascii=False),
            "parse_error": None,
            "error_type": self.error_type,
            "errors": json.dumps(
                [e for e in (self.error_message, self.details) if e], ensure_ascii=False, default=str
            ),
            "steps": self.steps,
        }


def decode_transcript(
    item: MultiTurnItem, turns: Sequence[Sequence[str]], reading: OutputReading = DEFAULT_OUTPUT_READING
) -> list[list[list[str]]]:
    """Per turn, the decoded steps that make calls (bfcl-eval drops the others before checking)."""
    methods = methods_of(item.involved_classes)
    tools = [*item.tools(), *(tool for turn in range(len(turns)) for tool in item.held_out_tools(turn))]
    return [[calls for raw in turn if (calls := decode_step(raw, methods, reading, tools))] for turn in turns]


def score_conversation(
    item: MultiTurnItem, transcript: Transcript, reading: OutputReading = DEFAULT_OUTPUT_READING
) -> MultiTurnResult:
    """Judge a conversation as bfcl-eval's evaluation does (see the module docstring)."""
    decoded = decode_transcript(item, transcript.turns, reading)
    common = {
        "id": item.id,
        "category": item.category,
        "made_call": any(turn for turn in decoded),
        "turns": [list(turn) for turn in transcript.turns],
        "decoded": decoded,
        "steps": transcript.steps,
        "force_terminated": transcript.force_terminated,
    }
    if transcript.inference_error is not None:
        return MultiTurnResult(
            correct=False, error_type=INFERENCE_ERROR, error_message=transcript.inference_error, **common
        )
    if len(transcript.turns) != len(item.ground_truth):
        return MultiTurnResult(
            correct=False,
            error_type=FORCE_TERMINATED,
            error_message=(
                f"{len(transcript.turns)} turns answered of {len(item.ground_truth)} "
                f"(force-quit after more than the step limit in one turn)"
            ),
            **common,
        )
    verdict = check_conversation(item.entry(), decoded, item.ground_truth)
    return MultiTurnResult(
        correct=verdict.valid,
        error_type=verdict.error_type,
        error_message=verdict.error_message,
        details=verdict.details,
        **common,
    )
