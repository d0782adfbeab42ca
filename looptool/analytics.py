"""Analytics as data: what each round of a run did, as pandas DataFrames and Arrow tables.

The numbers are those of ``looptool stats``; each table has one fixed schema (documented in
docs/analytics.md, and carried by the Arrow schema's field metadata). Every function takes a
*source*, one of:

- a sample-store folder (``str`` or ``Path``) or an open :class:`views.store.SampleStore`;
- a run's topics: :func:`topics` (bootstrap servers + run id), or the app's
  :class:`looptool.config.Settings` (its ``kafka`` and ``run_id``);
- a :class:`RunStats` from :func:`load`: read the run once, then ask for many tables;
- any iterable of events.

In the examples, ``store`` is a store folder (the ``[store] path`` of the run, e.g.
``"data/store"``)::

    >>> from looptool import analytics
    >>> stats = analytics.load(store)            # read once ...
    >>> mix = analytics.verdict_mix(stats)       # ... ask many times
    >>> int(mix.loc[0, "round"])
    1

A DataFrame has the table's columns in order, a plain RangeIndex, and pandas' nullable ``Int64`` /
``boolean`` dtypes, so an integer column stays integer where a value is missing. Reading the topics
replays them from offset 0 up to their current ends (no consumer group); :func:`follow` keeps
following them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import pandas as pd
import pyarrow as pa

from bus.config import KafkaSettings, RunSettings
from common.settings import RUN_ID_PATTERN
from schemas.events import Event
from views.analytics import RunStats, load_stats, stats_from_topics
from views.analytics.live import stats_updates
from views.analytics.tables import (
    BY_NAME,
    DEFAULT_TABLES,
    TABLES,
    schema_markdown,
    stats_tables,
    table_spec,
)
from views.store import SampleStore

Source = str | os.PathLike[str] | SampleStore | RunSettings | RunStats | Iterable[Event[Any]]
T = TypeVar("T")

TABLE_NAMES: tuple[str, ...] = tuple(BY_NAME)
"""Every table's name, in catalog order."""
SUMMARY_TABLES: tuple[str, ...] = DEFAULT_TABLES
"""The tables ``looptool stats`` writes by default (the others have a row per vote or event: votes,
verdicts, relabels)."""


@dataclass(frozen=True)
class RunTopics:
    """A run's topics on a Kafka cluster: a source for every function here."""

    run_id: str
    kafka: KafkaSettings


def topics(run_id: str, bootstrap_servers: str, **kafka: Any) -> RunTopics:
    """The topics of run ``run_id`` on the cluster at ``bootstrap_servers``; ``kafka`` takes any other
    field of the ``[kafka]`` settings (``security_protocol``, ``sasl_username``, ...).

    Example::

        >>> run = analytics.topics("demo", "127.0.0.1:9092")
        >>> run.kafka.bootstrap_servers
        '127.0.0.1:9092'
    """
    if not RUN_ID_PATTERN.match(run_id):
        raise ValueError(f"run id {run_id!r} must match {RUN_ID_PATTERN.pattern}")
    return RunTopics(run_id, KafkaSettings(bootstrap_servers=bootstrap_servers, **kafka))


def _is_run(source: Any) -> bool:
    return isinstance(getattr(source, "kafka", None), KafkaSettings) and isinstance(
        getattr(source, "run_id", None), str
    )


async def load_async(source: Source) -> RunStats:
    """:func:`load` for code already in an event loop.

    Example::

        >>> stats = asyncio.run(analytics.load_async(store))
        >>> stats.events > 0
        True
    """
    if isinstance(source, RunStats):
        return source
    if _is_run(source):
        if not source.kafka.bootstrap_servers:  # type: ignore[union-attr]
            raise ValueError("the run's kafka.bootstrap_servers is not set")
        return await stats_from_topics(source)  # type: ignore[arg-type]
    return load_stats(source)  # type: ignore[arg-type]


def _run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, also where an event loop already runs (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()  # type: ignore[arg-type]


def load(source: Source) -> RunStats:
    """Read a run once (a store, its topics or events) into the rows every table is built from.

    Example::

        >>> stats = analytics.load(store)
        >>> analytics.load(stats) is stats  # a RunStats is a source too
        True
    """
    if isinstance(source, RunStats):
        return source
    if _is_run(source):
        return _run_sync(lambda: load_async(source))
    return load_stats(source)  # type: ignore[arg-type]


def table(name: str, source: Source) -> pa.Table:
    """One table by name (see :data:`TABLE_NAMES`) as an Arrow table with its documented schema.

    Example::

        >>> t = analytics.table("curation", store)
        >>> t.schema.field("seed_new_share").metadata[b"doc"].decode()[:32]
        '(seed + seed_new) / members; nul'
    """
    table_spec(name)
    return stats_tables(load(source), [name])[name]


def tables(source: Source, names: Sequence[str] | None = None) -> dict[str, pa.Table]:
    """Several tables (default: the summary tables of ``looptool stats``), reading the source once.

    Example::

        >>> sorted(analytics.tables(store, ["verdicts", "relabels"]))
        ['relabels', 'verdicts']
    """
    return stats_tables(load(source), names)


def frame(name: str, source: Source) -> pd.DataFrame:
    """One table by name as a pandas DataFrame (the Arrow table, converted).

    Example::

        >>> list(analytics.frame("expansion_outcomes", store).columns)
        ['round', 'outcome', 'candidates', 'share']
    """
    return table_spec(name).frame(load(source))


def schema(name: str) -> pa.Schema:
    """A table's Arrow schema; each field's metadata ``doc`` says what the column holds.

    Example::

        >>> analytics.schema("verdicts").names[:3]
        ['event_id', 'sample_id', 'round']
    """
    return table_spec(name).schema


def verdicts(source: Source) -> pd.DataFrame:
    """One row per Verdict: the judge's ruling on a mismatched probe (table ``verdicts``).

    Example::

        >>> v = analytics.verdicts(store)
        >>> set(v["verdict"]) <= {"PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG", "UNPARSEABLE"}
        True
    """
    return frame("verdicts", source)


def verdict_mix(source: Source, by: Literal["round", "checkpoint"] = "round") -> pd.DataFrame:
    """Per round (table ``verdict_mix``) or per checkpoint (``verdict_mix_by_checkpoint``): probes,
    matches, accuracy, each verdict, unjudged mismatches, relabels and reverts.

    Example::

        >>> mix = analytics.verdict_mix(store)
        >>> bool((mix["mismatched"] == mix[["pred_wrong", "label_wrong", "both_correct",
        ...     "both_wrong", "unparseable", "unjudged"]].sum(axis=1)).all())
        True
    """
    if by not in ("round", "checkpoint"):
        raise ValueError(f"by must be 'round' or 'checkpoint', not {by!r}")
    return frame("verdict_mix" if by == "round" else "verdict_mix_by_checkpoint", source)


def relabels(source: Source) -> pd.DataFrame:
    """One row per LabelCorrected: a relabel after LABEL_WRONG, or a revert (table ``relabels``).

    Example::

        >>> r = analytics.relabels(store)
        >>> list(r.columns[:3])
        ['event_id', 'sample_id', 'round']
    """
    return frame("relabels", source)


def expansion(source: Source) -> pd.DataFrame:
    """Per round: error seeds, candidates, verified, passed, pass rate, samples added (table ``expansion``).

    Example::

        >>> e = analytics.expansion(store)
        >>> bool((e["passed"] <= e["verified"]).all())
        True
    """
    return frame("expansion", source)


def expansion_outcomes(source: Source) -> pd.DataFrame:
    """Per round and outcome (passed, ``rule:<code>``, ``llm:<verdict>``, unverified): candidates and
    their share of the round's (table ``expansion_outcomes``).

    Example::

        >>> o = analytics.expansion_outcomes(store)
        >>> round(float(o[o["round"] == 1]["share"].sum()), 6)
        1.0
    """
    return frame("expansion_outcomes", source)


def curation(source: Source) -> pd.DataFrame:
    """Per round: D_j by source (seed, es, ee, hppl, seed_new), its seed-new share against the
    manifest's target, and whether the round closed (table ``curation``).

    Example::

        >>> c = analytics.curation(store)
        >>> bool(c.loc[c["round"] == 1, "closed"].iloc[0])
        True
    """
    return frame("curation", source)


def accuracy(source: Source, by: Literal["round", "checkpoint", "tool"] = "round") -> pd.DataFrame:
    """Probing accuracy (ToolMatch) per round, per checkpoint, or per round and tool: the key columns,
    then ``probed``, ``matched``, ``accuracy``.

    Example::

        >>> list(analytics.accuracy(store, by="tool").columns)
        ['round', 'tool', 'probed', 'matched', 'accuracy']
    """
    if by == "tool":
        return frame("accuracy_by_tool", source)
    if by == "round":
        return verdict_mix(source)[["round", "probed", "matched", "accuracy"]]
    if by == "checkpoint":
        mix = verdict_mix(source, "checkpoint")
        return mix[["checkpoint_id", "round", "step", "probed", "matched", "accuracy"]]
    raise ValueError(f"by must be 'round', 'checkpoint' or 'tool', not {by!r}")


def error_types(source: Source) -> pd.DataFrame:
    """Per round and ToolMatch error type: mismatched probes showing it, its shares, and the judge's
    verdicts on them (table ``error_types``).

    Example::

        >>> et = analytics.error_types(store)
        >>> bool((et["share_of_mismatches"] <= 1).all())
        True
    """
    return frame("error_types", source)


def dead_letters(source: Source) -> pd.DataFrame:
    """One row per DeadLetter: what a stage could not process and why (table ``dead_letters``).

    Example::

        >>> list(analytics.dead_letters(store).columns)
        ['event_id', 'stage', 'error_type', 'reason', 'source_ref']
    """
    return frame("dead_letters", source)


async def follow(source: RunSettings, *, refresh_s: float = 2.0) -> AsyncIterator[RunStats]:
    """Follow a run's topics and yield a fresh :class:`RunStats` whenever events arrived (at most
    every ``refresh_s`` while catching up); leave the loop to stop. Every function here takes it, so
    it keeps every event's row (memory grows with the run; ``looptool stats --follow`` keeps running
    counts instead). A run with no topics yet (a dashboard started before the run) is waited for.

    Example (a dashboard loop; ``run`` is :func:`topics`' result)::

        async def dashboard(run):
            async for stats in analytics.follow(run):
                mix = analytics.verdict_mix(stats)
                print(mix[["round", "probed", "accuracy", "label_wrong"]].to_string(index=False))
    """
    if not _is_run(source):
        raise TypeError("follow reads a run's topics: pass analytics.topics(...) or the app's Settings")
    async for stats in stats_updates(source, refresh_s=refresh_s):
        assert isinstance(stats, RunStats)  # per-event rows: every function here reads its tables
        yield stats


__all__ = (
    "SUMMARY_TABLES",
    "TABLES",
    "TABLE_NAMES",
    "RunStats",
    "RunTopics",
    "Source",
    "accuracy",
    "curation",
    "dead_letters",
    "error_types",
    "expansion",
    "expansion_outcomes",
    "follow",
    "frame",
    "load",
    "load_async",
    "relabels",
    "schema",
    "schema_markdown",
    "table",
    "tables",
    "topics",
    "verdict_mix",
    "verdicts",
)
