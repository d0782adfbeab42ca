"""Where seed records come from: files, folders and saved datasets, each record with its place.

A *source* is a path: a JSON Lines file (``.jsonl``/``.ndjson``: one record per line, always; or a
``.json`` holding one object per line), a ``.json`` file holding an array of records (or one record
spread over many lines), any of those gzipped (``.gz``), a Parquet file (``.parquet``: one record per
row, read a batch at a time), a folder of them (read recursively, in name order), or a Hugging Face
dataset saved with ``save_to_disk`` (read with ``datasets.load_from_disk``; every split of a
``DatasetDict``). A file of any other type (``.csv``, ``.arrow``…) is refused up front, by
:func:`expand`. A UTF-8 byte order mark at the start of a file is dropped; a UTF-16 or UTF-32 one
says how to read the file.

Rows of Arrow data (Parquet, saved datasets) lose their null fields: Arrow gives every struct the
union of its siblings' fields, null where a row has none, so a null field there is an absent one.

Each record comes out as a :class:`SourceRecord`: its reference (``file.jsonl:12`` for a line,
``file.json[3]`` for an array element, with the line it starts on, ``dataset[train]#5`` for a dataset
row), its raw bytes (kept whole in a DeadLetter) and the parsed value, or the error that stopped
the parse. A file that cannot be read at all yields one record carrying that error.

BFCL as shipped: beside ``BFCL_v4_<category>.json`` a ``possible_answer/`` folder holds the answers
and ``multi_turn_func_doc/`` the multi-turn classes' docs; both are joined automatically (and not read
as records themselves). ``answers`` adds possible answers from a file of ``{"id", "ground_truth"}``
lines for sources laid out otherwise. A line of ``possible_answer/`` or ``multi_turn_func_doc/`` that cannot
be read does not stop the file: the records that would need it are dead-lettered naming its file and
line; a bad line of an ``answers`` file stops the ingest before any record is read, naming both.
"""

from __future__ import annotations

import codecs
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from common.logs import get_logger
from toolcall.formats import BFCL_CLASS_DOC_FILES, FormatContext

log = get_logger(__name__)

RECORD_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")
PARQUET_BATCH_ROWS = 1024  # rows decoded at a time: a large Parquet file is never held whole
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
        elif _stem_suffix(child) in RECORD_SUFFIXES and not _is_gzipped_parquet(child):
            files.append(child)
    return files


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(".parquet")


def _is_gzipped_parquet(path: Path) -> bool:
    return path.name.lower().endswith(".parquet.gz")


def _check_file_type(path: Path) -> None:
    """Refuse, before anything is read, a file that is not one of the types read here.

    A name without a suffix (``/dev/stdin``) is read as JSON; anything else would be split into
    "lines" and every one dead-lettered.
    """
    suffix = _stem_suffix(path)
    if (suffix and suffix not in RECORD_SUFFIXES) or _is_gzipped_parquet(path):
        shown = ".parquet.gz" if _is_gzipped_parquet(path) else suffix
        raise SourceError(
            f"{path}: unsupported file type {shown}; give .jsonl, .json, .json.gz, .parquet or a "
            "save_to_disk folder"
        )


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
                    f"{path} holds no .json, .jsonl, .parquet or .gz record files and is not a saved dataset"
                )
            out.extend(found)
        else:
            _check_file_type(path)
            out.append(path)
    return out


def _open_bytes(path: Path) -> IO[bytes]:
    """The file for reading as bytes, gunzipped when its name ends in ``.gz``."""
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def _read_bytes(path: Path) -> bytes:
    with _open_bytes(path) as handle:
        data = handle.read()
    # Editors on Windows start UTF-8 files with a BOM; JSON has none, and "[" must be the first byte.
    # A file saved as UTF-16 or UTF-32 (PowerShell's default) is read as its BOM says, not line by line
    # as bytes (which once landed its first line and dead-lettered the rest).
    for bom, encoding in _WIDE_BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding).encode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                break  # not that encoding after all: read as bytes, each bad line says so
    return data.removeprefix(codecs.BOM_UTF8)


# UTF-32 first: its little-endian BOM begins with UTF-16's.
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _json_error(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON: {error.msg} (column {error.colno})"
    return f"{type(error).__name__}: {error}"


def _load_jsonl(path: Path, shown: str) -> tuple[list[tuple[int, Any]], list[str]]:
    """The values of a JSON Lines file with their line numbers, and what could not be read, each
    error naming ``shown`` (the file as the user knows it) and the line."""
    try:
        data = _read_bytes(path)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        return [], [f"{shown} cannot be read: {error}"]
    values: list[tuple[int, Any]] = []
    errors: list[str] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            values.append((number, json.loads(line)))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            errors.append(f"{shown} line {number}: {_json_error(error)}")
    return values, errors


def _is_answer(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("id"), str) and "ground_truth" in entry


def _bfcl_answers(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The possible answers beside a BFCL file by id, and the lines of them that could not be read."""
    sibling = path.parent / BFCL_ANSWER_DIR / path.name
    if not sibling.is_file():
        return {}, []
    entries, errors = _load_jsonl(sibling, f"{BFCL_ANSWER_DIR}/{path.name}")
    answers: dict[str, Any] = {}
    for number, entry in entries:
        if _is_answer(entry):
            answers[entry["id"]] = entry["ground_truth"]
        else:
            errors.append(f"{BFCL_ANSWER_DIR}/{path.name} line {number}: not an {{id, ground_truth}} object")
    return answers, errors


def _bfcl_docs(path: Path) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """Each multi-turn class's function docs, and for a class whose file has a bad line, the first."""
    folder = path.parent / BFCL_DOC_DIR
    if not folder.is_dir():
        return {}, {}
    docs: dict[str, list[Any]] = {}
    errors: dict[str, str] = {}
    for name, filename in BFCL_CLASS_DOC_FILES.items():
        if (folder / filename).is_file():
            entries, problems = _load_jsonl(folder / filename, f"{BFCL_DOC_DIR}/{filename}")
            if problems:  # a class missing some of its functions would teach wrong tool sets
                errors[name] = problems[0]
            else:
                docs[name] = [value for _, value in entries]
    return docs, errors


def load_answers(path: Path) -> dict[str, Any]:
    """``--answers FILE``: possible answers as ``{"id", "ground_truth"}`` lines (or a JSON array).

    Raises :class:`SourceError` naming the file and the line of the first answer that cannot be read:
    it is called before any record is read, so nothing has been sent.
    """
    path = Path(path)
    try:
        data = _read_bytes(path)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise SourceError(f"{path}: cannot be read: {error}") from None
    entries: list[tuple[str, Any]]
    if data.lstrip().startswith(b"["):
        try:
            values = json.loads(data)
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            line = f" line {error.lineno}" if isinstance(error, json.JSONDecodeError) else ""
            raise SourceError(f"{path}{line}: {_json_error(error)}") from None
        entries = [(f"element {index}", value) for index, value in enumerate(values)]
    else:
        numbered, errors = _load_jsonl(path, str(path))
        if errors:
            more = f" (and {len(errors) - 1} more bad lines)" if len(errors) > 1 else ""
            raise SourceError(errors[0] + more)
        entries = [(f"line {number}", value) for number, value in numbered]
    answers = {}
    for where, entry in entries:
        if not _is_answer(entry):
            raise SourceError(f"{path} {where}: every answer needs an 'id' and a 'ground_truth'")
        answers[entry["id"]] = entry["ground_truth"]
    return answers


def count_records(path: Path) -> int | None:
    """A cheap upper bound of a JSON Lines file's records for progress (its lines), a Parquet file's
    rows, None otherwise."""
    if _is_parquet(path) and path.is_file():
        try:
            import pyarrow.parquet as pq  # imported only for Parquet

            return pq.ParquetFile(path).metadata.num_rows
        except Exception:  # only progress: reading the file reports the error
            return None
    if path.is_dir() or path.name.lower().endswith(".gz") or _stem_suffix(path) not in (".jsonl", ".ndjson"):
        return None
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def iter_records(
    path: Path,
    answers: dict[str, Any] | None = None,
    label: str | None = None,
    max_record_bytes: int | None = None,
) -> Iterator[SourceRecord]:
    """The records of one file or saved dataset (see the module docstring).

    A line longer than ``max_record_bytes`` is not parsed (its record has neither value nor error):
    the caller refuses it by its size without building a 50 MB object first.
    """
    path = Path(path)
    name = label or path.name
    if path.is_dir():
        yield from _dataset_records(path, name)
        return
    if _is_parquet(path):
        yield from _parquet_records(path, name)
        return
    beside, answer_errors = _bfcl_answers(path)
    docs, doc_errors = _bfcl_docs(path)
    if answer_errors:  # said even where every record has its answer (a bad line of a duplicate)
        log.warning("ingest.bfcl_answers_unreadable", file=name, lines=answer_errors[:5])
    context = FormatContext(
        bfcl_answers={**beside, **(answers or {})},
        bfcl_class_docs=docs,
        bfcl_answer_errors=tuple(answer_errors),
        bfcl_class_doc_errors=doc_errors,
    )
    json_lines = _stem_suffix(path) in (".jsonl", ".ndjson")  # one record per line, whatever it holds
    try:
        if json_lines and not _starts_with_wide_bom(path):
            # Line by line: a JSON Lines file of any size costs one line of memory, not the whole
            # file twice over (a 376 MiB file took 0.78 GiB before its first record).
            yield from _line_records(_open_lines(path), name, context, max_record_bytes)
            return
        data = _read_bytes(path)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        yield SourceRecord(ref=name, location="file", raw=b"", error=error, context=context)
        return
    # Records end at \n (or \r\n) only: a lone \r is JSON whitespace inside a record, not a line end.
    lines = data.split(b"\n")
    start = data.lstrip()[:1]
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
    yield from _line_records(iter(lines), name, context, max_record_bytes)


def _line_records(
    lines: Iterator[bytes], name: str, context: FormatContext, max_record_bytes: int | None
) -> Iterator[SourceRecord]:
    """One record per non-blank line (``\n`` or ``\r\n`` ends it), numbered from 1."""
    for number, line in enumerate(lines, start=1):
        line = line.removesuffix(b"\n")
        if not line.strip():
            continue
        raw = line.removesuffix(b"\r")
        if max_record_bytes is not None and len(raw) > max_record_bytes:
            yield SourceRecord(ref=f"{name}:{number}", location=f"line {number}", raw=raw, context=context)
            continue
        yield _parsed(raw, f"{name}:{number}", f"line {number}", context)


def _open_lines(path: Path) -> Iterator[bytes]:
    """The file's lines as bytes (binary mode splits at ``\n`` only), gunzipped, UTF-8 BOM dropped."""
    with _open_bytes(path) as handle:
        for number, line in enumerate(handle):
            yield line.removeprefix(codecs.BOM_UTF8) if number == 0 else line


def _starts_with_wide_bom(path: Path) -> bool:
    """Whether the file is UTF-16 or UTF-32 by its BOM (read whole and decoded, see _read_bytes)."""
    with _open_bytes(path) as handle:
        head = handle.read(4)
    return any(head.startswith(bom) for bom, _ in _WIDE_BOMS)


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


def without_nulls(value: Any) -> Any:
    """An Arrow row as its records were written: null fields of objects dropped (see the module
    docstring); nulls inside lists are kept, a list's items are values, not fields."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def _row_record(row: Any, ref: str, location: str) -> SourceRecord:
    raw = json.dumps(row, ensure_ascii=False, default=str).encode("utf-8", "backslashreplace")
    return SourceRecord(ref=ref, location=location, raw=raw, value=without_nulls(row))


def _parquet_records(path: Path, name: str) -> Iterator[SourceRecord]:
    """Rows of a Parquet file (place: ``file.parquet#5``), a batch of rows decoded at a time."""
    import pyarrow as pa  # imported only for Parquet
    import pyarrow.parquet as pq

    index = 0
    try:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                yield _row_record(row, f"{name}#{index}", f"row {index}")
                index += 1
    except (OSError, ValueError, pa.ArrowException) as error:
        # Rows after a part that does not decode cannot be located: report it and stop.
        ref, where = (name, "file") if index == 0 else (f"{name}#{index}", f"rows from {index}")
        yield SourceRecord(ref=ref, location=where, raw=b"", error=error)


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
            place = f"row {index}" if split is None else f"split {split} row {index}"
            yield _row_record(row, f"{where}#{index}", place)
