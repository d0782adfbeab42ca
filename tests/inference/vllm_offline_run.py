"""Run VLLMBackend (vLLM's offline engine) on two checkpoints and write what it decoded as JSON.

vLLM starts its engine in child processes, which must happen under ``if __name__ == "__main__"``,
so the test runs this file as a script:

    python vllm_offline_run.py MODEL_A MODEL_B REQUESTS_JSON OUTPUT_JSON

REQUESTS_JSON holds {"prompts": [chat, ...], "continuations": [text, ...], "max_tokens": int,
"chat_template_kwargs": {...}}: the switches hold for both checkpoints, as [policy]'s do across a
run's checkpoint switches (one engine start less than a run of their own).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from inference.base import Generation, SamplingConfig


def engine_processes() -> list[str]:
    """Names of our live descendant processes that are vLLM engine cores."""
    import psutil

    names = []
    for child in psutil.Process().children(recursive=True):
        try:
            if (
                child.status() != psutil.STATUS_ZOMBIE and "EngineCor" in child.name()
            ):  # comm is cut at 15 chars
                names.append(child.name())
        except psutil.NoSuchProcess:
            continue
    return names


def dump(results: list[list[Generation]]) -> list[list[dict[str, Any]]]:
    return [[asdict(generation) for generation in options] for options in results]


async def run(model_a: str, model_b: str, requests: dict[str, Any]) -> dict[str, Any]:
    from inference.vllm_backend import VLLMBackend

    prompts, max_tokens = requests["prompts"], requests["max_tokens"]
    greedy = SamplingConfig(max_tokens=max_tokens)
    sampled = SamplingConfig(greedy=False, temperature=1.0, n=3, seed=5, max_tokens=8)
    out: dict[str, Any] = {}
    started = time.perf_counter()
    backend = VLLMBackend(
        model_a,
        "seed0",
        gpu_memory_utilization=0.2,
        max_model_len=512,
        dtype="float32",
        enforce_eager=True,  # tiny model on CPU: no compile (start-up 5 s instead of ~70 s, faster decode)
        kv_cache_memory_bytes=128 << 20,
        chat_template_kwargs=requests["chat_template_kwargs"],
    )
    out["start_s"] = time.perf_counter() - started
    try:
        out["greedy_a"] = dump(await backend.generate(prompts, greedy))
        started = time.perf_counter()
        out["greedy_a_again"] = dump(await backend.generate(prompts, greedy))
        out["greedy_s"] = time.perf_counter() - started
        out["sampled"] = dump(await backend.generate(prompts[:2], sampled))
        out["sampled_again"] = dump(await backend.generate(prompts[:2], sampled))
        stop_text = out["greedy_a"][0][0]["text"]
        out["stop"] = stop_text[len(stop_text) // 2] if len(stop_text) > 2 else None
        if out["stop"]:
            out["stopped"] = dump(
                await backend.generate(
                    prompts[:1], SamplingConfig(max_tokens=max_tokens, stop=(out["stop"],))
                )
            )
        out["score"] = await backend.score(prompts, requests["continuations"])
        started = time.perf_counter()
        await backend.load(model_b, "seed1")
        out["load_s"] = time.perf_counter() - started
        out["model_id_after_load"] = backend.model_id
        out["engine_processes_after_load"] = engine_processes()
        out["greedy_b"] = dump(await backend.generate(prompts, greedy))
        out["score_b"] = await backend.score(prompts, requests["continuations"])
    finally:
        await backend.close()
    out["engine_processes_after_close"] = engine_processes()
    return out


def main() -> None:
    model_a, model_b, requests_path, output_path = sys.argv[1:5]
    requests = json.loads(Path(requests_path).read_text(encoding="utf-8"))
    result = asyncio.run(run(model_a, model_b, requests))
    Path(output_path).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
