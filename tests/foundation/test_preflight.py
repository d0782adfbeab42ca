"""``looptool init`` (the commented starter config), the preflight checks, ``looptool doctor``, and the
commands that run the preflight before they start (one line per failure, within seconds)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from looptool import preflight
from looptool.cli import app
from looptool.config import Settings, load_settings
from looptool.starter import (
    JUDGE_MODEL_PLACEHOLDER,
    LLM_URL_DEFAULT,
    POLICY_PLACEHOLDER,
    StarterValues,
    render_starter,
)
from tests.faults.endpoint import FlakyJudgeEndpoint, serve_flaky
from tests.reliability.endpoint import Endpoint, serve
from tests.streams.reasoning_endpoint import Persona, ReasoningEndpoint, served_in_thread

if TYPE_CHECKING:
    from inference.vllm_backend import ServedModel

SECTIONS = ("kafka", "store", "policy", "judge", "generator", "verifier", "trainer", "loop")
MODEL = "test-reasoner"


@pytest.fixture(autouse=True)
def _logging_back_on_stderr() -> Iterator[None]:
    yield
    from common.logs import LogSettings, configure_logging

    configure_logging(LogSettings())  # the CLI bound logging to CliRunner's (now closed) stream


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("LOOPTOOL_"):
            monkeypatch.delenv(key)


# --- init ----------------------------------------------------------------------------------------------


def test_init_writes_a_commented_config_that_loads_and_refuses_to_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_env(monkeypatch)
    target = tmp_path / "conf" / "looptool.toml"
    runner = CliRunner()
    first = runner.invoke(app, ["init", str(target)])
    assert first.exit_code == 0, first.output
    text = target.read_text(encoding="utf-8")
    parsed = tomllib.loads(text)
    assert set(SECTIONS) <= set(parsed), set(SECTIONS) - set(parsed)
    settings = load_settings(target)
    assert settings.policy.model_path == Path(POLICY_PLACEHOLDER)
    assert settings.judge is not None and settings.judge.base_url == LLM_URL_DEFAULT
    assert settings.verifier_role() is not None and settings.verifier_role().max_tokens == 4096  # type: ignore[union-attr]
    assert "fill in [policy] model_path" in first.output

    target.write_text("# mine\n", encoding="utf-8")
    refused = runner.invoke(app, ["init", str(target)])
    assert refused.exit_code == 1 and "--force" in refused.output
    assert target.read_text(encoding="utf-8") == "# mine\n"
    forced = runner.invoke(app, ["init", str(target), "--force"])
    assert forced.exit_code == 0 and target.read_text(encoding="utf-8") == text


def test_init_overwrites_a_broken_config_with_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    Path("looptool.toml").write_text("[kafka]\nbootstrap_server = 1\n", encoding="utf-8")  # a typo
    result = CliRunner().invoke(app, ["init", "--force"])
    assert result.exit_code == 0, result.output
    assert load_settings(Path("looptool.toml")).run_id == "exp1"


def test_every_role_section_carries_the_vllm_command_that_serves_it() -> None:
    text = render_starter(StarterValues(llm_url="http://10.0.0.5:8011/v1", llm_model="judge-32b"))
    command = "python -m vllm.entrypoints.openai.api_server"
    sections = re.split(r"^\[", text, flags=re.MULTILINE)
    before_judge = next(part for part in sections if part.startswith("policy]"))
    assert command in before_judge  # the shared server's command heads the roles' block
    assert f"--model {JUDGE_MODEL_PLACEHOLDER}" in before_judge
    assert "--served-model-name judge-32b --host 10.0.0.5 --port 8011" in before_judge
    assert "--reasoning-parser qwen3" in before_judge
    judge = next(part for part in sections if part.startswith("judge]"))
    assert command in judge and "--reasoning-parser deepseek_r1" in judge  # a panel member's server
    generator = next(part for part in sections if part.startswith("generator]"))
    assert command in generator and "--reasoning-parser qwen3" in generator


def test_the_starter_loads_after_the_user_fills_it_in_and_uncomments_its_examples(tmp_path: Path) -> None:
    policy = tmp_path / "my-policy"
    text = render_starter()
    text = text.replace(POLICY_PLACEHOLDER, str(policy)).replace(LLM_URL_DEFAULT, "http://gpu-box:8000/v1")
    path = tmp_path / "filled.toml"
    path.write_text(text, encoding="utf-8")
    settings = load_settings(path)
    assert settings.policy.model_path == policy
    assert settings.judge is not None and settings.generator is not None
    assert settings.judge.base_url == settings.generator.base_url == "http://gpu-box:8000/v1"
    assert settings.verifier_role().base_url == "http://gpu-box:8000/v1"  # type: ignore[union-attr]

    # Every commented setting (a comment line that is TOML by itself) is a real key where it stands.
    uncommented, count = [], 0
    for line in text.splitlines():
        body = line.removeprefix("# ")
        if line.startswith("# ") and _is_toml_line(body):
            uncommented.append(body)
            count += 1
        else:
            uncommented.append(line)
    assert count >= 8, count
    path.write_text("\n".join(uncommented), encoding="utf-8")
    examples = load_settings(path)
    assert examples.judge is not None and len(examples.judge.judges()) == 2
    assert examples.judge.quorum == 2 and examples.judge.two_order
    assert examples.trainer.verl.n_gpus_per_node == 4
    assert examples.policy.gpu_memory_utilization == 0.7


def _is_toml_line(body: str) -> bool:
    if re.fullmatch(r"\[\[?[a-z_.]+\]\]?", body.strip()):
        return True
    try:
        return bool(tomllib.loads(body))
    except tomllib.TOMLDecodeError:
        return False


# --- the checks ------------------------------------------------------------------------------------------


def _settings(settings: Settings, **changes: object) -> Settings:
    values = settings.model_dump(exclude_none=True) | changes
    return load_settings(None, **values)


async def test_broker_check_names_the_address_and_gives_up_within_its_timeout(settings: Settings) -> None:
    silent = _settings(settings, kafka={"bootstrap_servers": "127.0.0.1:1"})
    started = time.monotonic()
    broker, topics = await preflight.check_kafka(silent)
    took = time.monotonic() - started
    assert not broker.ok and "127.0.0.1:1" in broker.detail and "looptool broker" in broker.fix
    assert not topics.ok
    assert took < preflight.broker_timeout_s(silent) + 5, took

    half_sasl = _settings(
        settings, kafka={"bootstrap_servers": "127.0.0.1:1", "security_protocol": "SASL_SSL"}
    )
    settings_problem, _ = await preflight.check_kafka(half_sasl)
    assert not settings_problem.ok and "SASL needs" in settings_problem.detail
    assert "[kafka]" in settings_problem.fix

    missing = await preflight.check_kafka(settings)
    assert missing[0].ok
    assert not missing[1].ok and "looptool topics" in missing[1].fix and settings.run_id in missing[1].detail


async def test_topics_check_passes_once_the_topics_exist(settings: Settings) -> None:
    from bus.kafka import ensure_topics

    await ensure_topics(settings.kafka, settings.run_id)
    broker, topics = await preflight.check_kafka(settings)
    assert broker.ok and topics.ok, (broker, topics)


def test_policy_check_loads_config_and_tokenizer(tiny_policy_path: Path, tmp_path: Path) -> None:
    from streams.config import PolicySettings

    good = preflight.check_policy(PolicySettings(model_path=tiny_policy_path))
    assert good.ok and "qwen2" in good.detail
    unset = preflight.check_policy(PolicySettings())
    assert not unset.ok and "[policy] model_path" in unset.fix
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}", encoding="utf-8")
    partial = preflight.check_policy(PolicySettings(model_path=broken))
    assert not partial.ok and "safetensors" in partial.detail and "tokenizer" in partial.detail
    # Files there, but a config transformers cannot read.
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for item in tiny_policy_path.iterdir():
        (corrupt / item.name).symlink_to(item)
    (corrupt / "config.json").unlink()
    (corrupt / "config.json").write_text("{not json", encoding="utf-8")
    unreadable = preflight.check_policy(PolicySettings(model_path=corrupt))
    assert not unreadable.ok and "does not load" in unreadable.detail


async def test_endpoint_checks_say_what_is_wrong(settings: Settings, tmp_path: Path) -> None:
    from streams.config import RoleSettings

    async with serve_flaky(FlakyJudgeEndpoint()) as flaky:
        role = RoleSettings(base_url=flaky.base_url, model="flaky-judge")
        assert (await preflight.check_endpoint("judge", "judge", role)).ok
        assert flaky.requests == 1
        await flaky.set_mode("500")
        failed = await preflight.check_endpoint("judge", "judge", role)
        assert not failed.ok and "HTTP 500" in failed.detail and "[judge] base_url" in failed.fix
        # doctor reports it; a worker starts anyway (its stages pause through an outage)
        assert failed.outage and preflight.failures([failed])
        assert not preflight.failures([failed], outages_fail=False)
        await flaky.set_mode("garbage")
        garbage = await preflight.check_endpoint("judge", "judge", role)
        assert not garbage.ok and "not with an OpenAI chat completion" in garbage.detail
        await flaky.set_mode("down")
        down = await preflight.check_endpoint("generator", "generator", role)
        assert not down.ok and "cannot reach" in down.detail and "[generator]" in down.fix
        assert not down.outage and not garbage.outage  # nothing there, or not an OpenAI server: stop

    # A server that does not serve the model answers 404: the check lists what it serves.
    reasoning = ReasoningEndpoint(personas={MODEL: Persona()}, truth={})
    with served_in_thread(reasoning):
        wrong = await preflight.check_endpoint(
            "judge", "judge", RoleSettings(base_url=reasoning.base_url, model="qwen3-32b")
        )
    assert not wrong.ok and "does not serve model 'qwen3-32b'" in wrong.detail and MODEL in wrong.detail
    assert "--served-model-name" in wrong.fix

    # A server that refuses the key (and echoes it): the check says so and never shows the key.
    key_file = tmp_path / "key"
    key_file.write_text("sk-very-secret\n", encoding="utf-8")
    async with serve(Endpoint(mode="reject")) as rejecting:
        refused = await preflight.check_endpoint(
            "judge", "judge", RoleSettings(base_url=rejecting.base_url, model="m", api_key_file=key_file)
        )
    assert not refused.ok and "HTTP 401" in refused.detail and "api_key_file" in refused.fix
    async with serve(Endpoint(mode="echo")) as echoing:
        echoed = await preflight.check_endpoint(
            "judge", "judge", RoleSettings(base_url=echoing.base_url, model="m", api_key_file=key_file)
        )
    assert not echoed.ok and "HTTP 502" in echoed.detail
    assert "sk-very-secret" not in echoed.line() + refused.line()


async def test_endpoint_check_reads_a_key_refused_with_http_400_as_a_key_problem() -> None:
    """Gemini refuses a wrong key with HTTP 400: doctor told the operator to drop request fields."""
    from aiohttp import web

    from streams.config import RoleSettings
    from tests.http_server import serve_app

    async def refuse_the_key(request: web.Request) -> web.Response:
        body = [{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key."}}]
        return web.json_response(body, status=400)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", refuse_the_key)
    async with serve_app(app) as port:
        role = RoleSettings(base_url=f"http://127.0.0.1:{port}/v1", model="gemini-2.5-flash")
        refused = await preflight.check_endpoint("judge", "judge", role)
    assert not refused.ok and "API key is missing or wrong" in refused.detail
    assert "api_key_file" in refused.fix


async def test_endpoint_check_reads_an_account_refused_with_http_400_as_an_account_problem() -> None:
    """Anthropic refuses an account out of credit with HTTP 400: doctor said to drop request fields."""
    from aiohttp import web

    from streams.config import RoleSettings
    from tests.http_server import serve_app

    async def out_of_credit(request: web.Request) -> web.Response:
        message = "Your credit balance is too low to access the Anthropic API."
        body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
        return web.json_response(body, status=400)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", out_of_credit)
    async with serve_app(app) as port:
        role = RoleSettings(base_url=f"http://127.0.0.1:{port}/v1", model="claude-sonnet-4")
        refused = await preflight.check_endpoint("judge", "judge", role)
    assert not refused.ok and "refuses the account" in refused.detail and "credit" in refused.detail
    assert "billing" in refused.fix and "extra_body" not in refused.fix


async def test_role_checks_cover_each_judge_of_a_panel_and_unconfigured_roles(settings: Settings) -> None:
    reasoning = ReasoningEndpoint(personas={MODEL: Persona(trace_words=(5, 10))}, truth={})
    with served_in_thread(reasoning):
        panel = _settings(
            settings, judge={"base_url": reasoning.base_url, "model": MODEL, "panel": [{"model": "judge-b"}]}
        )
        results = {result.name: result for result in await preflight.check_roles(panel)}
    assert results["judge"].ok
    assert (
        not results["judge 2 (judge-b)"].ok
        and "does not serve model 'judge-b'" in results["judge 2 (judge-b)"].detail
    )
    assert "[judge.panel] model" in results["judge 2 (judge-b)"].fix
    assert not results["generator"].ok and "[generator] base_url" in results["generator"].fix
    assert results["verifier"].ok  # [judge]'s endpoint, asked once for both
    assert len(reasoning.served) == 1  # one request for judge and verifier (judge-b's got a 404)
    simulated = await preflight.check_roles(_settings(settings, world={"seed": 3}))
    assert all(result.ok and "simulated" in result.detail for result in simulated)


def test_writable_checks_leave_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    assert preflight.check_writable("store", target, "[store] path").ok
    assert not (tmp_path / "a").exists()
    target.mkdir(parents=True)
    assert preflight.check_writable("store", target, "[store] path").ok
    assert list(target.iterdir()) == []
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    blocked = preflight.check_writable("store", blocker / "store", "[store] path")
    assert not blocked.ok and "[store] path" in blocked.fix


def test_verl_check_only_when_chosen_and_names_the_missing_env(settings: Settings, tmp_path: Path) -> None:
    missing = _settings(
        settings, trainer={"backend": "verl", "verl": {"python": str(tmp_path / "nope/python")}}
    )
    result = preflight.check_verl(missing)
    assert not result.ok and "install-verl.sh" in result.fix
    # The env scripts/install-verl.sh made (scripts/test.sh makes it before the tests).
    present = preflight.check_verl(_settings(settings, trainer={"backend": "verl"}))
    assert present.ok and present.detail.startswith("verl 0.9.1 in "), present.line()


# --- doctor and the commands --------------------------------------------------------------------------


def _config(tmp_path: Path, settings: Settings, base_url: str, policy: Path) -> Path:
    """A starter config (as init writes it) pointing at the test's broker, endpoint and policy."""
    path = tmp_path / "looptool.toml"
    values = StarterValues(
        run_id=settings.run_id,
        kafka=settings.kafka.bootstrap_servers or "",
        policy=str(policy),
        llm_url=base_url,
        llm_model=MODEL,
    )
    text = render_starter(values).replace('path = "data/store"', f'path = "{tmp_path / "store"}"')
    path.write_text(text.replace('output_dir = "data/checkpoints"', f'output_dir = "{tmp_path / "ckpt"}"'))
    return path


def _looptool(*args: str, timeout: float = 90.0) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOOPTOOL_")}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "looptool.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env | {"COLUMNS": "400"},
        check=False,
    )
    return done, time.monotonic() - started


def test_doctor_passes_on_a_ready_run_and_fails_row_by_row(
    settings: Settings, tmp_path: Path, tiny_policy_path: Path
) -> None:
    import asyncio

    from bus.kafka import ensure_topics

    asyncio.run(ensure_topics(settings.kafka, settings.run_id))
    endpoint = ReasoningEndpoint(personas={MODEL: Persona(trace_words=(5, 10))}, truth={})
    with served_in_thread(endpoint):
        config = _config(tmp_path, settings, endpoint.base_url, tiny_policy_path)
        ready, _ = _looptool("--config", str(config), "doctor")
        assert ready.returncode == 0, ready.stdout + ready.stderr
        for check in ("config", "broker", "topics", "policy", "judge", "generator", "verifier", "store"):
            assert re.search(rf"│ {check}\s+│ ok ", ready.stdout), (check, ready.stdout)
        assert {served.max_tokens for served in endpoint.served} == {1}

    # The server is gone now, and the policy folder is wrong.
    broken = config.read_text().replace(str(tiny_policy_path), str(tmp_path / "no-policy"))
    config.write_text(broken, encoding="utf-8")
    failed, _ = _looptool("--config", str(config), "doctor")
    assert failed.returncode == 1
    assert re.search(r"│ policy\s+│ failed │ .*no-policy is not a folder", failed.stdout), failed.stdout
    assert re.search(r"│ judge\s+│ failed │ cannot reach", failed.stdout), failed.stdout
    assert re.search(r"│ broker\s+│ ok ", failed.stdout)
    assert "Traceback" not in failed.stdout + failed.stderr


def test_doctor_reports_a_config_that_does_not_parse(tmp_path: Path) -> None:
    config = tmp_path / "looptool.toml"
    config.write_text('[judge]\nbase_url = "http://x/v1"\nmodle = "typo"\n', encoding="utf-8")
    done, _ = _looptool("--config", str(config), "doctor")
    assert done.returncode == 1
    assert re.search(r"│ config\s+│ failed │ .*judge.model", done.stdout), done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_worker_train_and_eval_stop_within_seconds_with_one_line_each(
    settings: Settings, tmp_path: Path, tiny_policy_path: Path
) -> None:
    endpoint_url = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
    config = _config(tmp_path, settings, endpoint_url, tmp_path / "missing-policy")

    worker, took = _looptool("--config", str(config), "worker", "--stages", "judge,expand")
    assert worker.returncode == 1 and took < 40, took
    lines = worker.stderr.strip().splitlines()
    assert [line.split(": ")[2] for line in lines if line.startswith("looptool worker: not started")] == [
        "judge",
        "generator",
    ], worker.stderr
    assert "Traceback" not in worker.stderr and "127.0.0.1:9" in worker.stderr

    train, took = _looptool("--config", str(config), "train")
    assert train.returncode == 1 and took < 40, took
    assert "looptool train: not started: policy:" in train.stderr and "missing-policy" in train.stderr
    assert "Traceback" not in train.stderr

    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    evaluation, took = _looptool("--config", str(config), "eval", "--checkpoint", str(not_a_model))
    assert evaluation.returncode == 1 and took < 40, took
    assert (
        "looptool eval: not started: checkpoint:" in evaluation.stderr and "config.json" in evaluation.stderr
    )


def test_worker_without_roles_or_world_names_what_to_configure(settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "bare.toml"
    config.write_text(
        f'run_id = "{settings.run_id}"\n[kafka]\nbootstrap_servers = "{settings.kafka.bootstrap_servers}"\n',
        encoding="utf-8",
    )
    done, took = _looptool("--config", str(config), "worker", "--stages", "verify")
    assert done.returncode == 1 and took < 40
    assert done.stderr.strip() == (
        "looptool worker: not started: verifier: no endpoint configured — set [judge] base_url and model "
        "(the verifier asks [judge]'s server unless [verifier] names its own); `looptool init` writes the "
        "roles' sections with the vLLM command that serves them"
    )


async def test_endpoint_check_against_a_real_vllm_server(vllm_server: ServedModel) -> None:
    """The one-token request is one a vLLM OpenAI server answers; a wrong model name lists the served one."""
    from streams.config import RoleSettings

    served = await preflight.check_endpoint(
        "judge", "judge", RoleSettings(base_url=vllm_server.base_url, model=vllm_server.model)
    )
    assert served.ok, served.line()
    wrong = await preflight.check_endpoint(
        "judge", "judge", RoleSettings(base_url=vllm_server.base_url, model="qwen3-32b")
    )
    assert not wrong.ok and f"(it serves {vllm_server.model})" in wrong.detail, wrong.line()


async def test_endpoint_check_sends_what_the_stages_send_so_a_refused_field_fails_there() -> None:
    """A server that refuses one of the stages' request fields (OpenAI's reasoning models refuse
    ``max_tokens``; DeepSeek's reasoner refuses ``logprobs``) fails doctor, not every input of a run."""
    from aiohttp import web

    from streams.config import RoleSettings
    from tests.http_server import serve_app

    seen: list[dict[str, object]] = []

    async def chat(request: web.Request) -> web.Response:
        payload = await request.json()
        seen.append(payload)
        for refused in ("max_tokens", "logprobs"):
            if refused in payload:
                message = f"Unsupported parameter: '{refused}' is not supported with this model."
                return web.json_response({"error": {"message": message}}, status=400)
        message = {"role": "assistant", "content": "ok"}
        return web.json_response({"choices": [{"index": 0, "message": message, "finish_reason": "length"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    async with serve_app(app) as port:
        url = f"http://127.0.0.1:{port}/v1"
        plain = await preflight.check_endpoint("judge", "judge", RoleSettings(base_url=url, model="o-judge"))
        assert not plain.ok and "refuses the requests the stages send" in plain.detail
        assert "max_tokens" in plain.detail and "budget_field" in plain.fix
        role = RoleSettings(
            base_url=url, model="o-judge", budget_field="max_completion_tokens", temperature=0.6
        )
        assert (await preflight.check_endpoint("judge", "judge", role)).ok
        # The stages' request shape: the sampled re-ask's fields, the role's budget field, no logprobs.
        assert seen[-1]["max_completion_tokens"] == 1 and "seed" in seen[-1] and "logprobs" not in seen[-1]
        # The policy's probe reads log-probs, so its check asks for them.
        policy = await preflight.check_endpoint("policy endpoint", "policy.endpoint", role, logprobs=True)
        assert not policy.ok and "logprobs" in policy.detail
    # An older config that put the budget in extra_body under the new name keeps sending that name.
    migrated = RoleSettings(base_url=url, model="m", extra_body={"max_completion_tokens": 512})
    assert (migrated.max_tokens, migrated.budget_field, migrated.extra_body) == (
        512,
        "max_completion_tokens",
        {},
    )


def test_policy_check_renders_a_policy_prompt(tmp_path: Path) -> None:
    """A folder whose template cannot render a policy prompt passed the check, then every prompt of
    the run failed; the check now renders one (a system turn, a tool result, consecutive user turns)."""
    import json

    from tests.families import build_family_model

    assert preflight.check_model_folder("policy", build_family_model("gemma2", tmp_path / "gemma2")).ok
    broken = build_family_model("phi4", tmp_path / "refuses")
    config = json.loads((broken / "tokenizer_config.json").read_text(encoding="utf-8"))
    template = "{{ raise_exception('Only user turns are supported') }}"
    if "chat_template" in config:
        config["chat_template"] = template
        (broken / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    else:
        (broken / "chat_template.jinja").write_text(template, encoding="utf-8")
    result = preflight.check_model_folder("policy", broken)
    assert not result.ok and "Only user turns are supported" in result.detail


def test_a_chat_template_only_a_processor_reads_does_not_count(tmp_path: Path) -> None:
    """chat_template.json is a processor's file: AutoTokenizer never reads it, so a folder whose only
    template is there passed the folder check and then failed on every prompt."""
    import json

    from tests.families import build_family_model
    from trainer.base import check_hf_folder

    folder = build_family_model("phi4", tmp_path / "processor-template")
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    template = config.pop("chat_template", None)
    if template is None:
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
        (folder / "chat_template.jinja").unlink()
    config_path.write_text(json.dumps(config), encoding="utf-8")
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": template}), encoding="utf-8")
    with pytest.raises(ValueError, match="chat template"):
        check_hf_folder(folder)
    result = preflight.check_model_folder("policy", folder)
    assert not result.ok and "chat template" in result.detail
