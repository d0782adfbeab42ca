"""infra/: the compose files refer to real commands, options, stages and config keys of this project.

No Docker engine here: :mod:`tests.infra.compose_check` validates the files against the Compose
Specification's schema, has docker compose itself resolve them (``docker-compose config``) and checks
the result against the CLI (``looptool.cli:app``), the config object and the stage registry at test
time; each negative case breaks one reference in a copy and expects the checker to name it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.compose_check import (
    DEFAULT_COMPOSE,
    REPO_ROOT,
    CliError,
    check,
    load_config,
    parse_looptool,
    schema_problems,
    secret_values,
    setting_for,
    simple_commands,
)
from tests.requirements import require_vllm

INFRA = REPO_ROOT / "infra"
EXTERNAL_OVERRIDE = INFRA / "compose.external-kafka.yaml"
EXTERNAL_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "b-1.kafka.example:9096,b-2.kafka.example:9096",
    "KAFKA_SASL_USERNAME": "lt",
}


def _report(problems: list[str]) -> str:
    return "\n".join(problems)


def test_compose_refers_only_to_real_commands_keys_and_stages() -> None:
    problems = check([DEFAULT_COMPOSE])
    assert problems == [], _report(problems)


def test_external_kafka_override_changes_only_kafka_settings() -> None:
    problems = check([DEFAULT_COMPOSE, EXTERNAL_OVERRIDE], environ=EXTERNAL_ENV)
    assert problems == [], _report(problems)


def test_external_kafka_override_requires_the_bootstrap_servers() -> None:
    problems = check([DEFAULT_COMPOSE, EXTERNAL_OVERRIDE], environ={"KAFKA_SASL_USERNAME": "lt"})
    assert any("required variable KAFKA_BOOTSTRAP_SERVERS is missing a value" in p for p in problems), (
        _report(problems)
    )


def test_variables_reach_the_checks_through_compose_interpolation() -> None:
    # ${KAFKA_CLUSTER_ID:-...}: compose substitutes the caller's value, and the quorum check sees it.
    problems = check([DEFAULT_COMPOSE], environ={"KAFKA_CLUSTER_ID": "not-a-uuid"})
    assert problems == ["kafka: CLUSTER_ID 'not-a-uuid' is not a base64url UUID (kafka-storage.sh)"], _report(
        problems
    )


def test_every_compose_file_is_valid_under_the_compose_specification() -> None:
    for path in (DEFAULT_COMPOSE, EXTERNAL_OVERRIDE):
        assert schema_problems(path) == [], path.name


@pytest.mark.parametrize("path", sorted(INFRA.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_config_loads_and_holds_no_secret(path: Path) -> None:
    settings = load_config(path)
    assert settings.kafka.bootstrap_servers
    assert secret_values(settings) == []


def test_the_checker_parses_with_the_real_cli() -> None:
    call = parse_looptool(["--config", "/etc/looptool/looptool.toml", "worker", "--stages", "probe,judge"])
    assert call.command == ("worker",)
    assert call.params["stages"] == "probe,judge"
    assert str(call.root_params["config"]) == "/etc/looptool/looptool.toml"
    assert parse_looptool(["curate", "--initial"]).params["initial"] is True
    with pytest.raises(CliError, match="No such option"):
        parse_looptool(["store", "--initial"])
    with pytest.raises(CliError, match="no command 'frobnicate'"):
        parse_looptool(["frobnicate"])


def test_env_variables_map_to_settings_fields() -> None:
    assert setting_for("LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS").path == ("kafka", "bootstrap_servers")
    assert setting_for("LOOPTOOL_JUDGE__API_KEY").secret
    assert not setting_for("LOOPTOOL_JUDGE__API_KEY_FILE").secret
    with pytest.raises(ValueError, match="kafka has no field 'bootstrap'"):
        setting_for("LOOPTOOL_KAFKA__BOOTSTRAP")
    with pytest.raises(ValueError, match="is a value, not a section"):
        setting_for("LOOPTOOL_RUN_ID__X")


def test_shell_scripts_yield_their_commands_with_positional_arguments() -> None:
    script = 'PASSWORD="$(cat /run/secrets/p)" && export PASSWORD && exec looptool --config /c.toml "$@"'
    (command,) = simple_commands(["/bin/sh", "-c", script, "looptool", "worker", "--stages", "probe"])
    assert command.words == ("looptool", "--config", "/c.toml", "worker", "--stages", "probe")
    assert command.assigned == {"PASSWORD": "$(cat /run/secrets/p)"}
    loop = "for i in $(seq 1 3); do\n  looptool topics && exit 0\n  echo retry >&2\ndone"
    words = [c.words for c in simple_commands(["sh", "-c", loop])]
    assert ("looptool", "topics") in words
    assert ("echo", "retry") in words


# --- every broken reference is named -----------------------------------------------------------


def _service(model: dict[str, Any], name: str) -> dict[str, Any]:
    return model["services"][name]


def _set_env(name: str, key: str, value: str) -> Callable[[dict[str, Any]], None]:
    def mutate(model: dict[str, Any]) -> None:
        _service(model, name).setdefault("environment", {})[key] = value

    return mutate


def _set(name: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(model: dict[str, Any]) -> None:
        _service(model, name)[key] = value

    return mutate


def _all_kafka_env(key: str, value: str) -> Callable[[dict[str, Any]], None]:
    def mutate(model: dict[str, Any]) -> None:
        for name in ("kafka-1", "kafka-2", "kafka-3"):
            _service(model, name)["environment"][key] = value

    return mutate


def _replicas(name: str, count: int) -> Callable[[dict[str, Any]], None]:
    def mutate(model: dict[str, Any]) -> None:
        _service(model, name).setdefault("deploy", {})["replicas"] = count

    return mutate


def _without_volume(name: str, target: str) -> Callable[[dict[str, Any]], None]:
    def mutate(model: dict[str, Any]) -> None:
        volumes = _service(model, name)["volumes"]
        _service(model, name)["volumes"] = [v for v in volumes if f":{target}" not in v]

    return mutate


def _gpu_ids(name: str, ids: list[str]) -> Callable[[dict[str, Any]], None]:
    def mutate(model: dict[str, Any]) -> None:
        _service(model, name)["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] = ids

    return mutate


def _vllm_flag(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def mutate(model: dict[str, Any]) -> None:
        vllm = _service(model, "vllm")
        vllm["command"] = [vllm["command"][0].replace(old, new)]

    return mutate


def _secret_from_environment(model: dict[str, Any]) -> None:
    model["secrets"]["judge_api_key"] = {"environment": "JUDGE_API_KEY"}


def _config_file(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(model: dict[str, Any]) -> None:
        model["configs"]["looptool_config"]["file"] = path

    return mutate


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unknown command": (_set("trainer", "command", ["training"]), "looptool has no command 'training'"),
    "unknown option": (
        _set("relabel", "command", ["worker", "--stage", "relabel"]),
        "`looptool worker`: No such option: --stage",
    ),
    "option of another command": (
        _set("store", "command", ["store", "--initial"]),
        "No such option: --initial",
    ),
    "unknown stage": (_set("relabel", "command", ["worker", "--stages", "relabl"]), "unknown stage 'relabl'"),
    "stage nobody runs": (
        _set("relabel", "command", ["worker", "--stages", "judge"]),
        "no service runs the relabel stage",
    ),
    "env var typo": (
        _set_env("probe", "LOOPTOOL_KAFKA__BOOTSTRAP_SERVER", "kafka-1:19092"),
        "kafka has no field 'bootstrap_server'",
    ),
    "env var of no section": (
        _set_env("curate", "LOOPTOOL_CURATOR__X", "1"),
        "Settings has no field 'curator'",
    ),
    "invalid env value": (
        _set_env("curate", "LOOPTOOL_KAFKA__SECURITY_PROTOCOL", "TLS"),
        "kafka.security_protocol: Input should be",
    ),
    "secret as env literal": (
        _set_env("judge-expand-verify", "LOOPTOOL_JUDGE__API_KEY", "sk-123"),
        "LOOPTOOL_JUDGE__API_KEY is a secret given as a literal",
    ),
    "foreign secret literal": (_set_env("vllm", "HF_TOKEN", "hf_abc"), "HF_TOKEN looks like a secret"),
    "secret from environment": (
        _secret_from_environment,
        "secret judge_api_key: comes from an environment variable",
    ),
    "missing config file": (_config_file("./missing.toml"), "infra/missing.toml does not exist"),
    "two curators": (_replicas("curate", 2), "runs curate with 2 replicas"),
    "curate in two services": (
        _set("relabel", "command", ["worker", "--stages", "relabel,curate"]),
        "curate runs in curate, relabel",
    ),
    "store scaled": (_replicas("store", 3), "runs store with 3 replicas"),
    "more members than partitions": (_replicas("judge-expand-verify", 13), "13 replicas but judge reads 12"),
    "voters not the nodes": (
        _all_kafka_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@kafka-1:9093,2@kafka-2:9093,4@kafka-3:9093"),
        "quorum voters [1, 2, 4] are not the controller node ids [1, 2, 3]",
    ),
    "voter on the wrong port": (
        _all_kafka_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9094"),
        "voter 3@kafka-3:9094: kafka-3 has no controller listener there",
    ),
    "cluster ids differ": (
        lambda m: _service(m, "kafka-2")["environment"].update(CLUSTER_ID="AAAAAAAAAAAAAAAAAAAAAA"),
        "CLUSTER_ID differs between nodes",
    ),
    "auto-create on": (
        _all_kafka_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true"),
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE must be false",
    ),
    "events expire": (_all_kafka_env("KAFKA_LOG_RETENTION_MS", "604800000"), "events expire"),
    "replication above brokers": (
        _set_env("probe", "LOOPTOOL_KAFKA__REPLICATION_FACTOR", "4"),
        "kafka.replication_factor=4 exceeds the 3 brokers",
    ),
    "bootstrap to nowhere": (
        _set_env("store", "LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9092"),
        "bootstrap server kafka-1:9092 is no broker's advertised listener",
    ),
    "probe cannot see checkpoints": (
        _without_volume("probe", "/data/checkpoints"),
        "cannot read the trainer's checkpoints",
    ),
    "probe without the initial model": (
        _without_volume("probe", "/models"),
        "policy.model_path /models/policy is not mounted",
    ),
    "judge model not served": (
        _vllm_flag("--served-model-name judge", "--served-model-name qwen3-32b"),
        "judge.model 'judge' is not served by vllm",
    ),
    "judge port not served": (_vllm_flag("--port 8000", "--port 8001"), "judge.base_url port 8000"),
    "budgets over the context": (
        _vllm_flag("--max-model-len 32768", "--max-model-len 16384"),
        "judge's largest budget (16384 tokens, its truncation retry) and 4096 for the prompt do not fit",
    ),
    "worker without the key": (_set("judge-expand-verify", "secrets", []), "is not a secret of this service"),
    "vllm unchecked": (_set("vllm", "healthcheck", {"test": ["NONE"]}), "vllm has no health check"),
    "shared GPU": (_gpu_ids("evaluate", ["2"]), "GPU 2 is reserved by evaluate and probe"),
    "tensor parallel vs GPUs": (_gpu_ids("vllm", ["0"]), "--tensor-parallel-size 2 but 1 GPUs are reserved"),
    "no restart": (_set("curate", "restart", "no"), "service curate: long-running but restart is 'no'"),
    "unset variable": (
        _set("store", "image", "looptool:${NO_SUCH_TAG}"),
        'The "NO_SUCH_TAG" variable is not set',
    ),
    "key outside the spec": (
        _set("store", "restrat", "always"),
        "docker-compose.yml: services.store: 'restrat' does not match any of the regexes: '^x-'",
    ),
    "wrong type in the spec": (
        _set("vllm", "healthcheck", {"test": ["CMD", "true"], "retries": [5]}),
        "docker-compose.yml: services.vllm.healthcheck.retries: [5] is not of type 'number'",
    ),
    "unknown build target": (
        lambda m: _service(m, "store")["build"].update(target="runtime-cpu"),
        "build target 'runtime-cpu' is not a stage of Dockerfile",
    ),
}


@pytest.fixture(scope="module")
def compose_model() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_COMPOSE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_reference_is_named(case: str, compose_model: dict[str, Any], tmp_path: Path) -> None:
    mutate, expected = BROKEN[case]
    model = copy.deepcopy(compose_model)
    mutate(model)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(model, sort_keys=False), encoding="utf-8")
    problems = check([broken], project_dir=INFRA)
    assert any(expected in problem for problem in problems), _report(problems) or "no problem found"


def test_a_config_file_holding_a_secret_is_named(compose_model: dict[str, Any], tmp_path: Path) -> None:
    config = tmp_path / "looptool.toml"
    text = (INFRA / "looptool.toml").read_text(encoding="utf-8")
    config.write_text(text.replace('model = "judge"\n', 'model = "judge"\napi_key = "sk-123"\n', 1))
    model = copy.deepcopy(compose_model)
    _config_file(str(config))(model)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(model, sort_keys=False), encoding="utf-8")
    problems = check([broken], project_dir=INFRA)
    assert any(p.startswith("config looptool.toml: holds the secret judge.api_key") for p in problems), (
        _report(problems)
    )


def test_vllm_server_flags_are_checked_with_vllms_own_parser(
    compose_model: dict[str, Any], tmp_path: Path
) -> None:
    require_vllm()
    # One vLLM start-up for both halves: every other flag of the server must parse (no other
    # problem), and a flag vLLM 0.32 no longer has is named.
    model = copy.deepcopy(compose_model)
    _vllm_flag("--enable-prefix-caching", "--enable-prefix-caching --disable-log-requests")(model)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(model, sort_keys=False), encoding="utf-8")
    problems = check([broken], project_dir=INFRA, check_vllm_flags=True)
    assert problems == ["service vllm: vLLM has no option --disable-log-requests"], _report(problems)
