"""toolcall.templates: the chat-template rules that verl's reward manager shares with the probe."""

from __future__ import annotations

import subprocess
import sys

import pytest

from toolcall.templates import _is_template_error


def test_the_template_rules_import_neither_jinja2_nor_transformers() -> None:
    """verl's reward manager imports them in verl's environment, where only toolcall is ours."""
    code = (
        "import sys, toolcall.templates; "
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'jinja2','transformers','tokenizers','torch','numpy','inference','trainer','common'})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_a_templates_refusal_is_told_by_its_class_without_importing_jinja2() -> None:
    jinja2 = pytest.importorskip("jinja2")
    for error in (
        jinja2.TemplateError("refused"),
        jinja2.TemplateSyntaxError("bad", 1),
        jinja2.UndefinedError("missing"),
    ):
        assert _is_template_error(error)
    assert not _is_template_error(ValueError("no chat template"))
