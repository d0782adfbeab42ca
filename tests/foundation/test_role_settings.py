"""[judge], [[judge.panel]], [generator] and [verifier]: budgets, sampling, panels, and older configs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from looptool.config import load_settings
from looptool.wiring import AppClients

ENDPOINT = 'base_url = "http://judge:8000/v1"\nmodel = "qwen3-32b"\n'


def _settings(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    config = tmp_path / "looptool.toml"
    config.write_text(text)
    return load_settings(config)


def test_defaults_are_sized_for_reasoning_models(tmp_path: Path) -> None:
    settings = _settings(tmp_path, f"[judge]\n{ENDPOINT}[generator]\n{ENDPOINT}")
    assert settings.judge.max_tokens >= 4096 and settings.judge.temperature == 0
    assert settings.generator.max_tokens >= 8192 and settings.generator.temperature > 0
    assert settings.judge.retry_budget() == 2 * settings.judge.max_tokens
    verifier = settings.verifier_role()
    assert (
        verifier is not None
        and verifier.model == "qwen3-32b"
        and verifier.max_tokens == settings.judge.max_tokens
    )
    assert [j.model for j in settings.judge.judges()] == [
        "qwen3-32b"
    ] and settings.judge.required_votes() == 1


def test_a_panel_and_a_verifier_take_what_they_do_not_set_from_the_judge(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        f"[judge]\n{ENDPOINT}max_tokens = 6000\nchat_template_kwargs = {{enable_thinking = true}}\n"
        'two_order = true\nno_quorum = "defer"\n'
        '[[judge.panel]]\nmodel = "deepseek-r1"\ntemplate_opens_trace = true\n'
        '[[judge.panel]]\nbase_url = "http://other:8000/v1"\nmodel = "llama-3.3-70b"\nmax_tokens = 2048\n'
        "[verifier]\nmax_tokens = 1024\n",
    )
    judges = settings.judge.judges()
    assert [(j.base_url, j.model, j.max_tokens) for j in judges] == [
        ("http://judge:8000/v1", "qwen3-32b", 6000),
        ("http://judge:8000/v1", "deepseek-r1", 6000),
        ("http://other:8000/v1", "llama-3.3-70b", 2048),
    ]
    assert judges[1].template_opens_trace and not judges[2].template_opens_trace
    assert all(j.chat_template_kwargs == {"enable_thinking": True} for j in judges)
    assert settings.judge.required_votes() == 2  # a majority of 3
    verifier = settings.verifier_role()
    assert verifier is not None and (verifier.model, verifier.max_tokens) == ("qwen3-32b", 1024)
    panel = AppClients(settings, log=None).judge_panel()
    assert [j.model_name for j in panel.judges] == ["qwen3-32b", "deepseek-r1", "llama-3.3-70b"]
    assert panel.two_order and panel.no_quorum == "defer" and panel.required_votes() == 2
    assert [j.settings.max_tokens for j in panel.judges] == [6000, 6000, 2048]  # type: ignore[attr-defined]
    assert AppClients(settings, log=None).verifier().settings.max_tokens == 1024  # type: ignore[attr-defined]


def test_a_quorum_larger_than_the_panel_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="quorum 3 is more than the 2 judges"):
        _settings(tmp_path, f'[judge]\n{ENDPOINT}quorum = 3\n[[judge.panel]]\nmodel = "b"\n')


def test_an_older_configs_extra_body_budget_becomes_the_roles_own(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        f"[judge]\n{ENDPOINT}[judge.extra_body]\nmax_tokens = 5000\ntop_k = 20\n"
        "[judge.extra_body.chat_template_kwargs]\nenable_thinking = false\n",
    )
    assert settings.judge.max_tokens == 5000 and settings.judge.extra_body == {"top_k": 20}
    assert settings.judge.chat_template_kwargs == {"enable_thinking": False}
    with pytest.raises(ValidationError, match="contradicts max_tokens"):
        _settings(tmp_path, f"[judge]\n{ENDPOINT}max_tokens = 4096\n[judge.extra_body]\nmax_tokens = 512\n")
    with pytest.raises(ValidationError, match="extra_body may not set"):
        _settings(tmp_path, f"[judge]\n{ENDPOINT}[judge.extra_body]\nseed = 3\n")


def test_the_backend_refuses_an_extra_body_that_would_override_the_budget() -> None:
    from inference.openai_backend import OpenAIBackend

    with pytest.raises(ValueError, match="extra_body may not set"):
        OpenAIBackend("http://x/v1", "m", extra_body={"max_tokens": 512})
