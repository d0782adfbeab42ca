"""The serial loop (the paper's Algorithm 1, the efficacy benchmark's arms) with the real stages.

Training is replaced by a backend that hands back the model it was given: these tests are about what
each arm curates, probes and corrects, not about learning (the CPU GRPO backend has its own tests).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from looptool.config import Settings, load_settings
from streams.config import LoopSettings
from trainer.base import CheckpointInfo


class KeepModel:
    """A trainer backend that trains nothing: its checkpoint is the model it started from."""

    name = "keep"

    def train_round(self, dataset: Any, *, init_model: Path, out_dir: Path, **_: Any) -> CheckpointInfo:
        return CheckpointInfo(path=Path(init_model), round=dataset.round, step=1, final=True)


async def _run(arm: str, policy: Path, tmp_path: Path) -> tuple[Any, list[Any]]:
    from inference.transformers_backend import TransformersBackend
    from looptool.serial import SerialLoop
    from schemas.events import Scenario
    from streams.curate import CurationPolicy
    from streams.expand import ExpandStage
    from streams.judge import JudgeStage
    from streams.probe import CheckpointWatcher, ProbeStage
    from streams.relabel import RelabelStage
    from streams.verify import VerifyStage
    from toolcall.prompts import DEFAULT_SCENARIOS
    from world import World
    from world.seed import build_seed_set, seed_events
    from world.simulation import SimulatedWorldGenerator, SimulatedWorldJudge, SimulatedWorldVerifier

    run_id = "serial-test"  # the same for every arm: the same D_1
    settings: Settings = load_settings(None, run_id=run_id).model_copy(
        update={"loop": LoopSettings(rounds=2, target_size=40, expansions_per_seed=2)}
    )
    world = World(0)
    seeds = await build_seed_set(world, 60, noise_rate=0.3, name="serial")
    backend = TransformersBackend(str(policy), "policy", batch_size=20)
    stages = {
        "probe": ProbeStage(
            run_id, backend, CheckpointWatcher(None, run_id), max_new_tokens=64, batch_size=20
        ),
        "judge": JudgeStage(run_id, SimulatedWorldJudge(world, 0.0)),
        "relabel": RelabelStage(run_id),
        "expand": ExpandStage(
            run_id, SimulatedWorldGenerator(world, 0.0), [Scenario(**s) for s in DEFAULT_SCENARIOS], k=2
        ),
        "verify": VerifyStage(run_id, SimulatedWorldVerifier(world, 0.0)),
    }
    loop = SerialLoop(
        settings,
        CurationPolicy.from_settings(settings),
        stages=stages,
        trainer=KeepModel(),  # type: ignore[arg-type]
        work_dir=tmp_path / arm,
        arm=arm,  # type: ignore[arg-type]
    )
    rounds = await loop.run(seed_events(seeds, run_id), policy, 2)
    await backend.close()
    return loop, rounds


@pytest.mark.timeout(600)
def test_the_three_arms_curate_as_the_paper_describes(world_policy: Path, tmp_path: Path) -> None:
    results = {arm: asyncio.run(_run(arm, world_policy, tmp_path)) for arm in ("loop", "no_jglv", "static")}
    d1 = {arm: sorted(m.sample_id for m in rounds[0].members) for arm, (_, rounds) in results.items()}
    assert d1["loop"] == d1["no_jglv"] == d1["static"], "every arm starts from the same D_1"

    def kinds(arm: str) -> Counter[str]:
        return Counter(e.event_type for e in results[arm][0].events)

    def sources(arm: str) -> Counter[str]:
        return Counter(m.source for m in results[arm][1][1].members)

    # loop: round 1 is probed and judged; D_2 is built from error seeds, expansions and fresh seeds.
    loop_events = results["loop"][0].events
    verdicts = Counter(e.payload.verdict for e in loop_events if e.event_type == "Verdict")
    assert kinds("loop")["ProbeResult"] == 40
    assert verdicts["PRED_WRONG"] > 0 and verdicts["LABEL_WRONG"] + verdicts["BOTH_WRONG"] > 0
    assert kinds("loop")["LabelCorrected"] == verdicts["LABEL_WRONG"]
    assert {"ES", "SEED_NEW"} <= set(sources("loop")) <= {"ES", "EE", "HPPL", "SEED_NEW"}

    # no_jglv: the same probes, every mismatch a PRED_WRONG, no label ever corrected.
    ablation = Counter(e.payload.verdict for e in results["no_jglv"][0].events if e.event_type == "Verdict")
    assert set(ablation) == {"PRED_WRONG"}
    assert sum(ablation.values()) == sum(verdicts.values())
    assert kinds("no_jglv")["LabelCorrected"] == 0

    # static: never probed; D_2 is seeds only. Too few seeds for two rounds of 40: D_2 takes every seed
    # D_1 left unused, then tops up by reusing D_1's seeds (as further epochs on D_seed would).
    assert kinds("static")["ProbeResult"] == 0
    assert set(sources("static")) == {"SEED"}
    d2_static = [m.sample_id for m in results["static"][1][1].members]
    assert len(d2_static) == len(set(d2_static)) == 40
    seeds = {i for i, added in results["static"][0].ledger.samples.items() if added.payload.origin == "seed"}
    unused = seeds - set(d1["static"])
    assert 0 < len(unused) < 40, "the test needs a D_seed that runs out in round 2"
    assert unused <= set(d2_static), "every seed D_1 left unused is in D_2"
    assert len(set(d2_static) & set(d1["static"])) == 40 - len(unused), "only the shortfall reuses D_1"


@pytest.mark.timeout(600)
def test_the_edde_ablation_expands_nothing(world_policy: Path, tmp_path: Path) -> None:
    results = {arm: asyncio.run(_run(arm, world_policy, tmp_path)) for arm in ("loop", "no_edde")}

    def kinds(arm: str) -> Counter[str]:
        return Counter(e.event_type for e in results[arm][0].events)

    # no_edde: the same probes and verdicts as the loop, but no candidate is made, none is awaited,
    # and D_2 holds no expansion.
    assert kinds("no_edde")["Verdict"] == kinds("loop")["Verdict"] > 0
    assert kinds("loop")["ExpansionCandidate"] > 0
    assert kinds("no_edde")["ExpansionCandidate"] == kinds("no_edde")["VerificationResult"] == 0
    assert "EE" not in {m.source for m in results["no_edde"][1][1].members}
    assert len(results["no_edde"][1][1].members) == 40
