"""The analytics as data: a catalog of tables with one fixed Arrow schema each.

``looptool stats --format json|csv|parquet`` and the public API (:mod:`looptool.analytics`) both read
this catalog, so a column means the same everywhere. Each table is built from a
:class:`~views.analytics.frames.RunStats` and conformed to its schema: the columns in the documented
order and types (integers stay integers; a missing value is null, never NaN), names in snake_case.

Summary tables (what the rich tables of ``looptool stats`` show) are written by default; the
per-event tables (``detail``) on request. Column docs travel with the schema (Arrow field metadata,
so Parquet files carry them) and :func:`schema_markdown` renders the catalog for docs/analytics.md.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from views.analytics.frames import NO_CHECKPOINT, SOURCES, VERDICT_LABELS, RunStats, StatsView

FORMAT_NAME = "looptool-stats"
FORMAT_VERSION = 1  # bumped only when a column changes meaning or goes away (adding one does not)
FileFormat = Literal["json", "csv", "parquet"]

_INT, _FLOAT, _BOOL, _STR = pa.int64(), pa.float64(), pa.bool_(), pa.string()
_TYPE_NAMES = {_INT: "integer", _FLOAT: "number", _BOOL: "boolean", _STR: "string"}


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[self.type]


@dataclass(frozen=True)
class StatsTable:
    """One table of the analytics: its name, what a row is, its columns, and how to build it."""

    name: str
    doc: str  # what one row is
    key: tuple[str, ...]  # the columns that identify a row
    columns: tuple[Column, ...]
    build: Callable[[Any], pd.DataFrame]  # a StatsView; a RunStats for a per-event (detail) table
    detail: bool = False  # a per-event table: not in ``stats``' default output

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def schema(self) -> pa.Schema:
        fields = [pa.field(c.name, c.type).with_metadata({"doc": c.doc}) for c in self.columns]
        return pa.schema(
            fields,
            metadata={
                "table": self.name,
                "doc": self.doc,
                "key": ",".join(self.key),
                "format": f"{FORMAT_NAME}/{FORMAT_VERSION}",
            },
        )

    def frame(self, stats: StatsView) -> pd.DataFrame:
        """The table as a pandas DataFrame (nullable integer and boolean columns, a plain RangeIndex)."""
        return self.arrow(stats).to_pandas(types_mapper=_pandas_type)

    def arrow(self, stats: StatsView) -> pa.Table:
        """The table as an Arrow table with exactly :attr:`schema`."""
        return conform(self.build(stats), self.schema)


def _pandas_type(arrow_type: pa.DataType) -> Any:
    # Nullable extension types keep an integer column integer when it has a null.
    return {_INT: pd.Int64Dtype(), _BOOL: pd.BooleanDtype()}.get(arrow_type)


def conform(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """``frame``'s columns named in ``schema``, in its order and types (NaN and None become null)."""
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise ValueError(f"table {schema.metadata[b'table'].decode()} lacks columns {missing}")
    arrays = []
    for field in schema:
        values = frame[field.name]
        if field.type == _INT:  # an integer column with a null came out of pandas as float
            values = values.astype("Float64").round().astype("Int64")
        elif field.type == _BOOL:
            values = values.astype("boolean")
        elif field.type == _STR:
            values = values.astype(object).where(values.notna(), None)
        arrays.append(pa.array(values, type=field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


# --- the builders -------------------------------------------------------------------------------

_VERDICT_COLUMNS = {label: label.lower() for label in VERDICT_LABELS}
_SOURCE_COLUMNS = {source: source.lower() for source in SOURCES}


def _verdict_mix(stats: StatsView) -> pd.DataFrame:
    return stats.verdict_mix("round").reset_index().rename(columns=_VERDICT_COLUMNS)


def _verdict_mix_by_checkpoint(stats: StatsView) -> pd.DataFrame:
    frame = stats.verdict_mix("checkpoint").reset_index().rename(columns=_VERDICT_COLUMNS)
    # The rich table shows events without a checkpoint as "(none)"; as data that is a null.
    frame["checkpoint_id"] = frame["checkpoint_id"].where(frame["checkpoint_id"] != NO_CHECKPOINT, None)
    return frame


def _expansion(stats: StatsView) -> pd.DataFrame:
    return stats.expansion_summary().reset_index()


def _expansion_outcomes(stats: StatsView) -> pd.DataFrame:
    return stats.expansion_outcomes()


def _curation(stats: StatsView) -> pd.DataFrame:
    return stats.curation().reset_index().rename(columns=_SOURCE_COLUMNS)


def _accuracy_by_tool(stats: StatsView) -> pd.DataFrame:
    return stats.accuracy_by_tool().rename(columns={"probes": "probed"})


def _error_types(stats: StatsView) -> pd.DataFrame:
    return stats.error_types().rename(columns={"probes": "mismatched", **_VERDICT_COLUMNS})


_BFCL_SCORES = ("non_live_ast", "live_ast", "irrelevance", "relevance", "multi_turn", "overall")


def _bfcl(stats: StatsView) -> pd.DataFrame:
    from evaluation.report import heldout_accuracy, summary_of_payload

    rows = []
    for p in sorted(stats.evaluations, key=lambda p: (p.round, p.step, p.checkpoint_id)):
        summary = summary_of_payload(p)
        rows.append(
            {
                "checkpoint_id": p.checkpoint_id,
                "round": p.round,
                "step": p.step,
                "final": p.final,
                "suite": p.suite,
                "suite_version": p.suite_version,
                **{name: summary.column(name) for name in _BFCL_SCORES},
                "heldout_toolmatch": heldout_accuracy(p),
                "items": summary.total,
                "correct": summary.correct,
                "wall_time_s": p.wall_time_s,
            }
        )
    return pd.DataFrame(rows, columns=[c.name for c in _BFCL_COLUMNS])


def _promotions(stats: StatsView) -> pd.DataFrame:
    rows = []
    for p in stats.promotions:
        promoted = type(p).__name__ == "PolicyPromoted"
        rows.append(
            {
                "round": p.round,
                "step": p.step,
                "checkpoint_id": p.checkpoint_id,
                "final": p.final,
                "decision": "promoted" if promoted else "refused",
                "baseline_checkpoint_id": p.previous_checkpoint_id if promoted else p.promoted_checkpoint_id,
                "evaluation_event_id": p.evaluation_event_id,
                "reason": p.reason,
                "figures_json": json.dumps(p.figures, sort_keys=True),
                "baseline_figures_json": json.dumps(
                    p.previous_figures if promoted else p.promoted_figures, sort_keys=True
                ),
                "deltas_json": json.dumps(p.deltas, sort_keys=True),
            }
        )
    return pd.DataFrame(rows, columns=[c.name for c in _PROMOTION_COLUMNS])


def _judges(stats: StatsView) -> pd.DataFrame:
    return stats.judge_agreement().reset_index()


def _truncations(stats: StatsView) -> pd.DataFrame:
    return stats.truncations().reset_index()


def _votes(stats: RunStats) -> pd.DataFrame:
    return stats.votes.sort_values(["verdict_event_id", "judge_model"], kind="stable").reset_index(drop=True)


def _rows(attribute: str) -> Callable[[RunStats], pd.DataFrame]:
    def build(stats: RunStats) -> pd.DataFrame:
        frame: pd.DataFrame = getattr(stats, attribute)
        return frame.sort_values("event_id", kind="stable").reset_index(drop=True)

    return build


# --- the catalog --------------------------------------------------------------------------------

_ROUND = Column("round", _INT, "The round j (D_j's index; probes of round j use round j's checkpoint).")
_VERDICT_MEANINGS = {
    "PRED_WRONG": "judged PRED_WRONG: the label holds, the prediction is wrong (an error seed).",
    "LABEL_WRONG": "judged LABEL_WRONG: the label is wrong (relabelled; an error seed).",
    "BOTH_CORRECT": "judged BOTH_CORRECT: prediction and label are both acceptable.",
    "BOTH_WRONG": "judged BOTH_WRONG: neither is right.",
    "UNPARSEABLE": "whose judge answer stayed unreadable (a DeadLetter keeps the raw text).",
    "NO_QUORUM": "on which the judge panel reached no quorum (dropped, or deferred to a later round).",
}
_VERDICTS = tuple(
    Column(_VERDICT_COLUMNS[label], _INT, f"Mismatches {_VERDICT_MEANINGS[label]}")
    for label in VERDICT_LABELS
)
_MIX = (
    Column("probed", _INT, "Members probed (one ProbeResult per sample and round)."),
    Column("matched", _INT, "Probes whose prediction matched the label (ToolMatch)."),
    Column("accuracy", _FLOAT, "matched / probed; null when nothing was probed."),
    Column("mismatched", _INT, "probed - matched."),
    *_VERDICTS,
    Column("unjudged", _INT, "Mismatches with no Verdict (yet)."),
    Column("relabels", _INT, "LabelCorrected events that replaced a label."),
    Column("reverts", _INT, "LabelCorrected events that undid an earlier correction."),
)
_BFCL_COLUMNS = (
    Column("checkpoint_id", _STR, "The evaluated checkpoint."),
    _ROUND,
    Column("step", _INT, "The trainer step of the checkpoint."),
    Column("final", _BOOL, "Whether it is the round's final checkpoint."),
    Column("suite", _STR, "The benchmark (BFCL v4)."),
    Column("suite_version", _STR, "The benchmark's version (bfcl-eval's)."),
    *(
        Column(name, _FLOAT, f"BFCL's {name} summary column (0..1); null when no category of it ran.")
        for name in _BFCL_SCORES
    ),
    Column("heldout_toolmatch", _FLOAT, "ToolMatch accuracy on the held-out set; null without one."),
    Column("items", _INT, "Benchmark items scored."),
    Column("correct", _INT, "Items answered correctly."),
    Column("wall_time_s", _FLOAT, "Seconds the evaluation took."),
)
_PROMOTION_COLUMNS = (
    _ROUND,
    Column("step", _INT, "The trainer step of the candidate checkpoint."),
    Column("checkpoint_id", _STR, "The candidate checkpoint."),
    Column("final", _BOOL, "Whether the candidate is its round's final checkpoint."),
    Column("decision", _STR, "promoted (PolicyPromoted) or refused (PromotionRefused)."),
    Column("baseline_checkpoint_id", _STR, "The policy it was compared with (the one promoted before)."),
    Column("evaluation_event_id", _STR, "The CheckpointEvaluated the decision read."),
    Column("reason", _STR, "The gate's reason, in words."),
    Column("figures_json", _STR, "The candidate's figures, a JSON object name -> value."),
    Column("baseline_figures_json", _STR, "The baseline's figures, a JSON object name -> value."),
    Column("deltas_json", _STR, "candidate - baseline per figure, a JSON object."),
)

TABLES: tuple[StatsTable, ...] = (
    StatsTable(
        "verdict_mix",
        "One row per round: D_j's size, probing accuracy, the judge's verdicts on the mismatches, relabels.",
        ("round",),
        (_ROUND, Column("members", _INT, "Members of D_j (CuratedSample events of the round)."), *_MIX),
        _verdict_mix,
    ),
    StatsTable(
        "verdict_mix_by_checkpoint",
        "One row per policy checkpoint that was probed: the same counts as verdict_mix.",
        ("checkpoint_id",),
        (
            Column("checkpoint_id", _STR, "The checkpoint the probes ran on; null for events without one."),
            Column("round", _INT, "The checkpoint's round (from its CheckpointPublished; null if unseen)."),
            Column("step", _INT, "The checkpoint's trainer step (null if unseen)."),
            *_MIX,
        ),
        _verdict_mix_by_checkpoint,
    ),
    StatsTable(
        "expansion",
        "One row per round: error-driven expansion from the round's error seeds to new samples.",
        ("round",),
        (
            _ROUND,
            Column("error_seeds", _INT, "Verdicts PRED_WRONG or LABEL_WRONG (the seeds of expansion)."),
            Column("candidates", _INT, "ExpansionCandidate events (one per candidate id)."),
            Column("parsed", _INT, "Candidates whose generated sample parsed."),
            Column("verified", _INT, "Candidates with a VerificationResult."),
            Column("passed", _INT, "Candidates that passed both verification tiers."),
            Column("pass_rate", _FLOAT, "passed / verified; null when none was verified."),
            Column("added", _INT, "SampleAdded events of origin expansion."),
            Column("new_samples", _INT, "Of those, samples not seen before (content-hash ids)."),
        ),
        _expansion,
    ),
    StatsTable(
        "expansion_outcomes",
        "One row per round and outcome: how the round's expansion candidates ended.",
        ("round", "outcome"),
        (
            _ROUND,
            Column(
                "outcome",
                _STR,
                "passed, rule:<code> (the first rule violation), llm:<verdict> (the LLM tier's), "
                "or unverified.",
            ),
            Column("candidates", _INT, "Candidates with this outcome."),
            Column("share", _FLOAT, "Their share of the round's candidates."),
        ),
        _expansion_outcomes,
    ),
    StatsTable(
        "curation",
        "One row per round: D_j by source (Eq. 5) and its seed-new share against the schedule.",
        ("round",),
        (
            _ROUND,
            Column("members", _INT, "Members of D_j."),
            *(Column(_SOURCE_COLUMNS[s], _INT, f"Members from source {s}.") for s in SOURCES),
            Column("expansion_members", _INT, "Members that entered the pool by expansion."),
            Column("seed_new_share", _FLOAT, "(seed + seed_new) / members; null for an empty round."),
            Column("seed_new_target", _FLOAT, "The seed-new fraction the RoundClosed manifest targeted."),
            Column("closed", _BOOL, "Whether the round's RoundClosed manifest was published."),
            Column("content_hash", _STR, "The manifest's content hash of D_j; null until closed."),
        ),
        _curation,
    ),
    StatsTable(
        "accuracy_by_tool",
        "One row per round and tool named in the labels: probing accuracy by tool.",
        ("round", "tool"),
        (
            _ROUND,
            Column("tool", _STR, "A tool the label calls, or '(no call)' for a text answer."),
            Column("probed", _INT, "Probes whose label calls this tool."),
            Column("matched", _INT, "Of those, probes that matched."),
            Column("accuracy", _FLOAT, "matched / probed."),
        ),
        _accuracy_by_tool,
    ),
    StatsTable(
        "error_types",
        "One row per round and ToolMatch error type: how often it appears and how the judge ruled on it.",
        ("round", "error_type"),
        (
            _ROUND,
            Column("error_type", _STR, "The kind of a ToolMatch diff (wrong tool, argument value, ...)."),
            Column("mismatched", _INT, "Mismatched probes showing this error type."),
            Column("share_of_probes", _FLOAT, "mismatched / the round's probes."),
            Column("share_of_mismatches", _FLOAT, "mismatched / the round's mismatched probes."),
            *(Column(c.name, _INT, f"Of those, the ones judged {c.name.upper()}.") for c in _VERDICTS),
        ),
        _error_types,
    ),
    StatsTable(
        "bfcl",
        "One row per CheckpointEvaluated: the checkpoint's BFCL v4 summary scores.",
        ("checkpoint_id", "step"),
        _BFCL_COLUMNS,
        _bfcl,
    ),
    StatsTable(
        "promotions",
        "One row per promotion-gate decision (PolicyPromoted or PromotionRefused), in log order.",
        ("evaluation_event_id",),
        _PROMOTION_COLUMNS,
        _promotions,
    ),
    StatsTable(
        "dead_letters",
        "One row per DeadLetter event: a record a stage could not process, and why.",
        ("event_id",),
        (
            Column("event_id", _STR, "The DeadLetter event's id."),
            Column("stage", _STR, "The stage (or consumer) that gave up on the record."),
            Column("error_type", _STR, "The kind of failure (the error's class name)."),
            Column("reason", _STR, "The reason, in words."),
            Column(
                "source_ref",
                _STR,
                "What it concerns: the input file and line, or an event id; null for a topic record.",
            ),
        ),
        _rows("dead_letters"),
    ),
    StatsTable(
        "judges",
        "One row per judge model: how its votes compare with the verdicts, and how often it flips with "
        "the order the responses are shown in.",
        ("judge_model",),
        (
            Column("judge_model", _STR, "The judge model (a [judge] or [[judge.panel]] entry)."),
            Column("verdicts", _INT, "Verdicts it answered on."),
            Column("counted", _INT, "Of those, the ones where its vote counted."),
            Column("agreed", _INT, "Counted votes equal to the verdict, on verdicts the panel decided."),
            Column("agreement", _FLOAT, "agreed / its counted votes on decided verdicts; null without any."),
            Column("two_order", _INT, "Verdicts where it was read in both orders (label first and second)."),
            Column("flipped", _INT, "Of those, the ones where its two answers disagree."),
            Column("flip_rate", _FLOAT, "flipped / two_order; null without two-order answers."),
            Column("answers", _INT, "Its answers (one per order asked)."),
            Column("unparseable", _INT, "Answers that could not be read, also after the re-asks."),
            Column("truncated", _INT, "Answers cut off by the token budget, also on the larger retry."),
        ),
        _judges,
    ),
    StatsTable(
        "truncations",
        "One row per stage: role answers dead-lettered because their token budget cut them off twice.",
        ("stage",),
        (
            Column("stage", _STR, "judge, expand or verify."),
            Column("truncated", _INT, "TruncatedAnswer dead letters of the stage."),
        ),
        _truncations,
    ),
    StatsTable(
        "votes",
        "One row per Verdict and judge: that judge's answers behind the verdict.",
        ("verdict_event_id", "judge_model"),
        (
            Column("verdict_event_id", _STR, "The Verdict event's id."),
            _ROUND,
            Column("judge_model", _STR, "The judge model."),
            Column("answers", _INT, "Its answers (2 with two-order judging)."),
            Column("read", _INT, "Answers the verdict reader could read."),
            Column("unparseable", _INT, "Answers it could not read."),
            Column("truncated", _INT, "Answers cut off by the token budget twice."),
            Column("counted", _BOOL, "Whether its vote counted (read, and with two orders, agreeing)."),
            Column("vote", _STR, "Its vote, when it counted."),
            Column("verdict", _STR, "The verdict of the panel."),
            Column("flipped", _BOOL, "Its two answers (two-order judging) disagree."),
        ),
        _votes,
        detail=True,
    ),
    StatsTable(
        "verdicts",
        "One row per Verdict (the first per probe): the judge's ruling on one mismatched probe.",
        ("event_id",),
        (
            Column("event_id", _STR, "The Verdict event's id."),
            Column("sample_id", _STR, "The sample that was probed."),
            _ROUND,
            Column("checkpoint_id", _STR, "The checkpoint the probe ran on."),
            Column("probe_event_id", _STR, "The ProbeResult judged."),
            Column(
                "verdict",
                _STR,
                "PRED_WRONG, LABEL_WRONG, BOTH_CORRECT, BOTH_WRONG, UNPARSEABLE or NO_QUORUM.",
            ),
            Column("decided_by", _STR, "judge, simulation, ablation, or rules (older runs only)."),
            Column(
                "judge_model",
                _STR,
                "The model whose answer the verdict shows; empty when the rules decided (older runs).",
            ),
            Column("attempts", _INT, "Times the judge was asked before an answer parsed."),
        ),
        _rows("verdicts"),
        detail=True,
    ),
    StatsTable(
        "relabels",
        "One row per LabelCorrected: a label replaced after a LABEL_WRONG verdict, or a revert.",
        ("event_id",),
        (
            Column("event_id", _STR, "The LabelCorrected event's id."),
            Column("sample_id", _STR, "The relabelled sample."),
            _ROUND,
            Column("checkpoint_id", _STR, "The checkpoint of the probe behind the verdict."),
            Column("verdict_event_id", _STR, "The Verdict that asked for it (null for a manual revert)."),
            Column("revert", _BOOL, "Whether it undoes an earlier correction."),
            Column("reason", _STR, "Why: the verdict and the judge's error analysis, or the revert's note."),
        ),
        _rows("relabels"),
        detail=True,
    ),
)

BY_NAME: dict[str, StatsTable] = {table.name: table for table in TABLES}
DEFAULT_TABLES: tuple[str, ...] = tuple(table.name for table in TABLES if not table.detail)


def table_spec(name: str) -> StatsTable:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown table {name!r}; known: {', '.join(BY_NAME)}") from None


def resolve_names(names: Iterable[str] | None) -> list[str]:
    """The tables asked for (the default set when none), each known, in catalog order."""
    if names is None:
        return list(DEFAULT_TABLES)
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        table_spec(name)
    return [table.name for table in TABLES if table.name in wanted]


def stats_tables(stats: StatsView, names: Iterable[str] | None = None) -> dict[str, pa.Table]:
    """The named tables (default: the summary tables) as Arrow tables; a per-event table needs the
    rows of a :class:`RunStats`."""
    names = resolve_names(names)
    for name in names:
        if BY_NAME[name].detail and not isinstance(stats, RunStats):
            raise ValueError(
                f"table {name} has a row per event: it is built from a RunStats, not running counts"
            )
    return {name: BY_NAME[name].arrow(stats) for name in names}


# --- output -------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def stats_document(
    stats: StatsView, names: Iterable[str] | None = None, *, run_id: str | None = None
) -> dict[str, Any]:
    """The JSON document of ``stats --format json``: every table with its schema and rows."""
    tables: dict[str, Any] = {}
    for name, table in stats_tables(stats, names).items():
        spec = BY_NAME[name]
        tables[name] = {
            "doc": spec.doc,
            "key": list(spec.key),
            "columns": [{"name": c.name, "type": c.type_name, "doc": c.doc} for c in spec.columns],
            "rows": [{k: _json_value(v) for k, v in row.items()} for row in table.to_pylist()],
        }
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "run_id": run_id,
        "events": stats.events,
        "undecodable": stats.undecodable,
        "tables": tables,
    }


def write_json(document: dict[str, Any], stream: IO[str], *, lines: bool = False) -> None:
    """One document, indented, or (``lines``) on one line, as one record of a JSON-lines stream."""
    if lines:
        text = json.dumps(document, allow_nan=False, separators=(",", ":"))
    else:
        text = json.dumps(document, allow_nan=False, indent=2)
    stream.write(text + "\n")
    stream.flush()


def table_path(folder: Path, name: str, fmt: FileFormat) -> Path:
    """Where a table goes when several are written to a folder: ``<folder>/<table>.<format>``."""
    return folder / f"{name}.{fmt}"


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename: a reader never sees half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_tables(tables: dict[str, pa.Table], folder: Path, fmt: Literal["csv", "parquet"]) -> list[Path]:
    """Each table into ``<folder>/<table>.<fmt>`` (replaced atomically, so a dashboard may read any time)."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"cannot write tables as {fmt!r}; csv or parquet")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out must be a folder for {fmt} (one file per table): {folder} is a file")
    folder.mkdir(parents=True, exist_ok=True)
    csv_options = pa_csv.WriteOptions(quoting_style="needed")
    paths = []
    for name, table in tables.items():
        path = table_path(folder, name, fmt)
        if fmt == "csv":
            _atomic_write(path, lambda target, t=table: pa_csv.write_csv(t, target, csv_options))
        else:
            _atomic_write(path, lambda target, t=table: pq.write_table(t, target))
        paths.append(path)
    return paths


# --- docs ---------------------------------------------------------------------------------------


def schema_markdown(tables: Sequence[StatsTable] = TABLES) -> str:
    """The catalog as Markdown (docs/analytics.md holds this text; a test keeps the two equal)."""
    parts = []
    for table in tables:
        kind = "per event, on request" if table.detail else "summary, written by default"
        parts.append(f"#### `{table.name}` ({kind})\n\n{table.doc} Key: {', '.join(table.key)}.\n")
        parts.append("| column | type | meaning |\n| --- | --- | --- |")
        parts.extend(f"| `{c.name}` | {c.type_name} | {c.doc} |" for c in table.columns)
        parts.append("")
    return "\n".join(parts)
