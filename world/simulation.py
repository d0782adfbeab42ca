"""Simulations of the judge, generator and verifier, backed by the synthetic world's ground truth.

They implement exactly the interfaces of the LLM judge (:class:`streams.roles.JudgeClient`), the
expansion generator (:class:`streams.roles.Generator`) and the verifier
(:class:`streams.roles.Verifier`), and answer in the same text formats the LLMs are asked for, so
the same parsers read them. They are only for offline runs on the synthetic world: the stage
factory never builds them when an LLM endpoint is configured. Each errs at a configurable rate, with
draws seeded by the case, so a run is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from common.seeding import seeded_rng
from streams.roles import ExpansionRequest, JudgeCase, VerificationCase
from toolcall.match import tool_match
from toolcall.parsing import render_action
from toolcall.types import Action, Message
from world import World
from world.language import Request, render_clause, sample_value
from world.noise import DEFAULT_NOISE_MIX, add_noise

VERDICTS = ("PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG")


def judge_text(verdict: str, label_position: int, analysis: str, approach: str) -> str:
    """A judge answer in the Figure 10 output format for ``verdict``."""
    prediction_position = 3 - label_position
    decision = {
        "PRED_WRONG": f"RESPONSE {prediction_position} INCORRECT",
        "LABEL_WRONG": f"RESPONSE {label_position} INCORRECT",
        "BOTH_CORRECT": "BOTH_CORRECT",
        "BOTH_WRONG": "BOTH_INCORRECT",
    }[verdict]
    return f"{decision}\nError Analysis: {analysis}\nCorrect Approach: {approach}"


def _describe(action: Action, truth: Action, tools: Sequence[object]) -> str:
    diffs = tool_match(action, truth, list(tools)).diffs  # type: ignore[arg-type]
    if not diffs:
        return "It matches the request."
    first = diffs[0]
    where = f" at {first.path}" if getattr(first, "path", None) else ""
    return f"It has a {first.kind.replace('_', ' ')}{where}."


class SimulatedWorldJudge:
    """SIMULATION: a judge that knows the world's true label and errs at ``error_rate``."""

    model_name = "simulation:world-judge"

    def __init__(self, world: World, error_rate: float = 0.1):
        self.world = world
        self.error_rate = error_rate

    async def ask(self, cases: Sequence[JudgeCase], attempt: int = 1) -> list[str]:
        answers = []
        for case in cases:
            truth = self.world.truth(case.tools, case.messages)
            label_ok = tool_match(case.label, truth, case.tools).matched
            prediction_ok = tool_match(case.prediction, truth, case.tools).matched
            verdict = {
                (True, False): "PRED_WRONG",
                (False, True): "LABEL_WRONG",
                (True, True): "BOTH_CORRECT",
                (False, False): "BOTH_WRONG",
            }[(label_ok, prediction_ok)]
            rng = seeded_rng(case.case_id, str(attempt), "world-judge")
            if rng.random() < self.error_rate:
                verdict = rng.choice([v for v in VERDICTS if v != verdict])
            wrong = case.prediction if verdict in ("PRED_WRONG", "BOTH_WRONG") else case.label
            analysis = (
                _describe(wrong, truth, case.tools) if verdict != "BOTH_CORRECT" else "Both are acceptable."
            )
            approach = "Call: " + render_action(truth).replace("\n", " ")
            answers.append(judge_text(verdict, case.label_position, analysis, approach))
        return answers


class SimulatedWorldGenerator:
    """SIMULATION: new samples with the error seed's structure (same tools, same shape, new values).

    A ``defect_rate`` share comes out with a wrong OUTPUT, as a real generator's would, so the
    verifier has something to reject.
    """

    model_name = "simulation:world-generator"

    def __init__(self, world: World, defect_rate: float = 0.1):
        self.world = world
        self.defect_rate = defect_rate

    def _new_sample(self, request: ExpansionRequest, rng: random.Random) -> tuple[list[Message], Action]:
        oracle = self.world.oracle
        names = [t.name for t in request.tools]
        user_turns = [m for m in request.messages if m.role == "user"]
        seed_requests = oracle.requests(user_turns[-1].content, names) if user_turns else None
        if request.correct.calls and seed_requests:
            fresh = []
            for seed_request in seed_requests:
                values = {
                    slot.name: (sample_value(slot, rng) if value is not None else None)
                    for slot, value in ((s, seed_request.values.get(s.name)) for s in seed_request.tool.slots)
                }
                for slot in seed_request.tool.slots:  # never drop what the tool requires
                    if slot.required and values.get(slot.name) is None:
                        values[slot.name] = sample_value(slot, rng)
                fresh.append(Request(seed_request.tool, values))
            text = " ".join(
                render_clause(r, rng, None if i == 0 else "Also {action}") for i, r in enumerate(fresh)
            )
            messages = [Message(role="user", content=text)]
        else:  # a request the tools cannot serve, or one missing a required value
            messages = [
                Message(
                    role="user",
                    content=rng.choice(
                        (
                            "Could you write a short poem about tea?",
                            "Please order a pizza to Rome?",
                            "Can you tell me a joke?",
                        )
                    ),
                )
            ]
        return messages, oracle.truth(names, messages)

    async def ask(self, requests: Sequence[ExpansionRequest], attempt: int = 1) -> list[str]:
        answers = []
        for request in requests:
            rng = seeded_rng(request.request_id, "world-generator")
            messages, truth = self._new_sample(request, rng)
            output = truth
            if truth.calls and rng.random() < self.defect_rate:
                noisy = add_noise(truth, request.tools, DEFAULT_NOISE_MIX, rng)
                output = noisy[0] if noisy else truth
            conversation = "\n".join(f"{m.role.upper()}: {m.content}" for m in messages)
            answers.append(f"INPUT: {conversation}\nOUTPUT: {render_action(output)}")
        return answers


class SimulatedWorldVerifier:
    """SIMULATION: the LLM verification tier, answering from the world's truth, erring at ``error_rate``."""

    model_name = "simulation:world-verifier"

    def __init__(self, world: World, error_rate: float = 0.05):
        self.world = world
        self.error_rate = error_rate

    async def ask(self, cases: Sequence[VerificationCase], attempt: int = 1) -> list[str]:
        answers = []
        for case in cases:
            sample = case.sample
            correct = self.world.is_correct(sample.tools, sample.messages, sample.label)
            if seeded_rng(case.candidate_id, str(attempt), "world-verifier").random() < self.error_rate:
                correct = not correct
            reason = "The calls match the request." if correct else "The calls do not do what the user asked."
            answers.append(f"{'CORRECT' if correct else 'INCORRECT'}\nReason: {reason}")
        return answers
