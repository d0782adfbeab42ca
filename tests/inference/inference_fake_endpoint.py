"""A real local HTTP server that imitates an OpenAI-compatible endpoint and misbehaves on demand.

It listens on a loopback port (aiohttp), answers ``/v1/chat/completions`` in the OpenAI shape, and
can instead answer 500/429/400, garbage bodies or nothing for a while. It counts requests and the
most requests in flight at once, and records headers and payloads, so tests assert what the
client really did on the wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.http_server import serve_app

MODES = ("ok", "500", "429", "400", "garbage", "wrong_shape", "slow", "echo_auth_500", "custom")


@dataclass
class FakeEndpoint:
    mode: str = "ok"
    # Misbehave (in ``mode``) for this many requests, then answer normally; None = always.
    fail_times: int | None = None
    delay_s: float = 0.0
    retry_after: str | None = None
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    payloads: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    port: int = 0
    # mode "custom": (status, JSON body or text, headers) for a request's payload and the request.
    respond: Callable[[dict[str, Any], web.Request], tuple[int, Any, dict[str, str]]] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def heal(self) -> None:
        self.mode, self.fail_times = "ok", None

    def _misbehaving(self) -> bool:
        if self.mode == "ok":
            return False
        return self.fail_times is None or self.requests <= self.fail_times

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.authorizations.append(request.headers.get("Authorization"))
            payload = await request.json()
            self.payloads.append(payload)
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self._misbehaving():
                return self._misbehave(request)
            return web.json_response(_completion(payload))
        finally:
            self.in_flight -= 1

    def _misbehave(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "custom":
            assert self.respond is not None, "mode custom needs respond"
            status, body, headers = self.respond(self.payloads[-1], request)
            if isinstance(body, str):
                return web.Response(status=status, text=body, headers=headers)
            return web.json_response(body, status=status, headers=headers)
        if self.mode == "500":
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        if self.mode == "echo_auth_500":
            # A careless proxy that puts the request's credentials into its error page.
            return web.Response(status=502, text=f"bad gateway for {request.headers.get('Authorization')}")
        if self.mode == "429":
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.json_response({"error": {"message": "slow down"}}, status=429, headers=headers)
        if self.mode == "400":
            return web.json_response({"error": {"message": "prompt too long"}}, status=400)
        if self.mode == "garbage":
            return web.Response(
                status=200, text='{"choices": [ this is not json', content_type="application/json"
            )
        if self.mode == "wrong_shape":
            return web.json_response({"choices": [{"index": 0, "no_message": True}]})
        if self.mode == "slow":
            raise AssertionError("slow mode answers after delay_s; it never misbehaves otherwise")
        raise AssertionError(f"unknown mode {self.mode!r}")


def _completion(payload: dict[str, Any]) -> dict[str, Any]:
    n = int(payload.get("n", 1))
    choices = []
    for index in range(n):
        words = ["answer", str(index), "done"]
        content = [
            {"token": word, "logprob": -0.5 * (k + 1), "bytes": None, "top_logprobs": []}
            for k, word in enumerate(words)
        ]
        choice: dict[str, Any] = {
            "index": index,
            "message": {"role": "assistant", "content": " ".join(words)},
            "finish_reason": "stop",
            "logprobs": {"content": content} if payload.get("logprobs") else None,
        }
        if payload.get("return_token_ids"):
            choice["token_ids"] = [10, 20 + index, 30]
        choices.append(choice)
    # Reverse order: clients must sort by index, not trust the list order.
    return {
        "id": "fake",
        "object": "chat.completion",
        "model": payload.get("model"),
        "choices": choices[::-1],
    }


@asynccontextmanager
async def serve_fake_endpoint(endpoint: FakeEndpoint | None = None) -> AsyncIterator[FakeEndpoint]:
    endpoint = endpoint or FakeEndpoint()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", endpoint.chat)
    app.router.add_get("/v1/models", endpoint.models)
    async with serve_app(app) as port:
        endpoint.port = port
        yield endpoint
