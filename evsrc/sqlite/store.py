"""``SqliteEventStore``: the store contract in one SQLite file, shared by any number of processes.

How it keeps the contract, in short (``docs/backends.md`` has the long form):

* The stdlib ``sqlite3`` driver, called from threads: one round trip per
  operation (a whole append, or a group of them, is one), so the event loop
  never waits on the disk. One writer connection per store, on its own thread
  under asyncio (``_threads``); a few reader connections in anyio's worker
  threads, which WAL mode lets read while a writer writes. Rows are decoded
  and retries resolved in ``_rows``.
* Appends run in ``BEGIN IMMEDIATE`` transactions: the file's write lock is
  taken first, then the stream's head is read, ``expected`` checked and the
  events inserted. Writers of every process queue on that lock (a busy
  timeout, retried up to a bound, then ``StoreUnavailableError``): never
  ``database is locked``. Appends queued in one store commit together (GROUP
  COMMIT below), each in its own savepoint.
* Durable by default: ``synchronous=FULL`` in WAL mode syncs the log at every
  commit, so an acknowledged append survives a power cut.
* Live subscribers wake at once after this store's own appends, and notice
  other processes' appends by polling ``PRAGMA data_version`` (a counter, not a
  read of the table) every ``poll_interval``.
* Every ``sqlite3`` error becomes an evsrc error in one place, ``_errors.translate``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Self

import anyio
import anyio.to_thread

from evsrc.backend import Backend
from evsrc.errors import (
    ConfigurationError,
    EvsrcError,
    SchemaError,
    StoreClosedError,
    StoreUnavailableError,
)
from evsrc.records import Checkpoint, Committed, Conflict, RecordedEvent
from evsrc.sqlite import _errors, _rows, _sql, _threads

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
    from uuid import UUID

    from evsrc.backend import Place
    from evsrc.store import EncodedEvent, EventFilter

__all__ = ["SYNCHRONOUS", "SqliteEventStore"]

#: The ``synchronous`` settings :meth:`SqliteEventStore.connect` accepts.
SYNCHRONOUS: Final = ("FULL", "EXTRA", "NORMAL")
#: Most appends committed together by one writer (group commit).
_MAX_BATCH: Final = 256
#: Rows per page of read_all / subscribe.
_PAGE: Final = 500
_Q: Final = _sql.queries()
_Q_LAST_POSITION: Final = _Q["last_position"]
_Q_INSERT: Final = _Q["insert"]
_Q_HEAD: Final = _Q["head"]
_Q_READ_FORWARD: Final = _Q["read_forward"]
_Q_READ_BACKWARD: Final = _Q["read_backward"]

#: ``SqliteEventStore._quick`` found the file busy: take the worker-thread path.
_BUSY: Final = object()

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


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _Pending:
    """An append waiting for the writer, then its answer."""

    __slots__ = ("encoded", "error", "expected", "stream", "written")

    def __init__(self, stream: str, expected: int | None, encoded: list[EncodedEvent]) -> None:
        self.stream = stream
        self.expected = expected
        self.encoded = encoded
        self.written: _rows.Written | None = None
        self.error: EvsrcError | None = None


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
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            msg = f"path must be a str or os.PathLike, got {type(path).__name__}"
            raise ConfigurationError(msg)
        text = os.fspath(path)
        if not isinstance(text, str) or not text or text == ":memory:" or "\x00" in text:
            msg = (
                f"path must name a file, got {text!r} (an in-memory SQLite database is not "
                "shared between connections: use evsrc.memory.InMemoryEventStore)"
            )
            raise ConfigurationError(msg)
        if text.startswith("file:"):
            msg = f"path must be a file path, not a URI: {text!r}"
            raise ConfigurationError(msg)
        if os.path.isdir(text):
            msg = f"path {text!r} is a directory; name the database file inside it"
            raise ConfigurationError(msg)
        sync = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if sync not in SYNCHRONOUS:
            msg = f"synchronous must be one of {', '.join(SYNCHRONOUS)}, got {synchronous!r}"
            raise ConfigurationError(msg)
        for name, value, high in (
            ("busy_timeout", busy_timeout, 86400),
            ("poll_interval", poll_interval, 3600),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                msg = f"{name} must be a number of seconds, got {value!r}"
                raise ConfigurationError(msg)
            if not 0 < value <= high:
                msg = f"{name} must be in (0, {high}] seconds, got {value!r}"
                raise ConfigurationError(msg)
        if isinstance(readers, bool) or not isinstance(readers, int) or not 1 <= readers <= 64:
            msg = f"readers must be an int from 1 to 64, got {readers!r}"
            raise ConfigurationError(msg)
        self._path = text
        self._synchronous: str = sync
        self._busy_timeout = float(busy_timeout)
        self._poll_interval = float(poll_interval)
        self._writer: sqlite3.Connection | None = None
        self._quick_conn: sqlite3.Connection | None = None
        self._write_lock = anyio.Lock()
        self._writer_thread = _threads.WriterThread()
        self._queue: list[_Pending] = []
        self._reader_slots = anyio.Semaphore(readers)
        self._free_readers: list[sqlite3.Connection] = []
        self._waiter: anyio.Event | None = None
        self._closed = False

    @classmethod
    async def connect(
        cls,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 30.0,
        poll_interval: float = 0.1,
        readers: int = 4,
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
        connections reading concurrently. Raises ``ConfigurationError`` for a
        path that cannot be a database file.
        """
        store = cls(
            path,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            poll_interval=poll_interval,
            readers=readers,
        )
        await anyio.to_thread.run_sync(store._open)
        return store

    @property
    def path(self) -> str:
        """The database file's path."""
        return self._path

    @property
    def synchronous(self) -> str:
        """The ``synchronous`` setting of the store's connections."""
        return self._synchronous

    # -- connections -----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,  # autocommit; the store issues BEGIN/COMMIT itself
            check_same_thread=False,  # used by one worker thread at a time
            cached_statements=64,
        )
        try:
            self._retrying(conn.execute, f"PRAGMA synchronous = {self._synchronous}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open(self) -> None:
        with _errors.mapped():
            conn = self._connect()
            try:
                mode = self._retrying(
                    lambda: conn.execute("PRAGMA journal_mode = WAL").fetchall()[0][0]
                )
                if str(mode).lower() != "wal":  # pragma: no cover - a file system without shm
                    msg = f"the SQLite file {self._path!r} cannot use WAL mode (got {mode!r})"
                    raise ConfigurationError(msg)
                quick = sqlite3.connect(
                    self._path, timeout=0, isolation_level=None, check_same_thread=False
                )
                quick.execute("PRAGMA query_only = 1")
            except BaseException:
                conn.close()
                raise
        self._writer = conn
        self._quick_conn = quick

    def _retrying(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn``; while SQLite reports the file busy, wait and retry, up to the bound.

        The connection's busy timeout does most of the waiting; this covers the
        busy errors SQLite returns without calling its busy handler (a WAL
        recovery in progress, a checkpoint, opening the log).
        """
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.001
        while True:
            try:
                return fn(*args)
            except sqlite3.OperationalError as exc:
                if not _errors.is_busy(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _begin(self, conn: sqlite3.Connection) -> None:
        self._retrying(conn.execute, "BEGIN IMMEDIATE")

    def _writer_conn(self) -> sqlite3.Connection:
        conn = self._writer
        if conn is None or self._closed:
            raise self._closed_error()
        return conn

    def _closed_error(self) -> StoreClosedError:
        if self._closed:
            return StoreClosedError()
        return StoreClosedError("the store is not open: create it with SqliteEventStore.connect()")

    async def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` on the writer connection in a worker thread."""
        async with self._write_lock:
            conn = self._writer_conn()
            # Not abandoned on cancellation: the transaction ends (commit or
            # rollback) before the caller sees the cancellation.
            return await self._writer_thread.run(fn, conn, *args)

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` on a reader connection in a worker thread."""
        if self._closed or self._writer is None:
            raise self._closed_error()
        async with self._reader_slots:
            idle = self._free_readers.pop() if self._free_readers else None
            try:
                conn, result = await anyio.to_thread.run_sync(self._reading, idle, fn, args)
            except BaseException:
                if idle is not None:  # the thread has finished with it (never abandoned)
                    idle.close()
                raise
            if self._closed:
                conn.close()
                raise StoreClosedError
            self._free_readers.append(conn)
            return result

    def _reading(
        self, conn: sqlite3.Connection | None, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> tuple[sqlite3.Connection, Any]:
        with _errors.mapped():
            if conn is None:
                conn = self._connect()
                conn.execute("PRAGMA query_only = 1")
            try:
                return conn, self._retrying(fn, conn, *args)
            except BaseException:
                conn.close()
                raise

    def _quick(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(conn, *args)`` on the event loop's own connection, or ``_BUSY`` to go the long way.

        For a few index lookups (a stream's head, ids) a thread hop costs more
        than the work. That connection never waits for a lock (busy timeout 0:
        WAL readers are not blocked by writers; a rare busy moment, such as a
        recovery, sends the caller to its worker thread instead).
        """
        conn = self._quick_conn
        if conn is None or self._closed:
            raise self._closed_error()
        try:
            return fn(conn, *args)
        except sqlite3.OperationalError as exc:
            if _errors.is_busy(exc):
                _errors.rollback(conn)
                return _BUSY
            raise _errors.translate(exc) from exc
        except (sqlite3.Error, OverflowError) as exc:
            raise _errors.translate(exc) from exc

    def _data_version(self) -> int | None:
        """The file's change counter (``PRAGMA data_version``); ``None`` if unreadable now.

        It changes whenever another connection — this store's writer, or any
        other process — commits to the file, and costs no read of the tables.
        """
        quick = self._quick_conn
        if quick is None:
            return None
        try:
            return int(quick.execute("PRAGMA data_version").fetchall()[0][0])
        except sqlite3.Error:
            return None  # busy for a moment: treated as a change, the caller reads again

    # -- schema ----------------------------------------------------------------------

    async def setup(self) -> None:
        """Create the schema, or migrate an older one; harmless to run again.

        Runs in one ``BEGIN IMMEDIATE`` transaction, so concurrent calls (several
        processes starting at once) queue on the file's write lock. Raises
        ``SchemaError`` if the file holds a newer schema than this release knows.
        """
        await self._write(self._setup)

    def _setup(self, conn: sqlite3.Connection) -> None:
        latest = _sql.latest_version()
        with _errors.mapped():
            self._begin(conn)
            try:
                now = _now()
                if not conn.execute(_Q["has_schema"]).fetchone()[0]:
                    for statement in _sql.schema_sql():
                        conn.execute(statement)
                    conn.executemany(_Q["stamp_version"], [(n, now) for n in range(1, latest + 1)])
                else:
                    version = conn.execute(_Q["schema_version"]).fetchone()[0]
                    if version > latest:
                        msg = (
                            f"the SQLite file holds evsrc schema version {version}; this release "
                            f"knows up to {latest}: upgrade evsrc"
                        )
                        raise SchemaError(msg)
                    for n, statements in _sql.migrations(version):
                        for statement in statements:
                            conn.execute(statement)
                        conn.execute(_Q["stamp_version"], (n, now))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    async def schema_version(self) -> int:
        """The schema version in the file; 0 when ``setup()`` never ran."""

        def version(conn: sqlite3.Connection) -> int:
            if not conn.execute(_Q["has_schema"]).fetchone()[0]:
                return 0
            return int(conn.execute(_Q["schema_version"]).fetchone()[0])

        result: int = await self._read(version)
        return result

    # -- writing ---------------------------------------------------------------------

    async def _write_batch(
        self, stream: str, expected: int | None, encoded: list[EncodedEvent]
    ) -> Committed | Conflict | Mapping[UUID, Place]:
        if expected is not None and expected > _rows.MAX_INT:  # ahead of any stream
            return Conflict(stream, expected, await self._head(stream))
        # GROUP COMMIT. Appends queue; whoever gets the write lock first takes every
        # append queued by then (its own included) and runs them in one worker-thread
        # call, in one transaction: each append in its own savepoint, one COMMIT (one
        # fsync) for all. Each append is still all-or-nothing and is answered only
        # after that COMMIT; the others find their answer ready when the lock
        # reaches them. Conflicts too are decided here, so retriers never spin.
        item = _Pending(stream, expected, encoded)
        self._queue.append(item)
        try:
            async with self._write_lock:
                while item.written is None and item.error is None:
                    conn = self._writer_conn()
                    batch = self._queue[:_MAX_BATCH]
                    del self._queue[: len(batch)]
                    # Not abandoned on cancellation: the transaction ends (commit or
                    # rollback) before the caller sees the cancellation.
                    await self._writer_thread.run(self._append_batch, conn, batch)
                    if any(p.written is not None and p.written.last_position for p in batch):
                        self._wake()
        except BaseException:
            if item in self._queue:  # never taken: it will not be written
                self._queue.remove(item)
            raise
        if item.error is not None:
            raise item.error
        written = item.written
        assert written is not None
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

    def _append_batch(self, conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        """Queued appends in one ``BEGIN IMMEDIATE`` transaction (see THE GLOBAL ORDER)."""
        try:
            with _errors.mapped():
                self._begin(conn)
        except EvsrcError as exc:
            for item in batch:
                item.error = exc
            return
        done: list[_Pending] = []
        try:
            last: int = conn.execute(_Q_LAST_POSITION).fetchone()[0]
            now = _now()
            # A lone append needs no savepoint: its transaction is its own.
            savepoints = len(batch) > 1
            for item in batch:
                stream, expected, encoded = item.stream, item.expected, item.encoded
                if savepoints:
                    conn.execute("SAVEPOINT evsrc_append")
                head = 0
                try:
                    head = conn.execute(_Q_HEAD, (stream,)).fetchone()[0]
                    if expected is not None and head != expected:
                        # A conflict, or a retry of an append that already committed.
                        item.written = _rows.Written(head, None, 0, _rows.find_ids(conn, encoded))
                    else:
                        txn = last + 1
                        conn.executemany(
                            _Q_INSERT,
                            [
                                (txn + i, txn, stream, head + 1 + i, e.id.bytes, e.type,
                                 e.version, e.data, e.metadata, now)
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

    # -- reading ---------------------------------------------------------------------

    async def _read_stream(
        self, stream: str, after: int, limit: int | None, backwards: bool
    ) -> list[RecordedEvent]:
        args = (
            stream,
            min(after, _rows.MAX_INT),
            -1 if limit is None else min(limit, _rows.MAX_INT),
        )
        query = _Q_READ_BACKWARD if backwards else _Q_READ_FORWARD
        events: list[RecordedEvent] = await self._read(_rows.read_stream, query, args)
        return events

    async def _head(self, stream: str) -> int:
        head = self._quick(_rows.head, stream)
        if head is _BUSY:
            head = await self._read(_rows.head, stream)
        assert isinstance(head, int)
        return head

    async def _read_global(
        self, start: Checkpoint | None, flt: EventFilter, limit: int | None
    ) -> AsyncGenerator[RecordedEvent, None]:
        filters = _rows.filters_sql(flt)
        cursor = _rows.Cursor(start)
        end: int | None = None  # "what was committed when it got there": read with page 1
        left = limit
        while left is None or left > 0:
            page = _PAGE if left is None else min(_PAGE, left)
            events, end = await self._read(_rows.read_page, cursor, end, page, filters)
            for e in events:
                yield e
            if left is not None:
                left -= len(events)
            if len(events) < page:
                return

    async def _follow(
        self, start: Checkpoint | None, flt: EventFilter
    ) -> AsyncGenerator[RecordedEvent, None]:
        filters = _rows.filters_sql(flt)
        cursor = _rows.Cursor(start)
        while True:
            if self._closed:
                raise StoreClosedError
            # Take the waiter and the change counter before reading, so that a
            # commit landing between the read and the wait still wakes us.
            waiter = self._waiter
            if waiter is None:
                waiter = self._waiter = anyio.Event()
            version = self._data_version()
            events, _ = await self._read(_rows.read_page, cursor, None, _PAGE, filters)
            for e in events:
                yield e
            if len(events) == _PAGE:
                continue  # more to catch up on
            while not self._closed:
                with anyio.move_on_after(self._poll_interval):
                    await waiter.wait()
                if waiter.is_set():
                    break
                now = self._data_version()
                if now is None or now != version:
                    break  # another process committed

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    # -- transactions for code that builds on the same file ---------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[sqlite3.Connection]:
        """``async with store.transaction() as conn:`` — a write transaction on this file.

        ``conn`` is the store's writer connection inside ``BEGIN IMMEDIATE``: it
        holds the file's write lock, so its statements never wait for a lock
        and run directly (``conn.execute(...)``, synchronous, on the calling
        thread; keep them short). The block commits on exit and rolls back if
        it raises. Appends of this store wait until it ends. For read models
        that live beside the events (see :class:`SqliteProjectionRunner`);
        never write ``evsrc_`` tables through it.
        """
        async with self._write_lock:
            conn = self._writer_conn()
            await self._writer_thread.run(self._begin_mapped, conn)
            try:
                yield conn
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._writer_thread.run(_errors.rollback, conn)
                raise
            await self._writer_thread.run(_errors.commit, conn)

    def _begin_mapped(self, conn: sqlite3.Connection) -> None:
        with _errors.mapped():
            self._begin(conn)

    # -- lifecycle -------------------------------------------------------------------

    async def close(self) -> None:
        """Close the store: subscribers end with ``StoreClosedError``; connections close.

        An append in flight finishes (commits or rolls back) first.
        """
        if self._closed:
            return
        self._closed = True
        self._wake()
        with anyio.CancelScope(shield=True):
            async with self._write_lock:
                writer, self._writer = self._writer, None
                quick, self._quick_conn = self._quick_conn, None
                readers, self._free_readers = self._free_readers, []
                for conn in (writer, quick, *readers):
                    if conn is not None:
                        await self._writer_thread.run(conn.close)
                self._writer_thread.stop()
