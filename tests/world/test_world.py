"""The synthetic tool world: dual-tree tools, dialogues, truth, noise, simulations, seed export."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from schemas.events import Scenario
from streams.roles import ExpansionRequest, JudgeCase, VerificationCase
from toolcall.expansion import parse_expansion
from toolcall.formats import record_to_samples
from toolcall.match import tool_match
from toolcall.rules import validate_action
from toolcall.types import Action, Sample, ToolCall
from toolcall.verdicts import parse_verdict
from world import World
from world.noise import NOISE_KINDS, inject
from world.seed import build_seed_set, read_truth, write_jsonl
from world.simulation import SimulatedWorldGenerator, SimulatedWorldJudge, SimulatedWorldVerifier
from world.trees import CONSTRAINT_TREE, context_leaf_paths, synthesise_tool, validate_synthesised


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=3)


async def test_dual_tree_every_leaf_path_pair_gives_a_valid_tool() -> None:
    for domain, category, leaf in context_leaf_paths():
        for constraints in CONSTRAINT_TREE:
            tool = synthesise_tool(domain, category, leaf, constraints)
            assert validate_synthesised(tool.spec) == []
            assert set(tool.spec.parameters.required) <= set(tool.spec.parameters.properties)


async def test_same_seed_same_world_other_seed_other_names() -> None:
    assert [t.spec for t in World(1).toolset] == [t.spec for t in World(1).toolset]
    assert [t.spec.name for t in World(1).toolset] != [t.spec.name for t in World(2).toolset]


async def test_truth_is_valid_and_clean_labels_equal_it(world: World) -> None:
    samples = await world.samples(120, seed="clean")
    kinds = Counter(item.kind for item in samples)
    assert set(kinds) == {"single", "parallel", "multi_turn", "no_tool", "missing_param", "clarified"}
    for item in samples:
        assert validate_action(item.truth, item.sample.tools) == []
        assert item.sample.label == item.truth
        assert item.noise is None
    parallel = [i for i in samples if i.kind == "parallel"]
    assert all(len(i.truth.calls) == 2 for i in parallel)
    assert any(not i.truth.calls for i in samples if i.kind == "missing_param")  # asks for the value


async def test_noise_rate_is_exact_and_every_noisy_label_is_wrong(world: World) -> None:
    samples = await world.samples(150, noise_rate=0.2, seed="noisy")
    noisy = [item for item in samples if item.noise]
    assert len(noisy) == round(0.2 * len(samples))
    assert set(Counter(i.noise for i in noisy)) <= set(NOISE_KINDS)
    for item in noisy:
        assert not tool_match(item.sample.label, item.truth, item.sample.tools).matched, item.noise


def test_swap_noise_is_the_figure_12_error(world: World) -> None:
    tool = next(t for t in world.toolset if t.specialisation.key == "exchange_fluctuation")
    names = tool.param_names
    call = ToolCall(
        name=tool.spec.name,
        arguments={names["base"]: "EUR", names["symbol"]: "USD", names["start_date"]: "2020-01-01"},
    )
    swapped = inject(Action(calls=[call]), [tool.spec], "swap", random.Random(0))
    assert swapped is not None and swapped != Action(calls=[call])
    assert sorted(swapped.calls[0].arguments.values()) == sorted(call.arguments.values())
    assert not tool_match(swapped, Action(calls=[call]), [tool.spec]).matched


async def test_seed_set_export_reads_back_through_ingest(world: World, tmp_path: Path) -> None:
    seed_set = await build_seed_set(world, 60, heldout=20, noise_rate=0.25)
    contexts = {item.sample.context_hash() for item in seed_set.samples}
    assert not contexts & {item.sample.context_hash() for item in seed_set.heldout}
    assert all(item.noise is None for item in seed_set.heldout)
    write_jsonl(seed_set.samples, tmp_path / "seeds.jsonl", tmp_path / "truth.jsonl")
    lines = (tmp_path / "seeds.jsonl").read_text().splitlines()
    assert [record_to_samples(json.loads(line))[0] for line in lines] == [i.sample for i in seed_set.samples]
    truth = read_truth(tmp_path / "truth.jsonl")
    assert sum(row["noise"] is not None for row in truth.values()) == sum(
        i.noise is not None for i in seed_set.samples
    )
    assert "truth" not in (tmp_path / "seeds.jsonl").read_text()


async def test_simulated_judge_is_right_up_to_its_error_rate(world: World) -> None:
    samples = await world.samples(150, noise_rate=0.3, seed="judge")
    cases, expected = [], []
    for index, item in enumerate(samples):
        if not item.sample.label.calls:
            continue
        prediction = item.truth if index % 2 else item.sample.label
        if prediction == item.sample.label and not item.noise:
            continue  # a match is never judged
        position = 1 + index % 2
        cases.append(
            JudgeCase(
                f"case-{index}",
                "s",
                item.sample.tools,
                item.sample.messages,
                item.sample.label,
                prediction,
                position,
            )
        )
        label_ok = item.noise is None
        pred_ok = tool_match(prediction, item.truth, item.sample.tools).matched
        expected.append(
            {(True, False): "PRED_WRONG", (False, True): "LABEL_WRONG", (False, False): "BOTH_WRONG"}[
                (label_ok, pred_ok)
            ]
        )
    answers = await SimulatedWorldJudge(world, error_rate=0.1).ask(cases)
    verdicts = [parse_verdict(a, c.label_position).verdict for a, c in zip(answers, cases, strict=True)]
    assert "UNPARSEABLE" not in verdicts
    wrong = sum(v != e for v, e in zip(verdicts, expected, strict=True))
    assert 0 < wrong < 0.25 * len(cases)
    perfect = await SimulatedWorldJudge(world, error_rate=0.0).ask(cases)
    assert [
        parse_verdict(a, c.label_position).verdict for a, c in zip(perfect, cases, strict=True)
    ] == expected


async def test_simulated_generator_and_verifier(world: World) -> None:
    samples = [i for i in await world.samples(60, seed="gen") if i.sample.label.calls]
    requests = [
        ExpansionRequest(
            f"r{n}",
            "s",
            i.sample.tools,
            i.sample.messages,
            i.truth,
            None,
            "",
            Scenario(focus="f", parameters="p"),
            0,
        )
        for n, i in enumerate(samples)
    ]
    answers = await SimulatedWorldGenerator(world, defect_rate=0.2).ask(requests)
    parsed = [parse_expansion(a) for a in answers]
    assert all(p.error is None for p in parsed)
    correct = [world.is_correct(r.tools, p.messages, p.action) for r, p in zip(requests, parsed, strict=True)]
    assert 0.6 < sum(correct) / len(correct) < 0.95  # the defect rate shows
    same_tools = sum(
        {c.name for c in p.action.calls} == {c.name for c in r.correct.calls}
        for r, p in zip(requests, parsed, strict=True)
    )
    assert same_tools > 0.7 * len(requests)  # structurally similar to the seed
    cases = [
        VerificationCase(f"c{n}", "s", Sample(tools=r.tools, messages=p.messages, label=p.action))
        for n, (r, p) in enumerate(zip(requests, parsed, strict=True))
    ]
    verdicts = await SimulatedWorldVerifier(world, error_rate=0.0).ask(cases)
    assert [v.startswith("CORRECT") for v in verdicts] == correct


async def test_heldout_accuracy_types_a_policys_xml_argument_calls_by_the_items_tools(world: World) -> None:
    """A Qwen3-Coder policy answers every held-out item exactly right in its XML-argument form; read
    without the item's tools, each call with a number (``<parameter=days>3``) counted as unparseable."""
    from inference.base import Generation
    from world.scoring import heldout_accuracy

    heldout = (await build_seed_set(world, 10, heldout=30)).heldout

    def qwen3_coder(action: Action) -> str:
        if not action.calls:
            return action.text or ""
        return "\n".join(
            f"<tool_call>\n<function={call.name}>\n"
            + "".join(
                f"<parameter={key}>\n{value if isinstance(value, str) else json.dumps(value)}\n</parameter>\n"
                for key, value in call.arguments.items()
            )
            + "</function>\n</tool_call>"
            for call in action.calls
        )

    class Qwen3Coder:
        async def generate(self, chats: list, sampling: object) -> list[list[Generation]]:
            assert len(chats) == len(heldout)
            return [[Generation(text=qwen3_coder(item.truth))] for item in heldout]

    with_numbers = [
        item
        for item in heldout
        if any(not isinstance(v, str) for call in item.truth.calls for v in call.arguments.values())
    ]
    assert with_numbers  # the case this is about
    accuracy = await heldout_accuracy(Qwen3Coder(), heldout)  # type: ignore[arg-type]
    assert accuracy.unparseable == 0 and accuracy.correct == accuracy.total == len(heldout)
