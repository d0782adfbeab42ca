"""Verdict analytics: every number equals a count made directly from the events, from any source."""

from __future__ import annotations

import asyncio
import gc
import io
import random
import tracemalloc
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console

from bus.kafka import EventProducer, ensure_topics
from looptool.cli.views import run_stats
from looptool.config import Settings, load_settings
from schemas.events import Event
from tests.analytics.conftest import LiveRun
from views.analytics import (
    RunStats,
    StatsCollector,
    load_stats,
    plot_stats,
    render_stats,
    stats_from_topics,
    tables_text,
    verdicts_frame,
)
from views.analytics.frames import NO_CALL, VERDICT_LABELS
from views.analytics.live import follow_stats
from views.analytics.running import RunningStats, SummaryStats
from world import World
from world.simulated_run import simulate_run


def distinct(events: list[Event[Any]]) -> list[Event[Any]]:
    seen: dict[str, Event[Any]] = {}
    for event in events:
        seen.setdefault(event.event_id, event)
    return list(seen.values())


def of(events: list[Event[Any]], event_type: str) -> list[Any]:
    return [e for e in events if e.event_type == event_type]


def expected_counts(events: list[Event[Any]]) -> dict[str, Counter]:
    """Counts made the plain way, straight from the events."""
    events = distinct(events)
    c: dict[str, Counter] = {
        name: Counter()
        for name in (
            "probed",
            "matched",
            "verdict",
            "relabels",
            "ckpt_probed",
            "ckpt_verdict",
            "outcome",
            "tool",
        )
    }
    c.update({"tool_matched": Counter(), "error": Counter(), "source": Counter(), "added": Counter()})
    for e in of(events, "ProbeResult"):
        p = e.payload
        c["probed"][p.round] += 1
        c["matched"][p.round] += p.matched
        c["ckpt_probed"][e.checkpoint_id] += 1
        for tool in {call.name for call in p.label.calls} or {NO_CALL}:
            c["tool"][(p.round, tool)] += 1
            c["tool_matched"][(p.round, tool)] += p.matched
        if not p.matched:
            for kind in {d.kind for d in p.diffs}:
                c["error"][(p.round, kind)] += 1
    for e in of(events, "Verdict"):
        c["verdict"][(e.payload.round, e.payload.verdict)] += 1
        c["ckpt_verdict"][(e.checkpoint_id, e.payload.verdict)] += 1
    for e in of(events, "LabelCorrected"):
        c["relabels"][e.payload.round] += 1
    results = {e.payload.candidate_id: e.payload for e in of(events, "VerificationResult")}
    for e in of(events, "ExpansionCandidate"):
        r = results.get(e.payload.candidate_id)
        if r is None:
            outcome = "unverified"
        elif r.passed:
            outcome = "passed"
        elif r.failed_tier == "rules":
            outcome = "rule:" + r.rule_violations[0].code
        else:
            outcome = "llm:" + r.llm_verdict
        c["outcome"][(e.payload.round, outcome)] += 1
    for e in of(events, "CuratedSample"):
        c["source"][(e.payload.round, e.payload.source)] += 1
    origins: dict[str, Any] = {}
    for e in of(events, "SampleAdded"):
        if e.payload.origin == "expansion":
            c["added"][e.payload.round] += 1
        if e.payload.sample_id not in origins or e.event_id < origins[e.payload.sample_id].event_id:
            origins[e.payload.sample_id] = e
    c["new"] = Counter(e.payload.round for e in origins.values() if e.payload.origin == "expansion")
    return c


def assert_stats_match(stats: RunStats, events: list[Event[Any]]) -> None:
    want = expected_counts(events)
    mix = stats.verdict_mix("round")
    for round_ in (1, 2, 3):
        row = mix.loc[round_]
        assert row["probed"] == want["probed"][round_] > 0
        assert row["matched"] == want["matched"][round_]
        assert row["accuracy"] == pytest.approx(want["matched"][round_] / want["probed"][round_])
        for label in VERDICT_LABELS:
            assert row[label] == want["verdict"][(round_, label)], (round_, label)
        assert row["relabels"] == want["relabels"][round_]
        assert row["members"] == sum(n for (r, _), n in want["source"].items() if r == round_)
    assert mix["unjudged"].sum() == 0  # every mismatch got a verdict in the simulated run
    by_checkpoint = stats.verdict_mix("checkpoint")
    assert dict(by_checkpoint["probed"]) == dict(want["ckpt_probed"])
    for (checkpoint, label), n in want["ckpt_verdict"].items():
        assert by_checkpoint.loc[checkpoint, label] == n
    assert list(by_checkpoint["round"]) == [1, 2, 3]
    outcomes = stats.expansion_outcomes()
    assert {(r.round, r.outcome): r.candidates for r in outcomes.itertuples()} == dict(want["outcome"])
    for round_, group in outcomes.groupby("round"):
        assert group["share"].sum() == pytest.approx(1.0)
        passed = want["outcome"][(round_, "passed")]
        verified = sum(n for (r, o), n in want["outcome"].items() if r == round_ and o != "unverified")
        summary = stats.expansion_summary().loc[round_]
        assert summary["passed"] == passed and summary["pass_rate"] == pytest.approx(passed / verified)
        assert summary["added"] == want["added"][round_] == passed  # every passed candidate became a sample
        assert summary["new_samples"] == want["new"][round_]
        assert (
            summary["error_seeds"]
            == want["verdict"][(round_, "PRED_WRONG")] + want["verdict"][(round_, "LABEL_WRONG")]
        )
    tools = stats.accuracy_by_tool()
    assert {(r.round, r.tool): r.probes for r in tools.itertuples()} == dict(want["tool"])
    assert {(r.round, r.tool): r.matched for r in tools.itertuples()} == dict(want["tool_matched"])
    errors = stats.error_types()
    assert {(r.round, r.error_type): r.probes for r in errors.itertuples()} == dict(want["error"])
    mismatched = {r: want["probed"][r] - want["matched"][r] for r in (1, 2, 3)}
    for r in errors.itertuples():
        assert r.share_of_mismatches == pytest.approx(r.probes / mismatched[r.round])
    curation = stats.curation()
    for (round_, source), n in want["source"].items():
        assert curation.loc[round_, source] == n
    for round_ in (1, 2, 3):
        fresh = want["source"][(round_, "SEED")] + want["source"][(round_, "SEED_NEW")]
        members = curation.loc[round_, "members"]
        assert curation.loc[round_, "seed_new_share"] == pytest.approx(fresh / members)
        assert curation.loc[round_, "closed"]
    assert curation.loc[1, "seed_new_share"] == 1.0


async def test_stats_equal_direct_counts_from_store_topics_and_events(live_run: LiveRun) -> None:
    events = live_run.run.events
    from_events = load_stats(events)
    from_store = load_stats(live_run.store_path)
    from_topics = await stats_from_topics(live_run.settings)
    for stats in (from_events, from_store, from_topics):
        assert_stats_match(stats, events)
    for view in ("probes", "verdicts", "candidates", "curated"):
        left = getattr(from_store, view).sort_values("event_id").reset_index(drop=True)
        right = getattr(from_topics, view).sort_values("event_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right)
    # Redelivered copies count once.
    assert_stats_match(load_stats(events + events[::3]), events)
    frame = verdicts_frame(live_run.store_path)
    assert len(frame) == len(of(distinct(events), "Verdict"))
    assert set(frame.columns) >= {"round", "checkpoint_id", "sample_id", "verdict", "decided_by"}


def _row(text: str, title: str, first_cell: str) -> list[str]:
    """The cells of the row starting with ``first_cell`` in the table titled ``title`` of rendered text."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    for line in lines[start:]:
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in table {title!r}")


def test_tables_show_the_numbers(live_run: LiveRun, tmp_path: Path) -> None:
    console = Console(record=True, width=260, file=io.StringIO())
    stats = run_stats(
        live_run.settings,
        follow=False,
        plot=tmp_path / "plots",
        console=console,
        store_path=live_run.store_path,
    )
    text = console.export_text()
    want = expected_counts(live_run.run.events)
    cells = _row(text, "Rounds: probing", "2")
    accuracy = 100 * want["matched"][2] / want["probed"][2]
    assert cells[2:4] == [str(want["probed"][2]), f"{accuracy:.1f}%"]
    verdicts_end = 4 + len(VERDICT_LABELS)
    assert cells[4:verdicts_end] == [str(want["verdict"][(2, label)]) for label in VERDICT_LABELS]
    assert cells[verdicts_end] == str(want["relabels"][2])
    checkpoint = f"{live_run.settings.run_id}-ckpt-1"
    assert _row(text, "Verdict mix by checkpoint", checkpoint)[3] == str(want["probed"][1])
    passed = _row(text, "Expansion candidates by failing rule", "passed")
    assert passed[1].startswith(f"{want['outcome'][(1, 'passed')]} (")
    for title in ("Curation (Eq. 5)", "ToolMatch accuracy by tool", "Probe errors by type"):
        assert title in text
    # The plots: one PNG per chart and the overview, all readable images.
    import matplotlib.image

    written = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert written == ["accuracy.png", "curation.png", "expansion.png", "overview.png", "verdicts.png"]
    for name in written:
        image = matplotlib.image.imread(tmp_path / "plots" / name)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500
    assert stats.events == len(distinct(live_run.run.events))


def test_tables_as_plain_text_for_a_report(live_run: LiveRun) -> None:
    stats = load_stats(live_run.run.events)
    text = tables_text(stats, tables=["rounds"])
    assert text.startswith("Rounds: probing") and "Curation" not in text and "\x1b[" not in text
    assert _row(text, "Rounds: probing", "1")[2] == str(expected_counts(live_run.run.events)["probed"][1])
    with pytest.raises(ValueError, match="unknown tables"):
        tables_text(stats, tables=["nope"])


def test_an_empty_run_renders_and_plots(tmp_path: Path) -> None:
    stats = load_stats([])
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(render_stats(stats))
    assert console.export_text().strip() == "No events yet: every table is empty."
    assert len(plot_stats(stats, tmp_path)) == 5
    assert stats.verdict_mix().empty and stats.curation().empty and stats.error_types().empty


def _running(events: list[Event[Any]]) -> RunningStats:
    fold = RunningStats()
    fold.add_all(events)
    return fold


def test_the_running_fold_gives_the_tables_of_stats(live_run: LiveRun) -> None:
    """``stats --follow`` folds each event once into running counts; its tables are those of
    ``stats`` on the same events: in log order, shuffled across topics (as a follower reads them),
    with redelivered copies, and those of the store."""
    from views.analytics.tables import DEFAULT_TABLES, stats_tables

    events = list(live_run.run.events)
    shuffled = events + events[: len(events) // 3]
    random.Random(7).shuffle(shuffled)
    assert {"ProbeResult", "Verdict", "LabelCorrected", "VerificationResult", "DeadLetter"} <= {
        e.event_type for e in events
    }
    # Mid-run as a follower sees it: verifications before their candidates, verdicts before probes.
    prefixes = [shuffled[:cut] for cut in (0, 1, len(shuffled) // 7, len(shuffled) // 2)]
    for stream in (events, shuffled, *prefixes):
        want, got = load_stats(stream), _running(stream).stats()
        assert got.events == want.events == len(distinct(stream))
        wanted, gotten = stats_tables(want, DEFAULT_TABLES), stats_tables(got, DEFAULT_TABLES)
        for name in DEFAULT_TABLES:
            assert gotten[name].equals(wanted[name]), name
        assert tables_text(got) == tables_text(want)
    from_store = stats_tables(load_stats(live_run.store_path), DEFAULT_TABLES)
    assert all(
        stats_tables(_running(shuffled).stats(), DEFAULT_TABLES)[n].equals(from_store[n]) for n in from_store
    )
    with pytest.raises(ValueError, match="row per event"):
        stats_tables(_running(events).stats(), ["votes"])


def _retained_bytes(fold: Any, events: list[Event[Any]]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fold.add_all(events)
        gc.collect()
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_the_running_fold_keeps_state_by_key_not_by_event(live_run: LiveRun) -> None:
    """What the fold keeps grows with the keys its figures count by (a sample per round, a candidate,
    a sample's origin: docs in views/analytics/running.py), never with the events delivered: N events
    and 10N (each delivered ten times, as a follower restarted from offset 0 or a redrive sees them)
    leave the same state. Per distinct event it keeps under half the per-event rows of the
    StatsCollector (which ``stats --follow`` used; 2.5 to 3.3 times as much on simulated runs)."""
    events = list(live_run.run.events)
    unique = distinct(events)
    tenfold = events * 10
    random.Random(3).shuffle(tenfold)
    once, ten = _running(events), _running(tenfold)
    assert ten.retained() == once.retained()
    assert ten.stats().events == once.stats().events == len(unique)
    kept = once.retained()
    probes = {(e.payload.round, e.payload.sample_id) for e in unique if e.event_type == "ProbeResult"}
    curated = {(e.payload.round, e.payload.sample_id) for e in unique if e.event_type == "CuratedSample"}
    assert kept["probes"] == len(probes) and kept["curated"] == len(curated)
    assert kept["unjudged"] <= sum(not e.payload.matched for e in unique if e.event_type == "ProbeResult")
    # The counts are per round, checkpoint, tool, error type, outcome, source: a few per round.
    assert kept["counts"] < len(unique) / 2
    assert kept["repeated_key_ids"] == 0  # no second event of any key in this run

    _retained_bytes(RunningStats(), unique)  # warm up: caches the first fold fills (pydantic, re, ...)
    one_pass = _retained_bytes(RunningStats(), unique)
    ten_passes = _retained_bytes(RunningStats(), tenfold)
    assert abs(ten_passes - one_pass) < 0.02 * one_pass, (one_pass, ten_passes)
    rows = _retained_bytes(StatsCollector(), unique)
    assert one_pass < rows / 2, (one_pass / len(unique), rows / len(unique))


async def test_follow_updates_while_the_run_goes_on(
    kafka_bootstrap: str, tmp_path: Path, world: World
) -> None:
    settings = load_settings(
        None,
        run_id="t-" + uuid.uuid4().hex[:12],
        kafka={"bootstrap_servers": kafka_bootstrap},
        store={"path": tmp_path},
    )
    seeds = await world.samples(25, noise_rate=0.4, seed="follow")
    run = await simulate_run(settings.run_id, world, seeds, rounds=2, target_size=16, k=2)
    await ensure_topics(settings.kafka, settings.run_id)
    updates: list[SummaryStats] = []
    changed = asyncio.Event()

    def on_update(stats: SummaryStats) -> None:
        updates.append(stats)
        changed.set()

    async def until(condition: Any) -> SummaryStats:
        async with asyncio.timeout(30):
            while not (updates and condition(updates[-1])):
                changed.clear()
                await changed.wait()
        return updates[-1]

    stop = asyncio.Event()
    console = Console(file=io.StringIO(), width=200)
    follower = asyncio.create_task(follow_stats(settings, console, stop, refresh_s=0.2, on_update=on_update))
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all(run.phases[0])
        first = await until(lambda s: s.curation()["members"].sum() == 16)
        assert first.verdict_mix()["probed"].sum() == 0  # nothing probed yet
        await producer.send_all(run.phases[1])
        second = await until(lambda s: 2 in s.curation().index)
    assert_probed = expected_counts(run.phases[0] + run.phases[1])
    assert second.verdict_mix().loc[1, "probed"] == assert_probed["probed"][1] == 16
    stop.set()
    final = await asyncio.wait_for(follower, 10)
    assert isinstance(final, SummaryStats)  # running counts, not a row per event
    assert final.events == len(distinct(run.phases[0] + run.phases[1]))


async def test_a_follower_that_meets_the_runs_topics_half_created_follows_them_all(
    settings: Settings,
) -> None:
    """The run's topics appear one by one as the run starts (a real cluster creates each in its own
    time): a follower waiting for the run that looked while only some existed followed those alone and
    never read the others. It now waits a moment for the rest."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from bus.kafka import client_options
    from bus.topics import partitions_for, spec_of, topic_name
    from schemas.events import LabelCorrected, make_event
    from tests.foundation.events_factory import LABEL, PRODUCER, sample_added
    from views.analytics.live import stats_updates

    options = client_options(settings.kafka)
    options.pop("client_id")
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:  # only the samples topic, for now
        name = topic_name(settings.run_id, "samples")
        await admin.create_topics([NewTopic(name, partitions_for(spec_of("samples"), settings.kafka), 1)])
    finally:
        await admin.close()
    stop = asyncio.Event()
    seen: list[int] = []

    async def follow() -> None:
        async for stats in stats_updates(settings, stop=stop, refresh_s=0.1, idle_timeout_ms=100):
            seen.append(stats.events)
            if stats.events == 2:
                stop.set()

    follower = asyncio.create_task(follow())
    await asyncio.sleep(1.5)  # the follower has looked, and found the samples topic alone
    await ensure_topics(settings.kafka, settings.run_id)  # the rest of them
    fix = LabelCorrected(sample_id="s_1", round=1, old_label=LABEL, new_label=LABEL, reason="test")
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all(
            [
                make_event(sample_added("s_1"), run_id=settings.run_id, producer=PRODUCER),
                make_event(fix, run_id=settings.run_id, producer=PRODUCER),
            ]
        )
    try:
        await asyncio.wait_for(follower, 20)
    finally:
        stop.set()
    assert seen[-1] == 2  # the relabel on the labels topic, created after the follower looked
