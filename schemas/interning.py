"""Values stored once per run and referred to by content hash: the tool sets, and the writer schemas.

A sample's tool list rode on most of its events (SampleAdded, ProbeResult, Verdict,
ExpansionCandidate, CuratedSample) and made up most of their bytes; a run has far fewer distinct tool
sets than events (a world's samples share a few; a published data set has at most one per record).
So from those events' third schema versions on, the wire holds a 16-byte digest
(``looptool.types.ToolSetRef``) where the tools were, and each distinct set travels once, as a
:class:`~schemas.events.ToolSetRegistered` event on the run's ``toolsets`` topic.

Python objects do not change: ``event.payload.tools`` is still the list of :class:`ToolSpec`. The
codec (:mod:`schemas.codec`) swaps a list for its digest when it writes and back when it reads, through
a :class:`ToolSetCatalog`; the Kafka adapters (:mod:`bus.kafka`) write a set's ToolSetRegistered
before the first event that refers to it, and read the toolsets topic when an event refers to a set
their catalog does not know yet. Older events with inline tools decode as they always did.

The digest is BLAKE2b-128 over the compact JSON of the tools as they dump (``ToolSpec.model_dump``,
key order kept: the order of a tool's parameters is part of what a model is shown), so equal digests
mean equal tool lists, byte for byte. A catalog is content-addressed and immutable per digest, so one
per process serves every run and every codec.

Writer schemas travel the same way: every event is framed with its writer schema's fingerprint, and
the Kafka producer writes a :class:`~schemas.events.SchemaRegistered` (the schema itself) to the run's
``schemas`` topic before the first event written with it. A reader of an older release, which does not
know that version, reads it from there and resolves the event into its own version (a rolling
upgrade loses nothing); a schema it cannot resolve is refused with the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from toolcall.canonical import compact_json
from toolcall.specs import ToolSpec

TOOLSET_REF = "looptool.types.ToolSetRef"  # the Avro named type that stands for a tool list
TOOLSET_DEFINITION = "ToolSetRegistered"  # the event type that holds a tool list by its digest
# Every event refers to its writer schema by fingerprint (its frame's 8 bytes after the magic); a
# SchemaRegistered on the run's schemas topic defines it for readers of older releases.
SCHEMA_REF = "looptool.events.WriterSchema"
SCHEMA_DEFINITION = "SchemaRegistered"
DEFINITION_TYPES = frozenset({TOOLSET_DEFINITION, SCHEMA_DEFINITION})
DIGEST_SIZE = 16
# Memo of recently encoded lists by the identity of their specs (decoded events share spec instances).
IDENTITY_MEMO_SIZE = 16_384


def toolset_digest(tools: Sequence[ToolSpec]) -> bytes:
    """BLAKE2b-128 of the tools' compact JSON, in their order and with their key order."""
    return _digest_of_dumps([tool.model_dump(mode="json") for tool in tools])


def _digest_of_dumps(dumps: Sequence[object]) -> bytes:
    return hashlib.blake2b(compact_json(dumps).encode("utf-8"), digest_size=DIGEST_SIZE).digest()


@dataclass(frozen=True)
class Reference:
    """An interned value an encoded event refers to: its kind (the Avro type) and digest."""

    kind: str
    digest: bytes

    @property
    def hex(self) -> str:
        return self.digest.hex()


class ToolSetCatalog:
    """Tool lists by digest: those this process wrote or read.

    Grows with the distinct tool sets of the runs a process touches (a data set's worth, not an
    event's), so it is kept whole. A published data set can hold a set per record (xLAM's 60k rows
    each draw a few of 3,673 APIs), so each distinct tool is kept once and the sets share it: a set
    then costs a tuple, not a copy of its specs (~5 kB each as models).
    """

    def __init__(self) -> None:
        self._by_digest: dict[bytes, tuple[ToolSpec, ...]] = {}
        self._tools: dict[str, ToolSpec] = {}  # each distinct tool by its compact JSON
        # Encoding hashes a list once per distinct set of spec objects. The memo keeps the specs it is
        # keyed by alive, so an id cannot be reused while its entry exists.
        self._by_identity: dict[tuple[int, ...], tuple[bytes, tuple[ToolSpec, ...]]] = {}
        # (run, digest) known to be on the run's toolsets topic: read from it, or acknowledged there.
        self._on_log: set[tuple[str, bytes]] = set()

    def intern(self, tools: Sequence[ToolSpec]) -> bytes:
        """The digest of ``tools``, which the catalog then resolves."""
        key = tuple(map(id, tools))
        known = self._by_identity.get(key)
        if known is not None:
            return known[0]
        kept = tuple(tools)  # the memo keeps these very objects alive (their ids are its key)
        dumps = [tool.model_dump(mode="json") for tool in kept]
        digest = _digest_of_dumps(dumps)
        if len(self._by_identity) >= IDENTITY_MEMO_SIZE:
            self._by_identity.clear()
        self._by_identity[key] = (digest, kept)
        if digest not in self._by_digest:
            self._by_digest[digest] = self._shared(kept, dumps)
        return digest

    def resolve(self, digest: bytes) -> list[ToolSpec] | None:
        """A fresh list of the tools with this digest, or None when the catalog does not hold them."""
        tools = self._by_digest.get(digest)
        return list(tools) if tools is not None else None

    def tools(self, digest: bytes) -> tuple[ToolSpec, ...] | None:
        return self._by_digest.get(digest)

    def add(self, digest: bytes, tools: Sequence[ToolSpec]) -> None:
        """Learn a set from its definition; refuses tools whose digest is not ``digest``."""
        if digest in self._by_digest:
            return
        dumps = [tool.model_dump(mode="json") for tool in tools]
        actual = _digest_of_dumps(dumps)
        if actual != digest:
            raise ValueError(f"tool set {digest.hex()} holds tools whose digest is {actual.hex()}")
        self._by_digest[digest] = self._shared(tools, dumps)

    def _shared(self, tools: Sequence[ToolSpec], dumps: Sequence[object]) -> tuple[ToolSpec, ...]:
        """``tools`` with each one replaced by the catalog's equal instance, once it holds one (specs
        are frozen, so sets may share them)."""
        return tuple(
            self._tools.setdefault(compact_json(dump), tool) for tool, dump in zip(tools, dumps, strict=True)
        )

    def mark_on_log(self, run_id: str, digest: bytes) -> None:
        """The run's toolsets topic holds this set (a reader read its definition, or the broker
        acknowledged it): producers need not write it again."""
        self._on_log.add((run_id, digest))

    def on_log(self, run_id: str, digest: bytes) -> bool:
        return (run_id, digest) in self._on_log

    def forget_logs(self) -> None:
        """Forget what the brokers hold (they lost the run's topics): definitions are written again."""
        self._on_log.clear()

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._by_digest

    def __len__(self) -> int:
        return len(self._by_digest)


@cache
def default_catalog() -> ToolSetCatalog:
    """The process's catalog, shared by every codec."""
    return ToolSetCatalog()


def definition_event_id(digest: bytes) -> str:
    """The event id of a definition: the same for every copy (any producer, any time), so readers keep
    one; its time part is zero, so it sorts before every event that can refer to it. A schema's
    8-byte fingerprint is padded apart from the 16-byte digests of tool sets."""
    from ulid import ULID

    tail = digest[:10] if len(digest) >= 10 else b"\x01" + digest.ljust(9, b"\0")
    return str(ULID.from_bytes(bytes(6) + tail))
