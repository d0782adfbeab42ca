"""Every command's help shows what its text says: config sections such as ``[generator]`` are not
taken for rich markup tags and dropped."""

from __future__ import annotations

import re
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
