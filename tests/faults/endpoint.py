"""A judge endpoint (OpenAI-compatible, aiohttp on a loopback port) that fails in the ways real ones do.

Modes, switchable while it serves: ``ok`` answers a Figure 10 verdict; ``500`` answers HTTP 500;
``garbage`` answers HTTP 200 with a body that is not JSON; ``timeout`` holds every request far longer
than any client waits; ``down`` closes the listening socket (connections are refused) until the
mode changes again, when it listens on the same port. It records every request's prompt, so a test
can tell which inputs the stage worked on while the endpoint was failing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

MODES = ("ok", "500", "garbage", "timeout", "down")
VERDICT = (
    "RESPONSE 1 INCORRECT\nError Analysis: the arguments differ from the request.\nCorrect Approach: none."
)


@dataclass
class FlakyJudgeEndpoint:
    mode: str = "ok"
    hold_s: float = 30.0  # how long ``timeout`` holds a request
    port: int = 0
    requests: int = 0
    answered: int = 0
    prompts: list[str] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {MODES}")
        was_down, self.mode = self.mode == "down", mode
        if mode == "down" and not was_down:
            await self._stop_listening()
        elif was_down and mode != "down":
            await self._listen()

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.request_times.append(asyncio.get_running_loop().time())
        payload = await request.json()
        self.prompts.append("\n".join(str(m.get("content", "")) for m in payload.get("messages", [])))
        if self.mode == "500":
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        if self.mode == "garbage":
            return web.Response(status=200, text="<html>upstream says hi", content_type="application/json")
        if self.mode == "timeout":
            await asyncio.sleep(self.hold_s)
        self.answered += 1
        return web.json_response(
            {
                "id": "flaky",
                "object": "chat.completion",
                "model": payload.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": VERDICT},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "flaky-judge", "object": "model"}]})

    async def _listen(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        if not self.port:
            self.port = self._site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop_listening(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = self._site = None


@contextlib.asynccontextmanager
async def serve_flaky(endpoint: FlakyJudgeEndpoint | None = None) -> AsyncIterator[FlakyJudgeEndpoint]:
    endpoint = endpoint or FlakyJudgeEndpoint()
    await endpoint._listen()
    try:
        yield endpoint
    finally:
        await endpoint._stop_listening()
