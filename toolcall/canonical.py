"""Canonical JSON and content hashes: one byte-exact form for hashing and deduplication."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """Serialise ``value`` with sorted keys and no insignificant whitespace.

    Two values that are equal as JSON get the same string, so hashes of it are stable across
    processes and Python versions.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def compact_json(value: Any) -> str:
    """Serialise ``value`` with no insignificant whitespace, keeping its key order (the order of a
    tool's parameters or a call's arguments is part of what a model is shown)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_hash(value: Any, *, size: int = 16) -> str:
    """Hex BLAKE2b digest (``size`` bytes) of the canonical JSON of ``value``."""
    return text_hash(canonical_json(value), size=size)


def text_hash(canonical: str, *, size: int = 16) -> str:
    """:func:`content_hash` of a value whose canonical JSON the caller already holds."""
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=size).hexdigest()
