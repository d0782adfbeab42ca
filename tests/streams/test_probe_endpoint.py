"""The probe decoding through a policy endpoint (``[policy] backend = "openai"``): the session's real vLLM
server (CPU) serving the tiny policy, wired from the settings as ``looptool worker`` wires it."""

from __future__ import annotations

import math

import pytest

from inference.openai_backend import OpenAIBackend
from inference.vllm_backend import ServedModel
from looptool.config import Settings
from looptool.wiring import policy_backend
from schemas.events import CheckpointPublished, CuratedSample, Event, ProbeResult
from streams.probe import CheckpointWatcher, ProbeStage
from streams.stage import TransientError
from tests.foundation.events_factory import CONTEXT, FLUCTUATION, LABEL, event_of

# The backend and the test share the session's event loop (the httpx pool is bound to it).
pytestmark = pytest.mark.asyncio(loop_scope="session")
RUN = "endpoint"


def checkpoint(checkpoint_id: str, round_: int) -> Event[CheckpointPublished]:
    return event_of(
        CheckpointPublished(
            new_checkpoint_id=checkpoint_id, round=round_, step=8, final=True, uri="/unused", backend="cpu"
        ),
        RUN,
    )


def members(count: int, round_: int) -> list[Event[CuratedSample]]:
    return [
        event_of(
            CuratedSample(
                round=round_,
                sample_id=f"s_{n}",
                source="SEED",
                tools=[FLUCTUATION],
                messages=CONTEXT,
                label=LABEL,
                label_event_id="01JABCDEFGHJKMNPQRSTVWXYZ0",
                content_hash=f"h{n}",
            ),
            RUN,
        )
        for n in range(count)
    ]


async def test_the_probe_decodes_through_the_policy_endpoint_and_waits_for_a_checkpoint_it_serves(
    vllm_server: ServedModel,
) -> None:
    settings = Settings.model_validate(
        {
            "run_id": RUN,
            "policy": {
                "backend": "openai",
                "max_new_tokens": 24,
                "endpoint": {
                    "base_url": vllm_server.base_url,
                    "model": vllm_server.model,
                    "timeout_s": 120,
                    "vllm_extensions": True,
                },
            },
        }
    )
    backend = policy_backend(settings)
    assert isinstance(backend, OpenAIBackend)
    watcher = CheckpointWatcher(None, RUN)
    stage = ProbeStage(RUN, backend, watcher, mode="final", max_new_tokens=24)
    try:
        # Round 1's checkpoint is not listed by the server (yet): the stage pauses, publishing nothing.
        await watcher.publish(checkpoint("ckpt-not-served", 1))
        with pytest.raises(TransientError, match="ckpt-not-served"):
            await stage.process(members(2, round_=1))
        # Round 2's checkpoint is served under its id: its members are probed by it.
        await watcher.publish(checkpoint(vllm_server.model, 2))
        outputs = await stage.process(members(2, round_=2))
    finally:
        await backend.close()
    results = [o for o in outputs if isinstance(o.payload, ProbeResult)]
    assert len(results) == 2
    for result in results:
        assert result.checkpoint_id == vllm_server.model  # each result names the checkpoint that decoded
        assert result.payload.raw_output  # the served model's own greedy text
        ppl = result.payload.ppl
        assert ppl is not None and math.isfinite(ppl) and ppl >= 1
