"""The analytics kept live while a run goes on: the run's topics followed, the tables redrawn.

The live table and the summary tables fold each event once into running counts
(:class:`~views.analytics.running.RunningStats`), so a follower that runs for days keeps what the
tables show, not a row per event; the per-event tables (and :func:`looptool.analytics.follow`, whose
updates every function of the API takes) keep the rows (:class:`StatsCollector`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from rich.console import Console
from rich.live import Live

from bus.config import RunSettings
from views.analytics.collect import StatsCollector
from views.analytics.frames import RunStats
from views.analytics.render import render_stats
from views.analytics.running import RunningStats, SummaryStats
from views.store import ALL_TOPIC_NAMES


async def wait_for_run(
    settings: RunSettings,
    stop: asyncio.Event | None,
    *,
    on_waiting: Callable[[], None] | None = None,
    poll_s: float = 1.0,
    settle_s: float = 5.0,
) -> bool:
    """Wait until the run has its topics; False if ``stop`` was set first.

    A follower started before the run (its topics are created when it starts) waits for it, as the
    services' consumer groups do, instead of ending with nothing to follow. A follower reads the
    topics that exist when it starts, and a cluster creates the run's topics one by one: once some
    exist, the rest are waited for up to ``settle_s`` (a run of an older release may lack one).
    ``on_waiting`` is called once, when the first look finds no topic.
    """
    from bus.kafka import partition_ends

    loop = asyncio.get_running_loop()
    told = False
    some_since: float | None = None
    while True:
        present = {tp.topic for tp in await partition_ends(settings.kafka, settings.run_id, ALL_TOPIC_NAMES)}
        if len(present) == len(ALL_TOPIC_NAMES):
            return True
        if present:
            some_since = some_since if some_since is not None else loop.time()
            if loop.time() - some_since >= settle_s:
                return True
        elif not told and on_waiting is not None:
            on_waiting()
            told = True
        if stop is None:
            await asyncio.sleep(poll_s)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_s)
        if stop.is_set():
            return False


async def follow_stats(
    settings: RunSettings,
    console: Console,
    stop: asyncio.Event,
    *,
    refresh_s: float = 2.0,
    on_update: Callable[[SummaryStats], None] | None = None,
    on_waiting: Callable[[], None] | None = None,
) -> SummaryStats:
    """Follow every topic of the run and keep the tables up to date on ``console`` until ``stop``
    (waiting for the run's topics first: :func:`wait_for_run`)."""
    from bus.kafka import follow

    collector = RunningStats()
    stats = collector.stats()
    if not await wait_for_run(settings, stop, on_waiting=on_waiting):
        console.print(render_stats(stats))  # stopped before the run began: the empty view, drawn once
        return stats
    loop = asyncio.get_running_loop()
    last_render = float("-inf")
    changed = True
    stream = follow(settings.kafka, settings.run_id, ALL_TOPIC_NAMES)
    with Live(render_stats(stats), console=console, auto_refresh=False, transient=False) as live:
        try:
            # follow() yields at least once per idle timeout (an empty batch), so stop is seen promptly.
            async for batch in stream:
                if stop.is_set():
                    break
                changed |= collector.add_all(d.event for d in batch) > 0
                # Redraw when caught up (an empty batch) or at most every refresh_s while catching up.
                if changed and (not batch or loop.time() - last_render >= refresh_s):
                    stats = collector.stats()
                    live.update(render_stats(stats), refresh=True)
                    last_render, changed = loop.time(), False
                    if on_update is not None:
                        on_update(stats)
        finally:
            await stream.aclose()
    return collector.stats()


async def stats_updates(
    settings: RunSettings,
    *,
    refresh_s: float = 2.0,
    stop: asyncio.Event | None = None,
    idle_timeout_ms: int = 500,
    per_event_rows: bool = True,
    on_waiting: Callable[[], None] | None = None,
) -> AsyncIterator[RunStats | SummaryStats]:
    """Follow every topic of the run from offset 0 and yield fresh stats as events arrive: once caught
    up (nothing new for ``idle_timeout_ms``), and at most every ``refresh_s`` while catching up;
    nothing while nothing changes. Ends when ``stop`` is set (seen within ``idle_timeout_ms``), or
    when the caller leaves the loop. ``per_event_rows``: a :class:`RunStats` with every row (what the
    per-event tables need; memory grows with the events); otherwise the summary tables from running
    counts (:class:`SummaryStats`). A run with no topics yet is waited for (:func:`wait_for_run`);
    stopped while waiting, it yields the empty stats once."""
    from bus.kafka import follow

    collector: StatsCollector | RunningStats = StatsCollector() if per_event_rows else RunningStats()
    if not await wait_for_run(settings, stop, on_waiting=on_waiting):
        yield collector.stats()
        return
    loop = asyncio.get_running_loop()
    last = float("-inf")
    changed = True  # the first catch-up yields even for an empty run
    stream = follow(settings.kafka, settings.run_id, ALL_TOPIC_NAMES, idle_timeout_ms=idle_timeout_ms)
    try:
        async for batch in stream:
            if stop is not None and stop.is_set():
                break
            changed |= collector.add_all(d.event for d in batch) > 0
            if changed and (not batch or loop.time() - last >= refresh_s):
                last, changed = loop.time(), False
                yield collector.stats()
        else:  # the stream ended without a batch (its topics went between the wait and the read)
            if changed:
                yield collector.stats()
    finally:
        await stream.aclose()
