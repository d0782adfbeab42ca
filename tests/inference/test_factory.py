"""make_backend: the right backend per kind, heavy imports only when chosen."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from inference.base import InferenceBackend
from inference.factory import make_backend
from inference.openai_backend import OpenAIBackend
from inference.transformers_backend import TransformersBackend


def test_importing_the_factory_loads_no_model_runtime() -> None:
    code = (
        "import json, sys, inference.factory, inference.base; "
        "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'vllm', 'httpx') if m in sys.modules)))"
    )
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    assert loaded == []


def test_transformers_kind(tiny_policy_path: Path) -> None:
    backend = make_backend("transformers", model_path=str(tiny_policy_path), model_id="initial", batch_size=2)
    assert isinstance(backend, TransformersBackend) and isinstance(backend, InferenceBackend)
    assert backend.model_id == "initial" and backend.batch_size == 2


async def test_openai_kind() -> None:
    backend = make_backend("openai", base_url="http://127.0.0.1:9/v1", model="judge", max_concurrency=2)
    try:
        assert isinstance(backend, OpenAIBackend) and isinstance(backend, InferenceBackend)
        assert backend.model_id == "judge" and backend.max_concurrency == 2
    finally:
        await backend.close()


def test_unknown_kind_and_options_are_refused(tiny_policy_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown inference backend 'tgi'"):
        make_backend("tgi")
    with pytest.raises(TypeError):
        make_backend("transformers", model_path=str(tiny_policy_path), model_id="x", beam_width=4)
    with pytest.raises(ValueError, match="needs a model folder"):
        make_backend("transformers", model_path="", model_id="x")
