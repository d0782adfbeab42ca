"""The boundary to bfcl-eval: its checker runs untouched, without BFCL's model registry."""

from __future__ import annotations

import ast
import importlib.resources
import json
import subprocess
import sys

import pytest

from evaluation.bfcl_checker import REFERENCE_MODEL, REGISTRY_MODULE, ast_check, bfcl_version

FUNCTIONS = [
    {
        "name": "calculate_triangle_area",
        "description": "Calculate the area of a triangle given its base and height.",
        "parameters": {
            "type": "dict",
            "properties": {
                "base": {"type": "integer", "description": "The base of the triangle."},
                "height": {"type": "integer", "description": "The height of the triangle."},
                "unit": {"type": "string", "description": "The unit of measure."},
            },
            "required": ["base", "height"],
        },
    }
]
ANSWER = [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]


def test_checker_accepts_the_answer_and_names_what_is_wrong_otherwise() -> None:
    ok = ast_check(
        FUNCTIONS, [{"calculate_triangle_area": {"base": 10, "height": 5}}], ANSWER, "simple_python"
    )
    assert ok.valid and ok.error_type is None
    wrong = ast_check(
        FUNCTIONS, [{"calculate_triangle_area": {"base": 10, "height": 6}}], ANSWER, "simple_python"
    )
    assert not wrong.valid
    assert wrong.error_type == "value_error:others"
    missing = ast_check(FUNCTIONS, [{"calculate_triangle_area": {"base": 10}}], ANSWER, "simple_python")
    assert missing.error_type == "simple_function_checker:missing_required"
    assert not ast_check(FUNCTIONS, [], ANSWER, "simple_python").valid


def test_dotted_function_names_are_checked_as_written() -> None:
    """The registry is consulted only for names with '.'; the reference model keeps them as they are."""
    functions = [{**FUNCTIONS[0], "name": "geometry.area"}]
    answer = [{"geometry.area": ANSWER[0]["calculate_triangle_area"]}]
    assert ast_check(functions, [{"geometry.area": {"base": 10, "height": 5}}], answer, "simple_python").valid
    assert not ast_check(
        functions, [{"geometry_area": {"base": 10, "height": 5}}], answer, "simple_python"
    ).valid


def test_checker_exceptions_become_invalid_results() -> None:
    """An array parameter without ``items`` makes BFCL's checker raise; that output is not valid."""
    functions = [
        {
            "name": "f",
            "description": "",
            "parameters": {"type": "dict", "properties": {"xs": {"type": "array"}}},
        }
    ]
    result = ast_check(functions, [{"f": {"xs": [1]}}], [{"f": {"xs": [[1]]}}], "simple_python")
    assert not result.valid
    assert result.error_type == "checker_exception"
    assert "KeyError" in result.errors[0]


def test_inputs_are_not_mutated() -> None:
    output = [{"calculate_triangle_area": {"base": 10, "height": 5}}]
    before = json.dumps([FUNCTIONS, output, ANSWER])
    ast_check(FUNCTIONS, output, ANSWER, "simple_python")
    assert json.dumps([FUNCTIONS, output, ANSWER]) == before


def test_the_checker_is_imported_without_bfcls_model_handlers() -> None:
    """In a fresh interpreter: the checker module is bfcl-eval's own file, and no handler was imported."""
    code = (
        "import sys, json\n"
        "from evaluation.bfcl_checker import _checker\n"
        "checker, _ = _checker()\n"
        "print(json.dumps({'file': sys.modules[checker.__module__].__file__,\n"
        "  'handlers': sorted(m for m in sys.modules if m.startswith('bfcl_eval.model_handler')),\n"
        f"  'registry': getattr(sys.modules['{REGISTRY_MODULE}'], '__file__', None)}}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    package = importlib.resources.files("bfcl_eval")
    assert facts["file"] == str(package / "eval_checker" / "ast_eval" / "ast_checker.py")
    assert facts["handlers"] == []
    assert facts["registry"] is None  # our stand-in module, not a file of bfcl-eval


def test_the_reference_model_is_bfcls_qwen_fc_entry_without_underscore_to_dot() -> None:
    """The stand-in registry says what BFCL's real registry says for the reference model.

    Read from bfcl-eval's source (importing it would need every provider SDK).
    """
    source = (importlib.resources.files("bfcl_eval") / "constants" / "model_config.py").read_text(
        encoding="utf-8"
    )
    entries = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Call):
                    entries[key.value] = {kw.arg: kw.value for kw in value.keywords}
    entry = entries[REFERENCE_MODEL]
    assert isinstance(entry["underscore_to_dot"], ast.Constant) and entry["underscore_to_dot"].value is False
    assert isinstance(entry["model_handler"], ast.Name) and entry["model_handler"].id == "QwenFCHandler"


def test_version_is_the_pinned_one() -> None:
    assert bfcl_version() == "2026.3.23"


@pytest.mark.parametrize("category", ["parallel", "live_parallel_multiple"])
def test_parallel_categories_compare_calls_as_a_multiset(category: str) -> None:
    answer = [*ANSWER, {"calculate_triangle_area": {"base": [3], "height": [4], "unit": [""]}}]
    output = [
        {"calculate_triangle_area": {"base": 3, "height": 4}},
        {"calculate_triangle_area": {"base": 10, "height": 5}},
    ]
    assert ast_check(FUNCTIONS, output, answer, category).valid
    assert not ast_check(FUNCTIONS, output[:1], answer, category).valid
