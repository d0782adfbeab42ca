"""A local OpenAI-compatible endpoint (aiohttp on a loopback port) that misbehaves on demand.

Modes: ``ok`` answers a Figure 10 verdict; ``echo`` fails with HTTP 502 and a page that echoes the
request's Authorization header (a careless proxy); ``reject`` answers HTTP 401 echoing it too. In
every mode a prompt longer than ``max_prompt_chars`` gets HTTP 400, as a server does for a prompt
longer than the model's context.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from tests.http_server import serve_app

VERDICT = "BOTH_CORRECT\nError Analysis: fine.\nCorrect Approach: none."


class Endpoint:
    def __init__(self, mode: str = "ok", max_prompt_chars: int = 1_000_000) -> None:
        self.mode = mode
        self.max_prompt_chars = max_prompt_chars
        self.authorizations: list[str | None] = []
        self.rejected_long = 0
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def chat(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        payload = await request.json()
        if sum(len(m.get("content") or "") for m in payload.get("messages", [])) > self.max_prompt_chars:
            self.rejected_long += 1
            return web.json_response({"error": {"message": "prompt longer than the context"}}, status=400)
        if self.mode == "echo":
            return web.Response(
                status=502, text=f"bad gateway; you sent {request.headers.get('Authorization')}"
            )
        if self.mode == "reject":
            return web.Response(status=401, text=f"invalid key {request.headers.get('Authorization')}")
        return web.json_response(
            {
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": VERDICT},
                        "finish_reason": "stop",
                    }
                ]
            }
        )


@asynccontextmanager
async def serve(endpoint: Endpoint) -> AsyncIterator[Endpoint]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", endpoint.chat)
    async with serve_app(app) as port:
        endpoint.port = port
        yield endpoint
