"""``GET /metrics``: Prometheus text exposition, merged across this instance's workers."""

from __future__ import annotations

from aiohttp import web

from gateway.keys import METRICS, SNAPSHOTS


async def prometheus(request: web.Request) -> web.Response:
    """All metric families of every worker process."""
    snapshots = request.app.get(SNAPSHOTS)
    others = snapshots.read_others() if snapshots is not None else ()
    return web.Response(
        text=request.app[METRICS].render(others),
        content_type="text/plain",
        headers={"Cache-Control": "no-store"},
    )
