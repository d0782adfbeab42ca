"""export: D_J with the labels it was curated with, as jsonl, parquet, a datasets folder, OpenAI chat
fine-tuning jsonl or verl parquet.

Every format holds the same rows in sample-id order, and nothing in a file depends on when or where
it was written, so exporting the same round twice gives byte-identical files:

- ``jsonl``: one JSON object per line, in this project's ``paper`` record format (``tools``,
  ``messages``, ``label`` as an Action object, ``current_time`` when the sample has its own) plus the
  curation fields, so an export can be ingested again (``looptool ingest``) and yields the same
  samples, shown to the model in the same prompts.
- ``parquet``: one row per member; ``messages`` and ``label`` as nested columns (call arguments as
  JSON strings, since their shape varies per tool), ``tools`` as JSON, ``conversation_time``.

JSON keeps the key order the run holds (a tool's parameters, a call's arguments), not a sorted
order: the order is part of what the model is shown, and a prompt built from an export must equal
the run's.
- ``hf``: the same table saved as a ``datasets.Dataset`` folder (``save_to_disk``), its fingerprint
  the dataset's content hash.
- ``openai``: OpenAI's chat fine-tuning jsonl (also what TRL and LLaMA-Factory read): per sample
  ``messages`` (the context, then the label as the last assistant turn) and ``tools``; tool calls
  with ids that the tool results answer, arguments as JSON strings (OpenAI's way) or, with
  ``call_arguments="object"``, as objects (what Hugging Face chat templates render with ``tojson``);
  earlier assistant turns carry ``"weight": 0`` (context, not trained on), so the one sample comes
  back from ``looptool ingest``.
- ``verl``: the trainer's RLHF parquet, written by :func:`trainer.verl.data.write_verl_parquet`
  (one writer for training and export).

Files are written beside their target and moved into place, so a failed export leaves no half file
and nothing beside it; an ``hf`` folder replaces only an empty folder or an earlier export (``--force``
for anything else), so a mistyped ``--out`` never wipes a folder. A symlink is followed (the file it
names is replaced, the link stays); ``-`` is standard output, and a target that is neither a file nor
a folder (a FIFO, a terminal, ``/dev/null``) is written through, as a shell's ``>`` would: the export
is built first, then copied into it, since such a target cannot be renamed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from common.logs import get_logger
from toolcall.canonical import canonical_json, compact_json
from toolcall.prompts import DEFAULT_CURRENT_TIME
from toolcall.specs import load_tools
from toolcall.types import Action, Message, Sample, ToolCall
from views.config import StoreRunSettings
from views.replay import Cut, DatasetMember, ReplayError, RoundDataset, dataset_at

log = get_logger(__name__)

ExportFormat = Literal["jsonl", "parquet", "hf", "openai", "verl"]
# How an openai export writes a call's arguments: OpenAI's API and fine-tuning take a JSON string;
# Hugging Face chat templates (Llama 3.x, Qwen2.5, Mistral, ...) render ``arguments | tojson`` and so
# need an object (a string would be shown to the model as a quoted, escaped string).
CallArguments = Literal["string", "object"]
CALL_ARGUMENTS: tuple[str, ...] = ("string", "object")
EXPORT_FORMATS: tuple[str, ...] = ("jsonl", "parquet", "hf", "openai", "verl")
_SUFFIX = {
    "jsonl": ".jsonl",
    "parquet": ".parquet",
    "hf": ".hf",
    "openai": ".openai.jsonl",
    "verl": ".verl.parquet",
}

_CALL = pa.struct([pa.field("name", pa.string()), pa.field("arguments", pa.string())])
DATASET_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("round", pa.int32(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("origin", pa.string()),
        pa.field("seed_sample_id", pa.string()),
        pa.field("tools", pa.string(), nullable=False),
        pa.field(
            "messages",
            pa.list_(
                pa.struct(
                    [
                        pa.field("role", pa.string()),
                        pa.field("content", pa.string()),
                        pa.field("tool_calls", pa.list_(_CALL)),
                        pa.field("name", pa.string()),
                    ]
                )
            ),
            nullable=False,
        ),
        pa.field(
            "label",
            pa.struct(
                [
                    pa.field("calls", pa.list_(_CALL)),
                    pa.field("text", pa.string()),
                    pa.field("ordered", pa.bool_()),
                ]
            ),
            nullable=False,
        ),
        pa.field("label_event_id", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("conversation_time", pa.string()),
    ]
)


class ExportError(ValueError):
    """The dataset cannot be exported as asked (unknown format, or D_J fails its manifest check)."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    round: int
    rows: int
    content_hash: str
    undecodable: int = 0  # records of the topics that did not decode (RoundDataset.undecodable)


# --- rows ---------------------------------------------------------------------------------------


def _calls(calls: Sequence[ToolCall]) -> list[dict[str, str]]:
    return [{"name": c.name, "arguments": compact_json(c.arguments)} for c in calls]


def jsonl_record(member: DatasetMember) -> dict[str, Any]:
    """The jsonl record of a member: a ``paper`` record (re-ingestible) plus its curation fields."""
    return {
        "sample_id": member.sample_id,
        "round": member.round,
        "source": member.source,
        "origin": member.origin,
        "seed_sample_id": member.seed_sample_id,
        "tools": [tool.model_dump(mode="json") for tool in member.tools],
        "messages": [message.model_dump(mode="json") for message in member.messages],
        "label": member.label.model_dump(mode="json"),
        "label_event_id": member.label_event_id,
        "content_hash": member.content_hash,
        **({"current_time": member.conversation_time} if member.conversation_time else {}),
    }


def call_id(sample_id: str, turn: int, index: int) -> str:
    """A tool call's id, the same in every export: 9 letters and digits, as Mistral's chat template
    demands (OpenAI's and the others take any string)."""
    return hashlib.sha256(f"{sample_id}:{turn}:{index}".encode()).hexdigest()[:9]


def _openai_calls(
    calls: Sequence[ToolCall], sample_id: str, turn: int, arguments: CallArguments
) -> list[dict[str, Any]]:
    return [
        {
            "id": call_id(sample_id, turn, index),
            "type": "function",
            "function": {
                "name": call.name,
                "arguments": compact_json(call.arguments) if arguments == "string" else call.arguments,
            },
        }
        for index, call in enumerate(calls)
    ]


def openai_record(member: DatasetMember, call_arguments: CallArguments = "string") -> dict[str, Any]:
    """The OpenAI chat fine-tuning record of a member: its context, then its label as the last
    assistant turn, and its tools. Fields are left out rather than written empty or null; call
    arguments are JSON strings, or objects with ``call_arguments="object"``."""
    messages: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []  # the last assistant turn's calls that no tool result answered yet
    for turn, message in enumerate(member.messages):
        entry: dict[str, Any] = {"role": message.role}
        if message.content or message.role != "assistant":
            entry["content"] = message.content
        if message.role == "assistant":
            calls = _openai_calls(message.tool_calls, member.sample_id, turn, call_arguments)
            pending = list(calls)
            if calls:
                entry["tool_calls"] = calls
            entry["weight"] = 0  # context: only the label is trained on (and read back as the sample)
        elif message.role == "tool":
            # Results answer the calls in order (the ingest readers pair them the same way).
            answered = pending.pop(0) if pending else None
            if answered is not None:
                entry["tool_call_id"] = answered["id"]
            if message.name is not None and (
                answered is None or answered["function"]["name"] != message.name
            ):
                entry["name"] = message.name
        messages.append(entry)
    label = member.label
    final: dict[str, Any] = {"role": "assistant"}
    if label.text:
        final["content"] = label.text
    if label.calls:
        final["tool_calls"] = _openai_calls(
            label.calls, member.sample_id, len(member.messages), call_arguments
        )
    messages.append(final)
    tools = [
        {"type": "function", "function": {k: v for k, v in tool.to_openai().items() if v != ""}}
        for tool in member.tools
    ]
    return {
        "messages": messages,
        **({"tools": tools} if tools else {}),
        **({"ordered": True} if label.ordered else {}),  # read by the openai reader; not OpenAI's
        **({"current_time": member.conversation_time} if member.conversation_time else {}),
    }


def table_row(member: DatasetMember) -> dict[str, Any]:
    """The parquet / datasets row of a member (nested columns, JSON where the shape varies)."""
    return {
        "sample_id": member.sample_id,
        "round": member.round,
        "source": member.source,
        "origin": member.origin,
        "seed_sample_id": member.seed_sample_id,
        "tools": compact_json([tool.model_dump(mode="json") for tool in member.tools]),
        "messages": [
            {"role": m.role, "content": m.content, "tool_calls": _calls(m.tool_calls), "name": m.name}
            for m in member.messages
        ],
        "label": {
            "calls": _calls(member.label.calls),
            "text": member.label.text,
            "ordered": member.label.ordered,
        },
        "label_event_id": member.label_event_id,
        "content_hash": member.content_hash,
        "conversation_time": member.conversation_time,
    }


def dataset_table(dataset: RoundDataset) -> pa.Table:
    return pa.Table.from_pylist([table_row(m) for m in dataset.members], schema=DATASET_SCHEMA)


def _call_from_row(row: dict[str, Any]) -> ToolCall:
    return ToolCall(name=row["name"], arguments=json.loads(row["arguments"]))


def sample_from_row(row: dict[str, Any]) -> Sample:
    """A parquet / datasets row back to the sample it holds (the inverse of :func:`table_row`)."""
    messages = [
        Message(
            role=m["role"],
            content=m["content"] or "",
            tool_calls=[_call_from_row(c) for c in m["tool_calls"] or []],
            name=m["name"],
        )
        for m in row["messages"]
    ]
    label = row["label"]
    action = Action(
        calls=[_call_from_row(c) for c in label["calls"] or []], text=label["text"], ordered=label["ordered"]
    )
    return Sample(
        tools=load_tools(json.loads(row["tools"])),
        messages=messages,
        label=action,
        conversation_time=row.get("conversation_time"),
    )


# --- writers ------------------------------------------------------------------------------------

# ``--out -``: standard output (file formats only; an hf export is a folder).
STDOUT = Path("-")


def resolve_target(out: Path | str) -> Path:
    """Where an export to ``out`` goes: ``-`` as it is, a symlink to a file its target (replacing the
    link itself would cut whatever links to the file), anything else as an absolute path (``--out .``
    has a name). A link to a stream stays a link: ``/dev/stdout`` names ``pipe:[…]``, no path."""
    if Path(out) == STDOUT:
        return STDOUT
    target = Path(out).absolute()
    return target.resolve() if target.is_symlink() and not is_stream(target) else target


def is_stream(target: Path) -> bool:
    """Standard output, or an existing target that is neither a file nor a folder (a FIFO, a device):
    written through, never renamed over (a rename would put a plain file where the device was)."""
    if target == STDOUT:
        return True
    try:
        mode = target.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


# Written into every hf export folder: a folder holding it was made by an export and may be replaced.
EXPORT_MARKER = ".looptool-export"


def _temporary(target: Path) -> Path:
    """A new name beside ``target`` (same file system, so the final rename is atomic); nothing made."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.with_name(f".{target.name}.tmp-{secrets.token_hex(6)}")


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def check_target(target: Path, fmt: str, *, force: bool = False) -> None:
    """Refuse an output that an export would clobber without being asked to.

    A file format replaces an existing file (as ``cp`` would) but never a folder. The ``hf`` folder
    replaces only a missing or empty folder, or one an earlier export wrote (it holds
    :data:`EXPORT_MARKER`), unless ``force``: a mistyped ``--out .`` must not wipe anything.
    """
    if fmt != "hf":
        if target != STDOUT and target.is_dir():
            raise ExportError(f"{target} is a folder; {fmt} exports to a file: give a file path as --out")
        return
    if is_stream(target):
        raise ExportError(f"{target} is not a folder; an hf export is a folder: give a folder path as --out")
    if target.is_dir() and Path.cwd().resolve().is_relative_to(target.resolve()):
        raise ExportError(f"{target} holds the current folder; export into a folder of its own")
    if force or (not target.exists() and not target.is_symlink()):
        return
    if not target.is_dir() or target.is_symlink():
        raise ExportError(f"{target} exists and is not a folder; give a new path or --force to replace it")
    if any(target.iterdir()) and not (target / EXPORT_MARKER).is_file():
        raise ExportError(
            f"{target} is a non-empty folder that no export wrote; give a new or empty folder, "
            "or --force to replace it"
        )


def _install(built: Path, target: Path) -> None:
    """Move ``built`` to ``target``; an existing target is replaced only once ``built`` is in place."""
    if not built.is_dir():
        os.replace(built, target)
        return
    old: Path | None = None
    if target.exists() or target.is_symlink():
        old = _temporary(target)
        os.replace(target, old)
    try:
        os.replace(built, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        _discard(old)


def _write_through(built: Path, target: Path) -> None:
    """Copy the finished export into a stream target (standard output, a FIFO, a device)."""
    with built.open("rb") as source:
        if target == STDOUT:
            sys.stdout.flush()  # text written before stays before the data
            shutil.copyfileobj(source, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return
        with target.open("wb") as sink:  # a FIFO's open waits for its reader
            shutil.copyfileobj(source, sink)


@contextlib.contextmanager
def _staged(target: Path, *, folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write the export into; it becomes ``target`` only if all went well."""
    if is_stream(target):
        # Built whole first, so a failed export writes nothing into the stream.
        with tempfile.TemporaryDirectory(prefix="looptool-export-") as scratch:
            built = Path(scratch) / "export"
            yield built
            _write_through(built, target)
        return
    built = _temporary(target)
    if folder:
        built.mkdir()
    try:
        yield built
        _install(built, target)
    finally:
        if built.exists():
            _discard(built)


def write_jsonl(dataset: RoundDataset, path: Path) -> Path:
    with _staged(path) as built, built.open("w", encoding="utf-8", newline="\n") as out:
        for member in dataset.members:
            out.write(compact_json(jsonl_record(member)) + "\n")
    return path


def write_openai(dataset: RoundDataset, path: Path, call_arguments: CallArguments = "string") -> Path:
    with _staged(path) as built, built.open("w", encoding="utf-8", newline="\n") as out:
        for member in dataset.members:
            out.write(compact_json(openai_record(member, call_arguments)) + "\n")
    return path


def write_parquet(dataset: RoundDataset, path: Path) -> Path:
    with _staged(path) as built:
        # Fixed options (not library defaults that may change): the bytes depend on the rows alone.
        pq.write_table(dataset_table(dataset), built, compression="zstd", compression_level=3)
    return path


def write_hf(dataset: RoundDataset, folder: Path) -> Path:
    import datasets

    hf = datasets.Dataset(dataset_table(dataset), fingerprint=dataset.content_hash)
    with _staged(folder, folder=True) as built:
        bars_were_off = datasets.are_progress_bars_disabled()
        datasets.disable_progress_bars()
        try:
            hf.save_to_disk(str(built))
        finally:
            if not bars_were_off:
                datasets.enable_progress_bars()
        (built / EXPORT_MARKER).write_text(
            canonical_json({"format": "hf", "round": dataset.round, "content_hash": dataset.content_hash})
            + "\n",
            encoding="utf-8",
        )
    return folder


def write_verl(dataset: RoundDataset, path: Path, *, current_time: str | None = None) -> Path:
    from trainer.verl.data import VerlRow, write_verl_parquet

    rows = [VerlRow.from_sample(m.sample_id, m.sample, current_time) for m in dataset.members]
    try:
        with _staged(path) as built:
            write_verl_parquet(rows, built, round_index=dataset.round)
    except ValueError as error:  # a row verl could not train on; the writer names it
        raise ExportError(f"D_{dataset.round} cannot be written as verl parquet: {error}") from error
    return path


def check_format(fmt: str, call_arguments: str) -> None:
    """Refuse an unknown format, and call arguments as objects for a format that has no choice."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; known: {', '.join(EXPORT_FORMATS)}")
    if call_arguments not in CALL_ARGUMENTS:
        raise ExportError(
            f"call arguments are written as {' or '.join(CALL_ARGUMENTS)}, not {call_arguments!r}"
        )
    if call_arguments != "string" and fmt != "openai":
        raise ExportError(
            f"call arguments as objects is a choice of the openai format only; {fmt} writes them "
            + ("as objects already" if fmt == "jsonl" else "as JSON strings")
        )


def export_dataset(
    dataset: RoundDataset,
    fmt: str,
    out: Path,
    *,
    current_time: str | None = None,
    force: bool = False,
    call_arguments: str = "string",
) -> ExportResult:
    """Write ``dataset`` as ``fmt`` at ``out``.

    Refuses a D_J that fails its manifest, and an ``hf`` folder that holds files no export wrote,
    unless ``force``. The export is written beside ``out`` and renamed into place at the end, so a
    failed export leaves ``out`` as it was and nothing beside it. ``call_arguments`` (``string`` or
    ``object``) is how an ``openai`` export writes call arguments.
    """
    check_format(fmt, call_arguments)
    if not dataset.verified and not force:
        raise ExportError(
            f"D_{dataset.round} in the log does not match its manifest: " + "; ".join(dataset.problems[:5])
        )
    if not dataset.members:
        raise ExportError(f"D_{dataset.round} has no members")
    out = resolve_target(out)
    check_target(out, fmt, force=force)
    if fmt == "jsonl":
        write_jsonl(dataset, out)
    elif fmt == "parquet":
        write_parquet(dataset, out)
    elif fmt == "hf":
        write_hf(dataset, out)
    elif fmt == "openai":
        write_openai(dataset, out, cast(CallArguments, call_arguments))
    else:
        write_verl(dataset, out, current_time=current_time)
    log.info("export.written", path=str(out), format=fmt, round=dataset.round, rows=len(dataset.members))
    return ExportResult(
        out, fmt, dataset.round, len(dataset.members), dataset.content_hash, dataset.undecodable
    )


# --- reading back (tests, notebooks) ------------------------------------------------------------


def read_export(path: Path, fmt: str) -> Iterator[tuple[str, Sample]]:
    """(sample id, sample) of every row of a jsonl, parquet, hf or openai export, in file order (an
    openai record has no sample id: its line number, from 0, stands for it)."""
    path = Path(path)
    if fmt in ("jsonl", "openai"):
        from toolcall.formats import record_to_samples

        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines):
                record = json.loads(line)
                [sample] = record_to_samples(record, "paper" if fmt == "jsonl" else "openai")
                yield (record["sample_id"] if fmt == "jsonl" else str(number)), sample
    elif fmt == "parquet":
        for row in pq.read_table(path).to_pylist():
            yield row["sample_id"], sample_from_row(row)
    elif fmt == "hf":
        import datasets

        for row in datasets.load_from_disk(str(path)):
            yield row["sample_id"], sample_from_row(row)
    else:
        raise ExportError(f"read_export reads jsonl, parquet, hf or openai, not {fmt!r}")


# --- the command --------------------------------------------------------------------------------


def default_export_path(settings: StoreRunSettings, round_: int, fmt: str) -> Path:
    return settings.store.path.parent / "exports" / settings.run_id / f"round-{round_}{_SUFFIX[fmt]}"


async def export_round(
    settings: StoreRunSettings,
    cut: Cut,
    fmt: str,
    out: Path | None = None,
    *,
    force: bool = False,
    current_time: str = DEFAULT_CURRENT_TIME,
    call_arguments: str = "string",
) -> ExportResult:
    """Rebuild D_J as of ``cut`` from the topics and export it."""
    check_format(fmt, call_arguments)
    if out is not None:  # before the replay: a refusal should not cost one
        check_target(resolve_target(out), fmt, force=force)
    dataset = await dataset_at(settings, cut)
    target = out or default_export_path(settings, dataset.round, fmt)
    return export_dataset(
        dataset, fmt, target, current_time=current_time, force=force, call_arguments=call_arguments
    )


def run_export(
    settings: StoreRunSettings,
    *,
    round_: int | None,
    until: str | None,
    fmt: str,
    out: Path | None,
    console: Console,
    force: bool = False,
    current_time: str = DEFAULT_CURRENT_TIME,
    call_arguments: str = "string",
    on_undecodable: Callable[[int], None] | None = None,
) -> ExportResult:
    """``looptool export``: D_J as of the cut (default: the latest closed round), written as ``fmt``.
    ``on_undecodable`` is told how many records of the topics did not decode, when some did not."""
    cut = Cut.from_options(round_, until)
    with console.status(f"rebuilding the dataset as of {cut.describe()} from the topics…"):
        result = asyncio.run(
            export_round(
                settings, cut, fmt, out, force=force, current_time=current_time, call_arguments=call_arguments
            )
        )
    if result.undecodable and on_undecodable is not None:
        on_undecodable(result.undecodable)
    shown = "standard output" if result.path == STDOUT else str(result.path)
    console.print(
        f"wrote D_{result.round} ({result.rows} samples, content hash {result.content_hash}) "
        f"as {result.format} → {shown}"
    )
    return result


__all__ = [
    "DATASET_SCHEMA",
    "EXPORT_FORMATS",
    "STDOUT",
    "ExportError",
    "ExportResult",
    "ReplayError",
    "export_dataset",
    "export_round",
    "read_export",
    "run_export",
    "sample_from_row",
]
