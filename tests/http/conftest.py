"""Raw-HTTP helpers shared by the app-level tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.identity import bearer

ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session that sends the default test token with every request."""
    async with aiohttp.ClientSession(headers=bearer()) as session:
        yield session


async def read_error(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    """Check the OpenAI error envelope of ``response``; returns the inner error object."""
    raw = await response.read()
    assert response.status == status, raw
    assert response.content_type == "application/json"
    assert response.headers["x-request-id"].startswith("req_")
    body = orjson.loads(raw)
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    return dict(body["error"])
