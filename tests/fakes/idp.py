"""A fake identity provider on loopback: serves a JWKS document that tests swap at runtime.

Every GET on any path counts as a request (so an attacker-controlled "IdP" proves it was never
contacted). ``mode`` makes the next responses fail: ``error`` (500), ``hang`` (never answers until
closed), ``garbage`` (200 with a non-JSON body), ``oversize`` (200 with a body over 64 KiB, with or
without a Content-Length), ``slow`` (answers after ``delay_s``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import orjson
from aiohttp import web

Mode = Literal["ok", "error", "hang", "garbage", "oversize", "oversize_chunked", "slow"]
JWKS_PATH = "/.well-known/jwks.json"


class FakeIdP:
    """The fake IdP's state; ``await start()`` then use ``jwks_url``; ``await close()``."""

    def __init__(self, jwks: dict[str, Any] | None = None) -> None:
        self.jwks: dict[str, Any] = jwks if jwks is not None else {"keys": []}
        self.mode: Mode = "ok"
        self.delay_s = 0.05
        self.requests: list[str] = []
        """Paths requested so far."""
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()
        self.url = ""

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    def set_keys(self, *jwks: dict[str, Any]) -> None:
        """Publish exactly these JWKs."""
        self.jwks = {"keys": list(jwks)}

    async def start(self) -> FakeIdP:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        mode = self.mode
        if mode == "error":
            return web.Response(status=500, text="internal error")
        if mode == "hang":
            await self._release.wait()
            return web.Response(status=503)
        if mode == "garbage":
            return web.Response(body=b"<html>not json", content_type="application/json")
        if mode == "oversize":
            return web.Response(body=self._padded(), content_type="application/json")
        if mode == "oversize_chunked":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            response.content_type = "application/json"
            await response.prepare(request)
            body = self._padded()
            for start in range(0, len(body), 8192):
                await response.write(body[start : start + 8192])
            await response.write_eof()
            return response
        if mode == "slow":
            await asyncio.sleep(self.delay_s)
        return web.Response(body=orjson.dumps(self.jwks), content_type="application/json")

    def _padded(self) -> bytes:
        """The current JWKS made larger than 64 KiB (still valid JSON)."""
        return orjson.dumps({**self.jwks, "padding": "x" * (70 * 1024)})
