"""Build an inference backend by name; heavy modules (torch, transformers, vLLM) load only when chosen."""

from __future__ import annotations

from typing import Any

from inference.base import InferenceBackend

BACKENDS = ("transformers", "vllm", "openai")


def make_backend(kind: str, **options: Any) -> InferenceBackend:
    """``make_backend("transformers", model_path=..., model_id=..., batch_size=...)``, and likewise:

    - ``"transformers"``: :class:`inference.transformers_backend.TransformersBackend`
      (model_path, model_id, batch_size, device, dtype, chat_template_kwargs);
    - ``"vllm"``: :class:`inference.vllm_backend.VLLMBackend` (model_path, model_id,
      gpu_memory_utilization, max_model_len, dtype, seed, enforce_eager, kv_cache_memory_bytes,
      engine_kwargs, chat_template_kwargs); build it under ``if __name__ == "__main__"`` (vLLM starts
      child processes);
    - ``"openai"``: :class:`inference.openai_backend.OpenAIBackend` (base_url, model, api_key,
      timeout_s, max_concurrency, max_retries, chat_template_kwargs, and the backoff/breaker options).

    Unknown options raise ``TypeError`` from the backend's constructor.
    """
    if kind == "transformers":
        from inference.transformers_backend import TransformersBackend

        return TransformersBackend(**options)
    if kind == "vllm":
        from inference.vllm_backend import VLLMBackend

        return VLLMBackend(**options)
    if kind == "openai":
        from inference.openai_backend import OpenAIBackend

        return OpenAIBackend(**options)
    raise ValueError(f"unknown inference backend {kind!r}; choose one of {', '.join(BACKENDS)}")
