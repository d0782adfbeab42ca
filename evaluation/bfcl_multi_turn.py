"""The one place that imports bfcl-eval's executable multi-turn checker and its simulated APIs.

BFCL's multi-turn categories are conversations with a stateful backend: a file system, a trading
bot, a travel booking system... (``bfcl_eval/eval_checker/multi_turn_eval/func_source_code``). The
model's calls are Python call strings (``cd(folder='document')``) that BFCL executes on instances of
those classes, and ``multi_turn_checker`` judges a conversation by re-executing the model's calls and
the ground truth turn by turn, comparing the instances' state and the calls' results.

Those modules need only the standard library (``multi_turn_checker``, ``multi_turn_utils``,
``constants.executable_backend_config``, ``constants.default_prompts`` and the eight API classes of
the four categories we run): no model registry, no stand-in. What needs care is how BFCL keeps its
API instances: in the globals of ``multi_turn_utils``, keyed by model name, entry id and class, and
never released (BFCL runs one process per model). :class:`ApiNamespace` gives each conversation (and
each check) a unique model name and removes its instances afterwards, so conversations never share
state and a long-running evaluator does not grow without bound.

BFCL executes the call strings with ``eval``. Model output must therefore never reach it as code: a
call becomes ``name(key=repr(value), ...)`` (the string bfcl-eval's own ``convert_to_function_call``
builds from a decoded call) only when its name is a public method of the conversation's API classes
or a name nothing resolves (which fails exactly as in BFCL, with ``NameError``), and its argument
names are identifiers; anything else becomes :data:`UNEXECUTABLE_CALL`, which fails with an error
result too. Values are JSON values, whose ``repr`` is a Python literal.
"""

from __future__ import annotations

import ast
import builtins
import copy
import importlib
import inspect
import json
import keyword
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any

from evaluation.bfcl_checker import BfclUnavailableError
from toolcall.types import ToolCall

CHECKER_MODULE = "bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker"
UTILS_MODULE = "bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils"
BACKENDS_MODULE = "bfcl_eval.constants.executable_backend_config"
PROMPTS_MODULE = "bfcl_eval.constants.default_prompts"

# Evaluated by BFCL's executor, this raises NameError: an error result, no side effect.
UNEXECUTABLE_CALL = "looptool_unexecutable_call()"
NAMESPACE_PREFIX = "looptool_"
_INSTANCE_NAME_CHARS = re.compile(r"[-./:]")  # what BFCL replaces by "_" in its instance names


@dataclass(frozen=True)
class MultiTurnCheck:
    """bfcl-eval's verdict on one conversation: valid, BFCL's ``error_type`` and message."""

    valid: bool
    error_type: str | None = None
    error_message: str | None = None
    details: str | None = None  # a short JSON excerpt of BFCL's details (state differences, missing results)


@cache
def _modules() -> dict[str, ModuleType]:
    try:
        return {
            "checker": importlib.import_module(CHECKER_MODULE),
            "utils": importlib.import_module(UTILS_MODULE),
            "backends": importlib.import_module(BACKENDS_MODULE),
            "prompts": importlib.import_module(PROMPTS_MODULE),
        }
    except ImportError as exc:
        raise BfclUnavailableError(
            "bfcl-eval (with its multi-turn checker) is not installed in this environment; it is a "
            f"project dependency (run scripts/install.sh, or `uv sync`): {exc}"
        ) from exc


def max_step_limit() -> int:
    """BFCL's ``MAXIMUM_STEP_LIMIT``: steps per turn before its inference force-quits a conversation."""
    return int(_modules()["prompts"].MAXIMUM_STEP_LIMIT)


def additional_function_prompt() -> str:
    """The user message BFCL's function-calling inference sends when held-out functions are added."""
    return str(_modules()["prompts"].DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC)


def func_doc_files() -> dict[str, str]:
    """BFCL's function-doc file (under ``data/multi_turn_func_doc``) for each API class."""
    return dict(_modules()["backends"].MULTI_TURN_FUNC_DOC_FILE_MAPPING)


@cache
def api_class(class_name: str) -> type:
    backends = _modules()["backends"]
    try:
        module = importlib.import_module(backends.CLASS_FILE_PATH_MAPPING[class_name])
    except KeyError:
        raise ValueError(f"bfcl-eval has no API class {class_name!r}") from None
    return getattr(module, class_name)


@cache
def api_methods(class_name: str) -> frozenset[str]:
    """The public methods of an API class: what BFCL's executor binds to the class's instance."""
    instance = api_class(class_name)()
    return frozenset(
        name
        for name, _ in inspect.getmembers(instance, predicate=inspect.ismethod)
        if not name.startswith("_")
    )


def _resolvable(name: str) -> bool:
    """Whether ``eval`` of ``name`` in BFCL's executor finds something (a module global or a builtin)."""
    return name in vars(_modules()["utils"]) or hasattr(builtins, name)


def to_bfcl_call(call: ToolCall, methods: frozenset[str]) -> str:
    """A decoded call as the string BFCL executes, or :data:`UNEXECUTABLE_CALL` (see the module doc).

    ``methods``: the public methods of the conversation's API classes (:func:`methods_of`).
    """
    name = call.name
    executable_name = name in methods or (
        name.isidentifier() and not keyword.iskeyword(name) and not _resolvable(name)
    )
    safe_keys = all(
        isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k) for k in call.arguments
    )
    if not (executable_name and safe_keys):
        return UNEXECUTABLE_CALL
    return f"{name}({','.join(f'{key}={value!r}' for key, value in call.arguments.items())})"


def methods_of(involved_classes: Sequence[str]) -> frozenset[str]:
    return frozenset().union(*(api_methods(name) for name in involved_classes))


def parse_bfcl_call(text: str, involved_classes: Sequence[str]) -> ToolCall:
    """A ground-truth call string (``sort('final_report.pdf')``) as a named-argument call.

    Positional arguments are named by the signature of the API method they call.
    """
    node = ast.parse(text.strip(), mode="eval").body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"not a plain function call: {text!r}")
    name = node.func.id
    arguments: dict[str, Any] = {}
    if node.args:
        owner = next((c for c in involved_classes if name in api_methods(c)), None)
        if owner is None:
            raise ValueError(f"{name!r} is not a method of {list(involved_classes)}")
        params = [p for p in inspect.signature(getattr(api_class(owner), name)).parameters if p != "self"]
        if len(node.args) > len(params):
            raise ValueError(f"{text!r}: more positional arguments than {name} takes")
        for param, value in zip(params, node.args, strict=False):
            arguments[param] = ast.literal_eval(value)
    for kw in node.keywords:
        if kw.arg is None:
            raise ValueError(f"{text!r}: ** arguments are not supported")
        arguments[kw.arg] = ast.literal_eval(kw.value)
    return ToolCall(name=name, arguments=arguments)


@dataclass
class ApiNamespace:
    """A private set of BFCL API instances for one conversation or one check; :meth:`close` frees them.

    BFCL names its instances ``<model name>_<entry id>_<class>_instance`` in its executor's globals;
    the namespace's unique model name keeps them apart from every other conversation's, including the
    ``_eval`` and ``_ground_truth_eval`` instances its checker creates from the same model name.
    """

    entry_id: str
    initial_config: dict[str, Any]
    involved_classes: list[str]
    long_context: bool
    model_name: str = field(default_factory=lambda: f"{NAMESPACE_PREFIX}{uuid.uuid4().hex}")

    def execute(self, calls: Sequence[str]) -> list[str]:
        """Execute call strings on this namespace's instances (state carries over between calls)."""
        utils = _modules()["utils"]
        results, _ = utils.execute_multi_turn_func_call(
            func_call_list=list(calls),
            initial_config=self.initial_config,
            involved_classes=self.involved_classes,
            model_name=self.model_name,
            test_entry_id=self.entry_id,
            long_context=self.long_context,
            is_evaL_run=False,
        )
        return [str(result) for result in results]

    def close(self) -> None:
        prefix = _INSTANCE_NAME_CHARS.sub("_", self.model_name) + "_"
        namespace = vars(_modules()["utils"])
        for name in [n for n in namespace if n.startswith(prefix)]:
            del namespace[name]

    def __enter__(self) -> ApiNamespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def live_instances() -> int:
    """How many API instances of ours BFCL's executor holds (0 once every namespace is closed)."""
    return sum(1 for name in vars(_modules()["utils"]) if name.startswith(NAMESPACE_PREFIX))


def _excerpt(value: Any, limit: int = 2000) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def check_conversation(
    entry: dict[str, Any], decoded_turns: list[list[list[str]]], ground_truth: list[list[str]]
) -> MultiTurnCheck:
    """Run bfcl-eval's ``multi_turn_checker`` on decoded model calls (per turn, per step, call strings).

    ``entry`` carries BFCL's ``id``, ``initial_config`` and ``involved_classes``. The checker runs in a
    namespace of its own, freed afterwards; an exception inside it (an assertion BFCL's authors made)
    is an invalid result naming the exception.
    """
    checker = _modules()["checker"]
    namespace = ApiNamespace(entry["id"], entry["initial_config"], list(entry["involved_classes"]), False)
    category = entry["id"].rsplit("_", 1)[0]
    try:
        verdict = checker.multi_turn_checker(
            decoded_turns, ground_truth, copy.deepcopy(entry), category, namespace.model_name
        )
    except Exception as error:  # the checker's own failure: the conversation was not validated
        return MultiTurnCheck(False, "checker_exception", f"{type(error).__name__}: {error}")
    finally:
        namespace.close()
    if verdict.get("valid"):
        return MultiTurnCheck(True)
    details = verdict.get("details")
    if isinstance(details, dict):  # keep what explains the failure, not the whole state dump
        details = {k: v for k, v in details.items() if k in ("differences", "missing_items")} or None
    return MultiTurnCheck(
        False,
        verdict.get("error_type"),
        verdict.get("error_message"),
        _excerpt(details) if details else None,
    )
