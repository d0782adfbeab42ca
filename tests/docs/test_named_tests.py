"""Every test a document names as a row's evidence exists, so a renamed or deleted test cannot leave a
claim in the docs with nothing behind it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS_NAMING_TESTS = ["docs/reliability.md"]
# `file.py::test_name`, `test_name`, `test_name[param]`, and a `..._middle_...` shorthand is skipped.
_NAMED = re.compile(r"`(?:(?P<file>[\w/]+\.py)::)?(?P<test>test_\w+)(?:\[[^\]`]*\])?`")


def _test_functions() -> dict[str, set[str]]:
    """Test function names under tests/, by the file names that define them."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                found.setdefault(node.name, set()).add(path.name)
    return found


@pytest.mark.parametrize("doc", DOCS_NAMING_TESTS)
def test_every_test_a_document_names_exists(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    defined = _test_functions()
    named = [(m["file"], m["test"]) for m in _NAMED.finditer(text)]
    assert len(named) > 20, "the pattern no longer finds the document's test names"
    missing = []
    for file, test in named:
        if test not in defined:
            missing.append(test)
        elif file and Path(file).name not in defined[test]:
            missing.append(f"{file}::{test} (defined in {sorted(defined[test])})")
    assert not missing, f"{doc} names tests that do not exist: {missing}"
