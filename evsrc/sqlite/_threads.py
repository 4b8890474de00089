"""The writer connection's own thread, under asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["WriterThread"]


class _Call:
    """One call for the thread: the function, then its outcome ``(ok, value)``."""

    __slots__ = ("args", "done", "fn", "loop", "outcome")

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.fn = fn
        self.args = args
        self.loop = loop
        self.done: asyncio.Future[None] = loop.create_future()
        self.outcome: tuple[bool, Any] | None = None


class WriterThread:
    """The writer connection's own thread (on asyncio): one round trip per call.

    A dedicated thread fed by a queue answers sooner than a call through anyio's
    worker-thread pool (docs/backends.md), and every write of the store is one
    such call. Other event loops (trio) use anyio's worker threads. A call is
    never abandoned: a cancelled caller waits for the function to return, then
    sees the cancellation (whether the function succeeded or not).
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return await anyio.to_thread.run_sync(fn, *args)
        if self._thread is None:
            self._thread = threading.Thread(
                target=serve, args=(self._jobs,), name="evsrc-sqlite-writer", daemon=True
            )
            self._thread.start()
        call = _Call(fn, args, loop)
        self._jobs.put(call)
        # Awaited bare (no shielding scope on the common path: it costs a loop
        # iteration); only a cancellation pays for waiting out the call.
        try:
            await call.done
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                while call.outcome is None:
                    call.done = loop.create_future()
                    with contextlib.suppress(asyncio.CancelledError):
                        await call.done
            raise
        assert call.outcome is not None
        ok, value = call.outcome
        if ok:
            return value
        raise value

    def stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None


def serve(jobs: queue.SimpleQueue[_Call | None]) -> None:
    while True:
        call = jobs.get()
        if call is None:
            return
        try:
            call.outcome = (True, call.fn(*call.args))
        except BaseException as exc:
            call.outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            call.loop.call_soon_threadsafe(settle, call)


def settle(call: _Call) -> None:
    # Runs on the loop, so it sees the future the caller waits on now.
    if not call.done.done():
        call.done.set_result(None)
