"""The Avro schemas of every event type: composed from the ``.avsc`` sources, and their frozen history.

Sources (``schemas/avro/``): ``envelope.avsc`` (fields every event carries), ``types.avsc`` (shared
named records) and ``events/<EventType>.avsc`` (each event type's payload record). An event type's
full schema is the envelope's fields plus a ``payload`` field, with shared types defined inline at
first use, so each full schema is self-contained and has one fingerprint.

``registry.json`` freezes every schema ever released, by event type and version. Writers always use
the current (newest) version; readers resolve any frozen writer version to it. Changing a source
without freezing is caught by the test suite; ``looptool schemas freeze`` appends the new version.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro.schema

AVRO_DIR = Path(__file__).parent / "avro"
REGISTRY_FILE = AVRO_DIR / "registry.json"
EVENTS_NAMESPACE = "looptool.events"


class SchemaRegistryError(RuntimeError):
    """The schema sources and the frozen registry disagree, or a source is invalid."""


@dataclass(frozen=True)
class RegisteredSchema:
    event_type: str
    version: int
    fingerprint: bytes  # CRC-64-AVRO, little-endian, as Avro single-object encoding writes it
    schema: dict[str, Any]  # the full self-contained schema (JSON form)
    parsed: Any  # fastavro's parsed form: a second Avro library that tests and benchmarks read bodies with
    learned: bool = False  # read from a run's schemas topic (another release's), not frozen in this one


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SchemaRegistryError(f"cannot read schema source {path}: {exc}") from exc


def _shared_types() -> dict[str, dict[str, Any]]:
    types = _load_json(AVRO_DIR / "types.avsc")
    return {f"{t['namespace']}.{t['name']}": t for t in types}


def _inline_named_types(node: Any, shared: dict[str, dict[str, Any]], defined: set[str]) -> Any:
    """Replace the first reference to each shared type by its definition (Avro's define-before-use order)."""
    if isinstance(node, str):
        if node in shared and node not in defined:
            defined.add(node)
            return _inline_named_types(copy.deepcopy(shared[node]), shared, defined)
        return node
    if isinstance(node, list):
        return [_inline_named_types(item, shared, defined) for item in node]
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "record":
            fields = [
                {**field, "type": _inline_named_types(field["type"], shared, defined)}
                for field in node["fields"]
            ]
            return {**node, "fields": fields}
        if kind == "array":
            return {**node, "items": _inline_named_types(node["items"], shared, defined)}
        if kind == "map":
            return {**node, "values": _inline_named_types(node["values"], shared, defined)}
        return (
            {**node, "type": _inline_named_types(kind, shared, defined)} if isinstance(kind, list) else node
        )
    return node


def compose_event_schema(event_type: str) -> dict[str, Any]:
    """The current full schema of ``event_type`` from the sources."""
    envelope = _load_json(AVRO_DIR / "envelope.avsc")
    payload_path = AVRO_DIR / "events" / f"{event_type}.avsc"
    if not payload_path.is_file():
        raise SchemaRegistryError(f"no payload schema for event type {event_type!r} at {payload_path}")
    payload = _load_json(payload_path)
    composed = {
        "type": "record",
        "name": event_type,
        "namespace": EVENTS_NAMESPACE,
        "doc": payload.get("doc", ""),
        "fields": [*envelope["fields"], {"name": "payload", "type": payload}],
    }
    return _inline_named_types(composed, _shared_types(), set())


def source_event_types() -> list[str]:
    return sorted(path.stem for path in (AVRO_DIR / "events").glob("*.avsc"))


def fingerprint(schema: dict[str, Any]) -> tuple[bytes, Any]:
    """(CRC-64-AVRO fingerprint of the Parsing Canonical Form, fastavro parsed schema)."""
    canonical = fastavro.schema.to_parsing_canonical_form(
        fastavro.schema.parse_schema(copy.deepcopy(schema), _write_hint=False)
    )
    # The parsed form keeps fastavro's "already parsed" mark: without it every read and write of an
    # event parsed the whole schema again (that was most of the codec's time).
    parsed = fastavro.schema.parse_schema(copy.deepcopy(schema))
    # fastavro renders the fingerprint as hex of the little-endian bytes, which is what we frame with.
    return bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")), parsed


class SchemaRegistry:
    """Every known writer schema by fingerprint, and the current schema per event type."""

    def __init__(self, frozen: dict[str, list[dict[str, Any]]]):
        self._by_fingerprint: dict[bytes, RegisteredSchema] = {}
        self._current: dict[str, RegisteredSchema] = {}
        for event_type, versions in frozen.items():
            for entry in versions:
                self.register(event_type, int(entry["version"]), entry["schema"])

    def register(self, event_type: str, version: int, schema: dict[str, Any]) -> RegisteredSchema:
        fp, parsed = fingerprint(schema)
        registered = RegisteredSchema(event_type, version, fp, schema, parsed)
        self._by_fingerprint[fp] = registered
        current = self._current.get(event_type)
        if current is None or version > current.version:
            self._current[event_type] = registered
        return registered

    def learn(self, fp: bytes, event_type: str, version: int, schema: dict[str, Any]) -> RegisteredSchema:
        """Know a writer schema another release froze (from a run's ``SchemaRegistered``), for reading
        only: writers keep this release's current versions. Refuses a schema whose fingerprint is not
        ``fp``, so a definition cannot make one schema's events read with another."""
        known = self._by_fingerprint.get(fp)
        if known is not None:
            return known
        try:
            actual, parsed = fingerprint(schema)
        except Exception as error:  # fastavro refuses invalid schemas with many types
            raise SchemaRegistryError(f"invalid {event_type} schema: {error}") from error
        if actual != fp:
            raise SchemaRegistryError(
                f"a {event_type} schema registered as {fp.hex()} has fingerprint {actual.hex()}"
            )
        learned = RegisteredSchema(event_type, version, fp, schema, parsed, learned=True)
        self._by_fingerprint[fp] = learned
        return learned

    def by_fingerprint(self, fp: bytes) -> RegisteredSchema | None:
        return self._by_fingerprint.get(fp)

    def current(self, event_type: str) -> RegisteredSchema:
        try:
            return self._current[event_type]
        except KeyError:
            raise SchemaRegistryError(f"unknown event type {event_type!r}") from None

    def event_types(self) -> list[str]:
        return sorted(self._current)

    def versions(self, event_type: str) -> list[RegisteredSchema]:
        return sorted(
            (s for s in self._by_fingerprint.values() if s.event_type == event_type and not s.learned),
            key=lambda s: s.version,
        )


def load_frozen() -> dict[str, list[dict[str, Any]]]:
    if not REGISTRY_FILE.is_file():
        return {}
    return _load_json(REGISTRY_FILE)


def unfrozen_changes() -> list[str]:
    """Event types whose source schema differs from their newest frozen version (or is not frozen)."""
    registry = SchemaRegistry(load_frozen())
    changed = []
    for event_type in source_event_types():
        fp, _ = fingerprint(compose_event_schema(event_type))
        try:
            if registry.current(event_type).fingerprint != fp:
                changed.append(event_type)
        except SchemaRegistryError:
            changed.append(event_type)
    return changed


def resolution_problem(writer: dict[str, Any], reader: dict[str, Any], records: int = 64) -> str | None:
    """Why Avro schema resolution cannot read ``writer``'s records with ``reader`` (a field added
    without a default, a changed type, ...), tried on generated records; None when it can."""
    import io

    import fastavro.utils
    from fastavro.read import SchemaResolutionError

    written = fastavro.schema.parse_schema(copy.deepcopy(writer))
    read = fastavro.schema.parse_schema(copy.deepcopy(reader))
    for record in fastavro.utils.generate_many(written, records):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, written, record)
        buffer.seek(0)
        try:
            fastavro.schemaless_reader(buffer, written, read)
        except (SchemaResolutionError, ValueError, TypeError, KeyError) as error:
            return f"{type(error).__name__}: {str(error)[:200]}"
    return None


def freeze(*, breaking: bool = False) -> list[str]:
    """Append a new version for every event type whose source changed; returns those types.

    A new version whose schema cannot resolve the previous version's records (so a consumer reading
    every event in the newest shape would fail) is refused unless ``breaking``: such a change needs
    readers that decode with the writer schema, and the docs to say so."""
    frozen = load_frozen()
    changed = unfrozen_changes()
    for event_type in changed:
        previous = frozen.get(event_type)
        problem = previous and resolution_problem(previous[-1]["schema"], compose_event_schema(event_type))
        if problem and not breaking:
            raise SchemaRegistryError(
                f"{event_type}: the new version cannot read version {previous[-1]['version']}'s events "
                f"by Avro schema resolution ({problem}); give new fields defaults and keep types, or "
                "freeze with --breaking (readers must then decode with the writer schema)"
            )
    for event_type in changed:
        versions = frozen.setdefault(event_type, [])
        schema = compose_event_schema(event_type)
        versions.append(
            {"version": len(versions) + 1, "fingerprint": fingerprint(schema)[0].hex(), "schema": schema}
        )
    if changed:
        REGISTRY_FILE.write_text(json.dumps(frozen, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return changed


@cache
def default_registry() -> SchemaRegistry:
    """The registry of this installation: every frozen version; fails loudly on unfrozen edits."""
    changed = unfrozen_changes()
    if changed:
        raise SchemaRegistryError(
            f"schema sources changed without a frozen version: {changed}; run `looptool schemas freeze`"
        )
    return SchemaRegistry(load_frozen())
