"""Every command's help shows what its text says: config sections such as ``[generator]`` are not
taken for rich markup tags and dropped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from looptool.cli import app

# A bracketed lowercase word (a config section, "[ingest]"), written escaped ("\[ingest]") or not.
_SECTION = re.compile(r"\\?\[([a-z][a-z_.]*)\]")


def _commands() -> list[tuple[str, Any]]:
    root = typer.main.get_command(app)  # Typer vendors click: its group is known by what it offers
    return sorted(root.commands.items())  # type: ignore[attr-defined]


def test_every_section_a_help_text_names_is_shown() -> None:
    runner = CliRunner()
    checked = 0
    for name, command in _commands():
        texts = [command.help or ""] + [getattr(param, "help", None) or "" for param in command.params]
        sections = {match.group(1) for text in texts for match in _SECTION.finditer(text)}
        if not sections:
            continue
        shown = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"}).output
        flat = " ".join(shown.replace("│", " ").split())
        for section in sections:
            assert f"[{section}]" in flat, f"looptool {name} --help drops [{section}]"
            checked += 1
    assert checked >= 2  # seed's [generator], ingest's [ingest] at least


def test_output_written_to_a_file_is_not_squeezed_to_80_columns(tmp_path: Path) -> None:
    """`looptool stats > stats.txt` once saved "17…" for every figure of a wide table."""
    script = (
        "from rich.table import Table\n"
        "from looptool.cli.common import console\n"
        "table = Table(*[f'column {i}' for i in range(12)])\n"
        "table.add_row(*[f'{i}{i}.{i}%' for i in range(12)])\n"
        "console.print(table)\n"
    )
    out = tmp_path / "stats.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    with out.open("w") as handle:
        subprocess.run([sys.executable, "-c", script], stdout=handle, env=env, check=True, timeout=120)
    text = out.read_text()
    assert "…" not in text
    assert all(f"{i}{i}.{i}%" in text and f"column {i}" in text for i in range(12))
