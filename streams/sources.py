"""Where seed records come from: files, folders and saved datasets, each record with its place.

A *source* is a path: a JSON Lines file (``.jsonl``/``.ndjson``: one record per line, always; or a
``.json`` holding one object per line), a ``.json`` file holding an array of records (or one record
spread over many lines), any of those gzipped (``.gz``), a
folder of them (read recursively, in name order), or a Hugging Face dataset saved with
``save_to_disk`` (read with ``datasets.load_from_disk``; every split of a ``DatasetDict``).

Each record comes out as a :class:`SourceRecord`: its reference (``file.jsonl:12`` for a line,
``file.json[3]`` for an array element, with the line it starts on, ``dataset[train]#5`` for a dataset
row), its raw bytes (kept whole in a DeadLetter) and the parsed value, or the error that stopped
the parse. A file that cannot be read at all yields one record carrying that error.

BFCL as shipped: beside ``BFCL_v4_<category>.json`` a ``possible_answer/`` folder holds the answers
and ``multi_turn_func_doc/`` the multi-turn classes' docs; both are joined automatically (and not read
as records themselves). ``answers`` adds possible answers from a file of ``{"id", "ground_truth"}``
lines for sources laid out otherwise.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolcall.formats import BFCL_CLASS_DOC_FILES, FormatContext

RECORD_SUFFIXES = (".jsonl", ".ndjson", ".json")
BFCL_ANSWER_DIR = "possible_answer"
BFCL_DOC_DIR = "multi_turn_func_doc"
_CONTEXT_DIRS = {BFCL_ANSWER_DIR, BFCL_DOC_DIR}


class SourceError(ValueError):
    """A path that is not a seed source (missing, or of a kind we do not read)."""


@dataclass
class SourceRecord:
    """One record and where it came from; ``error`` is set when it could not even be parsed."""

    ref: str  # file and place, as SampleAdded and DeadLetter carry it: "seeds.jsonl:12"
    location: str  # the place alone, for messages: "line 12", "element 3 (line 40)"
    raw: bytes
    value: Any = None
    error: Exception | None = None
    context: FormatContext = field(default_factory=FormatContext)


def is_saved_dataset(path: Path) -> bool:
    """A folder written by ``datasets``' ``save_to_disk`` (a Dataset or a DatasetDict)."""
    return path.is_dir() and (
        (path / "dataset_dict.json").is_file()
        or ((path / "state.json").is_file() and (path / "dataset_info.json").is_file())
    )


def _record_files(folder: Path) -> list[Path]:
    files: list[Path] = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            if child.name in _CONTEXT_DIRS:
                continue
            files.extend(_record_files(child))
        elif _stem_suffix(child) in RECORD_SUFFIXES:
            files.append(child)
    return files


def _stem_suffix(path: Path) -> str:
    """The record suffix of ``x.jsonl`` or ``x.jsonl.gz``."""
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return "." + name.rsplit(".", 1)[-1] if "." in name else ""


def expand(paths: list[Path]) -> list[Path]:
    """Each path as record files (folders walked) or saved datasets; raises for what is not there."""
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise SourceError(f"seed source not found: {path}")
        if path.is_dir():
            if is_saved_dataset(path):
                out.append(path)
                continue
            found = _record_files(path)
            if not found:
                raise SourceError(
                    f"{path} holds no .json, .jsonl or .gz record files and is not a saved dataset"
                )
            out.extend(found)
        else:
            out.append(path)
    return out


def _read_bytes(path: Path) -> bytes:
    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "rb") as handle:
            return handle.read()
    return path.read_bytes()


def _load_jsonl(path: Path) -> list[Any]:
    values = []
    for line in io.BytesIO(_read_bytes(path)):
        if line.strip():
            values.append(json.loads(line))
    return values


def _bfcl_answers(path: Path) -> dict[str, Any]:
    sibling = path.parent / BFCL_ANSWER_DIR / path.name
    if not sibling.is_file():
        return {}
    answers: dict[str, Any] = {}
    for entry in _load_jsonl(sibling):
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) and "ground_truth" in entry:
            answers[entry["id"]] = entry["ground_truth"]
    return answers


def _bfcl_docs(path: Path) -> dict[str, list[Any]]:
    folder = path.parent / BFCL_DOC_DIR
    if not folder.is_dir():
        return {}
    return {
        name: _load_jsonl(folder / filename)
        for name, filename in BFCL_CLASS_DOC_FILES.items()
        if (folder / filename).is_file()
    }


def load_answers(path: Path) -> dict[str, Any]:
    """``--answers FILE``: possible answers as ``{"id", "ground_truth"}`` lines (or a JSON array)."""
    data = _read_bytes(Path(path))
    text = data.decode("utf-8")
    entries = json.loads(text) if text.lstrip().startswith("[") else _load_jsonl(Path(path))
    answers = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or "ground_truth" not in entry:
            raise SourceError(f"{path}: every answer needs an 'id' and a 'ground_truth'")
        answers[entry["id"]] = entry["ground_truth"]
    return answers


def count_records(path: Path) -> int | None:
    """A cheap upper bound of a JSON Lines file's records for progress (its lines), None otherwise."""
    if path.is_dir() or path.name.lower().endswith(".gz") or _stem_suffix(path) not in (".jsonl", ".ndjson"):
        return None
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def iter_records(
    path: Path, answers: dict[str, Any] | None = None, label: str | None = None
) -> Iterator[SourceRecord]:
    """The records of one file or saved dataset (see the module docstring)."""
    path = Path(path)
    name = label or path.name
    if path.is_dir():
        yield from _dataset_records(path, name)
        return
    context = FormatContext(
        bfcl_answers={**_bfcl_answers(path), **(answers or {})}, bfcl_class_docs=_bfcl_docs(path)
    )
    try:
        data = _read_bytes(path)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        yield SourceRecord(ref=name, location="file", raw=b"", error=error, context=context)
        return
    lines = data.splitlines(keepends=True)
    start = data.lstrip()[:1]
    json_lines = _stem_suffix(path) in (".jsonl", ".ndjson")  # one record per line, whatever it holds
    if start == b"[" and not json_lines:
        yield from _array_records(data, name, context)
        return
    first = next((line for line in lines if line.strip()), b"")
    if start == b"{" and not json_lines and not _is_json(first):
        # One JSON document over many lines (a pretty-printed object) is one record.
        document = _parsed(data.strip(), name, "document", context)
        if document.error is None:
            yield document
            return
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        yield _parsed(line.rstrip(b"\r\n"), f"{name}:{number}", f"line {number}", context)


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def _parsed(raw: bytes, ref: str, location: str, context: FormatContext) -> SourceRecord:
    try:
        return SourceRecord(ref=ref, location=location, raw=raw, value=json.loads(raw), context=context)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return SourceRecord(ref=ref, location=location, raw=raw, error=error, context=context)


def _array_records(data: bytes, name: str, context: FormatContext) -> Iterator[SourceRecord]:
    """Each element of a JSON array, with its index and the line it starts on."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        yield SourceRecord(ref=name, location="file", raw=data[:4096], error=error, context=context)
        return
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    index = 0
    line = 1 + text.count("\n", 0, position)
    while True:
        while position < len(text) and text[position] in " \t\r\n":
            if text[position] == "\n":
                line += 1
            position += 1
        if position >= len(text):
            error = ValueError("the JSON array is not closed")
            yield SourceRecord(f"{name}[{index}]", f"element {index}", b"", error=error, context=context)
            return
        if text[position] == "]":
            return
        start, start_line = position, line
        try:
            value, position = decoder.raw_decode(text, position)
        except (json.JSONDecodeError, RecursionError) as error:
            # Nothing after a broken element can be located reliably: report it and stop.
            raw = text[start : start + 4096].encode("utf-8")
            where = f"element {index} (line {start_line})"
            yield SourceRecord(f"{name}[{index}]", where, raw, error=error, context=context)
            return
        line += text.count("\n", start, position)
        where = f"element {index} (line {start_line})"
        raw = text[start:position].encode("utf-8")
        yield SourceRecord(f"{name}[{index}]", where, raw, value=value, context=context)
        index += 1
        while position < len(text) and text[position] in " \t\r\n":
            if text[position] == "\n":
                line += 1
            position += 1
        if position < len(text) and text[position] == ",":
            position += 1
        elif position < len(text) and text[position] != "]":
            error = ValueError(f"expected ',' or ']' after element {index - 1} at line {line}")
            yield SourceRecord(
                f"{name}[{index}]", f"element {index} (line {line})", b"", error=error, context=context
            )
            return


def _dataset_records(folder: Path, name: str) -> Iterator[SourceRecord]:
    """Rows of a dataset saved with ``save_to_disk`` (every split of a DatasetDict)."""
    try:
        import datasets  # heavy: imported only for saved datasets
    except ImportError as error:  # pragma: no cover - datasets is a dependency of the project
        yield SourceRecord(ref=name, location="dataset", raw=b"", error=error)
        return
    try:
        loaded = datasets.load_from_disk(str(folder))
    except (OSError, ValueError, FileNotFoundError) as error:
        yield SourceRecord(ref=name, location="dataset", raw=b"", error=error)
        return
    splits = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [(None, loaded)]
    for split, dataset in splits:
        where = f"{name}[{split}]" if split is not None else name
        for index, row in enumerate(dataset):
            raw = json.dumps(row, ensure_ascii=False, default=str).encode("utf-8")
            place = f"row {index}" if split is None else f"split {split} row {index}"
            yield SourceRecord(ref=f"{where}#{index}", location=place, raw=raw, value=row)
