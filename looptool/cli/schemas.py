"""``looptool schemas``: the event schema registry."""

from __future__ import annotations

import typer
from rich.table import Table

from looptool.cli.common import console

commands = typer.Typer(help="Event schema registry.", no_args_is_help=True)


@commands.command("freeze")
def schemas_freeze(
    breaking: bool = typer.Option(
        False,
        "--breaking",
        help="Freeze a version that cannot read the previous one's events by Avro schema resolution.",
    ),
) -> None:
    """Append a new frozen version for every event schema whose source changed (refused, without
    --breaking, where the new version cannot read the previous version's events)."""
    from schemas.registry import freeze

    changed = freeze(breaking=breaking)
    console.print(f"froze new versions of: {', '.join(changed)}" if changed else "no schema changed")


@commands.command("list")
def schemas_list() -> None:
    """List every event type with its versions and fingerprints."""
    from schemas.registry import default_registry

    registry = default_registry()
    table = Table("event type", "version", "fingerprint (CRC-64-AVRO)")
    for event_type in registry.event_types():
        for schema in registry.versions(event_type):
            table.add_row(event_type, str(schema.version), schema.fingerprint.hex())
    console.print(table)
