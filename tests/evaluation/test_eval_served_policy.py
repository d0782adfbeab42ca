"""``looptool eval`` with the policy's backend as the probe builds it: a served policy (``[policy]
backend = "openai"``) is decoded through its endpoint, asked for the checkpoint by the name the endpoint
serves it under, with the ``[policy]`` settings the probe's requests carry; a local vLLM policy gets
every vLLM setting; eval's preflight checks what doctor checks. And the probe and the evaluate stage
pause, losing nothing, while the policy's endpoint is down or does not serve the checkpoint yet."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from rich.console import Console

from evaluation.heldout import HeldoutError
from looptool.cli.evaluate import CheckpointNotFoundError, run_eval_command
from looptool.config import Settings
from looptool.wiring import policy_backend
from tests.http_server import serve_app

THINKING_OFF = {"enable_thinking": False}


@dataclass
class PolicyServer:
    """A policy endpoint serving the initial policy and one checkpoint under its id; records requests."""

    served: tuple[str, ...] = ("initial-policy", "ckpt-r1")
    answer: str = "None of these functions fits the question."
    down: bool = False  # answer 503, as an overloaded or restarting server does
    payloads: list[dict[str, Any]] = field(default_factory=list)
    roots: dict[str, str] = field(default_factory=dict)  # the weights' path vLLM lists as `root`

    async def models(self, _request: web.Request) -> web.Response:
        cards = [
            {"id": name, **({"root": self.roots[name]} if name in self.roots else {})} for name in self.served
        ]
        return web.json_response({"object": "list", "data": cards})

    async def chat(self, request: web.Request) -> web.Response:
        payload = await request.json()
        if self.down:
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        self.payloads.append(payload)
        message = {"role": "assistant", "content": self.answer}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return web.json_response({"id": "x", "object": "chat.completion", "choices": [choice]})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app


def served_settings(
    port: int, tmp_path: Path, heldout: Path | None = None, retries: int = 4, **policy: Any
) -> Settings:
    return Settings.model_validate(
        {
            "run_id": "served-eval",
            "policy": {
                "backend": "openai",
                "chat_template_kwargs": THINKING_OFF,
                "endpoint": {
                    "base_url": f"http://127.0.0.1:{port}/v1",
                    "model": "initial-policy",
                    "max_retries": retries,
                },
                **policy,
            },
            "eval": {"results_dir": str(tmp_path / "results"), "heldout_path": heldout},
        }
    )


async def test_eval_of_a_served_policy_decodes_through_its_endpoint_by_checkpoint_id(tmp_path: Path) -> None:
    server = PolicyServer()
    # The trainer's checkpoint folder, named as its id: the endpoint serves it; nothing loads it here.
    checkpoint = tmp_path / "ckpt-r1"
    checkpoint.mkdir()
    async with serve_app(server.app()) as port:
        settings = served_settings(port, tmp_path)
        console = Console(record=True, width=200)
        run = await run_eval_command(
            settings, str(checkpoint), categories="irrelevance", limit=2, console=console
        )
        assert [r.correct for r in run.results] == [True, True]  # no call made: right on irrelevance
        assert [p["model"] for p in server.payloads] == ["ckpt-r1", "ckpt-r1"]
        assert all(p["chat_template_kwargs"] == THINKING_OFF for p in server.payloads)

        # The initial policy by the name the endpoint serves it under, as the probe asks for it first,
        # or by its folder ([policy] model_path, which the trainer starts from).
        initial_folder = tmp_path / "base-model"
        initial_folder.mkdir()
        with_folder = served_settings(port, tmp_path, model_path=str(initial_folder))
        server.payloads.clear()
        for reference in ("initial-policy", str(initial_folder)):
            await run_eval_command(with_folder, reference, categories="irrelevance", limit=1, console=console)
        assert [p["model"] for p in server.payloads] == ["initial-policy", "initial-policy"]

        # A checkpoint the endpoint does not serve: refused by name, nothing decoded.
        server.payloads.clear()
        missing = tmp_path / "ckpt-r9"
        missing.mkdir()
        with pytest.raises(
            CheckpointNotFoundError, match=r"or 'ckpt-r9' .*it serves \['ckpt-r1', 'initial-policy'\]"
        ):
            await run_eval_command(settings, str(missing), categories="irrelevance", limit=1, console=console)
        assert server.payloads == []


async def test_eval_finds_a_served_policys_checkpoint_in_what_its_endpoint_lists_without_kafka(
    tmp_path: Path,
) -> None:
    """A served policy's checkpoint named by its id (not a folder here) was looked up on the run's
    checkpoints topic only: with no broker configured eval refused it ("no Kafka is configured"), and
    its preflight demanded a broker, though the endpoint lists what it serves."""
    from looptool.preflight import eval_checks

    # vLLM lists a LoRA adapter under its name with the adapter's folder as `root`.
    server = PolicyServer(
        served=("initial-policy", "ckpt-r1", "round-2"), roots={"round-2": "/ckpts/r2/actor"}
    )
    async with serve_app(server.app()) as port:
        settings = served_settings(port, tmp_path)
        assert not settings.kafka.bootstrap_servers
        console = Console(record=True, width=200)
        # By id; by a path on the trainer's machine, named as its id; by the path the endpoint serves.
        for reference in ("ckpt-r1", "/trainer/runs/ckpt-r1", "/ckpts/r2/actor"):
            await run_eval_command(settings, reference, categories="irrelevance", limit=1, console=console)
        assert [p["model"] for p in server.payloads] == ["ckpt-r1", "ckpt-r1", "round-2"]
        assert "evaluating round-2 (/ckpts/r2/actor)" in console.export_text()

        [endpoint, results] = await eval_checks(settings, "ckpt-r1")
        assert (endpoint.name, endpoint.ok, results.name) == ("policy endpoint", True, "results")

        server.payloads.clear()
        with pytest.raises(CheckpointNotFoundError) as refused:
            await run_eval_command(settings, "ckpt-r7", categories="irrelevance", limit=1, console=console)
        assert "does not serve 'ckpt-r7'" in str(refused.value)
        assert "it serves ['ckpt-r1', 'initial-policy', 'round-2']" in str(refused.value)
        assert server.payloads == []


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'


async def test_eval_reads_a_served_policys_outputs_from_inside_the_trace_its_template_opens(
    tmp_path: Path,
) -> None:
    """``[policy] template_opens_trace``: an output that never closes the trace the template opened is
    a trace cut off, its drafted call no answer; held-out ToolMatch must not count it as the label."""
    heldout = tmp_path / "heldout.jsonl"
    record = {
        "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
        ],
    }
    heldout.write_text(json.dumps(record) + "\n", encoding="utf-8")
    checkpoint = tmp_path / "ckpt-r1"
    checkpoint.mkdir()
    server = PolicyServer(answer=WEATHER_CALL)
    scores = {}
    async with serve_app(server.app()) as port:
        for opens_trace in (False, True):
            settings = served_settings(port, tmp_path, heldout, template_opens_trace=opens_trace)
            console = Console(record=True, width=200)
            await run_eval_command(
                settings, str(checkpoint), categories="irrelevance", limit=1, console=console
            )
            scores[opens_trace] = console.export_text()
    assert "held-out ToolMatch (heldout.jsonl" in scores[False] and "1/1 = 100.00%" in scores[False]
    assert "0/1 = 0.00%" in scores[True]


class Built(Exception):
    """Stands in for the engine: the test stops at the backend's construction."""


async def test_eval_builds_a_local_vllm_policy_with_all_of_its_policy_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``looptool eval`` on ``backend = "vllm"`` dropped ``enforce_eager``: a policy that needs eager
    mode (no CUDA-graph capture) was evaluated in an engine configured unlike the probe's."""
    options: dict[str, Any] = {}

    def make_backend(kind: str, **given: Any) -> Any:
        options.update(given, kind=kind)
        raise Built

    monkeypatch.setattr("inference.factory.make_backend", make_backend)
    settings = Settings.model_validate(
        {
            "run_id": "vllm-eval",
            "policy": {
                "backend": "vllm",
                "enforce_eager": True,
                "gpu_memory_utilization": 0.5,
                "max_model_len": 2048,
                "chat_template_kwargs": THINKING_OFF,
            },
            "eval": {"results_dir": str(tmp_path / "results")},
        }
    )
    checkpoint = tmp_path / "ckpt-r1"
    checkpoint.mkdir()
    with pytest.raises(Built):
        await run_eval_command(settings, str(checkpoint), categories="irrelevance", limit=1)
    assert options == {
        "kind": "vllm",
        "model_path": str(checkpoint.resolve()),
        "model_id": "ckpt-r1",
        "gpu_memory_utilization": 0.5,
        "max_model_len": 2048,
        "enforce_eager": True,
        "chat_template_kwargs": THINKING_OFF,
    }


async def test_evals_preflight_checks_a_served_policys_endpoint_as_doctor_does(tmp_path: Path) -> None:
    """The endpoint eval decodes through is checked before the suite loads (not a local folder, nor a
    broker to look the endpoint's own model up in)."""
    from looptool.preflight import eval_checks

    checkpoint = tmp_path / "ckpt-r1"
    checkpoint.mkdir()  # no model files: the endpoint serves the checkpoint, nothing here loads it
    async with serve_app(PolicyServer().app()) as port:
        settings = served_settings(port, tmp_path)
        for reference in (str(checkpoint), "initial-policy"):
            results = await eval_checks(settings, reference)
            assert [(r.name, r.ok) for r in results] == [("policy endpoint", True), ("results", True)]
    down = await eval_checks(served_settings(9, tmp_path), "initial-policy")  # nothing listens on port 9
    assert [(r.name, r.ok) for r in down] == [("policy endpoint", False), ("results", True)]


async def test_the_evaluate_stage_waits_for_its_endpoint_to_serve_a_checkpoint(tmp_path: Path) -> None:
    """A served policy's endpoint lists a checkpoint some time after the trainer publishes it (a server
    restarted on it, a router catching up): the evaluate stage dead-lettered the CheckpointPublished,
    so that checkpoint was never evaluated and never reached the promotion gate."""
    from looptool.wiring import policy_backend
    from schemas.events import CheckpointEvaluated, CheckpointPublished, Producer, make_event
    from streams.evaluate import EvalPolicy, EvaluateStage
    from streams.stage import TransientError

    server = PolicyServer(served=("initial-policy",))
    published = make_event(
        CheckpointPublished(
            new_checkpoint_id="ckpt-r1", round=1, step=8, final=True, uri="/unused", backend="cpu"
        ),
        run_id="served-eval",
        producer=Producer(stage="test", version="0"),
    )
    async with serve_app(server.app()) as port:
        backend = policy_backend(served_settings(port, tmp_path))
        policy = EvalPolicy(categories=("irrelevance",), limit=1, results_dir=tmp_path / "eval")
        stage = EvaluateStage("served-eval", backend, policy)
        try:
            with pytest.raises(TransientError, match="ckpt-r1"):
                await stage.process([published])
            assert server.payloads == []
            server.served = ("initial-policy", "ckpt-r1")  # the endpoint serves it now
            [evaluated] = await stage.process([published])
        finally:
            await backend.close()
    assert isinstance(evaluated.payload, CheckpointEvaluated)
    assert evaluated.payload.checkpoint_id == "ckpt-r1" and evaluated.payload.total == {"irrelevance": 1}
    assert [p["model"] for p in server.payloads] == ["ckpt-r1"]


def published_checkpoint(checkpoint_id: str = "ckpt-r1", round_: int = 1) -> Any:
    from schemas.events import CheckpointPublished, Producer, make_event

    return make_event(
        CheckpointPublished(
            new_checkpoint_id=checkpoint_id, round=round_, step=8, final=True, uri="/unused", backend="cpu"
        ),
        run_id="served-eval",
        producer=Producer(stage="test", version="0"),
    )


async def test_an_outage_of_the_policy_endpoint_pauses_the_evaluate_stage(tmp_path: Path) -> None:
    """A served policy's endpoint answering 503 past its retries dead-lettered the checkpoint being
    evaluated: it was never evaluated nor gated, though nothing was wrong with it."""
    from schemas.events import CheckpointEvaluated
    from streams.evaluate import EvalPolicy, EvaluateStage
    from streams.stage import TransientError

    server = PolicyServer(down=True)
    async with serve_app(server.app()) as port:
        backend = policy_backend(served_settings(port, tmp_path, retries=0))
        stage = EvaluateStage("served-eval", backend, EvalPolicy(categories=("irrelevance",), limit=1))
        try:
            with pytest.raises(TransientError, match=r"the policy unavailable: .*HTTP 503"):
                await stage.process([published_checkpoint()])
            server.down = False
            [evaluated] = await stage.process([published_checkpoint()])
        finally:
            await backend.close()
    assert isinstance(evaluated.payload, CheckpointEvaluated) and evaluated.payload.total == {
        "irrelevance": 1
    }


async def test_an_outage_of_the_policy_endpoint_pauses_the_probe_and_loses_no_member(tmp_path: Path) -> None:
    """The probe's members were dead-lettered, every one, while the served policy's endpoint was down:
    the round closed with no probes of them."""
    from schemas.events import ProbeResult
    from streams.probe import CheckpointWatcher, ProbeStage
    from streams.stage import TransientError
    from tests.trainer import toy

    server = PolicyServer(answer=WEATHER_CALL, down=True)
    members = toy.round_events("served-eval", toy.CITIES[:3])[:-1]
    async with serve_app(server.app()) as port:
        backend = policy_backend(served_settings(port, tmp_path, retries=0))
        watcher = CheckpointWatcher(None, "served-eval")
        stage = ProbeStage("served-eval", backend, watcher, mode="final", max_new_tokens=8)
        await watcher.publish(published_checkpoint())
        try:
            with pytest.raises(TransientError, match=r"the policy unavailable: .*HTTP 503"):
                await stage.process(members)
            server.down = False
            outputs = await stage.process(members)
        finally:
            await backend.close()
    assert [type(event.payload) for event in outputs] == [ProbeResult] * len(members)
    assert {p["model"] for p in server.payloads} == {"ckpt-r1"}


async def test_evals_preflight_refuses_a_vllm_policy_without_vllm_as_doctor_does(
    tiny_policy_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``looptool eval`` on ``backend = "vllm"`` checked the checkpoint folder only: without vLLM
    installed it passed its preflight, loaded the suite and then failed "No module named 'vllm'",
    where doctor names the fix."""
    import importlib.util

    from looptool.preflight import eval_checks

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *rest: None if name == "vllm" else find_spec(name, *rest)
    )
    settings = Settings.model_validate(
        {"run_id": "vllm-eval", "policy": {"backend": "vllm"}, "eval": {"results_dir": str(tmp_path)}}
    )
    [checkpoint, results] = await eval_checks(settings, str(tiny_policy_path))
    assert (checkpoint.name, checkpoint.ok) == ("checkpoint", False) and results.ok
    assert "vLLM is not installed" in checkpoint.detail


async def test_a_held_out_set_that_does_not_load_stops_eval_before_the_policy_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The held-out file was read after the backend was built (a model loaded, maybe for minutes) and
    outside the block that closes it: a missing file left the backend open."""
    built: list[str] = []

    def make_backend(kind: str, **given: Any) -> Any:
        built.append(kind)
        raise Built

    monkeypatch.setattr("inference.factory.make_backend", make_backend)
    settings = Settings.model_validate(
        {
            "run_id": "heldout-eval",
            "policy": {"backend": "vllm"},
            "eval": {
                "results_dir": str(tmp_path / "results"),
                "heldout_path": str(tmp_path / "missing.jsonl"),
            },
        }
    )
    checkpoint = tmp_path / "ckpt-r1"
    checkpoint.mkdir()
    with pytest.raises(HeldoutError, match="cannot read the held-out set"):
        await run_eval_command(settings, str(checkpoint), categories="irrelevance", limit=1)
    assert built == []
