"""Shared fixtures: one broker per test session, a fresh run (topic namespace) per test.

Set ``LOOPTOOL_TEST_BOOTSTRAP=host:port`` to run the suite against an existing Kafka cluster
instead of the embedded Tansu broker; the code under test is the same either way.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

from bus.broker import EmbeddedBroker
from looptool.config import Settings, load_settings

if TYPE_CHECKING:
    from inference.vllm_backend import ServedModel

_session_broker_pid: int | None = None

# Property tests draw the same examples on every run of the suite, so a red CI run is caused by the
# change under test and is reproducible. New examples are searched for on purpose:
# ``pytest --hypothesis-profile=explore tests/toolcall tests/reliability`` (a random draw each run,
# failures kept in the local example database and replayed first).
settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("repeatable")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("LOOPTOOL_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    global _session_broker_pid
    broker = EmbeddedBroker()
    try:
        bootstrap = broker.start()
        _session_broker_pid = broker.pid
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture
def run_id() -> str:
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture
def settings(kafka_bootstrap: str, run_id: str, tmp_path: Path) -> Settings:
    return load_settings(
        None,
        run_id=run_id,
        kafka={"bootstrap_servers": kafka_bootstrap},
        store={"path": tmp_path / "store"},
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if the session broker outlived its fixture (an orphan process)."""
    if _session_broker_pid is None:
        return
    try:
        os.kill(_session_broker_pid, 0)
    except ProcessLookupError:
        return
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    raise RuntimeError(f"embedded broker pid {_session_broker_pid} is still running after the session")


# -- models and a shared vLLM server (see tests/inference) --------------------------------------------

TINY_POLICY_CORPUS = (
    "You are a helpful assistant with access to tools.",
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    '<tool_response>\n{"temperature": 21}\n</tool_response>',
    "<think>The user wants the weather.</think> The weather in Paris is sunny.",
)


@pytest.fixture(scope="session")
def tiny_policy_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Path]:
    """``factory(seed) -> folder``: tiny Qwen2 checkpoints (same shape and tokenizer), built once per seed.

    2 layers, hidden 128 (head_dim 32, the least vLLM accepts), ~0.3 M parameters. The
    initializer_range 0.1 (not the training default 0.02) makes the random model's next-token
    distributions peaked, so greedy outputs differ between prompts and between seeds instead of all
    being one near-uniform argmax. Different seeds stand in for successive training checkpoints.
    """
    from toolcall.prompts import prompt_phrases, render_tools
    from trainer.tiny_policy import build_tiny_policy
    from world import World

    # One token per fixed prompt text and per world tool: the judge and generator prompts it serves
    # stay a few hundred tokens long instead of several thousand.
    world = World(0)
    phrases = [*prompt_phrases(), *(render_tools([tool.spec]) for tool in world.toolset)]
    built: dict[int, Path] = {}

    def factory(seed: int) -> Path:
        if seed not in built:
            folder = tmp_path_factory.mktemp(f"tiny-policy-seed{seed}")
            built[seed] = build_tiny_policy(
                folder,
                TINY_POLICY_CORPUS,
                vocab_size=512,
                seed=seed,
                initializer_range=0.1,
                max_position_embeddings=4096,
                phrases=phrases,
                words=world.vocabulary(),
            )
        return built[seed]

    return factory


@pytest.fixture(scope="session")
def tiny_policy_path(tiny_policy_factory: Callable[[int], Path]) -> Path:
    """The session's tiny policy folder (seed 0); the vLLM server fixture serves this one."""
    return tiny_policy_factory(0)


@pytest.fixture(scope="session")
def vllm_server(tiny_policy_path: Path) -> Iterator[ServedModel]:
    """ONE vLLM OpenAI-compatible server for the session, serving ``tiny_policy_path`` as "tiny-policy".

    Started on first use (1.5 to 4 minutes on a 2-core CPU), so sessions that never request it pay
    nothing. Its whole process tree (API server, engine core, worker) ends at session end, and also
    if pytest itself is killed (a supervisor armed with PR_SET_PDEATHSIG). Yields
    :class:`inference.vllm_backend.ServedModel`: ``base_url`` (ends in /v1), ``model``,
    ``model_path``. Fails where vLLM is not installed (see :mod:`tests.requirements`).
    """
    from tests.requirements import require_vllm

    require_vllm()
    from inference.vllm_backend import VLLMServerProcess

    server = VLLMServerProcess(
        tiny_policy_path,
        "tiny-policy",
        gpu_memory_utilization=0.2,
        max_model_len=4096,
        dtype="float32",
        kv_cache_memory_bytes=256 << 20,
        # A tiny model on CPU: skipping torch.compile cuts engine init from ~70 s to ~5 s, and
        # eager decoding of a 2-layer model is faster than the compiled graph here anyway.
        extra_args=["--enforce-eager"],
        # Below pytest-timeout's 600 s, so a slow start fails with the server's log, not a bare kill.
        startup_timeout_s=540,
    )
    try:
        yield server.start()
    finally:
        server.stop()


# -- a tiny policy that has learnt the synthetic world's output format ---------------------------------


@pytest.fixture(scope="session")
def world_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2 policy SFT-trained briefly on world 0's seeds (about half a minute).

    It writes well-formed calls to the right tools, often with wrong values: enough for the probe to
    produce schema-valid mismatches that reach the judge, and matches too.
    """
    import asyncio

    from looptool.demo import SCALES, build_initial_policy
    from trainer.dataset import sample_row
    from trainer.sft import sft_warm_start
    from world import World
    from world.seed import build_seed_set

    world = World(0)
    seeds = asyncio.run(build_seed_set(world, 300, noise_rate=0.0, name="fixture-policy"))
    folder = tmp_path_factory.mktemp("world-policy")
    initial = build_initial_policy(world, seeds.samples, folder / "initial", SCALES["quick"], seed=0)
    rows = [sample_row(f"s{index}", item.sample) for index, item in enumerate(seeds.samples)]
    result = sft_warm_start(
        rows,
        init_model=initial,
        out_dir=folder / "sft",
        steps=200,
        learning_rate=3e-3,
        batch_size=16,
        threads=1,
        show_progress=False,
    )
    return result.model_dir
