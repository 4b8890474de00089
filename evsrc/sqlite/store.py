"""``SqliteEventStore``: the store contract in one SQLite file, shared by any number of processes.

How it keeps the contract, in short (``docs/backends.md`` has the long form):

* The stdlib ``sqlite3`` driver, called from threads: one round trip per
  operation (a whole append, or a group of them, is one), so the event loop
  never waits on the disk (unless the store opts into ``inline_appends``:
  a lone append then runs on the event loop). One writer connection per
  store, on its own thread under asyncio (``_writer``, ``_threads``); a few
  reader connections in anyio's worker threads, which WAL mode lets read
  while a writer writes (``_reads``). Options, connections and the schema:
  ``_connect``. Rows are decoded and retries resolved in ``_rows``.
* Appends run in ``BEGIN IMMEDIATE`` transactions: the file's write lock is
  taken first, then the stream's head is read, ``expected`` checked and the
  events inserted. Writers of every process queue on that lock (a busy
  timeout, retried up to a bound, then ``StoreUnavailableError``): never
  ``database is locked``. Appends queued in one store commit together (GROUP
  COMMIT in ``_writer``), each in its own savepoint.
* Durable by default: ``synchronous=FULL`` in WAL mode syncs the log at every
  commit, so an acknowledged append survives a power cut.
* Live subscribers wake at once after this store's own appends, and notice
  other processes' appends by polling ``PRAGMA data_version`` (a counter, not a
  read of the table) every ``poll_interval`` (``_follow``).
* Every ``sqlite3`` error becomes an evsrc error in one place, ``_errors.translate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

import anyio.to_thread

from evsrc.backend import Backend
from evsrc.records import Checkpoint, Committed, Conflict, RecordedEvent
from evsrc.sqlite import _connect, _lifecycle, _rows
from evsrc.sqlite._connect import SYNCHRONOUS, Connector
from evsrc.sqlite._follow import Follower
from evsrc.sqlite._reads import Readers, read_global
from evsrc.sqlite._writer import Writer

if TYPE_CHECKING:
    import os
    import sqlite3
    from collections.abc import AsyncGenerator, Callable, Mapping
    from contextlib import AbstractAsyncContextManager
    from datetime import datetime
    from uuid import UUID

    from evsrc.backend import Place
    from evsrc.errors import StoreClosedError
    from evsrc.records import Deleted, StreamMetadata
    from evsrc.store import EncodedEvent, EventFilter

__all__ = ["SYNCHRONOUS", "SqliteEventStore"]


class SqliteEventStore(Backend):
    """An event store in one SQLite file; any number of stores and processes may share it.

    Create it with :meth:`connect`, call :meth:`setup` once to create or migrate
    the schema, and close it with ``await store.close()`` or ``async with``.
    Tables share the ``evsrc_`` prefix, so read models may live in the same file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 30.0,
        poll_interval: float = 0.1,
        readers: int = 4,
        inline_appends: bool = False,
    ) -> None:
        self._connector = Connector(
            path,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            poll_interval=poll_interval,
            readers=readers,
            inline_appends=inline_appends,
        )
        self._readers = Readers(self._connector)
        self._follower = Follower(self._connector, self._readers)
        self._writer = Writer(self._connector, self._follower.wake)

    @classmethod
    async def connect(
        cls,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 30.0,
        poll_interval: float = 0.1,
        readers: int = 4,
        inline_appends: bool = False,
    ) -> Self:
        """Open (creating if needed) the SQLite file ``path`` and return a store on it.

        ``synchronous``: ``"FULL"`` (the default) syncs the write-ahead log at
        every commit, so an acknowledged append survives a power cut;
        ``"NORMAL"`` syncs only at checkpoints — faster, still all-or-nothing
        after any crash, but the last appends acknowledged before a power cut
        (not a process crash) may be lost. ``"EXTRA"`` also syncs the directory.
        ``busy_timeout``: seconds a write waits for another connection's write
        lock before ``StoreUnavailableError``. ``poll_interval``: how often a
        waiting subscriber checks for other processes' appends. ``readers``:
        connections reading concurrently. ``inline_appends``: an append
        that is alone (no other append waiting, the file's write lock free)
        runs on the event loop's thread instead of the writer thread: faster
        for one task appending in turn, but the event loop is blocked for its
        transaction, COMMIT included (an fsync at ``"FULL"``); see
        docs/backends.md. Raises ``ConfigurationError`` for a path that
        cannot be a database file, or a bad option.
        """
        store = cls(
            path,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            poll_interval=poll_interval,
            readers=readers,
            inline_appends=inline_appends,
        )
        await anyio.to_thread.run_sync(store._connector.open)
        return store

    @property
    def path(self) -> str:
        """The database file's path."""
        return self._connector.path

    @property
    def synchronous(self) -> str:
        """The ``synchronous`` setting of the store's connections."""
        return self._connector.synchronous

    @property
    def _closed(self) -> bool:  # type: ignore[override]
        return self._connector.closed

    def _closed_error(self) -> StoreClosedError:
        return self._connector.closed_error()

    async def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` on the writer connection in its thread, one write at a time."""
        return await self._writer.run(fn, *args)

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` on a reader connection in a worker thread."""
        return await self._readers.read(fn, *args)

    # -- schema ----------------------------------------------------------------------

    async def setup(self) -> None:
        """Create the schema, or migrate an older one; harmless to run again.

        Runs in one ``BEGIN IMMEDIATE`` transaction, so concurrent calls (several
        processes starting at once) queue on the file's write lock. Raises
        ``SchemaError`` if the file holds a newer schema than this release knows.
        """
        await self._writer.run(_connect.setup, self._connector)

    async def schema_version(self) -> int:
        """The schema version in the file; 0 when ``setup()`` never ran."""
        result: int = await self._readers.read(_connect.schema_version)
        return result

    # -- the backend primitives ------------------------------------------------------

    async def _write_batch(
        self, stream: str, expected: int | None, encoded: list[EncodedEvent]
    ) -> Committed | Conflict | Mapping[UUID, Place]:
        if expected is not None and expected > _rows.MAX_INT:  # ahead of any stream
            return Conflict(stream, expected, await self._head(stream))
        written = await self._writer.append(stream, expected, encoded)
        if written.last_position is not None:
            head = written.head
            return Committed(
                stream,
                head + 1,
                head + len(encoded),
                written.last_position,
                Checkpoint(written.txn, written.last_position),
            )
        if not written.found:
            assert expected is not None
            return Conflict(stream, expected, written.head)
        return written.found

    async def _read_stream(
        self, stream: str, after: int, limit: int | None, backwards: bool
    ) -> list[RecordedEvent]:
        events: list[RecordedEvent] = await self._readers.read(
            _lifecycle.read_kept,
            stream,
            min(after, _rows.MAX_INT),
            -1 if limit is None else min(limit, _rows.MAX_INT),
            backwards,
        )
        return events

    async def _head(self, stream: str) -> int:
        return await self._readers.head(stream)

    def _read_global(
        self, start: Checkpoint | None, flt: EventFilter, limit: int | None
    ) -> AsyncGenerator[RecordedEvent, None]:
        return read_global(self._readers, start, flt, limit)

    def _follow(
        self, start: Checkpoint | None, flt: EventFilter
    ) -> AsyncGenerator[RecordedEvent, None]:
        return self._follower.follow(start, flt)

    # -- the stream lifecycle (_lifecycle; docs/lifecycle.md) -------------------------

    async def _delete(self, stream: str, hard: bool) -> Deleted:
        deleted: Deleted = await self._writer.run(
            _lifecycle.delete_stream, self._connector, stream, hard
        )
        if deleted.checkpoint is not None:
            self._follower.wake()
        return deleted

    async def _truncate(self, stream: str, before: int) -> int:
        removed: int = await self._writer.run(_lifecycle.truncate, self._connector, stream, before)
        return removed

    async def _write_metadata(self, stream: str, meta: StreamMetadata) -> None:
        await self._writer.run(_lifecycle.write_metadata, self._connector, stream, meta)

    async def _read_metadata(self, stream: str) -> StreamMetadata:
        meta: StreamMetadata = await self._readers.read(_lifecycle.read_metadata, stream)
        return meta

    async def _sweep(self, now: datetime) -> int:
        removed, after, page = 0, "", _lifecycle.STREAMS_PAGE
        while True:
            streams: list[str] = await self._readers.read(_lifecycle.retained_streams, after, page)
            for stream in streams:
                while True:
                    n: int = await self._writer.run(
                        _lifecycle.sweep_stream, self._connector, stream, now
                    )
                    removed += n
                    if n < _lifecycle.SWEEP_BATCH:
                        break
            if len(streams) < page:
                return removed
            after = streams[-1]

    # -- transactions for code that builds on the same file ---------------------------

    def transaction(self) -> AbstractAsyncContextManager[sqlite3.Connection]:
        """``async with store.transaction() as conn:`` — a write transaction on this file.

        ``conn`` is the store's writer connection inside ``BEGIN IMMEDIATE``: it
        holds the file's write lock, so its statements never wait for a lock
        and run directly (``conn.execute(...)``, synchronous, on the calling
        thread; keep them short). The block commits on exit and rolls back if
        it raises. Appends of this store wait until it ends. For read models
        that live beside the events (see :class:`SqliteProjectionRunner`);
        never write ``evsrc_`` tables through it.
        """
        return self._writer.transaction()

    # -- lifecycle -------------------------------------------------------------------

    async def close(self) -> None:
        """Close the store: subscribers end with ``StoreClosedError``; connections close.

        An append in flight finishes (commits or rolls back) first.
        """
        if self._connector.closed:
            return
        self._connector.closed = True
        self._follower.wake()
        await self._writer.close(self._readers)
