"""Cross-process wakeups of a PostgreSQL store: a coalesced NOTIFY after commits, one LISTEN.

A wakeup is only a hint to read again; why NOTIFY is sent after commits,
coalesced, and never inside them: docs/postgres.md, "Subscriptions: how they
wake up".
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING, Any, Final

import asyncpg

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["NOTIFY_INTERVAL", "Wakeups"]

#: At most one post-commit NOTIFY per this many seconds per store (the first is immediate).
NOTIFY_INTERVAL: Final = 0.02


class Wakeups:
    """Sends this store's NOTIFYs and turns other stores' into ``wake()`` calls."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        notify_query: str,
        schema: str,
        notify: bool,
        can_listen: bool,
        listen_dsn: str | None,
        listen_options: dict[str, Any],
        wake: Callable[[], None],
        closed: Callable[[], bool],
    ) -> None:
        self._pool = pool
        self._notify_query = notify_query
        #: Marks this store's NOTIFYs, so that it ignores their echo.
        self._token = uuid.uuid4().hex
        self._channel = f"evsrc.{schema}"[:63]
        self._notify = notify
        #: Whether this store may open a LISTEN connection (not on a standby, nor a borrowed pool).
        self.can_listen = can_listen
        self._listen_dsn = listen_dsn
        self._listen_options = listen_options
        self._wake = wake
        self._closed = closed
        self._pending = False
        self._notifier: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._listener_task: asyncio.Task[None] | None = None
        self._retry_at = 0.0

    def committed(self) -> None:
        """This store committed: NOTIFY other stores soon (coalesced)."""
        if self._notify:
            self._pending = True
            if self._notifier is None:
                self._notifier = asyncio.get_running_loop().create_task(self._notify_loop())

    async def _notify_loop(self) -> None:
        try:
            while self._pending and not self._closed():
                self._pending = False
                await self._pool.execute(self._notify_query, self._channel, self._token)
                # Whatever commits meanwhile shares the next NOTIFY.
                await asyncio.sleep(NOTIFY_INTERVAL)
        except Exception:  # a lost NOTIFY only delays other subscribers to their next poll
            pass
        finally:
            self._notifier = None

    def ensure_listening(self) -> None:
        """Open the LISTEN connection if there is none (at most one try per 5 s)."""
        if not self.can_listen or self._listener is not None:
            return
        now = asyncio.get_running_loop().time()
        if self._listener_task is not None or now < self._retry_at or self._closed():
            return
        self._retry_at = now + 5.0
        self._listener_task = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        # The task stays known until the connection is the listener (or closed):
        # close() cancels it until then, so a connection still being set up is
        # never left open when the store closes.
        try:
            await self._open_listener()
        finally:
            self._listener_task = None

    async def _open_listener(self) -> None:
        try:
            conn = await asyncpg.connect(self._listen_dsn, **self._listen_options)
        except Exception:  # subscribers fall back to polling; retried later
            return

        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            if payload != self._token:  # another store's commit (or an older release's)
                self._wake()

        def on_lost(_: object) -> None:
            if self._listener is conn:
                self._listener = None
                self._wake()

        try:
            if self._closed():
                await conn.close()
                return
            conn.add_termination_listener(on_lost)
            try:
                await conn.add_listener(self._channel, on_notify)
            except Exception:
                conn.terminate()
                return
            if self._closed():
                await conn.close()
                return
        except BaseException:  # cancelled by close(): never leave it open
            conn.terminate()
            raise
        self._listener = conn

    async def close(self) -> None:
        """Stop sending and listening."""
        for task in (self._notifier, self._listener_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)
