"""``GET /v1/usage``: a tenant's usage report for a period (``start``, ``end``: UTC dates,
inclusive; default the current month up to today). Tenant admins (``admin:read``) see their own
tenant; ``tenants:all`` (``super_admin``) may name any tenant with ``?tenant=``; everyone else
gets 403."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from gateway.errors import InvalidRequest, NotFound
from gateway.keys import LEDGER, POLICY, REQUEST_CONTEXT
from gateway.metering.report import usage_report
from gateway.metering.sink import UsageQuery
from gateway.wire import dumps

_MAX_DAYS = 366


async def usage(request: web.Request) -> web.Response:
    """The usage report.

    Raises:
        PermissionDenied: not an admin of the tenant.
        InvalidRequest: malformed or reversed dates, or a period over a year.
        NotFound: metering is off.
    """
    principal = request[REQUEST_CONTEXT].principal
    if principal is None:  # the auth middleware runs before this route
        raise NotFound("Unknown request URL")
    tenant = request.app[POLICY].usage_tenant(principal, request.query.get("tenant"))
    ledger = request.app.get(LEDGER)
    if ledger is None:
        raise NotFound("Metering is off on this gateway.")
    today = dt.datetime.now(dt.UTC).date()
    start = _date(request, "start", today.replace(day=1))
    end = _date(request, "end", today)
    if end < start or (end - start).days >= _MAX_DAYS:
        raise InvalidRequest("end must be on or after start, at most a year later", param="end")
    query = UsageQuery(tenant, start, end)
    report = usage_report(query, await ledger.sink.totals(query))
    return web.Response(body=dumps(report), content_type="application/json")


def _date(request: web.Request, name: str, default: dt.date) -> dt.date:
    value = request.query.get(name)
    if value is None:
        return default
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be a date (YYYY-MM-DD)", param=name) from None
