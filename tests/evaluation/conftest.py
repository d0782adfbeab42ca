"""Fixtures of the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def long_context_tiny_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2 policy with room for BFCL prompts (~2-6k tokens with its 512-token vocabulary).

    The session's shared tiny policy has 2048 positions, fewer than any BFCL prompt needs here.
    """
    from trainer.tiny_policy import build_tiny_policy

    return build_tiny_policy(
        tmp_path_factory.mktemp("tiny-bfcl"),
        vocab_size=512,
        seed=0,
        initializer_range=0.1,
        max_position_embeddings=16384,
    )
