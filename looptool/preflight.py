"""Preflight: what a run needs, checked in seconds before anything starts, each failure with its fix.

``looptool doctor`` runs every check and prints one row each; ``worker``, ``train``, ``eval`` and
``topics`` run the ones they need (:func:`worker_checks`, :func:`train_checks`, :func:`eval_checks`)
and stop with one line per failure instead of failing minutes later with a traceback.

The checks: the config parses; the broker answers within ``kafka.connect_timeout_s`` (10 s) and the
run's topics exist; the policy folder loads (config and tokenizer); each LLM role's endpoint answers a
one-token request with its configured model (or the role is simulated by ``[world]``); the store and
checkpoint folders are writable; verl's environment is there when ``[trainer] backend = "verl"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import subprocess
import time
import tomllib
import uuid
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

if TYPE_CHECKING:
    from looptool.config import Settings
    from streams.config import EndpointSettings, PolicySettings

BROKER_TIMEOUT_S = 10.0  # when [kafka] has no connect_timeout_s of its own
ENDPOINT_CONNECT_TIMEOUT_S = 10.0
ENDPOINT_ANSWER_TIMEOUT_S = 30.0  # a loaded server may queue the request behind others
VERL_IMPORT_TIMEOUT_S = 120.0
PROBE_MESSAGE = "Reply with OK."

# Which stage needs which dependency (the stages' from_settings ask AppClients for these).
POLICY_STAGES = frozenset({"probe", "evaluate"})
ROLE_OF_STAGE = {"judge": "judge", "expand": "generator", "verify": "verifier"}


@dataclass(frozen=True)
class CheckResult:
    """One row of the preflight: what was checked, whether it passed, what was found, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    # The server is there but failing right now (HTTP 5xx or 429): doctor reports it; a worker starts
    # anyway, since its stages pause and retry through an outage.
    outage: bool = False

    def line(self) -> str:
        """The result on one line (a failed check's fix after a dash)."""
        text = f"{self.name}: {self.detail}"
        return f"{text} — {self.fix}" if self.fix and not self.ok else text


def _ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, True, detail)


def _failed(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, False, detail, fix)


def _first_line(error: BaseException) -> str:
    text = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def public_url(url: str) -> str:
    """``url`` without a user or password (they never go into a message)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


# --- the config ---------------------------------------------------------------------------------------


def describe_config_error(error: BaseException) -> str:
    """One line for a config that does not load, without the values (a field may hold a secret)."""
    if isinstance(error, ValidationError):
        problems = []
        for item in error.errors(include_url=False):
            where = ".".join(str(part) for part in item["loc"]) or error.title
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown setting (a typo?)"
            problems.append(f"{where}: {message}")
        return "invalid configuration: " + "; ".join(problems)
    if isinstance(error, tomllib.TOMLDecodeError):
        return f"not valid TOML: {error}"
    return _first_line(error)


def check_config(
    config_file: Path | None, error: BaseException | None, settings: Settings | None
) -> CheckResult:
    """The config file (or the environment alone) parsed into settings."""
    source = (
        str(config_file) if config_file is not None else "no config file (defaults and LOOPTOOL_* variables)"
    )
    if error is not None or settings is None:
        return _failed(
            "config",
            f"{source}: {describe_config_error(error) if error else 'not loaded'}",
            "fix the file (`looptool init --force` writes a fresh commented one)",
        )
    return _ok("config", f"{source}: run {settings.run_id!r}")


# --- the broker and the run's topics ------------------------------------------------------------------


async def _admin_until_deadline(settings: Settings, timeout_s: float) -> tuple[Any | None, str]:
    """A started admin client of the configured cluster, retried until ``timeout_s``; else the reason."""
    from aiokafka.admin import AIOKafkaAdminClient

    from bus.kafka import client_options

    deadline = time.monotonic() + timeout_s
    reason = "no answer"
    while True:
        options = client_options(settings.kafka)  # check_kafka has seen it work
        options.pop("client_id")
        options["request_timeout_ms"] = int(max(1.0, min(timeout_s, settings.kafka.request_timeout_s)) * 1000)
        admin = AIOKafkaAdminClient(client_id=f"{settings.kafka.client_id}-preflight", **options)
        try:
            await asyncio.wait_for(admin.start(), max(0.1, deadline - time.monotonic()))
            return admin, ""
        except Exception as error:  # refused, reset, timed out, TLS: anything short of an answer
            reason = _kafka_reason(error)
            with contextlib.suppress(Exception):
                await admin.close()
        if time.monotonic() >= deadline:
            return None, reason
        await asyncio.sleep(0.25)


def _kafka_reason(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, TimeoutError) or "Unable to bootstrap" in text:
        return "nothing answered"
    return text if text.startswith(type(error).__name__) else _first_line(error)


def broker_timeout_s(settings: Settings) -> float:
    return float(getattr(settings.kafka, "connect_timeout_s", BROKER_TIMEOUT_S))


async def check_kafka(settings: Settings, *, topics: bool = True) -> list[CheckResult]:
    """The broker answers (retried for the connect timeout), and, if asked, the run's topics exist."""
    from bus.topics import TOPICS, partitions_for, topic_name

    servers = settings.kafka.bootstrap_servers
    if not servers:
        fix = (
            "set [kafka] bootstrap_servers (or LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS, or --bootstrap-servers); "
            "`looptool broker` starts a local one"
        )
        results = [_failed("broker", "no Kafka configured", fix)]
        if topics:
            results.append(_failed("topics", "not checked: no broker", "configure the broker first"))
        return results
    from bus.kafka import KafkaSetupError, client_options

    try:
        client_options(settings.kafka)
    except (OSError, ValueError, KafkaSetupError) as error:  # SASL half set, a missing CA or password file
        results = [
            _failed(
                "broker",
                f"the [kafka] connection settings do not work: {_first_line(error)}",
                "check [kafka] security_protocol, the TLS files and the SASL user and password file",
            )
        ]
        if topics:
            results.append(_failed("topics", "not checked: no broker", "fix the broker's settings first"))
        return results
    timeout_s = broker_timeout_s(settings)
    quiet = logging.getLogger("aiokafka")  # every refused connection would be logged as an error
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        admin, reason = await _admin_until_deadline(settings, timeout_s)
    finally:
        quiet.setLevel(level)
    if admin is None:
        results = [
            _failed(
                "broker",
                f"cannot reach Kafka at {servers} within {timeout_s:g} s ({reason})",
                "start it (`looptool broker --port PORT` runs a local one) or correct "
                "[kafka] bootstrap_servers",
            )
        ]
        if topics:
            results.append(_failed("topics", "not checked: no broker", "start the broker first"))
        return results
    try:
        results = [_ok("broker", f"Kafka at {servers} answers")]
        if not topics:
            return results
        wanted = {
            topic_name(settings.run_id, spec.name): partitions_for(spec, settings.kafka) for spec in TOPICS
        }
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            results.append(
                _failed(
                    "topics",
                    f"{len(missing)} of the {len(wanted)} topics of run {settings.run_id!r} are "
                    f"missing ({shown})",
                    "run `looptool topics`",
                )
            )
            return results
        wrong = []
        for topic in await admin.describe_topics(list(wanted)):
            count = len(topic.get("partitions", []))
            if count != wanted[topic["topic"]]:
                wrong.append(
                    f"{topic['topic']} has {count} partitions, the catalog wants {wanted[topic['topic']]}"
                )
        if wrong:
            results.append(
                _failed(
                    "topics",
                    "; ".join(wrong[:2]),
                    "use another run_id, or set [kafka] partitions to what the run was created with",
                )
            )
        else:
            results.append(_ok("topics", f"the {len(wanted)} topics of run {settings.run_id!r} exist"))
        return results
    except Exception as error:  # the broker went away between the checks
        return [
            _ok("broker", f"Kafka at {servers} answers"),
            _failed("topics", _first_line(error), "check the broker"),
        ]
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


# --- the policy ---------------------------------------------------------------------------------------

_POLICY_FOLDER = "a Hugging Face model folder: config.json, *.safetensors, a tokenizer with a chat template"


def check_model_folder(
    name: str,
    folder: Path | None,
    setting: str = "[policy] model_path",
    template_kwargs: dict[str, Any] | None = None,
) -> CheckResult:
    """``folder`` holds a model that loads: its files are there, its config and tokenizer load, and its
    chat template renders a policy prompt with ``template_kwargs`` (``[policy] chat_template_kwargs``)."""
    from trainer.base import check_hf_folder

    if folder is None:
        return _failed(name, "no model folder set", f"set {setting} to your model ({_POLICY_FOLDER})")
    folder = Path(folder)
    if not folder.is_dir():
        return _failed(name, f"{folder} is not a folder", f"set {setting} to your model ({_POLICY_FOLDER})")
    try:
        check_hf_folder(folder)
    except ValueError as error:
        return _failed(name, str(error), f"point {setting} at {_POLICY_FOLDER}")
    try:
        from transformers import AutoConfig, AutoTokenizer

        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as error:  # whatever transformers raises for a folder it cannot read
        return _failed(name, f"{folder} does not load: {_first_line(error)}", f"check the files in {folder}")
    try:
        _render_policy_prompt(tokenizer, template_kwargs)
    except Exception as error:  # a template's own refusal, or a Jinja error in it
        return _failed(
            name,
            f"{folder}: the chat template cannot render a policy prompt: {_first_line(error)}",
            f"fix the chat template in {folder} (tokenizer_config.json or chat_template.jinja)",
        )
    return _ok(name, f"{folder}: {config.model_type}, tokenizer of {len(tokenizer)} tokens")


def _render_policy_prompt(tokenizer: Any, template_kwargs: dict[str, Any] | None = None) -> None:
    """Render one policy prompt as the probe and the trainers do, with every kind of turn they write:
    the system turn, a call, its result as a user turn, and the user's next message after it."""
    from toolcall.prompts import build_chat
    from toolcall.specs import ToolSpec
    from toolcall.templates import render_prompt
    from toolcall.types import Message, ToolCall

    tool = ToolSpec.from_openai(
        {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    )
    messages = [
        Message(role="user", content="Weather in Paris?"),
        Message(role="assistant", tool_calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})]),
        Message(role="tool", name="get_weather", content='{"temperature": 21}'),
        Message(role="user", content="And in Rome?"),
    ]
    render_prompt(tokenizer, build_chat([tool], messages), template_kwargs)


async def check_policy_endpoint(policy: PolicySettings) -> list[CheckResult]:
    """``backend = "openai"``: the policy's endpoint answers a one-token request with the initial model."""
    if policy.backend != "openai" or policy.endpoint is None:
        return []
    return [
        await check_endpoint(
            "policy endpoint",
            "policy.endpoint",
            policy.endpoint,
            logprobs=True,
            chat_template_kwargs=policy.chat_template_kwargs,
        )
    ]


def check_policy(policy: PolicySettings, checkpoint: Path | None = None) -> CheckResult:
    """The policy's initial model folder (or ``looptool eval``'s ``checkpoint`` folder) loads; the vLLM
    backend is installed when chosen.

    The initial folder is checked whatever the backend: the trainer trains from it (with ``backend =
    "openai"`` the probe decodes through the endpoint, :func:`check_policy_endpoint`)."""
    if checkpoint is None:
        name = "policy"
        result = check_model_folder(name, policy.model_path, template_kwargs=policy.chat_template_kwargs)
    else:
        name = "checkpoint"
        result = check_model_folder(name, checkpoint, "--checkpoint", policy.chat_template_kwargs)
    if result.ok and policy.backend == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            return _failed(
                name,
                'backend = "vllm" but vLLM is not installed in this environment',
                "install it (scripts/install.sh --extra gpu, on a GPU machine) or set [policy] backend = "
                '"transformers"',
            )
        return _ok(name, f"{result.detail} (vllm backend)")
    return result


# --- the LLM roles ------------------------------------------------------------------------------------


async def check_endpoint(
    name: str,
    section: str,
    role: EndpointSettings,
    *,
    logprobs: bool = False,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> CheckResult:
    """``role``'s endpoint answers a one-token chat request with its configured model, sent with every
    field the stage's requests carry (:func:`endpoint_request`): a server that refuses one of them
    fails here, not on every input of a run. ``logprobs`` and ``chat_template_kwargs``: the policy's
    requests carry them."""
    import httpx

    url = role.base_url.rstrip("/")
    shown = public_url(url)
    try:
        key = role.resolved_api_key()
    except OSError as error:
        return _failed(
            name, f"cannot read the API key file: {error.strerror}", f"check [{section}] api_key_file"
        )
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    def scrub(text: str) -> str:
        return text.replace(key, "***") if key else text

    payload = endpoint_request(role, logprobs=logprobs, chat_template_kwargs=chat_template_kwargs)
    answer_s = min(role.timeout_s, ENDPOINT_ANSWER_TIMEOUT_S)
    timeout = httpx.Timeout(answer_s, connect=min(answer_s, ENDPOINT_CONNECT_TIMEOUT_S))
    serve_fix = (
        f"start the server (the vLLM command is written beside [{section}] in looptool.toml) "
        f"or correct [{section}] base_url"
    )
    async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
        try:
            response = await client.post(f"{url}/chat/completions", json=payload)
        except httpx.TimeoutException:
            return _failed(name, f"{shown}: no answer within {answer_s:g} s", serve_fix)
        except httpx.HTTPError as error:
            return _failed(name, f"cannot reach {shown} ({scrub(_first_line(error))})", serve_fix)
        if response.status_code in (401, 403) or (
            response.status_code == 400 and _names_credentials(response.text)
        ):
            return _failed(
                name,
                f"{shown} refused the request (HTTP {response.status_code}): the API key is missing or wrong",
                f"set [{section}] api_key_file to a file holding the server's key",
            )
        if response.status_code == 404:
            served = await _served_models(client, url)
            listed = f" (it serves {', '.join(served)})" if served else ""
            return _failed(
                name,
                f"{shown} does not serve model {role.model!r}{listed}",
                f"set [{section}] model to the server's --served-model-name",
            )
        if response.status_code == 400 and _names_account(response.text):
            body = scrub(" ".join(response.text.split()))[:200]
            return _failed(
                name,
                f"{shown} refuses the account behind the key (HTTP 400): {body}",
                "check the provider account's credit, billing and region, or use another key",
            )
        if response.status_code in (400, 422) and not _names_content(response.text):
            body = scrub(" ".join(response.text.split()))[:200]
            return _failed(
                name,
                f"{shown} refuses the requests the stages send (HTTP {response.status_code}): {body}",
                f'drop what it refuses: [{section}] extra_body, budget_field = "max_completion_tokens" '
                "(OpenAI's reasoning models), seeded_sampling = false, chat_template_kwargs, "
                "constrain_output",
            )
        if response.status_code != 200:
            body = scrub(" ".join(response.text.split()))[:200]
            failed = _failed(name, f"{shown} answered HTTP {response.status_code}: {body}", serve_fix)
            if response.status_code >= 500 or response.status_code == 429:
                return dataclasses.replace(failed, outage=True)
            return failed
        try:
            choices = response.json()["choices"]
            assert isinstance(choices, list) and choices
        except (ValueError, KeyError, TypeError, AssertionError):
            return _failed(
                name,
                f"{shown} answered, but not with an OpenAI chat completion",
                f"point [{section}] base_url at an OpenAI-compatible server's /v1",
            )
    return _ok(name, f"{shown} answers as {role.model!r}")


def endpoint_request(
    role: EndpointSettings, *, logprobs: bool, chat_template_kwargs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A one-token request in the shape of the stages' requests to ``role``: the sampled shape of a
    re-ask (temperature, top_p, seed), the budget field, log-probs, template switches, grammar and
    extra fields, as the role's backend writes them."""
    from inference.base import SamplingConfig
    from looptool.wiring import endpoint_backend

    backend = endpoint_backend(role, logprobs=logprobs, chat_template_kwargs=chat_template_kwargs)
    sampling = SamplingConfig(
        greedy=False,
        temperature=getattr(role, "retry_temperature", 0.7),
        top_p=getattr(role, "top_p", 1.0),
        max_tokens=1,
        seed=0,
        regex=r"[\s\S]*" if getattr(role, "constrain_output", False) else None,
    )
    return backend.chat_payload([{"role": "user", "content": PROBE_MESSAGE}], sampling)


def _names_credentials(body: str) -> bool:
    """A 400 that refuses the key (Gemini's "API key not valid"), as a 401 does elsewhere."""
    from inference.openai_backend import rejection_names_credentials

    return rejection_names_credentials(body)


def _names_account(body: str) -> bool:
    """A 400 that refuses the account (Anthropic's "credit balance is too low")."""
    from inference.openai_backend import rejection_names_account

    return rejection_names_account(body)


def _names_content(body: str) -> bool:
    """A refusal of the probe's content rather than of the request's shape (see the OpenAI backend)."""
    from inference.openai_backend import rejection_is_input_fault

    return rejection_is_input_fault(body)


async def _served_models(client: Any, url: str) -> list[str]:
    try:
        response = await client.get(f"{url}/models")
        return sorted(str(entry["id"]) for entry in response.json()["data"])
    except Exception:  # the listing is a hint only
        return []


def _role_fix(section: str) -> str:
    where = (
        "[judge] base_url and model (the verifier asks [judge]'s server unless [verifier] names its own)"
        if section == "verifier"
        else f"[{section}] base_url and model"
    )
    return f"set {where}; `looptool init` writes the roles' sections with the vLLM command that serves them"


def role_endpoints(settings: Settings) -> dict[str, list[tuple[str, str, EndpointSettings]]]:
    """Each LLM role's endpoints as (row name, config section, endpoint); empty when not configured."""
    roles: dict[str, list[tuple[str, str, EndpointSettings]]] = {"judge": [], "generator": [], "verifier": []}
    if settings.judge is not None:
        judges = settings.judge.judges()
        for index, judge in enumerate(judges):
            label = "judge" if index == 0 else f"judge {index + 1} ({judge.model})"
            roles["judge"].append((label, "judge" if index == 0 else "judge.panel", judge))
    if settings.generator is not None:
        roles["generator"].append(("generator", "generator", settings.generator))
    verifier = settings.verifier_role()
    if verifier is not None:
        own_server = settings.verifier is not None and settings.verifier.base_url is not None
        roles["verifier"].append(("verifier", "verifier" if own_server else "judge", verifier))
    return roles


async def check_roles(
    settings: Settings, roles: Iterable[str] = ("judge", "generator", "verifier")
) -> list[CheckResult]:
    """Each role's endpoint answers (a role without one is simulated by [world], or fails)."""
    endpoints = role_endpoints(settings)
    asked: dict[tuple[str, ...], asyncio.Task[CheckResult]] = {}
    pending: list[tuple[str, str, asyncio.Task[CheckResult] | None]] = []
    for role in roles:
        if not endpoints[role]:
            pending.append((role, role, None))
            continue
        for label, section, endpoint in endpoints[role]:
            # The verifier without a [verifier] of its own asks [judge]'s server: one request for both.
            key = (section, endpoint.base_url.rstrip("/"), endpoint.model, str(endpoint.api_key_file or ""))
            if key not in asked:
                asked[key] = asyncio.create_task(check_endpoint(label, section, endpoint))
            pending.append((label, section, asked[key]))
    results = []
    quiet = logging.getLogger("httpx")  # it logs every request at INFO: the rows say it all
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        outcomes = {id(task): await task for _, _, task in pending if task is not None}
    finally:
        quiet.setLevel(level)
    for label, section, task in pending:
        if task is None:
            if settings.world is not None:
                results.append(
                    _ok(
                        label,
                        f"simulated by the synthetic world ([world] seed {settings.world.seed}): "
                        "offline runs only",
                    )
                )
            else:
                results.append(_failed(label, "no endpoint configured", _role_fix(section)))
            continue
        result = outcomes[id(task)]
        results.append(dataclasses.replace(result, name=label))
    return results


# --- folders and the verl environment ------------------------------------------------------------------


def check_writable(name: str, folder: Path, setting: str) -> CheckResult:
    """A file can be written in ``folder``, or the folder can be created (nothing is left behind)."""
    fix = f"set {setting} to a folder you can write"
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return _failed(name, f"{existing} is in the way of {folder}: not a folder", fix)
    if existing != folder:
        if os.access(existing, os.W_OK | os.X_OK):
            return _ok(name, f"{folder} can be created")
        return _failed(name, f"cannot create {folder}: {existing} is not writable", fix)
    probe = folder / f".looptool-preflight-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        return _failed(name, f"cannot write in {folder} ({error.strerror or error})", fix)
    return _ok(name, f"{folder} is writable")


def check_store(settings: Settings) -> CheckResult:
    return check_writable("store", settings.store.folder(settings.run_id), "[store] path")


def check_checkpoints(settings: Settings) -> CheckResult:
    return check_writable("checkpoints", settings.trainer.output_dir, "[trainer] output_dir")


def check_verl(settings: Settings) -> CheckResult:
    """verl's own environment is there and imports verl (``[trainer] backend = "verl"`` only)."""
    from trainer.verl.process import resolve_verl_python

    fix = "create it with scripts/install-verl.sh (--gpu on GPU machines), or set [trainer.verl] python"
    try:
        python = resolve_verl_python(settings.trainer.verl)
    except FileNotFoundError as error:
        return _failed("verl", str(error).split(":")[0], fix)
    try:
        done = subprocess.run(
            [str(python), "-c", "import verl; print(verl.__version__)"],
            capture_output=True,
            text=True,
            timeout=VERL_IMPORT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return _failed("verl", f"{python} does not run: {_first_line(error)}", fix)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return _failed("verl", f"{python} cannot import verl: {last}", fix)
    return _ok("verl", f"verl {done.stdout.strip()} in {python}")


# --- which checks each command runs --------------------------------------------------------------------


async def _gather(parts: Sequence[Awaitable[list[CheckResult]]]) -> list[CheckResult]:
    """The results in order; the checks run concurrently (the blocking ones in threads)."""
    return [result for results in await asyncio.gather(*parts) for result in results]


async def _threaded(function: Any, *args: Any) -> list[CheckResult]:
    """A blocking check (files, transformers, a subprocess) in a thread, as a list of one result."""
    return [await asyncio.to_thread(function, *args)]


async def doctor_checks(settings: Settings) -> list[CheckResult]:
    """Everything a run needs: broker and topics, policy, LLM roles, store, checkpoints, verl."""
    parts: list[Any] = [
        check_kafka(settings),
        _threaded(check_policy, settings.policy),
        check_policy_endpoint(settings.policy),
        check_roles(settings),
        _threaded(check_store, settings),
        _threaded(check_checkpoints, settings),
    ]
    if settings.trainer.backend == "verl":
        parts.append(_threaded(check_verl, settings))
    return await _gather(parts)


async def worker_checks(settings: Settings, stages: Iterable[str]) -> list[CheckResult]:
    """What the named stages need: the broker, the policy (probe, evaluate), their LLM roles."""
    names = set(stages)
    parts: list[Any] = [check_kafka(settings, topics=False)]  # the worker creates missing topics itself
    if names & POLICY_STAGES:
        parts.append(_threaded(check_policy, settings.policy))
        parts.append(check_policy_endpoint(settings.policy))
    roles = [role for stage, role in ROLE_OF_STAGE.items() if stage in names]
    if roles:
        parts.append(check_roles(settings, roles))
    return await _gather(parts)


async def train_checks(settings: Settings) -> list[CheckResult]:
    """What the trainer needs: the broker, the initial policy, a checkpoint folder, verl's env if chosen."""
    parts: list[Any] = [
        check_kafka(settings, topics=False),
        _threaded(check_policy, settings.policy),
        _threaded(check_checkpoints, settings),
    ]
    if settings.trainer.backend == "verl":
        parts.append(_threaded(check_verl, settings))
    return await _gather(parts)


async def eval_checks(settings: Settings, checkpoint: str) -> list[CheckResult]:
    """What ``looptool eval`` needs: the model folder it names, or the broker to look the id up in; a
    served policy's endpoint instead of either, as ``looptool doctor`` checks it (the endpoint lists
    the checkpoints it serves: :func:`looptool.cli.evaluate.served_checkpoint`)."""
    served = settings.policy.backend == "openai"
    parts: list[Any] = [check_policy_endpoint(settings.policy)]
    folder = Path(checkpoint)
    if not served and folder.is_dir():  # a served checkpoint is loaded and named by its endpoint
        parts.append(_threaded(check_policy, settings.policy, folder))
    elif not served:
        parts.append(check_kafka(settings, topics=False))
    parts.append(_threaded(check_writable, "results", settings.eval.results_dir, "[eval] results_dir"))
    return await _gather(parts)


async def broker_checks(settings: Settings) -> list[CheckResult]:
    """The broker alone (``looptool topics`` waits for one just started)."""
    return await check_kafka(settings, topics=False)


def failures(results: Iterable[CheckResult], *, outages_fail: bool = True) -> list[CheckResult]:
    """The failed checks; with ``outages_fail=False`` a server answering 5xx/429 is not one."""
    return [result for result in results if not result.ok and (outages_fail or not result.outage)]
