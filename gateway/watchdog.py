"""One timer per stream for per-chunk deadlines, instead of a timer per chunk.

``arm(deadline)`` and ``disarm()`` only store floats; the single timer re-arms itself when it fires
early, so the per-chunk cost is a few attribute writes. When an armed deadline passes,
``on_expire(now)`` runs once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Watchdog:
    """Calls ``on_expire`` once if an armed deadline passes before ``disarm``/``close``."""

    __slots__ = ("_deadline", "_handle", "_loop", "_on_expire", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_expire: Callable[[float], None]) -> None:
        self._loop = loop
        self._on_expire = on_expire
        self._deadline: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._when = 0.0

    def arm(self, deadline: float) -> None:
        """Expect activity before the loop time ``deadline``."""
        self._deadline = deadline
        if self._handle is None or deadline < self._when:
            self._schedule(deadline)

    def disarm(self) -> None:
        """No deadline until the next ``arm``."""
        self._deadline = None

    def close(self) -> None:
        """Stop for good."""
        self._deadline = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._when = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        deadline = self._deadline
        if deadline is None:
            return
        now = self._loop.time()
        if now >= deadline:
            self._deadline = None
            self._on_expire(now)
        else:
            self._schedule(deadline)
