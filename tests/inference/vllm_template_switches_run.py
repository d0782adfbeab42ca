"""Score continuations with VLLMBackend under chat-template switches and write the log-probs as JSON.

vLLM starts its engine in child processes (``if __name__ == "__main__"``), so the test runs this
file as a script:

    python vllm_template_switches_run.py MODEL REQUESTS_JSON OUTPUT_JSON

REQUESTS_JSON holds {"prompts": [chat, ...], "continuations": [text, ...], "chat_template_kwargs": {...}}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any


async def run(model: str, requests: dict[str, Any]) -> dict[str, Any]:
    from inference.vllm_backend import VLLMBackend

    backend = VLLMBackend(
        model,
        "switches",
        gpu_memory_utilization=0.2,
        max_model_len=512,
        dtype="float32",
        enforce_eager=True,  # tiny model on CPU: no compile
        kv_cache_memory_bytes=128 << 20,
        chat_template_kwargs=requests["chat_template_kwargs"],
    )
    try:
        return {"score": await backend.score(requests["prompts"], requests["continuations"])}
    finally:
        await backend.close()


def main() -> None:
    model, requests_path, output_path = sys.argv[1:4]
    requests = json.loads(Path(requests_path).read_text(encoding="utf-8"))
    result = asyncio.run(run(model, requests))
    Path(output_path).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
