"""Lineage: an expanded sample's history reaches its error seed (and that seed's own seeds)."""

from __future__ import annotations

import io
import itertools
from typing import Any

import pytest
from rich.console import Console

from tests.analytics.conftest import LiveRun
from views.lineage import LineageError, MemoryIndex, StoreIndex, build_lineage, render_lineage, run_lineage
from views.store import SampleStore


def expansions(live_run: LiveRun) -> list:
    """The SampleAdded of every sample whose origin (its first SampleAdded by id) is an expansion."""
    origins: dict[str, Any] = {}
    for event in sorted(live_run.run.of_type("SampleAdded"), key=lambda e: e.event_id):
        origins.setdefault(event.payload.sample_id, event)
    return [e for e in origins.values() if e.payload.origin == "expansion"]


def test_every_expanded_sample_leads_back_to_an_original_seed(live_run: LiveRun) -> None:
    run = live_run.run
    index = MemoryIndex(run.events)
    added = {e.payload.sample_id: e.payload for e in expansions(live_run)}
    candidates = {e.payload.candidate_id: e for e in run.of_type("ExpansionCandidate")}
    verdicts = {e.event_id: e for e in run.of_type("Verdict")}
    depths = []
    for event in expansions(live_run):
        lineage = build_lineage(index, event.payload.sample_id)
        chain = lineage.ancestry()
        # Each hop is the sample's recorded error seed, and the chain ends at a seed from the pool.
        for child, parent in itertools.pairwise(chain):
            assert added[child].seed_sample_id == parent
        assert lineage.root.origin == "seed" and lineage.root.sample_id == chain[-1]
        # The step that spawned it: the seed's probe whose verdict made it an error seed.
        candidate = candidates[lineage.candidate_id]
        verdict = verdicts[candidate.payload.verdict_event_id]
        spawned = lineage.spawned_by
        assert spawned is not None and spawned.verdict_event_id == verdict.event_id
        assert spawned.verdict == verdict.payload.verdict in ("PRED_WRONG", "LABEL_WRONG")
        assert spawned.round == event.payload.round and not spawned.matched
        assert any(
            x.candidate_id == lineage.candidate_id and x.outcome == "passed" for x in spawned.expansions
        )
        depths.append(len(chain))
    assert depths and max(depths) >= 2


def test_lineage_shows_probes_verdicts_relabels_expansions_and_rounds(live_run: LiveRun) -> None:
    run = live_run.run
    fix = run.of_type("LabelCorrected")[0]
    sample_id = fix.payload.sample_id
    lineage = build_lineage(MemoryIndex(run.events), sample_id)
    assert lineage.origin == "seed" and lineage.ancestry() == [sample_id]
    assert lineage.labels[0].reason == "added" and len(lineage.labels) >= 2
    assert [c.round for c in lineage.curated] == sorted(
        e.payload.round for e in run.of_type("CuratedSample") if e.payload.sample_id == sample_id
    )
    probe = next(p for p in lineage.probes if p.relabel is not None)
    assert probe.verdict == "LABEL_WRONG" and probe.relabel.event_id == fix.event_id
    candidate_ids = sorted(
        e.payload.candidate_id
        for e in run.of_type("ExpansionCandidate")
        if e.payload.seed_sample_id == sample_id
    )
    assert sorted(x.candidate_id for p in lineage.probes for x in p.expansions) == candidate_ids
    became = {x.sample_id for p in lineage.probes for x in p.expansions if x.sample_id}
    assert became == {
        e.payload.sample_id
        for e in run.of_type("SampleAdded")
        if e.payload.metadata.get("candidate_id") in candidate_ids
    }


def test_the_store_gives_the_same_lineage_as_the_topics(live_run: LiveRun) -> None:
    memory = MemoryIndex(live_run.run.events)
    store = StoreIndex(SampleStore(live_run.store_path))
    deepest = max(
        (build_lineage(memory, e.payload.sample_id) for e in expansions(live_run)),
        key=lambda x: len(x.ancestry()),
    )
    for sample_id in (deepest.sample_id, deepest.root.sample_id):
        assert build_lineage(store, sample_id) == build_lineage(memory, sample_id)


def test_lineage_renders_the_chain_and_refuses_unknown_samples(live_run: LiveRun) -> None:
    memory = MemoryIndex(live_run.run.events)
    deepest = max(
        (build_lineage(memory, e.payload.sample_id) for e in expansions(live_run)),
        key=lambda x: len(x.ancestry()),
    )
    console = Console(record=True, width=300, file=io.StringIO())
    lineage = run_lineage(
        live_run.settings, deepest.sample_id, console=console, store_path=live_run.store_path
    )
    text = console.export_text()
    assert lineage == deepest
    for sample_id in deepest.ancestry():
        assert f"sample {sample_id}" in text
    assert "descends from: " + " → ".join(deepest.ancestry()[1:]) in text
    assert "origin: seed (world: world:" in text
    with pytest.raises(LineageError, match="s_nope"):
        build_lineage(memory, "s_nope")
    tree_text = Console(record=True, width=300, file=io.StringIO())
    tree_text.print(render_lineage(build_lineage(memory, deepest.root.sample_id)))
    assert "verdict" in tree_text.export_text()


def test_lineage_json_is_one_object_with_the_whole_history(live_run: LiveRun) -> None:
    """``lineage --json`` (named as ``deadletters --json``): standard output holds one JSON object, on
    one line, with every field of the history, the error seeds' lineages nested under ``parent``."""
    import dataclasses
    import json
    import os
    import subprocess
    import sys

    memory = MemoryIndex(live_run.run.events)
    deepest = max(
        (build_lineage(memory, e.payload.sample_id) for e in expansions(live_run)),
        key=lambda x: len(x.ancestry()),
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "looptool.cli",
            "lineage",
            deepest.sample_id,
            "--store",
            str(live_run.store_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOOPTOOL_")},
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1
    document = json.loads(done.stdout)
    assert document["ancestry"] == deepest.ancestry() and len(document["ancestry"]) >= 2
    assert {k: v for k, v in document.items() if k != "ancestry"} == json.loads(
        json.dumps(dataclasses.asdict(deepest))
    )
    assert document["parent"]["sample_id"] == deepest.ancestry()[1]
    assert document["spawned_by"]["verdict"] in ("PRED_WRONG", "LABEL_WRONG")


def test_the_tree_shows_brackets_and_whole_reasons_as_written() -> None:
    from views.lineage import CurationStep, LabelStep, ProbeStep, SampleLineage

    note = "revert of 0000000004VAEH4E8S855AX8A7, verdict 00000000035P by op: the judge misread the date"
    call = "[get_weather(city='Paris')]"  # a label in Python call syntax, and a reason naming [judge]
    lineage = SampleLineage(
        sample_id="s_1",
        origin="seed",
        round_added=1,
        source_format="openai",
        source_ref="data/[v2]/seeds.jsonl:3",
        added_event_id="e0",
        seed_sample_id=None,
        candidate_id=None,
        labels=[LabelStep("e0", 1, call, "added"), LabelStep("e1", 2, call, note)],
        curated=[CurationStep(1, "SEED", "e0", call, "c1")],
        probes=[ProbeStep("p", 1, "ckpt", False, "[bold]oops[/bold]", None, ["[judge] said"], 1.5)],
        dead_letters=[],
    )
    console = Console(record=True, width=400, file=io.StringIO())
    console.print(render_lineage(lineage))
    text = console.export_text()
    assert text.count(call) == 3 and "data/[v2]/seeds.jsonl:3" in text
    assert note in text  # the operator's note ends the reason: it once was cut at 80 characters
    assert "[bold]oops[/bold]" in text and "[judge] said" in text
