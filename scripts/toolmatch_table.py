"""Render the hand-written ToolMatch vs BFCL comparison (tests/toolcall/data) into docs/toolmatch.md.

python scripts/toolmatch_table.py          # rewrite the table between the markers
python scripts/toolmatch_table.py --check  # exit 1 if the docs are stale (the tests do the same)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "toolcall" / "data" / "bfcl_comparison.json"
DOCS = ROOT / "docs" / "toolmatch.md"
BEGIN, END = "<!-- comparison:begin -->", "<!-- comparison:end -->"


def _side(value: Any) -> str:
    if isinstance(value, str):
        return f"text: {value!r}"

    def arguments(call: dict[str, Any]) -> str:
        return ", ".join(f"{key}={json.dumps(value)}" for key, value in call["arguments"].items())

    return "; ".join(f"{call['name']}({arguments(call)})" for call in value)


def render_table(cases: list[dict[str, Any]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| # | case | label | prediction | BFCL | ToolMatch | why they differ |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for number, case in enumerate(cases, start=1):
        ordered = " (ordered)" if case["ordered"] else ""
        lines.append(
            "| {} | {} | `{}`{} | `{}` | {} | {} | {} |".format(
                number,
                cell(case["description"]),
                cell(_side(case["label"])),
                ordered,
                cell(_side(case["prediction"])),
                "match" if case["bfcl"] else "no match",
                "match" if case["ours"] else "no match",
                cell(case["note"]) if case["ours"] != case["bfcl"] else "",
            )
        )
    return "\n".join(lines)


def main() -> int:
    cases = json.loads(DATA.read_text())
    table = render_table(cases)
    text = DOCS.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    updated = f"{head}{BEGIN}\n{table}\n{END}{tail}"
    if "--check" in sys.argv:
        return 0 if updated == text else 1
    DOCS.write_text(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
