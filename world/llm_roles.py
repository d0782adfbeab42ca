"""Seed construction with an LLM (Section 3): the four dialogue roles as LLM calls, two-tier checked.

:class:`LLMRoles` implements :class:`world.dialogues.DialogueRoles` with the prompts of
:mod:`toolcall.seed_prompts`: the *planner* designs a conversation over a sampled tool subset and a
target number of user turns, for one dialogue kind (single call, parallel calls, multi-turn, no
suitable tool, missing parameter, missing parameter then clarified); the *user* speaks each planned
turn; the *assistant* answers with the policy's own Figure 7 prompt (``<tool_call>`` blocks, or text);
the *tool* returns a simulated execution result as JSON. :func:`run_llm_dialogue` drives them turn by
turn (an assistant step may call tools several times before it answers in text).

Quality control is the paper's two-tier verification (Section 3.2). Rule tier, on every step as it
happens: the plan reads and fits its kind and its tools' schemas; the user's message reads; every
assistant step parses and passes :func:`toolcall.rules.validate_action` with no placeholder values;
every tool result is a JSON object; the finished dialogue has the shape of its kind. LLM tier, on the
finished dialogue: the judge endpoint reviews every learnable step
(:func:`toolcall.prompts.render_verification_prompt`). Only dialogues passing both are kept; every
rejection is counted by its reason. :func:`build_llm_seed_set` mirrors :func:`world.seed.build_seed_set`
(tools from :mod:`world.llm_tools` unless given), and :func:`llm_seed_events` makes the SampleAdded
events; :func:`world.seed.write_jsonl` exports the samples.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from common.logs import get_logger
from inference.base import Chat, Generation, InferenceBackend, InferenceError, SamplingConfig
from schemas.events import Event, SampleAdded
from streams.ingest import sample_added
from toolcall.canonical import canonical_json
from toolcall.formats import dialogue_samples
from toolcall.parsing import parse_output
from toolcall.prompts import (
    DEFAULT_CURRENT_TIME,
    VERIFICATION_REGEX,
    parse_verification,
    render_verification_prompt,
)
from toolcall.rules import validate_action
from toolcall.seed_prompts import (
    SEED_PROMPT_VERSION,
    Plan,
    parse_plan,
    parse_tool_result,
    parse_user_message,
    render_assistant_prompt,
    render_planner_prompt,
    render_tool_prompt,
    render_user_prompt,
)
from toolcall.specs import ToolSpec
from toolcall.types import Action, Message, Sample, ToolCall
from world import WorldSample
from world.dialogues import DEFAULT_MIX, DialoguePlan, PlannedTurn
from world.llm_tools import Rejects, answer_text, sample_leaf_pairs, synthesise_llm_toolset
from world.seed import PRODUCER, SeedSet, unique_samples
from world.trees import SynthesisedTool

log = get_logger(__name__)

DIALOGUE_KINDS = ("single", "parallel", "multi_turn", "no_tool", "missing_param", "clarified")
# User turns per kind (multi_turn draws from the range).
TURNS: dict[str, tuple[int, int]] = {
    "single": (1, 1),
    "parallel": (1, 1),
    "multi_turn": (2, 3),
    "no_tool": (1, 1),
    "missing_param": (1, 1),
    "clarified": (2, 2),
}
_PLACEHOLDER = re.compile(
    r"^\s*(?:<[^<>]*>|\{[^{}]*\}|\[[^\[\]]*\]|\.\.\.|…|tbd|n/?a|xxx+|placeholder|unknown|"
    r"string|value|your[ _].*|yyyy-mm-dd)\s*$|\b(?:placeholder|YYYY-MM-DD)\b",
    re.IGNORECASE,
)
# Prompt markup that never belongs in an answer's text (it echoes the prompt or a tool result).
_MARKUP = re.compile(r"</?\s*(?:tools|tool_response)\s*>|<\|im_(?:start|end)\|>")


class DialogueRejected(Exception):
    """A dialogue failed a check; ``code`` is the reason counted in the report."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class SeedConstructionError(RuntimeError):
    """Seed construction cannot go on (e.g. too few tools passed validation); the message says why."""


@dataclass
class LLMPlannedTurn(PlannedTurn):
    """A planned user turn as the planner wrote it (``omit`` is the argument the user withholds)."""

    request: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    answers: str | None = None  # the argument withheld in the previous turn, which this turn gives


@dataclass
class LLMDialoguePlan(DialoguePlan):
    outline: Plan | None = None


def placeholder_paths(value: Any, path: str = "") -> list[str]:
    """Where an argument value is a placeholder instead of a real value (Figure 7, note 3)."""
    if isinstance(value, str):
        return [path or "value"] if _PLACEHOLDER.search(value) else []
    if isinstance(value, dict):
        return [
            p
            for key, item in value.items()
            for p in placeholder_paths(item, f"{path}.{key}" if path else key)
        ]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in placeholder_paths(item, f"{path}[{index}]")]
    return []


def _call_placeholders(calls: Sequence[ToolCall]) -> list[str]:
    return [f"{call.name}: {where}" for call in calls for where in placeholder_paths(call.arguments)]


def plan_problems(plan: Plan, kind: str, turns: int, tools: Sequence[ToolSpec]) -> list[str]:
    """Rule checks of a plan: its turns, its calls against the schemas, and the shape of its kind."""
    problems = []
    if len(plan.turns) != turns:
        problems.append(f"the plan has {len(plan.turns)} turns; {turns} were asked for")
    for number, turn in enumerate(plan.turns, 1):
        if turn.calls:
            problems.extend(
                f"turn {number}: {v.message}" for v in validate_action(Action(calls=turn.calls), tools)
            )
            problems.extend(f"turn {number}: placeholder in {p}" for p in _call_placeholders(turn.calls))
    if problems:
        return problems
    first = plan.turns[0]
    by_name = {tool.name: tool for tool in tools}

    def withheld_ok(turn: Any) -> str | None:
        if len(turn.calls) != 1:
            return f"{kind} needs exactly one planned call in turn 1, got {len(turn.calls)}"
        call = turn.calls[0]
        required = by_name[call.name].parameters.required
        if turn.withhold not in required or turn.withhold not in call.arguments:
            return (
                f"withhold must name a required argument of {call.name} that the call sets ({list(required)})"
            )
        return None

    if kind == "single" and (len(first.calls) != 1 or first.withhold):
        problems.append("single needs exactly one planned call and nothing withheld")
    elif kind == "parallel" and (len(first.calls) < 2 or first.withhold):
        problems.append("parallel needs two or more planned calls in one turn and nothing withheld")
    elif kind == "multi_turn" and any(not turn.calls or turn.withhold for turn in plan.turns):
        problems.append("multi_turn needs planned calls in every turn and nothing withheld")
    elif kind == "no_tool" and first.calls:
        problems.append("no_tool must plan no call")
    elif kind in ("missing_param", "clarified"):
        problem = withheld_ok(first)
        if problem:
            problems.append(problem)
        elif kind == "clarified" and len(plan.turns) > 1:
            second = plan.turns[1]
            if len(second.calls) != 1 or second.calls[0].name != first.calls[0].name or second.withhold:
                problems.append("clarified needs the same complete call in turn 2 and nothing withheld")
    return problems


def kind_problem(kind: str, messages: Sequence[Message]) -> str | None:
    """Whether a finished dialogue has the shape its kind promises (the assistant's first step of
    each user turn): one call, several calls at once, calls in every turn, or a text answer."""
    firsts = [messages[i + 1] for i, m in enumerate(messages[:-1]) if m.role == "user"]
    if not firsts:
        return "the dialogue has no assistant step after a user turn"
    calls = [len(step.tool_calls) for step in firsts]
    expected = {
        "single": calls[0] == 1,
        "parallel": calls[0] >= 2,
        "multi_turn": len(calls) >= 2 and all(calls),
        "no_tool": calls[0] == 0,
        "missing_param": calls[0] == 0,
        "clarified": len(calls) >= 2 and calls[0] == 0 and calls[1] > 0,
    }
    if kind not in expected:
        return f"unknown dialogue kind {kind!r}"
    if expected[kind]:
        return None
    return f"{kind} dialogue whose first assistant steps made {calls} calls"


def _leaks(planned: LLMPlannedTurn, text: str) -> bool:
    """Whether the user's message gives the value it was told to withhold (a string value other
    arguments do not share; short and non-string values are left to the shape check)."""
    for call in planned.calls:
        value = call.arguments.get(planned.omit or "")
        others = {str(v).lower() for k, v in call.arguments.items() if k != planned.omit}
        unique = isinstance(value, str) and len(value) >= 3 and value.lower() not in others
        if unique and str(value).lower() in text.lower():
            return True
    return False


class LLMRoles:
    """The planner, user, assistant and tool agents as calls to one generator endpoint."""

    def __init__(
        self,
        generator: InferenceBackend,
        toolset: Sequence[SynthesisedTool],
        *,
        current_time: str = DEFAULT_CURRENT_TIME,
        tools_per_dialogue: tuple[int, int] = (2, 4),
        temperature: float = 0.7,
        max_tokens: int = 1024,
    ):
        if len(toolset) < 2:
            raise ValueError("LLM dialogue roles need at least two tools")
        self.generator = generator
        self.toolset = list(toolset)
        self.current_time = current_time
        self.tools_per_dialogue = tools_per_dialogue
        self.temperature = temperature
        self.max_tokens = max_tokens

    async def _generate(self, chats: Sequence[Chat], rng: random.Random | None) -> list[Generation]:
        """Sampled (seeded from ``rng``, for diverse plans, users and results), or greedy without one.
        An answer the token budget cut off rejects the dialogue: its start may still read (half a user
        message, the first of two calls) and would become a sample."""
        sampling = SamplingConfig(
            greedy=rng is None,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=None if rng is None else rng.randrange(2**31),
        )
        try:
            generations = await self.generator.generate(chats, sampling)
        except InferenceError as error:
            code = "endpoint_rejected_input" if error.input_fault else "endpoint_unavailable"
            raise DialogueRejected(code, str(error)) from error
        if any(options[0].finish_reason == "length" for options in generations):
            raise DialogueRejected(
                "answer_truncated", f"an answer was cut off by the {self.max_tokens}-token budget"
            )
        return [options[0] for options in generations]

    async def plan(self, kind: str, rng: random.Random) -> LLMDialoguePlan:
        low, high = self.tools_per_dialogue
        subset = rng.sample(self.toolset, min(len(self.toolset), rng.randint(low, high)))
        specs = [tool.spec for tool in subset]
        turns = rng.randint(*TURNS[kind])
        chat = render_planner_prompt(tools=specs, kind=kind, turns=turns, current_time=self.current_time)
        (generation,) = await self._generate([chat], rng)
        outline, error = parse_plan(answer_text(generation))
        if outline is None:
            raise DialogueRejected("plan_unparseable", error or "no plan")
        problems = plan_problems(outline, kind, turns, specs)
        if problems:
            raise DialogueRejected("plan_invalid", "; ".join(problems[:3]))
        planned = []
        for index, turn in enumerate(outline.turns):
            answers = outline.turns[index - 1].withhold if kind == "clarified" and index == 1 else None
            planned.append(
                LLMPlannedTurn(
                    omit=turn.withhold, request=turn.request, calls=list(turn.calls), answers=answers
                )
            )
        return LLMDialoguePlan(kind, subset, planned, outline=outline)  # type: ignore[arg-type]

    async def user(
        self, plan: DialoguePlan, turn: int, history: Sequence[Message], rng: random.Random
    ) -> str:
        if not isinstance(plan, LLMDialoguePlan) or plan.outline is None:
            raise TypeError("LLMRoles.user needs a plan made by LLMRoles.plan")
        planned = plan.turns[turn]
        assert isinstance(planned, LLMPlannedTurn)
        chat = render_user_prompt(
            plan=plan.outline,
            turn=turn,
            messages=history,
            answers_clarification=planned.answers,
            current_time=self.current_time,
        )
        (generation,) = await self._generate([chat], rng)
        text, error = parse_user_message(answer_text(generation))
        if text is None:
            raise DialogueRejected("user_invalid", error or "no message")
        if planned.omit and _leaks(planned, text):
            raise DialogueRejected("user_leaked_withheld", f"the user gave the withheld {planned.omit!r}")
        return text

    async def assistant(self, tools: Sequence[ToolSpec], history: Sequence[Message]) -> Message:
        chat = render_assistant_prompt(tools=tools, messages=history, current_time=self.current_time)
        (generation,) = await self._generate([chat], None)
        # The tools type XML-argument calls (Qwen3-Coder, GLM-4.5).
        parsed = parse_output(generation.text, tools, trace_opened=generation.trace_opened)
        if parsed.action is None:
            raise DialogueRejected("assistant_unparseable", parsed.error or "no action")
        action = parsed.action
        violations = validate_action(action, tools)
        if violations:
            detail = "; ".join(v.message for v in violations[:3])
            raise DialogueRejected(f"rule:{violations[0].code}", detail)
        placeholders = _call_placeholders(action.calls)
        if placeholders:
            raise DialogueRejected("rule:placeholder_argument", "; ".join(placeholders[:3]))
        if action.calls:
            return Message(role="assistant", tool_calls=list(action.calls))
        text = (action.text or "").strip()
        if _MARKUP.search(text):
            raise DialogueRejected(
                "rule:markup_in_answer", f"the text answer holds prompt markup: {text[:120]!r}"
            )
        return Message(role="assistant", content=text)

    async def tool(
        self, tools: Sequence[ToolSpec], message: Message, history: Sequence[Message] = ()
    ) -> list[Message]:
        by_name = {tool.name: tool for tool in tools}
        context = list(history) or [message]
        chats = [
            render_tool_prompt(
                tool=by_name[call.name], call=call, messages=context, current_time=self.current_time
            )
            for call in message.tool_calls
        ]
        rng = random.Random(canonical_json([call.model_dump(mode="json") for call in message.tool_calls]))
        answers = await self._generate(chats, rng)
        results = []
        for call, generation in zip(message.tool_calls, answers, strict=True):
            value, error = parse_tool_result(answer_text(generation))
            if value is None:
                raise DialogueRejected("tool_result_invalid", f"{call.name}: {error}")
            results.append(
                Message(role="tool", name=call.name, content=json.dumps(value, ensure_ascii=False))
            )
        return results


class StepVerifier:
    """The LLM tier of Section 3.2: the judge endpoint reviews each learnable step of a dialogue."""

    def __init__(
        self,
        judge: InferenceBackend,
        *,
        current_time: str = DEFAULT_CURRENT_TIME,
        constrain: bool = False,
        max_tokens: int = 256,
    ):
        self.judge = judge
        self.current_time = current_time
        self.regex = VERIFICATION_REGEX if constrain else None
        self.max_tokens = max_tokens

    async def check(self, samples: Sequence[Sample]) -> list[tuple[bool | None, str]]:
        chats = [
            render_verification_prompt(
                tools=s.tools, messages=s.messages, action=s.label, current_time=self.current_time
            )
            for s in samples
        ]
        sampling = SamplingConfig(greedy=True, max_tokens=self.max_tokens, regex=self.regex)
        try:
            generations = await self.judge.generate(chats, sampling)
        except InferenceError as error:
            code = "judge_rejected_input" if error.input_fault else "judge_unavailable"
            raise DialogueRejected(code, str(error)) from error
        # Read as the verify stage reads its verifier: a trace the template opened, or the server
        # split off, holds no verdict.
        return [
            parse_verification(g.text, reasoning=g.reasoning, trace_opened=g.trace_opened)
            for g in (options[0] for options in generations)
        ]


@dataclass
class DialogueOutcome:
    kind: str
    tools: list[ToolSpec]
    messages: list[Message]
    samples: list[Sample]
    reject: DialogueRejected | None = None


async def run_llm_dialogue(
    roles: LLMRoles, verifier: StepVerifier, kind: str, rng: random.Random, *, max_steps: int = 3
) -> DialogueOutcome:
    """Plan, then per user turn: the user speaks, the assistant calls tools (up to ``max_steps``
    times, each answered by the tool agent) until it answers in text. Rules check every step; the
    finished dialogue must have its kind's shape and pass the LLM check on every learnable step."""
    tools: list[ToolSpec] = []
    history: list[Message] = []
    try:
        plan = await roles.plan(kind, rng)
        tools = [tool.spec for tool in plan.tools]
        for turn in range(len(plan.turns)):
            history.append(Message(role="user", content=await roles.user(plan, turn, history, rng)))
            for _ in range(max_steps):
                reply = await roles.assistant(tools, history)
                history.append(reply)
                if not reply.tool_calls:
                    break
                history.extend(await roles.tool(tools, reply, history))
            else:
                raise DialogueRejected(
                    "unfinished_turn", f"the assistant still called tools after {max_steps} steps"
                )
        problem = kind_problem(kind, history)
        if problem:
            raise DialogueRejected("kind_mismatch", problem)
        samples = dialogue_samples(tools, history)
        if not samples:
            raise DialogueRejected("no_samples", "the dialogue has no learnable step")
        for (passed, reason), sample in zip(await verifier.check(samples), samples, strict=True):
            if passed is None:
                raise DialogueRejected("llm_unparseable", reason or "the verifier's answer did not read")
            if not passed:
                step = sample.label.model_dump(mode="json", exclude_defaults=True)
                raise DialogueRejected(
                    "llm_incorrect", f"{reason or 'no reason given'} (step {json.dumps(step)[:150]})"
                )
        return DialogueOutcome(kind, tools, history, samples)
    except DialogueRejected as rejected:
        log.debug("dialogue rejected", kind=kind, code=rejected.code, detail=rejected.detail[:200])
        return DialogueOutcome(kind, tools, history, [], rejected)


# --- the seed set ------------------------------------------------------------------------------------


def kind_quota(mix: dict[str, float], count: int, rng: random.Random) -> list[str]:
    """``count`` dialogue kinds in the mix's proportions (largest remainders), in shuffled order."""
    unknown = sorted(set(mix) - set(DIALOGUE_KINDS))
    if unknown:
        raise ValueError(f"unknown dialogue kinds {unknown}; expected some of {list(DIALOGUE_KINDS)}")
    total = sum(weight for weight in mix.values() if weight > 0)
    if total <= 0:
        raise ValueError("the dialogue mix needs a positive weight")
    shares = {kind: count * weight / total for kind, weight in mix.items() if weight > 0}
    counts = {kind: int(share) for kind, share in shares.items()}
    by_remainder = sorted(shares, key=lambda kind: (-(shares[kind] - counts[kind]), kind))
    for kind in by_remainder[: count - sum(counts.values())]:
        counts[kind] += 1
    kinds = [kind for kind in sorted(counts) for _ in range(counts[kind])]
    rng.shuffle(kinds)
    return kinds


@dataclass
class SeedReport:
    """What seed construction with an LLM did: tools and dialogues (seed and held-out together) made,
    kept and rejected by reason. A tool answer is counted once per problem it has."""

    generator_model: str
    judge_model: str
    tools_requested: int = 0
    tools_accepted: int = 0
    tool_requests: int = 0
    tool_rejects: Rejects = field(default_factory=Rejects)
    attempted_kinds: Counter[str] = field(default_factory=Counter)
    kept_kinds: Counter[str] = field(default_factory=Counter)
    dialogue_rejects: Rejects = field(default_factory=Rejects)

    @property
    def dialogues_attempted(self) -> int:
        return sum(self.attempted_kinds.values())

    @property
    def dialogues_kept(self) -> int:
        return sum(self.kept_kinds.values())

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for a table."""
        rows = [
            ("generator / judge", f"{self.generator_model} / {self.judge_model}"),
            (
                "tools accepted",
                f"{self.tools_accepted} of {self.tools_requested} ({self.tool_requests} requests)",
            ),
        ]
        rows += [(f"  tool reject: {code}", str(n)) for code, n in sorted(self.tool_rejects.counts.items())]
        rows.append(("dialogues kept", f"{self.dialogues_kept} of {self.dialogues_attempted}"))
        rows += [
            (f"  {kind}", f"{self.kept_kinds[kind]} of {self.attempted_kinds[kind]}")
            for kind in sorted(self.attempted_kinds)
        ]
        rows += [
            (f"  dialogue reject: {code}", str(n)) for code, n in sorted(self.dialogue_rejects.counts.items())
        ]
        return rows


@dataclass(frozen=True)
class LLMSeedSet(SeedSet):
    """D_seed made by LLM roles. There is no independent truth: each sample's ``truth`` is its
    two-tier-verified label, and no label noise is injected."""

    toolset: list[SynthesisedTool]
    report: SeedReport


async def _dialogues(
    roles: LLMRoles,
    verifier: StepVerifier,
    kinds: Sequence[str],
    label: str,
    concurrency: int,
    max_steps: int,
    report: SeedReport,
    advance: Callable[[], None],
) -> list[WorldSample]:
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int, kind: str) -> DialogueOutcome:
        async with gate:
            outcome = await run_llm_dialogue(
                roles, verifier, kind, random.Random(f"{label}-dialogue-{index}"), max_steps=max_steps
            )
        advance()
        return outcome

    outcomes = await asyncio.gather(*(one(index, kind) for index, kind in enumerate(kinds)))
    items = []
    for outcome in outcomes:
        report.attempted_kinds[outcome.kind] += 1
        if outcome.reject is not None:
            report.dialogue_rejects.add(outcome.reject.code, outcome.reject.detail)
            continue
        report.kept_kinds[outcome.kind] += 1
        items.extend(WorldSample(sample, sample.label, outcome.kind) for sample in outcome.samples)
    return items


async def build_llm_seed_set(
    generator: InferenceBackend,
    dialogues: int,
    *,
    judge: InferenceBackend | None = None,
    heldout: int = 0,
    toolset: Sequence[SynthesisedTool] | None = None,
    tools: int | None = None,
    mix: dict[str, float] | None = None,
    seed: int = 0,
    name: str = "seed",
    current_time: str = DEFAULT_CURRENT_TIME,
    constrain_judge: bool = False,
    tool_attempts: int = 3,
    max_tokens: int = 1024,
    max_steps: int = 3,
    concurrency: int = 16,
    show_progress: bool = True,
) -> LLMSeedSet:
    """D_seed from ``dialogues`` LLM-simulated dialogues (those passing both tiers are kept), and the
    samples of ``heldout`` further dialogues that share no context with the seeds.

    Tools: ``toolset`` when given, else ``tools`` (default: one per context-tree leaf) synthesised by
    the generator from dual-tree leaf pairs. ``judge`` runs the LLM tier (default: the generator);
    ``constrain_judge`` constrains its answers to the verification grammar (vLLM servers). Dialogue
    kinds follow ``mix`` (default :data:`world.dialogues.DEFAULT_MIX`) in exact proportions.
    Raises :class:`SeedConstructionError` when fewer than two tools pass validation.
    """
    if dialogues < 0 or heldout < 0:
        raise ValueError("dialogue counts must not be negative")
    judge = judge or generator
    report = SeedReport(generator_model=generator.model_id, judge_model=judge.model_id)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
    )
    with progress:
        if toolset is None:
            pairs = sample_leaf_pairs(random.Random(f"llm-world-tools-{seed}"), tools)
            task = progress.add_task("synthesising tools", total=len(pairs))
            synthesis = await synthesise_llm_toolset(
                generator,
                pairs,
                attempts=tool_attempts,
                max_tokens=max_tokens,
                seed=seed,
                on_done=lambda n: progress.advance(task, n),
            )
            report.tools_requested, report.tool_requests = len(pairs), synthesis.requests
            report.tool_rejects = synthesis.rejects
            toolset = synthesis.tools
        else:
            report.tools_requested = len(toolset)
        report.tools_accepted = len(toolset)
        if len(toolset) < 2:
            reasons = ", ".join(f"{code}: {n}" for code, n in report.tool_rejects.counts.most_common())
            raise SeedConstructionError(
                f"only {len(toolset)} of {report.tools_requested} synthesised tools passed validation "
                f"(rejections: {reasons or 'none'}); dialogues need at least two"
            )
        roles = LLMRoles(generator, toolset, current_time=current_time, max_tokens=max_tokens)
        verifier = StepVerifier(judge, current_time=current_time, constrain=constrain_judge)
        task = progress.add_task("simulating dialogues", total=dialogues + heldout)

        def advance() -> None:
            progress.advance(task)

        rng = random.Random(f"llm-{seed}-{name}-kinds")
        args = (concurrency, max_steps, report, advance)
        seeds = await _dialogues(
            roles, verifier, kind_quota(mix or DEFAULT_MIX, dialogues, rng), f"llm-{seed}-{name}", *args
        )
        held = (
            await _dialogues(
                roles,
                verifier,
                kind_quota(mix or DEFAULT_MIX, heldout, rng),
                f"llm-{seed}-{name}-heldout",
                *args,
            )
            if heldout
            else []
        )
    samples = unique_samples(seeds)
    held = unique_samples(held, {item.sample.context_hash() for item in samples})
    log.info(
        "llm seed set built",
        tools=len(toolset),
        dialogues_kept=report.dialogues_kept,
        dialogues_attempted=report.dialogues_attempted,
        samples=len(samples),
        heldout=len(held),
        rejects=dict(report.dialogue_rejects.counts),
    )
    return LLMSeedSet(samples, held, list(toolset), report)


def llm_seed_events(seed_set: LLMSeedSet, run_id: str) -> list[Event[SampleAdded]]:
    """SampleAdded events for LLM-made seeds (``source_format="llm"``; which models made them)."""
    metadata = {
        "generator_model": seed_set.report.generator_model,
        "judge_model": seed_set.report.judge_model,
        "seed_prompt_version": SEED_PROMPT_VERSION,
    }
    return [
        sample_added(
            item.sample,
            run_id=run_id,
            origin="seed",
            round_=0,
            source_format="llm",
            source_ref=f"llm:{index}",
            metadata={"dialogue_kind": item.kind, **metadata},
            producer=PRODUCER,
        )
        for index, item in enumerate(seed_set.samples)
    ]
