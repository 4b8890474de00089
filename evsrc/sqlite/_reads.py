"""Reading: a pool of reader connections in worker threads, and the event loop's quick one."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.to_thread

from evsrc.errors import StoreClosedError
from evsrc.sqlite import _errors, _rows

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable

    from evsrc.records import Checkpoint, RecordedEvent
    from evsrc.sqlite._connect import Connector
    from evsrc.store import EventFilter

__all__ = ["BUSY", "PAGE", "Readers", "read_global"]

#: Rows per page of read_all / subscribe.
PAGE: Final = 500
#: :meth:`Readers.quick` found the file busy: take the worker-thread path.
BUSY: Final = object()


class Readers:
    """Reader connections, used by anyio's worker threads; WAL lets them read while a writer writes.

    At most ``connector.readers`` read at once; idle connections are kept for the
    next read. A connection whose read failed is closed, not reused.
    """

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self._slots = anyio.Semaphore(connector.readers)
        self._free: list[sqlite3.Connection] = []

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` on a reader connection in a worker thread."""
        connector = self._connector
        if connector.closed or connector.writer is None:
            raise connector.closed_error()
        async with self._slots:
            idle = self._free.pop() if self._free else None
            try:
                conn, result = await anyio.to_thread.run_sync(self._reading, idle, fn, args)
            except BaseException:
                if idle is not None:  # the thread has finished with it (never abandoned)
                    idle.close()
                raise
            if connector.closed:
                conn.close()
                raise StoreClosedError
            self._free.append(conn)
            return result

    def _reading(
        self, conn: sqlite3.Connection | None, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> tuple[sqlite3.Connection, Any]:
        with _errors.mapped():
            if conn is None:
                conn = self._connector.connect()
                conn.execute("PRAGMA query_only = 1")
            try:
                return conn, self._connector.retrying(fn, conn, *args)
            except BaseException:
                conn.close()
                raise

    def quick(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(conn, *args)`` on the event loop's own connection, or ``BUSY`` to go the long way.

        For a few index lookups (a stream's head, ids) a thread hop costs more
        than the work. That connection never waits for a lock (busy timeout 0:
        WAL readers are not blocked by writers; a rare busy moment, such as a
        recovery, sends the caller to its worker thread instead).
        """
        connector = self._connector
        conn = connector.quick
        if conn is None or connector.closed:
            raise connector.closed_error()
        try:
            return fn(conn, *args)
        except sqlite3.OperationalError as exc:
            if _errors.is_busy(exc):
                _errors.rollback(conn)
                return BUSY
            raise _errors.translate(exc) from exc
        except (sqlite3.Error, OverflowError) as exc:
            raise _errors.translate(exc) from exc

    async def head(self, stream: str) -> int:
        """The stream's last seq: on the quick connection unless the file is busy."""
        head = self.quick(_rows.head, stream)
        if head is BUSY:
            head = await self.read(_rows.head, stream)
        assert isinstance(head, int)
        return head

    def data_version(self) -> int | None:
        """The file's change counter (``PRAGMA data_version``); ``None`` if unreadable now.

        It changes whenever another connection — this store's writer, or any
        other process — commits to the file, and costs no read of the tables.
        """
        quick = self._connector.quick
        if quick is None:
            return None
        try:
            return int(quick.execute("PRAGMA data_version").fetchall()[0][0])
        except sqlite3.Error:
            return None  # busy for a moment: treated as a change, the caller reads again

    def detach(self) -> list[sqlite3.Connection]:
        """Take back the idle reader connections (for the caller to close)."""
        conns, self._free = self._free, []
        return conns


async def read_global(
    readers: Readers, start: Checkpoint | None, flt: EventFilter, limit: int | None
) -> AsyncGenerator[RecordedEvent, None]:
    """The global log after ``start`` that passes ``flt``, up to ``limit`` events, page by page."""
    filters = _rows.filters_sql(flt)
    cursor = _rows.Cursor(start)
    end: int | None = None  # "what was committed when it got there": read with page 1
    left = limit
    while left is None or left > 0:
        page = PAGE if left is None else min(PAGE, left)
        events, end = await readers.read(_rows.read_page, cursor, end, page, filters)
        for e in events:
            yield e
        if left is not None:
            left -= len(events)
        if len(events) < page:
            return
