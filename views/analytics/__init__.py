"""Verdict analytics: what each round's probing, judging, relabelling, expansion and curation did.

``collect`` folds events into rows (from a sample store, a replay of the topics, or any events),
``frames`` derives the pandas DataFrames, ``render`` the rich tables, ``plot`` the PNG charts, and
``live`` keeps the tables up to date while a run goes on. The functions below are the one-call
entry points for notebooks: each takes a store (object or folder) or events.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from views.analytics.collect import EventSource, StatsCollector, load_stats, stats_from_topics
from views.analytics.frames import RunStats
from views.analytics.plot import plot_stats
from views.analytics.render import render_stats, tables_text


def verdicts_frame(source: EventSource) -> pd.DataFrame:
    """One row per verdict (round, checkpoint, sample, verdict, who decided it)."""
    return load_stats(source).verdicts


def verdict_mix_frame(source: EventSource, by: Literal["round", "checkpoint"] = "round") -> pd.DataFrame:
    return load_stats(source).verdict_mix(by)


def relabels_frame(source: EventSource) -> pd.DataFrame:
    return load_stats(source).relabels


def expansion_frame(source: EventSource) -> pd.DataFrame:
    return load_stats(source).expansion_summary()


def expansion_outcomes_frame(source: EventSource) -> pd.DataFrame:
    return load_stats(source).expansion_outcomes()


def accuracy_by_tool_frame(source: EventSource) -> pd.DataFrame:
    return load_stats(source).accuracy_by_tool()


def error_types_frame(source: EventSource) -> pd.DataFrame:
    return load_stats(source).error_types()


def curation_frame(source: EventSource) -> pd.DataFrame:
    return load_stats(source).curation()


__all__ = (
    "EventSource",
    "RunStats",
    "StatsCollector",
    "accuracy_by_tool_frame",
    "curation_frame",
    "error_types_frame",
    "expansion_frame",
    "expansion_outcomes_frame",
    "load_stats",
    "plot_stats",
    "relabels_frame",
    "render_stats",
    "stats_from_topics",
    "tables_text",
    "verdict_mix_frame",
    "verdicts_frame",
)
