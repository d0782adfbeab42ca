"""Hierarchical Dual-Tree tool synthesis with an LLM (Section 3.1).

One leaf path of the context tree and one of the constraint tree (:mod:`world.trees`) are merged
into a prompt (:func:`toolcall.seed_prompts.render_tool_synthesis_prompt`); the LLM answers ONE tool
definition in the OpenAI function format, which is read with :func:`toolcall.specs.load_tool` and
rule-validated: the world's conformity checks (:func:`world.trees.validate_synthesised`) plus checks
that the sampled constraints were obeyed (naming convention, parameter profile and types, output
format named in the description), that the tool is about its specialisation, and that its name is
new. A rejected answer is asked again, with the reasons, a bounded number of times; every rejection
is counted by reason. Unlike the offline world, the LLM designs its own parameters, so the tools it
makes carry no slots.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.logs import get_logger
from inference.base import Generation, InferenceBackend, InferenceError, SamplingConfig
from toolcall.rules import check_value
from toolcall.seed_prompts import (
    OUTPUT_FORMAT_PHRASES,
    PARAMETER_TYPES,
    parse_tool_definition,
    render_tool_synthesis_prompt,
)
from toolcall.specs import ToolSpec, ToolSpecError, load_tool
from world.trees import (
    CONSTRAINT_TREE,
    ConstraintPath,
    Specialisation,
    SynthesisedTool,
    context_leaf_paths,
    validate_synthesised,
)

log = get_logger(__name__)

# Verbs a tool name may start with (the naming conventions all put the action first).
_VERB_WORDS = """
    add analyze analyse apply approve archive assign authenticate book calculate cancel check close
    compare compute confirm convert count create delete describe detect download edit estimate evaluate
    export fetch file filter find forecast generate get import list locate log lookup look manage modify
    monitor notify open order pay place post predict query quote rank rate read recommend refund
    register reject remove rename renew request reserve reset resolve retrieve return review run save
    schedule score search send set share show start stop submit subscribe summarize summarise suggest
    sync track transfer translate update upload validate verify view withdraw
"""
VERBS = frozenset(_VERB_WORDS.split())
_SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")
_CAMEL = re.compile(r"^[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+$")
_PASCAL = re.compile(r"^(?:[A-Z][a-z0-9]*){2,}$")
_SNAKE_PARAM = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
_CAMEL_PARAM = re.compile(r"^[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)*$")
_PROFILE_COUNTS = {"required_only": (1, 5), "with_optional": (2, 6), "with_enum": (1, 6)}


@dataclass
class Rejects:
    """Rejections counted by reason code, with the first few details of each for the report."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    keep_examples: int = 3

    def add(self, code: str, detail: str) -> None:
        self.counts[code] += 1
        shown = self.examples.setdefault(code, [])
        if len(shown) < self.keep_examples:
            shown.append(detail[:300])

    def merge(self, other: Rejects) -> None:
        for code, count in other.counts.items():
            self.counts[code] += count
            shown = self.examples.setdefault(code, [])
            shown.extend(other.examples.get(code, [])[: max(0, self.keep_examples - len(shown))])

    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Problem:
    code: str
    message: str


def _words(name: str) -> list[str]:
    """snake_case, camelCase, PascalCase and dotted names as lower-case words."""
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name.replace(".", "_"))]


def _stem(word: str) -> str:
    word = word.lower()
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def check_constraints(
    spec: ToolSpec, constraints: ConstraintPath, domain: str, category: str, leaf: Specialisation
) -> list[Problem]:
    """Every way ``spec`` breaks its constraint-tree path or strays from its context-tree leaf."""
    problems = [Problem("rule", message) for message in validate_synthesised(spec)]
    name = spec.name
    naming = constraints.naming
    if naming == "snake_verb":
        shape_ok, action = bool(_SNAKE.match(name)), name
    elif naming == "camel_verb":
        shape_ok, action = bool(_CAMEL.match(name)), name
    elif naming == "pascal":
        shape_ok, action = bool(_PASCAL.match(name)), name
    else:
        prefix = f"{domain}."
        action = name[len(prefix) :] if name.startswith(prefix) else name
        shape_ok = name.startswith(prefix) and bool(_SNAKE.match(action))
    if not shape_ok:
        problems.append(Problem("naming", f"name {name!r} does not follow the {naming} convention"))
    words = _words(action)
    if not words or words[0] not in VERBS:
        problems.append(Problem("naming", f"name {name!r} does not start with a verb"))
    param_shape = _CAMEL_PARAM if naming in ("camel_verb", "pascal") else _SNAKE_PARAM
    style = "camelCase" if param_shape is _CAMEL_PARAM else "snake_case"
    properties = spec.parameters.properties
    for param in properties:
        if not param_shape.match(param):
            problems.append(Problem("naming", f"parameter {param!r} is not {style}"))

    required = set(spec.parameters.required)
    optional = [p for p in properties if p not in required]
    low, high = _PROFILE_COUNTS[constraints.parameter_profile]
    profile = constraints.parameter_profile
    if not low <= len(properties) <= high:
        problems.append(
            Problem("parameter_profile", f"{len(properties)} parameters; {profile} asks for {low} to {high}")
        )
    if profile == "required_only":
        if optional:
            problems.append(Problem("parameter_profile", f"optional parameters {optional} in required_only"))
        if any(schema.has_default for schema in properties.values()):
            problems.append(Problem("parameter_profile", "required_only parameters declare defaults"))
    elif profile == "with_optional":
        if not required:
            problems.append(Problem("parameter_profile", "with_optional needs a required parameter"))
        if not optional:
            problems.append(Problem("parameter_profile", "with_optional needs an optional parameter"))
        for param in optional:
            if not properties[param].has_default:
                problems.append(Problem("parameter_profile", f"optional parameter {param!r} has no default"))
    else:
        enums = [
            p
            for p, schema in properties.items()
            if schema.types == ("string",) and schema.enum is not None and 2 <= len(schema.enum) <= 6
        ]
        if not enums:
            problems.append(
                Problem(
                    "parameter_profile", "with_enum needs a string parameter with an enum of 2 to 6 values"
                )
            )
    for param, schema in properties.items():
        if len(schema.types) != 1 or schema.types[0] not in PARAMETER_TYPES:
            problems.append(
                Problem(
                    "parameter_types",
                    f"parameter {param!r} has type {schema.type!r}, not one of {PARAMETER_TYPES}",
                )
            )
        elif schema.types[0] == "array" and schema.items is None:
            problems.append(Problem("parameter_types", f"array parameter {param!r} declares no items"))
        if schema.has_default and check_value(schema.default, schema, param):
            problems.append(Problem("parameter_types", f"default of {param!r} does not fit its own schema"))

    phrase = OUTPUT_FORMAT_PHRASES[constraints.output_format]
    if phrase.lower() not in " ".join(spec.description.split()).lower():
        problems.append(Problem("output_format", f"description does not say {phrase!r}"))

    topic = {_stem(w) for w in (*leaf.noun.split(), *leaf.key.split("_"), category) if len(w) > 2}
    said = {_stem(w) for w in (*_words(name), *re.findall(r"[A-Za-z]+", spec.description))}
    if not topic & said:
        problems.append(Problem("off_topic", f"neither name nor description mentions {sorted(topic)}"))
    return problems


@dataclass(frozen=True)
class LeafPair:
    """One leaf path of each tree: what to synthesise."""

    domain: str
    category: str
    leaf: Specialisation
    constraints: ConstraintPath


@dataclass
class ToolSynthesis:
    tools: list[SynthesisedTool]
    rejects: Rejects
    requests: int = 0  # LLM calls made
    failed_pairs: list[LeafPair] = field(default_factory=list)


def sample_leaf_pairs(rng: random.Random, count: int | None = None) -> list[LeafPair]:
    """``count`` pairs (default: one per context leaf), each leaf with an independently sampled
    constraint path; leaves are cycled when more tools than leaves are asked for."""
    leaves = context_leaf_paths()
    count = len(leaves) if count is None else count
    if count < 1:
        raise ValueError("at least one tool must be synthesised")
    order = rng.sample(leaves, len(leaves))
    return [
        LeafPair(*order[index % len(order)], rng.choice(CONSTRAINT_TREE))  # type: ignore[misc]
        for index in range(count)
    ]


def _prompt(pair: LeafPair, feedback: Sequence[str]) -> Any:
    return render_tool_synthesis_prompt(
        domain=pair.domain,
        category=pair.category,
        specialisation=pair.leaf.key.replace("_", " "),
        description=pair.leaf.description,
        naming=pair.constraints.naming,
        parameter_profile=pair.constraints.parameter_profile,
        output_format=pair.constraints.output_format,
        feedback=feedback,
    )


def answer_text(generation: Generation) -> str:
    """The text as the seed prompts' parsers read it: a trace the chat template opened in the prompt
    gets its ``<think>`` back, so that the reasoning is not read as the answer (a user message, a plan)
    and a trace that never closed is no answer."""
    text = generation.text
    if generation.trace_opened and not text.lstrip().startswith("<think>"):
        return "<think>" + text
    return text


def read_tool_answer(raw: str, pair: LeafPair, taken: set[str]) -> tuple[ToolSpec | None, list[Problem]]:
    """One synthesis answer -> the tool, or every problem found with it (pure)."""
    value, error = parse_tool_definition(raw)
    if value is None:
        return None, [Problem("unparseable", error or "no JSON object")]
    try:
        spec = load_tool(value)
    except ToolSpecError as exc:
        return None, [Problem("not_a_tool", str(exc))]
    problems = check_constraints(spec, pair.constraints, pair.domain, pair.category, pair.leaf)
    if spec.name in taken:
        problems.append(Problem("duplicate_name", f"a tool named {spec.name!r} exists already"))
    return (None if problems else spec), problems


async def synthesise_llm_toolset(
    backend: InferenceBackend,
    pairs: Sequence[LeafPair],
    *,
    attempts: int = 3,
    temperature: float = 0.7,
    max_tokens: int = 1024,
    seed: int = 0,
    on_done: Callable[[int], None] | None = None,
) -> ToolSynthesis:
    """One tool per leaf pair, each asked up to ``attempts`` times (with the previous rejection's
    reasons); pairs still failing are dropped and reported. All pairs of a round go out in one batch.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    result = ToolSynthesis(tools=[], rejects=Rejects())
    taken: set[str] = set()
    pending: list[tuple[int, LeafPair, list[str]]] = [(index, pair, []) for index, pair in enumerate(pairs)]
    accepted: dict[int, SynthesisedTool] = {}
    for attempt in range(1, attempts + 1):
        if not pending:
            break
        chats = [_prompt(pair, feedback) for _, pair, feedback in pending]
        sampling = SamplingConfig(
            greedy=False, temperature=temperature, max_tokens=max_tokens, seed=seed * 1000 + attempt
        )
        result.requests += len(chats)
        try:
            generations = await backend.generate(chats, sampling)
            answers = [answer_text(options[0]) for options in generations]
        except InferenceError as error:
            # Asking again cannot help: the endpoint is down (after its own retries) or refuses the input.
            code = "endpoint_rejected_input" if error.input_fault else "endpoint_unavailable"
            log.warning("tool synthesis request failed", code=code, error=str(error)[:200])
            for _, pair, _ in pending:
                result.rejects.add(code, f"{pair.leaf.key}: {error}")
                result.failed_pairs.append(pair)
                if on_done:
                    on_done(1)
            pending = []
            break
        retry = []
        for (index, pair, _), raw in zip(pending, answers, strict=True):
            spec, problems = read_tool_answer(raw, pair, taken)
            if spec is not None:
                taken.add(spec.name)
                accepted[index] = SynthesisedTool(
                    spec, pair.leaf, pair.constraints, pair.domain, pair.category, slots=()
                )
                if on_done:
                    on_done(1)
                continue
            for problem in problems:
                result.rejects.add(
                    problem.code, f"{pair.leaf.key}/{pair.constraints.naming}: {problem.message}"
                )
            log.debug(
                "synthesised tool rejected",
                leaf=pair.leaf.key,
                attempt=attempt,
                reasons=sorted({p.code for p in problems}),
            )
            if attempt < attempts:
                retry.append((index, pair, [p.message for p in problems]))
            else:
                result.failed_pairs.append(pair)
                if on_done:
                    on_done(1)
        pending = retry
    result.tools = [accepted[index] for index in sorted(accepted)]
    return result
