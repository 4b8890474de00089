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


class WriterThread:
    """The writer connection's own thread (on asyncio): one round trip per call.

    A dedicated thread fed by a queue answers sooner than a call through anyio's
    worker-thread pool (docs/backends.md), and every write of the store is one
    such call. Other event loops (trio) use anyio's worker threads. Like
    ``anyio.to_thread.run_sync``, a call is never abandoned: a cancelled caller
    waits for the function to return, then sees the cancellation.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
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
        done: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((fn, args, loop, done))
        with anyio.CancelScope(shield=True):
            return await done

    def stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None


def serve(jobs: queue.SimpleQueue[Any]) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        fn, args, loop, done = job
        try:
            outcome = (True, fn(*args))
        except BaseException as exc:
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(settle, done, outcome)


def settle(done: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if done.cancelled():
        return
    ok, value = outcome
    if ok:
        done.set_result(value)
    else:
        done.set_exception(value)
