"""The embedded broker's archive on disk: every topic-partition as Avro object container files.

Layout (one folder per archive, locked by the broker that writes it)::

    ARCHIVE/topics/<topic>/topic.json                 {"partitions": N}
    ARCHIVE/topics/<topic>/<partition>/<base>.avro    records from offset <base> on, in offset order

A segment is an Avro object container file (fastavro) of :data:`RECORD_SCHEMA` records: the Kafka
record as the broker held it (offset, timestamp, key, value, headers). Each write appends one Avro
block and is flushed and fsynced before the archive reports it, so a crash can only leave a torn
last block, which :meth:`PartitionArchive.repair` cuts off (it was never reported as archived).
A segment is closed at :data:`SEGMENT_BYTES` and the next one starts at the next offset.

Kafka topic names are ``[A-Za-z0-9._-]`` and never ``.`` or ``..``, so a topic name is a safe folder
name; anything else found in the broker's metadata is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import fastavro
from fastavro.write import Writer

from common.locks import LockHeld, take_lock
from common.logs import get_logger

log = get_logger(__name__)

SEGMENT_BYTES = 64 * 1024 * 1024
_TOPIC_NAME = re.compile(r"^(?!\.\.?$)[A-Za-z0-9._-]{1,249}$")

RECORD_SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "ArchivedRecord",
        "namespace": "looptool.archive",
        "doc": "One Kafka record as the broker held it.",
        "fields": [
            {"name": "offset", "type": "long"},
            {"name": "timestamp", "type": "long", "doc": "ms since the epoch (CreateTime)"},
            {"name": "key", "type": ["null", "bytes"], "default": None},
            {"name": "value", "type": ["null", "bytes"], "default": None},
            {
                "name": "headers",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Header",
                        "fields": [
                            {"name": "key", "type": "string"},
                            {"name": "value", "type": ["null", "bytes"], "default": None},
                        ],
                    },
                },
                "default": [],
            },
        ],
    }
)


class ArchiveError(RuntimeError):
    """The archive cannot be used: held by another broker, inconsistent, or not an archive."""


@dataclass(frozen=True)
class ArchivedRecord:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()

    def to_avro(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "timestamp": self.timestamp,
            "key": self.key,
            "value": self.value,
            "headers": [{"key": k, "value": v} for k, v in self.headers],
        }

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> ArchivedRecord:
        return cls(
            record["offset"],
            record["timestamp"],
            record["key"],
            record["value"],
            tuple((h["key"], h["value"]) for h in record["headers"]),
        )


def _segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}.avro"


class PartitionArchive:
    """One topic-partition's segments: repair, read, append."""

    def __init__(self, folder: Path, segment_bytes: int = SEGMENT_BYTES):
        self.folder = folder
        self.segment_bytes = segment_bytes
        self._file: BinaryIO | None = None
        self._writer: Writer | None = None
        self.end = 0  # the next offset to archive

    def segments(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.suffix == ".avro" and p.stem.isdigit())

    def repair(self) -> int:
        """Cut a torn last block (a crash mid-write), check the offsets run on; return the end offset."""
        expected = 0
        for segment in self.segments():
            if int(segment.stem) != expected:
                raise ArchiveError(f"{segment} starts at offset {int(segment.stem)}, expected {expected}")
            good_end, count = _scan(segment)
            if good_end is None:  # not even a whole header: created, never written to
                segment.unlink()
                continue
            if good_end < segment.stat().st_size:
                log.warning("archive.torn_block_cut", segment=str(segment), kept_bytes=good_end)
                with segment.open("r+b") as handle:
                    handle.truncate(good_end)
                    os.fsync(handle.fileno())
            expected += count
        self.end = expected
        return expected

    def records(self) -> Iterator[ArchivedRecord]:
        """Every record in offset order (after :meth:`repair`)."""
        expected = 0
        for segment in self.segments():
            with segment.open("rb") as handle:
                for block in fastavro.block_reader(handle):
                    for record in block:
                        if record["offset"] != expected:
                            raise ArchiveError(
                                f"{segment}: offset {record['offset']} where {expected} was expected"
                            )
                        expected += 1
                        yield ArchivedRecord.from_avro(record)

    def append(self, records: list[ArchivedRecord]) -> None:
        """Write ``records`` (the next offsets, in order) as one block; not durable before :meth:`sync`."""
        for record in records:
            if record.offset != self.end:
                raise ArchiveError(f"{self.folder}: offset {record.offset} where {self.end} was expected")
            if self._writer is None or (self._file is not None and self._file.tell() >= self.segment_bytes):
                self._open_segment()
            assert self._writer is not None
            self._writer.write(record.to_avro())
            self.end += 1

    def sync(self) -> None:
        """Flush the pending block and fsync it: what was appended is on disk when this returns."""
        if self._writer is None or self._file is None:
            return
        self._writer.flush()
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self.sync()
            self._file.close()
        self._file = self._writer = None

    def _open_segment(self) -> None:
        if self._file is not None:
            self.sync()
            self._file.close()
        _make_folders(self.folder)
        segments = self.segments()
        last = segments[-1] if segments else None
        if last is not None and last.stat().st_size < self.segment_bytes:
            path = last  # go on with the last segment (after a restart)
        else:
            path = self.folder / _segment_name(self.end)
            _fsync_folder(self.folder)
        self._file = path.open("a+b")
        # Large sync interval: a block is written when we flush, one per archiving round.
        self._writer = Writer(self._file, RECORD_SCHEMA, sync_interval=1 << 30)
        if path != last:
            self._file.flush()
            os.fsync(self._file.fileno())
            _fsync_folder(self.folder)


def _scan(segment: Path) -> tuple[int | None, int]:
    """(end of the last whole block, records up to it); (None, 0) if the header itself is torn."""
    good_end: int | None = None
    count = 0
    with segment.open("rb") as handle:
        try:
            reader = fastavro.block_reader(handle)
            good_end = handle.tell()
            for block in reader:
                good_end = block.offset + block.size
                count += block.num_records
        except Exception:  # a torn block: anything after the last whole one is cut
            pass
    return good_end, count


def _manifest_partitions(manifest: Path) -> int:
    """A topic's partition count from its ``topic.json``; one that does not say it (emptied, edited,
    written by another tool) stops the start with what to restore, not a traceback."""
    try:
        partitions = json.loads(manifest.read_text(encoding="utf-8"))["partitions"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise ArchiveError(
            f"{manifest} does not say the topic's partition count ({type(error).__name__}: {error}); "
            f'restore it (e.g. {{"partitions": N}}, N the number of its partition folders)'
        ) from None
    if type(partitions) is not int or partitions < 1:
        raise ArchiveError(f"{manifest} gives {partitions!r} partitions; a topic has at least one")
    return partitions


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents durably: each new folder's entry is fsynced in its
    parent, so a power loss cannot take a partition folder (and its fsynced segments) away."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        _fsync_folder(path.parent)


class Archive:
    """An archive folder: its topics, their partition archives, and the lock of the broker using it."""

    def __init__(self, folder: Path, segment_bytes: int = SEGMENT_BYTES):
        self.folder = Path(folder).absolute()
        self.segment_bytes = segment_bytes
        self._partitions: dict[tuple[str, int], PartitionArchive] = {}
        self._topics: dict[str, int] = {}
        self._lock_fd: int | None = None

    @property
    def topics_folder(self) -> Path:
        return self.folder / "topics"

    def lock(self) -> None:
        """Take the archive for this process (one broker per archive); released at exit or :meth:`close`."""
        _make_folders(self.folder)
        strangers = [p.name for p in self.folder.iterdir() if p.name not in ("topics", ".lock")]
        if strangers:
            raise ArchiveError(
                f"{self.folder} is not a broker archive (it holds {sorted(strangers)[:5]}); "
                "give an empty or new folder as --archive"
            )
        try:
            self._lock_fd = take_lock(self.folder / ".lock")
        except LockHeld as held:
            raise ArchiveError(
                f"the archive {self.folder} is in use by another broker (pid {held.holder}); stop it, or "
                "give another --archive"
            ) from None

    def load(self) -> dict[tuple[str, int], int]:
        """Read the topics, repair torn tails; returns each partition's end offset."""
        ends: dict[tuple[str, int], int] = {}
        if not self.topics_folder.is_dir():
            return ends
        for folder in sorted(self.topics_folder.iterdir()):
            manifest = folder / "topic.json"
            if not manifest.is_file():
                # A folder the manifest never reached (a crash right after its mkdir) holds no segment.
                # One that holds segments lost its manifest: skipping it would start the broker without
                # those records, and archiving the topic again from offset 0 would corrupt the folder.
                held = (
                    [p for p in folder.glob("*/*.avro") if p.parent.name.isdigit()] if folder.is_dir() else []
                )
                if held:
                    raise ArchiveError(
                        f"{folder} holds {len(held)} segments but no topic.json (its partition count); "
                        f'restore it (e.g. {{"partitions": N}}) or move the folder out of the archive'
                    )
                continue
            partitions = _manifest_partitions(manifest)
            # Segments of a partition the manifest does not count (a topic.json put back from an older
            # copy, or edited down) would be left out of the restored topic without a word.
            uncounted = {
                int(p.parent.name)
                for p in folder.glob("*/*.avro")
                if p.parent.name.isdigit() and int(p.parent.name) >= partitions
            }
            if uncounted:
                raise ArchiveError(
                    f"{manifest} gives {partitions} partition(s), but {folder} holds segments of "
                    f'partition {max(uncounted)}: restore it ({{"partitions": {max(uncounted) + 1}}}), '
                    "or the broker would start without those records"
                )
            self._topics[folder.name] = partitions
            for partition in range(partitions):
                ends[(folder.name, partition)] = self.partition(folder.name, partition).repair()
        return ends

    def topics(self) -> dict[str, int]:
        """Topic name -> partition count, as archived."""
        return dict(self._topics)

    def ensure_topic(self, topic: str, partitions: int) -> bool:
        """Record a topic (or more partitions of it); True if that changed the manifest."""
        if not _TOPIC_NAME.match(topic):
            raise ArchiveError(f"refusing to archive a topic named {topic!r}")
        if self._topics.get(topic, 0) >= partitions:
            return False
        folder = self.topics_folder / topic
        _make_folders(folder)
        staged = folder / "topic.json.tmp"
        staged.write_text(json.dumps({"partitions": partitions}) + "\n", encoding="utf-8")
        with staged.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(staged, folder / "topic.json")
        _fsync_folder(folder)
        self._topics[topic] = partitions
        return True

    def partition(self, topic: str, partition: int) -> PartitionArchive:
        key = (topic, partition)
        if key not in self._partitions:
            self._partitions[key] = PartitionArchive(
                self.topics_folder / topic / str(partition), self.segment_bytes
            )
        return self._partitions[key]

    def records(self) -> int:
        return sum(p.end for p in self._partitions.values())

    def close(self) -> None:
        for partition in self._partitions.values():
            with contextlib.suppress(OSError):
                partition.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
