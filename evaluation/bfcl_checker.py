"""The one place that imports bfcl-eval's AST checker, and how it does so without BFCL's model registry.

``bfcl_eval.eval_checker.ast_eval.ast_checker`` needs only the standard library and four modules of
its own package, but its first lines import ``bfcl_eval.constants.model_config``, which imports every
model handler BFCL ships (provider SDKs, qwen-agent, soundfile, ...). The checker reads that registry
for a single fact: ``MODEL_CONFIG_MAPPING[model].underscore_to_dot``, consulted only for function
names containing ".", to undo the renaming that OpenAI-style APIs force on tool names.

We install bfcl-eval without its declared dependencies (see ``docs/evaluation.md``) and, before
importing the checker, register a stand-in ``bfcl_eval.constants.model_config`` module holding one
entry: :data:`REFERENCE_MODEL`, BFCL's own entry for Qwen3 in function-calling mode, whose prompt
and ``<tool_call>`` JSON output format are the ones our policy uses and whose ``underscore_to_dot`` is
``False`` (our prompts keep tool names as written). The checker's code is imported and run untouched.
If the real registry is already imported (a full bfcl-eval install), it is used as it is.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import sys
import types
from dataclasses import dataclass, field
from functools import cache
from typing import Any

DISTRIBUTION = "bfcl-eval"
REGISTRY_MODULE = "bfcl_eval.constants.model_config"
# BFCL's registry key whose handler (QwenFCHandler) formats tools and decodes outputs as our policy does.
REFERENCE_MODEL = "Qwen/Qwen3-8B-FC"


class BfclUnavailableError(RuntimeError):
    """bfcl-eval is not installed (or not importable) in this environment."""


@dataclass(frozen=True)
class RegistryEntry:
    """The one field of BFCL's ``ModelConfig`` that the AST checker reads."""

    underscore_to_dot: bool


@dataclass(frozen=True)
class CheckResult:
    """The checker's verdict on one model output: ``valid``, BFCL's ``error_type`` and its messages."""

    valid: bool
    error_type: str | None = None
    errors: list[Any] = field(default_factory=list)


def bfcl_version() -> str:
    """The installed bfcl-eval version (the suite version recorded on every evaluation)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise BfclUnavailableError(_missing_message()) from exc


def _missing_message() -> str:
    return (
        f"{DISTRIBUTION} is not installed in this environment; it is a project dependency "
        "(run scripts/install.sh, or `uv sync`)"
    )


def install_registry_shim() -> bool:
    """Register the stand-in registry module unless a registry is already imported; True if installed."""
    if REGISTRY_MODULE in sys.modules:
        return False
    module = types.ModuleType(
        REGISTRY_MODULE,
        doc="looptool-stream's stand-in for BFCL's model registry (see evaluation/bfcl_checker.py).",
    )
    module.MODEL_CONFIG_MAPPING = {REFERENCE_MODEL: RegistryEntry(underscore_to_dot=False)}  # type: ignore[attr-defined]
    sys.modules[REGISTRY_MODULE] = module
    return True


@cache
def _checker() -> tuple[Any, Any]:
    """(``ast_checker`` function, ``Language.PYTHON``) from bfcl-eval, imported once."""
    try:
        importlib.import_module("bfcl_eval")
    except ImportError as exc:
        raise BfclUnavailableError(_missing_message()) from exc
    install_registry_shim()
    checker = importlib.import_module("bfcl_eval.eval_checker.ast_eval.ast_checker")
    enums = importlib.import_module("bfcl_eval.constants.enums")
    return checker.ast_checker, enums.Language.PYTHON


def ast_check(
    functions: list[dict[str, Any]],
    model_output: list[dict[str, dict[str, Any]]],
    possible_answer: list[dict[str, dict[str, list[Any]]]],
    category: str,
) -> CheckResult:
    """Run BFCL's AST checker on a decoded model output (``[{func_name: {param: value}}, ...]``).

    ``category`` selects the checker's mode as in BFCL (names containing "parallel" compare calls
    as a multiset, "multiple" checks the single expected call among several tools, others a single
    call). The checker can raise on outputs its authors did not anticipate (e.g. a value for an
    array parameter whose schema lacks ``items``): that output is invalid, with the exception named.
    """
    ast_checker, python = _checker()
    try:
        verdict = ast_checker(
            copy.deepcopy(functions),
            copy.deepcopy(model_output),
            copy.deepcopy(possible_answer),
            python,
            category,
            REFERENCE_MODEL,
        )
    except Exception as error:  # the checker's own failure on this output: it did not validate it
        return CheckResult(False, "checker_exception", [f"{type(error).__name__}: {error}"])
    valid = bool(verdict.get("valid"))
    return CheckResult(valid, None if valid else verdict.get("error_type"), list(verdict.get("error") or []))
