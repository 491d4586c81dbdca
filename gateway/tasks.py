"""Task ownership: named tasks kept alive, and the in-flight registry drained at shutdown.

The event loop keeps only weak references to tasks, so every background task is spawned here and
kept until it ends. Request handlers enrol in ``InFlight`` so shutdown can wait for them within the
drain budget and then cancel the rest with a reason the handler can see (``SHUTDOWN``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterator
from typing import Any, Final, TypeVar

_T = TypeVar("_T")
_log = logging.getLogger("gateway.tasks")
_background: set[asyncio.Task[Any]] = set()

#: Cancellation message used when the drain budget ran out.
SHUTDOWN: Final = "gateway shutdown"


def spawn(coro: Coroutine[Any, Any, _T], *, name: str) -> asyncio.Task[_T]:
    """Run ``coro`` in a named background task kept alive until it finishes; failures are logged."""
    task = asyncio.create_task(coro, name=name)
    _background.add(task)
    task.add_done_callback(_forget)
    return task


def child(coro: Coroutine[Any, Any, _T], *, name: str) -> asyncio.Task[_T]:
    """A task owned by the calling coroutine, which must await or cancel it."""
    return asyncio.create_task(coro, name=name)


async def wait_named(prefix: str, timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for the spawned tasks named ``prefix...`` (must-finish work)."""
    pending = [t for t in _background if t.get_name().startswith(prefix)]
    if pending:
        await asyncio.wait(pending, timeout=timeout_s)


def _forget(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        _log.error("background task %s failed", task.get_name(), exc_info=exc)


def is_shutdown_cancel(exc: BaseException) -> bool:
    """Whether a ``CancelledError`` came from the shutdown drain."""
    return isinstance(exc, asyncio.CancelledError) and SHUTDOWN in exc.args


class InFlight:
    """Requests in progress in this worker, and whether the worker is draining."""

    __slots__ = ("_idle", "_tasks", "draining")

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.draining = False

    def __len__(self) -> int:
        return len(self._tasks)

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Enrol the current task for the duration of the block."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("InFlight.track() needs a running task")
        self._tasks.add(task)
        self._idle.clear()
        try:
            yield
        finally:
            self._tasks.discard(task)
            if not self._tasks:
                self._idle.set()

    async def drain(self, timeout_s: float, *, grace_s: float = 2.0) -> int:
        """Stop admitting; wait up to ``timeout_s`` for requests to end, then cancel the rest.

        Returns:
            How many requests had to be cancelled.
        """
        self.draining = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        left = list(self._tasks)
        for task in left:
            task.cancel(SHUTDOWN)
        if left:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    await self._idle.wait()
        return len(left)


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a child task and wait for it, without swallowing our own cancellation."""
    if task.done():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:  # noqa: BLE001 -- the child's failure is not ours; it was abandoned on purpose
        _log.debug("abandoned task %s failed", task.get_name())
