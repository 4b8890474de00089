"""Writing: the writer connection on its own thread, one write at a time, appends group-committed.

Every write of a store goes through its :class:`Writer`: :meth:`Writer.run`
for a function on the writer connection (it begins and ends its own
transaction), :meth:`Writer.append` for appends, :meth:`Writer.transaction`
for code that builds on the same file.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel

from evsrc.errors import EvsrcError, StoreUnavailableError, StreamDeletedError
from evsrc.sqlite import _errors, _rows, _sql, _threads
from evsrc.sqlite._connect import now

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from evsrc.sqlite._connect import Connector
    from evsrc.sqlite._reads import Readers
    from evsrc.store import EncodedEvent

__all__ = [
    "INLINE_MAX_EVENTS",
    "INLINE_RUN",
    "MAX_BATCH",
    "Pending",
    "Writer",
    "append_batch",
    "write_batch",
]

#: Most appends committed together by one writer (group commit).
MAX_BATCH: Final = 256
#: Most events of an append written on the event loop (``inline_appends``).
INLINE_MAX_EVENTS: Final = 16
#: Inline appends between two on the writer thread, which checkpoints the log.
INLINE_RUN: Final = 100
_Q: Final = _sql.queries()
_Q_HEAD_LAST: Final = _Q["head_last"]
_Q_INSERT: Final = _Q["insert"]
_Q_HEAD: Final = _Q["head"]

# THE GLOBAL ORDER — why an INTEGER PRIMARY KEY assigned by the writer is exact.
#
# SQLite lets one connection write at a time: ``BEGIN IMMEDIATE`` takes the
# file's write lock (across processes) before the append reads anything, and
# holds it until COMMIT. Inside it the append reads the highest position ever
# handed out (``sqlite_sequence``, kept by AUTOINCREMENT) and numbers its events
# after it. So positions are assigned in commit order: no transaction can commit
# a lower position after a higher one is visible, and a reader that resumes
# after position p never skips an event that committed late. ``txn`` (the
# checkpoint's ``commit``) is the position of the append's first event: shared
# by the events of one append, and increasing with position, so checkpoints
# order exactly as positions do. Per stream, seq order agrees: the head is read
# under the same lock. The price is that appends to different streams
# serialise on the file's lock (docs/backends.md, "Limits").


class Pending:
    """An append waiting for the writer, then its answer."""

    __slots__ = ("encoded", "error", "expected", "stream", "written")

    def __init__(self, stream: str, expected: int | None, encoded: list[EncodedEvent]) -> None:
        self.stream = stream
        self.expected = expected
        self.encoded = encoded
        self.written: _rows.Written | None = None
        self.error: EvsrcError | None = None


class Writer:
    """The store's writer connection, used by one write at a time on the writer thread.

    ``on_commit`` is called (on the event loop) after appends committed events.
    """

    def __init__(self, connector: Connector, on_commit: Callable[[], None]) -> None:
        self._connector = connector
        self._on_commit = on_commit
        self._lock = anyio.Lock()
        self._thread = _threads.WriterThread()
        self._queue: list[Pending] = []
        self._inline_left = INLINE_RUN

    async def _acquire(self) -> None:
        """Take the write lock; when it is free, without a trip around the event loop."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        try:
            self._lock.acquire_nowait()
        except anyio.WouldBlock:
            await self._lock.acquire()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` on the writer connection in its thread."""
        await self._acquire()
        try:
            conn = self._connector.writer_conn()
            # Not abandoned on cancellation: the transaction ends (commit or
            # rollback) before the caller sees the cancellation.
            return await self._thread.run(fn, conn, *args)
        finally:
            self._lock.release()

    async def append(
        self, stream: str, expected: int | None, encoded: list[EncodedEvent]
    ) -> _rows.Written:
        """Write ``encoded`` iff the head is ``expected`` (any head if ``None``): what was done.

        Raises the append's evsrc error if it could not be decided.
        """
        # GROUP COMMIT. Appends queue; whoever gets the write lock first takes every
        # append queued by then (its own included) and runs them in one worker-thread
        # call, in one transaction: each append in its own savepoint, one COMMIT (one
        # fsync) for all. Each append is still all-or-nothing and is answered only
        # after that COMMIT; the others find their answer ready when the lock
        # reaches them. Conflicts too are decided here, so retriers never spin.
        item = Pending(stream, expected, encoded)
        self._queue.append(item)
        try:
            if self._connector.inline_appends and len(encoded) <= INLINE_MAX_EVENTS:
                # Let every task that is ready to run queue its append first: an
                # append alone in the queue, with the writer idle, runs inline.
                await anyio.lowlevel.checkpoint()
                self._append_inline(item)
            if item.written is None and item.error is None:
                await self._group_commit(item)
        except BaseException:
            if item in self._queue:  # never taken: it will not be written
                self._queue.remove(item)
            raise
        if item.error is not None:
            raise item.error
        assert item.written is not None
        return item.written

    async def _group_commit(self, item: Pending) -> None:
        """Wait for the writer; then write every queued append (``item`` too) on its thread."""
        await self._acquire()
        try:
            while item.written is None and item.error is None:
                conn = self._connector.writer_conn()
                batch = self._queue[:MAX_BATCH]
                del self._queue[: len(batch)]
                self._inline_left = INLINE_RUN
                # Not abandoned on cancellation: the transaction ends (commit or
                # rollback) before the caller sees the cancellation.
                try:
                    await self._thread.run(append_batch, self._connector, conn, batch)
                finally:
                    if any(p.written is not None and p.written.last_position for p in batch):
                        self._on_commit()
        finally:
            self._lock.release()

    def _append_inline(self, item: Pending) -> None:
        """Write ``item`` on the event loop if it is alone and the file's write lock is free.

        No thread hand-off, but the event loop waits for the transaction,
        COMMIT (an fsync at ``synchronous=FULL``) included. Never for a lock:
        if another connection writes, or other appends wait, or this writer
        is busy, the item is left queued for the writer thread. Every
        ``INLINE_RUN`` appends one goes to the writer thread anyway: its
        connection checkpoints the log, the inline one never does.
        """
        conn = self._connector.inline
        if (
            conn is None
            or self._connector.closed
            or len(self._queue) != 1
            or self._inline_left <= 0
        ):
            return
        try:
            self._lock.acquire_nowait()
        except anyio.WouldBlock:
            return
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error:
                return  # busy (or worse): the writer thread waits, or reports it
            self._queue.remove(item)
            self._inline_left -= 1
            write_batch(conn, [item])
            if item.written is not None and item.written.last_position:
                self._on_commit()
        finally:
            self._lock.release()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[sqlite3.Connection]:
        """The writer connection in ``BEGIN IMMEDIATE``; commits on exit, rolls back on error."""
        async with self._lock:
            conn = self._connector.writer_conn()
            try:
                # A cancelled BEGIN may still have begun: rolled back below.
                await self._thread.run(self._connector.begin_mapped, conn)
                yield conn
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._thread.run(_errors.rollback, conn)
                raise
            await self._thread.run(_errors.commit, conn)

    async def close(self, readers: Readers) -> None:
        """Close every connection once the write in flight has ended; stop the thread."""
        with anyio.CancelScope(shield=True):
            async with self._lock:
                for conn in (*self._connector.detach(), *readers.detach()):
                    await self._thread.run(conn.close)
                self._thread.stop()


def append_batch(connector: Connector, conn: sqlite3.Connection, batch: list[Pending]) -> None:
    """Queued appends in one ``BEGIN IMMEDIATE`` transaction (see THE GLOBAL ORDER).

    Sets each item's ``written`` or ``error``; raises only what is not a
    database error (after setting every item's error).
    """
    try:
        connector.begin_mapped(conn)
    except EvsrcError as exc:
        for item in batch:
            item.error = exc
        return
    write_batch(conn, batch)


def write_batch(conn: sqlite3.Connection, batch: list[Pending]) -> None:
    """:func:`append_batch` once ``BEGIN IMMEDIATE`` has run: write, then commit or roll back."""
    done: list[Pending] = []
    try:
        last: int | None = None  # read with the first head
        stamp = now()
        # A lone append needs no savepoint: its transaction is its own.
        savepoints = len(batch) > 1
        for item in batch:
            stream, expected, encoded = item.stream, item.expected, item.encoded
            if savepoints:
                conn.execute("SAVEPOINT evsrc_append")
            head = 0
            try:
                if last is None:
                    head, tombstoned, last = conn.execute(_Q_HEAD_LAST, (stream,)).fetchone()
                else:
                    row = conn.execute(_Q_HEAD, (stream,)).fetchone()
                    head, tombstoned = (0, 0) if row is None else row
                assert last is not None
                if tombstoned:  # a hard-deleted stream (docs/lifecycle.md)
                    item.error = StreamDeletedError(stream=stream)
                elif expected is not None and head != expected:
                    # A conflict, or a retry of an append that already committed.
                    item.written = _rows.Written(head, None, 0, _rows.find_ids(conn, encoded))
                else:
                    txn = last + 1
                    if len(encoded) == 1:
                        e = encoded[0]
                        conn.execute(
                            _Q_INSERT,
                            (txn, txn, stream, head + 1, e.id.bytes, e.type, e.version,
                             e.data, e.metadata, stamp),
                        )  # fmt: skip
                    else:
                        conn.executemany(
                            _Q_INSERT,
                            [
                                (txn + i, txn, stream, head + 1 + i, e.id.bytes, e.type,
                                 e.version, e.data, e.metadata, stamp)
                                for i, e in enumerate(encoded)
                            ],
                        )  # fmt: skip
                    last += len(encoded)
                    item.written = _rows.Written(head, last, txn, {})
                    done.append(item)
                if savepoints:
                    conn.execute("RELEASE evsrc_append")
            except (sqlite3.Error, OverflowError) as exc:
                if savepoints:
                    conn.execute("ROLLBACK TO evsrc_append")
                    conn.execute("RELEASE evsrc_append")
                else:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError) and "evsrc_events.id" in str(exc):
                    # An id is taken: an idempotent retry, or a clash.
                    item.written = _rows.Written(head, None, 0, _rows.find_ids(conn, encoded))
                else:
                    item.error = _errors.translate(exc, stream=stream)
    except BaseException as exc:
        _errors.rollback(conn)
        error = _errors.translate(exc) if isinstance(exc, (sqlite3.Error, OSError)) else None
        for item in batch:
            item.written = None
            item.error = error or StoreUnavailableError(f"the append was abandoned: {exc!r}")
        if error is None:
            raise
        return
    if not done:  # nothing written (conflicts, refusals): end the transaction early
        _errors.rollback(conn)
        return
    try:
        conn.execute("COMMIT")
    except BaseException as exc:
        _errors.rollback(conn)
        for item in done:
            item.written = None
            item.error = _errors.translate(exc, stream=item.stream, committing=True)
        if not isinstance(exc, sqlite3.Error):
            raise
