"""LABEL_WRONG precision on the synthetic world, with the old rule tier and without it (issue 16, item 4).

The world knows every sample's true answer, so each LABEL_WRONG verdict can be checked: a relabel is
right when the label it replaces is wrong *and* the prediction that becomes the label is right.
Precision = right relabels / LABEL_WRONG verdicts.

The same mismatches are judged two ways, side by side:

- ``before``: the rule tier that used to run first (``a label that breaks the tool schema under a
  prediction that keeps it is LABEL_WRONG``, no LLM asked), then the judge for the rest;
- ``after``: the judge decides every mismatch (``streams.judge.JudgeStage``; the rules only hand it
  facts).

The judge is the world's simulation (``world.simulation.SimulatedWorldJudge``): it knows the truth
and errs at ``--judge-error-rate`` at random, and it does not read the facts, so the figure isolates
what the rule tier itself did. The predictions stand in for a policy's: the true call, a wrong call
(the world's label-noise kinds applied to the truth), a refusal ("Sorry, I cannot help with that."),
or unparseable text, drawn per sample with ``--mix``.

    .venv/bin/python benchmarks/label_wrong_precision.py
    .venv/bin/python benchmarks/label_wrong_precision.py --dialogues 400 --noise-rate 0.3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.seeding import seeded_rng  # noqa: E402
from schemas.events import Event, ProbeResult, Producer, Verdict, derived_event_id, make_event  # noqa: E402
from streams.judge import JudgeStage  # noqa: E402
from toolcall.match import tool_match  # noqa: E402
from toolcall.parsing import render_action  # noqa: E402
from toolcall.rules import validate_action  # noqa: E402
from toolcall.types import Action  # noqa: E402
from world import World, WorldSample  # noqa: E402
from world.noise import DEFAULT_NOISE_MIX, add_noise  # noqa: E402
from world.simulation import SimulatedWorldJudge  # noqa: E402

RUN = "precision"
PRODUCER = Producer(stage="benchmark", version="1")
REFUSAL = Action(text="Sorry, I cannot help with that.")
ORIGIN = "01J0000000000000000000000A"  # a fixed ULID the probes' ids derive from
DEFAULT_MIX = {"truth": 0.4, "wrong_call": 0.35, "refusal": 0.15, "unparsed": 0.1}


@dataclass(frozen=True)
class Figures:
    mismatches: int
    label_wrong: int
    right_relabels: int
    by_rules: int  # LABEL_WRONG decided by the rule tier (before only)
    right_by_rules: int

    @property
    def precision(self) -> float:
        return self.right_relabels / self.label_wrong if self.label_wrong else float("nan")


def predicted(item: WorldSample, mix: dict[str, float], index: int) -> tuple[str, Action | None]:
    """A stand-in policy's output for ``item``: (raw text, parsed action or None)."""
    rng = seeded_rng("precision-policy", str(index))
    kind = rng.choices(list(mix), weights=list(mix.values()))[0]
    truth = item.truth
    if kind == "wrong_call" and truth.calls:
        noisy = add_noise(truth, item.sample.tools, DEFAULT_NOISE_MIX, rng)
        action = noisy[0] if noisy else REFUSAL
    elif kind == "refusal" or (kind == "wrong_call" and not truth.calls):
        action = REFUSAL
    elif kind == "unparsed":
        return '<tool_call>\n{"name": "' + (
            truth.calls[0].name if truth.calls else "x"
        ) + '", "arguments": {', None
    else:
        action = truth
    return render_action(action), action


def probes(items: list[WorldSample], mix: dict[str, float]) -> list[tuple[Event[ProbeResult], WorldSample]]:
    """The mismatched probes of ``items`` (ProbeResult events, as the probe stage writes them)."""
    out = []
    for index, item in enumerate(items):
        raw, action = predicted(item, mix, index)
        sample = item.sample
        matched = action is not None and tool_match(action, sample.label, sample.tools).matched
        if matched:
            continue
        probe = ProbeResult(
            sample_id=f"s{index}",
            round=1,
            label_event_id=f"l{index}",
            tools=sample.tools,
            messages=sample.messages,
            label=sample.label,
            raw_output=raw,
            prediction=action,
            parse_error=None if action is not None else "unclosed <tool_call>",
            matched=False,
        )
        # A fixed id per sample: the simulated judge draws its errors by the probe's id.
        event_id = derived_event_id([ORIGIN], "precision-probe", str(index))
        out.append(
            (make_event(probe, run_id=RUN, producer=PRODUCER, checkpoint_id="c1", event_id=event_id), item)
        )
    return out


def old_rule_verdict(probe: ProbeResult) -> str | None:
    """The rule tier as it was (removed by issue 16): LABEL_WRONG with no LLM asked."""
    if probe.prediction is None:
        return None
    if validate_action(probe.label, probe.tools) and not validate_action(probe.prediction, probe.tools):
        return "LABEL_WRONG"
    return None


def right_relabel(probe: ProbeResult, item: WorldSample, world: World) -> bool:
    """The label is wrong and the prediction, which would replace it, is right."""
    tools = list(probe.tools)
    label_right = tool_match(probe.label, item.truth, tools).matched
    prediction_right = probe.prediction is not None and world.is_correct(
        tools, probe.messages, probe.prediction
    )
    return not label_right and prediction_right


async def judged(
    cases: list[tuple[Event[ProbeResult], WorldSample]], world: World, error_rate: float, *, old_rules: bool
) -> tuple[list[tuple[str, str, WorldSample, ProbeResult]], int]:
    """(verdict, who decided, item, probe) for every case."""
    stage = JudgeStage(RUN, SimulatedWorldJudge(world, error_rate=error_rate), batch_size=64)
    out: list[tuple[str, str, WorldSample, ProbeResult]] = []
    to_judge = []
    for probe, item in cases:
        rule = old_rule_verdict(probe.payload) if old_rules else None
        if rule is not None:
            out.append((rule, "rules", item, probe.payload))
        else:
            to_judge.append((probe, item))
    by_id = {probe.event_id: (probe, item) for probe, item in to_judge}
    verdicts = await stage.process([probe for probe, _ in to_judge])
    for event in verdicts:
        if isinstance(event.payload, Verdict):
            probe, item = by_id[event.payload.probe_event_id]
            out.append((event.payload.verdict, "judge", item, probe.payload))
    return out, len(cases)


def figures(
    results: list[tuple[str, str, WorldSample, ProbeResult]], world: World, mismatches: int
) -> Figures:
    label_wrong = [(who, item, probe) for verdict, who, item, probe in results if verdict == "LABEL_WRONG"]
    right = [who for who, item, probe in label_wrong if right_relabel(probe, item, world)]
    return Figures(
        mismatches=mismatches,
        label_wrong=len(label_wrong),
        right_relabels=len(right),
        by_rules=sum(who == "rules" for who, _, _ in label_wrong),
        right_by_rules=sum(who == "rules" for who in right),
    )


async def measure(
    *, dialogues: int = 300, noise_rate: float = 0.2, judge_error_rate: float = 0.1, seed: int = 0
) -> dict[str, Any]:
    world = World(seed)
    items = await world.samples(dialogues, noise_rate=noise_rate, seed="precision")
    cases = probes(items, DEFAULT_MIX)
    before, mismatches = await judged(cases, world, judge_error_rate, old_rules=True)
    after, _ = await judged(cases, world, judge_error_rate, old_rules=False)
    schema_breaking = sum(
        bool(validate_action(probe.payload.label, probe.payload.tools)) for probe, _ in cases
    )
    return {
        "samples": len(items),
        "label_noise": sum(item.noise is not None for item in items) / max(1, len(items)),
        "noise_kinds": dict(Counter(item.noise for item in items if item.noise)),
        "mismatches": mismatches,
        "schema_breaking_labels_among_mismatches": schema_breaking,
        "before": asdict(figures(before, world, mismatches))
        | {"precision": figures(before, world, mismatches).precision},
        "after": asdict(figures(after, world, mismatches))
        | {"precision": figures(after, world, mismatches).precision},
        "judge_error_rate": judge_error_rate,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogues", type=int, default=300)
    parser.add_argument("--noise-rate", type=float, default=0.2)
    parser.add_argument("--judge-error-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    result = asyncio.run(
        measure(
            dialogues=args.dialogues,
            noise_rate=args.noise_rate,
            judge_error_rate=args.judge_error_rate,
            seed=args.seed,
        )
    )
    print(
        f"{result['samples']} samples, {result['label_noise']:.1%} wrong labels; {result['mismatches']} "
        f"mismatches, {result['schema_breaking_labels_among_mismatches']} with a schema-breaking label"
    )
    for arm in ("before", "after"):
        f = result[arm]
        rules = (
            f" ({f['by_rules']} by the rule tier, {f['right_by_rules']} of them right)"
            if f["by_rules"]
            else ""
        )
        print(
            f"{arm:>6}: LABEL_WRONG {f['label_wrong']}{rules}; right relabels {f['right_relabels']}; "
            f"precision {f['precision']:.1%}"
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
