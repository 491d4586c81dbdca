"""The "bare aiohttp" reference: a minimal pass-through proxy with no parsing and no features.

Reads the request body, forwards it with one pooled ``ClientSession`` to the upstream at the same
path, and streams the response bytes back (``StreamResponse`` + ``iter_any``). Runs on uvloop with
``handler_cancellation`` and no access log, like the gateway.

Usage: ``python -m bench.passthrough --port 0 --upstream http://127.0.0.1:PORT`` (prints
``passthrough listening on PORT``; SIGTERM/SIGINT stop it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Sequence
from typing import Final

import aiohttp
import uvloop
from aiohttp import web

SESSION: Final = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM: Final = web.AppKey("upstream", str)


async def forward(request: web.Request) -> web.StreamResponse:
    """Forward one request and stream the answer back unchanged."""
    body = await request.read()
    session = request.app[SESSION]
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    async with session.request(
        request.method, request.app[UPSTREAM] + request.path_qs, data=body, headers=headers
    ) as upstream:
        response = web.StreamResponse(status=upstream.status)
        content_type = upstream.headers.get("Content-Type")
        if content_type is not None:
            response.headers["Content-Type"] = content_type
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        # A client that went away (wrk stopping mid-request) is not an error worth a traceback.
        with contextlib.suppress(ConnectionResetError):
            await response.prepare(request)
            async for data in upstream.content.iter_any():
                await response.write(data)
            await response.write_eof()
    return response


async def _session(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=1000, keepalive_timeout=30)
    app[SESSION] = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding", "User-Agent"),
    )
    yield
    await app[SESSION].close()


def create_app(upstream: str) -> web.Application:
    """The pass-through application forwarding to ``upstream`` (``http://host:port``)."""
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def serve(host: str, port: int, upstream: str) -> None:
    """Serve until SIGTERM/SIGINT."""
    runner = web.AppRunner(
        create_app(upstream), handler_cancellation=True, access_log=None, handle_signals=False
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=2048)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"passthrough listening on {runner.addresses[0][1]}", flush=True)
    await stop.wait()
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.passthrough", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9000")
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.host, args.port, args.upstream))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
