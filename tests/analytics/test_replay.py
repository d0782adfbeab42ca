"""Replay as of a round, a checkpoint or a time equals the live store then; D_J equals what was curated."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from bus.kafka import EventProducer, ensure_topics
from schemas.events import (
    CheckpointEvaluated,
    CheckpointPublished,
    CuratedSample,
    Event,
    RoundClosed,
    make_event,
    new_event_id,
)
from streams.curate import Ledger
from tests.analytics.conftest import LiveRun
from tests.foundation.events_factory import FLUCTUATION, LABEL, PRODUCER
from toolcall.types import Message, Sample
from views.replay import (
    CLOCK_SKEW_TOLERANCE,
    Cut,
    ReplayError,
    dataset_from_ledger,
    replay_to,
    resolve_boundary,
    run_replay,
)
from views.store import SampleStore
from world import World
from world.simulated_run import simulate_run


@pytest.mark.parametrize("round_", [1, 2, 3])
async def test_replay_of_a_round_equals_the_live_store_when_it_closed(
    live_run: LiveRun, tmp_path: Path, round_: int
) -> None:
    settings, run = live_run.settings, live_run.run
    result = await replay_to(settings, Cut(round=round_), store_path=tmp_path / "replayed", policy=run.policy)
    # Phase round-1 ended with RoundClosed(round): the live store then is the replay now.
    assert SampleStore(tmp_path / "replayed").snapshot() == live_run.snapshots[round_ - 1]
    dataset = result.dataset
    assert dataset is not None and dataset.round == round_ and dataset.verified, dataset.problems
    live_round = next(r for r in SampleStore(live_run.store_path).rows("rounds") if r["round"] == round_)
    assert dataset.content_hash == live_round["content_hash"] == run.round_closed(round_).payload.content_hash
    live_members = [
        (r["sample_id"], r["source"], json.loads(r["label_json"]), r["content_hash"])
        for r in SampleStore(live_run.store_path).rows("curated", sort_by="sample_id")
        if r["round"] == round_
    ]
    assert [
        (m.sample_id, m.source, m.label.model_dump(mode="json"), m.content_hash) for m in dataset.members
    ] == live_members
    # The curator's own fold, fed the events before D_J, curates exactly the logged D_J again.
    assert result.recompute is not None and result.recompute.matches, result.recompute.differences
    assert result.excluded == len({e.event_id for e in run.events}) - result.included
    assert result.undecodable == 0 and result.duplicates == 0


async def test_replay_to_the_end_equals_the_live_store(live_run: LiveRun, tmp_path: Path) -> None:
    result = await replay_to(live_run.settings, Cut(), store_path=tmp_path / "all")
    assert SampleStore(tmp_path / "all").snapshot() == live_run.snapshots[-1]
    assert result.excluded == 0 and result.dataset is not None and result.dataset.round == 3


async def test_replay_until_a_checkpoint_or_a_timestamp(live_run: LiveRun, tmp_path: Path) -> None:
    settings, run = live_run.settings, live_run.run
    checkpoint = run.phases[2][0]  # round 2's checkpoint opens phase 2
    assert checkpoint.event_type == "CheckpointPublished"
    result = await replay_to(
        settings, Cut.until(checkpoint.payload.new_checkpoint_id), store_path=tmp_path / "c"
    )
    assert result.dataset is not None and result.dataset.round == 2 and result.dataset.verified
    snapshot = SampleStore(tmp_path / "c").snapshot()
    assert [r["checkpoint_id"] for r in snapshot["checkpoints"]][-1] == checkpoint.payload.new_checkpoint_id
    assert not [r for r in snapshot["probes"] if r["round"] == 2]  # nothing probed D_2 yet
    without_it = {
        name: [r for r in rows if r.get("event_id") != checkpoint.event_id] for name, rows in snapshot.items()
    }
    assert without_it == live_run.snapshots[1]
    # A timestamp: the instant the last event of phase 1 was produced (ISO 8601, as typed).
    stamp = max(e.produced_at for e in run.phases[1]).isoformat()
    await replay_to(settings, Cut.until(stamp), store_path=tmp_path / "t")
    assert SampleStore(tmp_path / "t").snapshot() == live_run.snapshots[1]


async def test_labels_as_of_a_round_are_the_labels_then(live_run: LiveRun, tmp_path: Path) -> None:
    """A label corrected after probing D_1 is in neither D_1 nor the store as of round 1, but is in D_2."""
    settings, run = live_run.settings, live_run.run
    fixes = [e for e in run.of_type("LabelCorrected") if e.payload.round == 1]
    assert fixes, "the simulated run should relabel something in round 1"
    fixed = {e.payload.sample_id: e.payload for e in fixes}
    first = await replay_to(settings, Cut(round=1), store_path=tmp_path / "r1")
    second = await replay_to(settings, Cut(round=2), store_path=tmp_path / "r2")
    assert first.dataset is not None and second.dataset is not None
    d1 = {m.sample_id: m for m in first.dataset.members}
    d2 = {m.sample_id: m for m in second.dataset.members}
    rows_then = {r["sample_id"]: r for r in SampleStore(tmp_path / "r1").rows("samples")}
    rows_now = {r["sample_id"]: r for r in SampleStore(live_run.store_path).rows("samples")}
    for sample_id, fix in fixed.items():
        assert d1[sample_id].label == fix.old_label != fix.new_label
        assert rows_then[sample_id]["relabel_count"] == 0
        assert json.loads(rows_then[sample_id]["current_label_json"]) == fix.old_label.model_dump(mode="json")
        assert rows_now[sample_id]["relabel_count"] >= 1
    # LABEL_WRONG error seeds enter D_2 with the corrected label (while D_2 has room for them).
    carried = [sample_id for sample_id in fixed if sample_id in d2]
    assert carried
    assert all(d2[s].source == "ES" and d2[s].label == fixed[s].new_label for s in carried)


async def test_a_round_s_work_is_placed_by_its_round_not_by_a_skewed_clock(
    live_run: LiveRun, world: World, tmp_path: Path
) -> None:
    """A relabel of round 1 stamped after RoundClosed(2) by a worker whose clock ran ahead is in the
    store as of round 2 (D_2 was curated from it); one of round 2 stamped before RoundClosed(2) by a
    clock running behind is not (it answers the probing of D_2, which follows the cut)."""
    # Curation is seeded by the run id: the skewed run is simulated under its own id, not copied.
    run_id = "t-skew-" + uuid.uuid4().hex[:8]
    settings = live_run.settings.model_copy(update={"run_id": run_id})
    seeds = await world.samples(60, noise_rate=0.4, seed="analytics")
    run = await simulate_run(run_id, world, seeds, rounds=2, target_size=40, k=2)
    closed_2 = run.round_closed(2).produced_at
    carried = {m.payload.sample_id for m in run.members(2) if m.payload.source == "ES"}
    early = next(
        e for e in run.of_type("LabelCorrected") if e.payload.round == 1 and e.payload.sample_id in carried
    )
    late = next(e for e in run.of_type("LabelCorrected") if e.payload.round == 2)
    restamped = {
        early.event_id: closed_2 + timedelta(minutes=5),
        late.event_id: closed_2 - timedelta(minutes=5),
    }
    events = [
        e.model_copy(update={"produced_at": restamped.get(e.event_id, e.produced_at)}) for e in run.events
    ]
    await ensure_topics(settings.kafka, run_id)
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all(events)

    result = await replay_to(settings, Cut(round=2), store_path=tmp_path / "r2", policy=run.policy)
    store = SampleStore(tmp_path / "r2")
    kept = {r["event_id"] for r in store.rows("events")}
    assert early.event_id in kept and late.event_id not in kept
    samples = {r["sample_id"]: r for r in store.rows("samples")}
    current = json.loads(samples[early.payload.sample_id]["current_label_json"])
    assert current == early.payload.new_label.model_dump(mode="json")
    if late.payload.sample_id != early.payload.sample_id:
        current = json.loads(samples[late.payload.sample_id]["current_label_json"])
        assert current != late.payload.new_label.model_dump(mode="json")
    # The curator's fold is fed the same: D_2 recomputes with the late-stamped label it was built from.
    assert result.dataset is not None and result.dataset.verified, result.dataset
    assert result.recompute is not None and result.recompute.matches, result.recompute.differences


async def test_a_redrives_late_output_of_a_closed_rounds_work_is_placed_by_its_stamp(
    live_run: LiveRun, world: World, tmp_path: Path
) -> None:
    """What `looptool redrive` makes the judge produce for a dead-lettered probe of round 1 an hour
    after RoundClosed(2) carries round 1, but D_2 was curated without it: it is not in the store as
    of round 2, nor in the fold that recomputes D_2; it is in the store at the run's end."""
    run_id = "t-redrive-" + uuid.uuid4().hex[:8]
    settings = live_run.settings.model_copy(update={"run_id": run_id})
    seeds = await world.samples(60, noise_rate=0.4, seed="analytics")
    run = await simulate_run(run_id, world, seeds, rounds=2, target_size=40, k=2)
    closed_2 = run.round_closed(2).produced_at
    judged = next(e for e in run.of_type("Verdict") if e.payload.round == 1)
    redriven = judged.model_copy(
        update={
            "event_id": new_event_id(),
            "produced_at": closed_2 + CLOCK_SKEW_TOLERANCE + timedelta(hours=1),
        }
    )
    await ensure_topics(settings.kafka, run_id)
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all([*run.events, redriven])

    result = await replay_to(settings, Cut(round=2), store_path=tmp_path / "r2", policy=run.policy)
    assert redriven.event_id not in {r["event_id"] for r in SampleStore(tmp_path / "r2").rows("events")}
    assert result.recompute is not None and result.recompute.matches, result.recompute.differences
    await replay_to(settings, Cut(), store_path=tmp_path / "end")
    assert redriven.event_id in {r["event_id"] for r in SampleStore(tmp_path / "end").rows("events")}


async def test_cuts_that_do_not_exist_are_refused(live_run: LiveRun) -> None:
    with pytest.raises(ReplayError, match=r"round 9 has not closed .*closed rounds: 1, 2, 3"):
        await replay_to(live_run.settings, Cut(round=9))
    with pytest.raises(ReplayError, match="checkpoint 'nope' is not in this run"):
        await replay_to(live_run.settings, Cut.until("nope"))
    with pytest.raises(ReplayError, match="not ISO 8601"):
        Cut.until("2026-13-45T99:00")
    with pytest.raises(ReplayError, match="not both"):
        Cut.from_options(1, "ckpt")
    with pytest.raises(ReplayError, match="start at 1"):
        Cut(round=0)
    # Before anything closed there is no dataset, and the store is empty.
    result = await replay_to(live_run.settings, Cut.until("2000-01-01"))
    assert result.dataset is None and result.included == 0


def _member(index: int, round_: int, at: datetime) -> object:
    sample = Sample(tools=[FLUCTUATION], messages=[Message(role="user", content=f"q{index}")], label=LABEL)
    return make_event(
        CuratedSample(
            round=round_,
            sample_id=f"s{index}",
            source="SEED",
            tools=sample.tools,
            messages=sample.messages,
            label=sample.label,
            label_event_id="01JABCDEFGHJKMNPQRSTVWXYZ0",
            content_hash=sample.content_hash(),
        ),
        run_id="r",
        producer=PRODUCER,
        produced_at=at,
    )


def test_a_closed_round_is_whole_whatever_the_clocks_and_its_manifest_is_checked() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    members = [_member(i, 1, t0 + timedelta(seconds=i)) for i in range(3)]
    digest_of = Ledger()
    for member in members:
        digest_of.add(member)
    good = dataset_from_ledger(digest_of, 1)
    closing = make_event(
        RoundClosed(
            round=1,
            total=3,
            counts={"SEED": 3},
            content_hash=good.content_hash,
            target_size=3,
            seed_new_fraction=1.0,
        ),
        run_id="r",
        producer=PRODUCER,
        produced_at=t0 + timedelta(seconds=1),  # a member's clock ran ahead of the curator's
    )
    boundary = resolve_boundary(Cut(round=1), [closing])
    assert all(boundary.includes(m) for m in members)
    late_round = _member(9, 2, t0)
    assert not boundary.includes(late_round)  # a later round's member is not in round 1's cut
    ledger = Ledger()
    for event in [*members, closing]:
        ledger.add(event)
    assert dataset_from_ledger(ledger, 1).verified
    # A member missing from the log, or one whose content does not match its hash, is reported.
    short = Ledger()
    for event in [*members[:2], closing]:
        short.add(event)
    problems = dataset_from_ledger(short, 1).problems
    assert any("lists 3 members, the log holds 2" in p for p in problems)
    assert any("content hash" in p for p in problems)
    tampered = members[0].model_copy(
        update={"payload": members[0].payload.model_copy(update={"content_hash": "0" * 32})}
    )
    bad = Ledger()
    for event in [tampered, *members[1:], closing]:
        bad.add(event)
    assert any("recomputed" in p for p in dataset_from_ledger(bad, 1).problems)


def _closing(round_: int, at: datetime) -> Event[RoundClosed]:
    return make_event(
        RoundClosed(round=round_, total=0, counts={}, content_hash="", target_size=1, seed_new_fraction=1.0),
        run_id="r",
        producer=PRODUCER,
        produced_at=at,
    )


def _checkpoint(round_: int, at: datetime) -> Event[CheckpointPublished]:
    return make_event(
        CheckpointPublished(
            new_checkpoint_id=f"ckpt-{round_}", round=round_, step=1, final=True, uri="x", backend="t"
        ),
        run_id="r",
        producer=PRODUCER,
        produced_at=at,
    )


def test_a_checkpoint_is_placed_after_the_round_it_was_trained_on_whatever_the_trainers_clock() -> None:
    """The trainer trains D_j once RoundClosed(j) is in the log. A round-2 checkpoint stamped before
    RoundClosed(2) by a trainer whose clock is behind was in the store as of round 2 (trained on D_2,
    it follows the cut), and the cut at that checkpoint left round 2 open (D_1 as its dataset)."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    closings = [_closing(1, t0), _closing(2, t0 + timedelta(seconds=10))]
    early = _checkpoint(2, t0 + timedelta(seconds=5))  # the trainer's clock is 5 s or more behind
    lagging = _checkpoint(1, t0 + timedelta(seconds=20))  # round 1's, published after RoundClosed(2)
    as_of_2 = resolve_boundary(Cut(round=2), [*closings, early, lagging])
    assert not as_of_2.includes(early)
    assert not as_of_2.includes(lagging)  # it may come that late (the trainer behind): by its stamp
    at_early = resolve_boundary(Cut.until("ckpt-2"), [*closings, early])
    assert at_early.dataset_round == 2 and at_early.closed_rounds == {1, 2}
    assert at_early.includes(early) and at_early.includes(closings[1])
    baseline = make_event(
        CheckpointEvaluated(
            checkpoint_id="base", round=0, step=0, final=False, suite="s", suite_version="1",
            categories=[], correct={}, total={}, accuracy={},
        ),
        run_id="r",
        producer=PRODUCER,
        produced_at=t0 - timedelta(seconds=1),
    )  # fmt: skip
    assert as_of_2.includes(baseline)  # round 0 (a base model's): by its stamp


def test_the_replay_command_rebuilds_checks_and_reports(live_run: LiveRun, tmp_path: Path) -> None:
    from streams.curate import CurationPolicy

    assert (
        CurationPolicy.from_settings(live_run.settings) == live_run.run.policy
    )  # the run's configured policy
    console = Console(record=True, width=200, file=io.StringIO())
    result = run_replay(live_run.settings, round_=2, until=None, store_path=tmp_path / "r2", console=console)
    text = console.export_text()
    assert SampleStore(tmp_path / "r2").snapshot() == live_run.snapshots[1]
    assert result.recompute is not None and result.recompute.matches
    assert "matches RoundClosed" in text and "the curator's fold rebuilds the same members" in text
    assert "40 samples" in text
    # By default the rebuilt store goes beside the configured one, named after the cut.
    default = run_replay(live_run.settings, round_=None, until="2000-01-01", store_path=None, console=console)
    assert (
        default.store_path
        == live_run.settings.store.path.parent
        / "replay"
        / live_run.settings.run_id
        / "until-20000101T000000000000Z"
    )
    assert "no round closed by the cut" in console.export_text()
    with pytest.raises(ReplayError, match="is the live store"):
        run_replay(
            live_run.settings, round_=1, until=None, store_path=live_run.settings.store.path, console=console
        )
    assert SampleStore(live_run.store_path).snapshot() == live_run.snapshots[-1]  # untouched


def test_the_rebuild_command_in_two_workers_equals_the_live_store(live_run: LiveRun, tmp_path: Path) -> None:
    """``looptool rebuild --workers 2`` on a whole simulated run (every event type, three rounds): the
    store two worker processes build is the one the live materialiser built."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPTOOL_")}
    env |= {
        "LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS": live_run.settings.kafka.bootstrap_servers,
        "LOOPTOOL_STORE__PATH": str(tmp_path / "stores"),
        "COLUMNS": "200",
    }
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "looptool.cli",
            "--run-id",
            live_run.settings.run_id,
            "rebuild",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert ran.returncode == 0, ran.stderr
    assert "rebuilt" in ran.stdout and "workers=2" in ran.stderr, (ran.stdout, ran.stderr)
    rebuilt = SampleStore(tmp_path / "stores" / live_run.settings.run_id)
    assert rebuilt.snapshot() == live_run.snapshots[-1]
