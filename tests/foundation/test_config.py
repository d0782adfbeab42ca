"""The one config object (TOML + env) and structured logging that never prints secrets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from common.logs import LogSettings, configure_logging, get_logger
from looptool.config import load_settings


def test_defaults_without_file_or_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.run_id == "default"
    assert settings.kafka.bootstrap_servers is None
    assert settings.judge is None


def test_toml_file_then_env_then_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "looptool.toml"
    config.write_text(
        'run_id = "from-file"\n'
        "[kafka]\n"
        'bootstrap_servers = "file:9092"\n'
        "partitions = 8\n"
        "[judge]\n"
        'base_url = "http://judge:8000/v1"\n'
        'model = "qwen3-32b"\n'
    )
    settings = load_settings(config)
    assert (settings.run_id, settings.kafka.bootstrap_servers, settings.kafka.partitions) == (
        "from-file",
        "file:9092",
        8,
    )
    assert settings.judge is not None and settings.judge.model == "qwen3-32b"

    monkeypatch.setenv("LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    monkeypatch.setenv("LOOPTOOL_RUN_ID", "from-env")
    settings = load_settings(config)
    assert settings.kafka.bootstrap_servers == "env:9092"
    assert settings.kafka.partitions == 8  # untouched keys still come from the file
    assert settings.run_id == "from-env"
    assert load_settings(config, run_id="explicit").run_id == "explicit"


def test_config_file_from_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text('run_id = "via-env-var"\n')
    monkeypatch.setenv("LOOPTOOL_CONFIG", str(config))
    assert load_settings().run_id == "via-env-var"
    monkeypatch.setenv("LOOPTOOL_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(FileNotFoundError):
        load_settings()


@pytest.mark.parametrize("run_id", ["a.b", "", "-x", "../../tmp", "x" * 101])
def test_invalid_run_id_is_rejected(run_id: str) -> None:
    with pytest.raises(ValidationError, match="run_id"):
        load_settings(None, run_id=run_id)


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[kafka]\nbootstrap = 'typo:9092'\n")
    with pytest.raises(ValidationError):
        load_settings(config)


def test_api_key_from_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    settings = load_settings(
        None, judge={"base_url": "http://x/v1", "model": "m", "api_key_file": str(key_file)}
    )
    assert settings.judge is not None and settings.judge.resolved_api_key() == "sk-from-file"
    assert "sk-from-file" not in repr(settings)


def test_logs_are_json_and_mask_secrets() -> None:
    stream = io.StringIO()
    configure_logging(LogSettings(format="json", level="debug"), stream=stream)
    settings = load_settings(None, judge={"base_url": "http://x/v1", "model": "m", "api_key": "sk-SECRET-1"})
    log = get_logger("test")
    log.info("calling judge", api_key="sk-SECRET-2", headers={"Authorization": "Bearer sk-SECRET-3"})
    log.info("settings", judge_key=settings.judge.api_key, password="hunter2")  # type: ignore[union-attr]
    output = stream.getvalue()
    assert "SECRET" not in output and "hunter2" not in output
    lines = [json.loads(line) for line in output.splitlines()]
    assert lines[0]["event"] == "calling judge" and lines[0]["api_key"] == "***"
    assert lines[0]["headers"]["Authorization"] == "***"
    configure_logging(LogSettings())


def test_the_demos_config_file_round_trips_through_toml(tmp_path: Path) -> None:
    """write_config writes what load_settings reads back, lists of tables (loop.scenarios) included,
    and never the LLM roles' sections (they may hold keys)."""
    from looptool.config import write_config

    settings = load_settings(
        None,
        run_id="roundtrip",
        loop={
            "scenarios": [{"focus": "dates", "parameters": "a date in 2027"}],
            "seed_new_schedule": [1.0, 0.5],
        },
        judge={"base_url": "http://judge:8000/v1", "model": "j", "api_key": "sk-canary-123"},
    )
    path = tmp_path / "looptool.toml"
    write_config(settings, path)
    assert "sk-canary-123" not in path.read_text() and "[judge]" not in path.read_text()
    again = load_settings(path)
    assert again.loop == settings.loop and again.trainer == settings.trainer and again.run_id == "roundtrip"


@pytest.mark.parametrize("schedule", [[], [1.0, 1.7], [1.0, -0.5]])
def test_a_seed_new_schedule_of_no_shares_or_shares_outside_0_1_is_refused(schedule: list[float]) -> None:
    """[] crashed `curate --initial` (IndexError); -0.5 went into the round manifest."""
    with pytest.raises(ValidationError, match="seed_new_schedule"):
        load_settings(None, loop={"seed_new_schedule": schedule})
