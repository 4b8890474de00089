"""Opening the SQLite file: options checked, connections made, busy waits bounded, schema set up."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from evsrc.errors import ConfigurationError, SchemaError, StoreClosedError
from evsrc.sqlite import _errors, _sql

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["SYNCHRONOUS", "Connector", "now", "schema_version", "setup"]

#: The ``synchronous`` settings :meth:`SqliteEventStore.connect` accepts.
SYNCHRONOUS: Final = ("FULL", "EXTRA", "NORMAL")
_Q: Final = _sql.queries()


def now() -> str:
    """The time stamp stored with an append (ISO 8601, UTC)."""
    return datetime.now(UTC).isoformat()


class Connector:
    """The store's checked options, and its long-lived connections.

    ``writer`` writes (on the writer thread, see ``_writer``); ``quick`` is the
    event loop's own read-only connection (see ``_reads``); ``inline``, only
    with ``inline_appends``, writes appends on the event loop (``_writer``).
    They are set by :meth:`open` and taken back by :meth:`detach`; ``closed``
    is set first when the store closes, so calls made after that fail at once.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str,
        busy_timeout: float,
        poll_interval: float,
        readers: int,
        inline_appends: bool = False,
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
        if not isinstance(inline_appends, bool):
            msg = f"inline_appends must be a bool, got {inline_appends!r}"
            raise ConfigurationError(msg)
        self.path = text
        self.synchronous: str = sync
        self.busy_timeout = float(busy_timeout)
        self.poll_interval = float(poll_interval)
        self.readers = readers
        self.inline_appends = inline_appends
        self.writer: sqlite3.Connection | None = None
        self.quick: sqlite3.Connection | None = None
        self.inline: sqlite3.Connection | None = None
        self.closed = False

    def closed_error(self) -> StoreClosedError:
        if self.closed:
            return StoreClosedError()
        return StoreClosedError("the store is not open: create it with SqliteEventStore.connect()")

    def writer_conn(self) -> sqlite3.Connection:
        conn = self.writer
        if conn is None or self.closed:
            raise self.closed_error()
        return conn

    def connect(self) -> sqlite3.Connection:
        """A new connection with the store's busy timeout and ``synchronous`` setting."""
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,  # autocommit; the store issues BEGIN/COMMIT itself
            check_same_thread=False,  # used by one worker thread at a time
            cached_statements=64,
        )
        try:
            self.retrying(conn.execute, f"PRAGMA synchronous = {self.synchronous}")
        except BaseException:
            conn.close()
            raise
        return conn

    def open(self) -> None:
        """Open the writer (switching the file to WAL mode) and the quick connection."""
        with _errors.mapped():
            conn = self.connect()
            quick: sqlite3.Connection | None = None
            try:
                mode = self.retrying(
                    lambda: conn.execute("PRAGMA journal_mode = WAL").fetchall()[0][0]
                )
                if str(mode).lower() != "wal":  # pragma: no cover - a file system without shm
                    msg = f"the SQLite file {self.path!r} cannot use WAL mode (got {mode!r})"
                    raise ConfigurationError(msg)
                quick = sqlite3.connect(
                    self.path, timeout=0, isolation_level=None, check_same_thread=False
                )
                quick.execute("PRAGMA query_only = 1")
                inline = self._open_inline() if self.inline_appends else None
            except BaseException:
                conn.close()
                if quick is not None:
                    quick.close()
                raise
        self.writer = conn
        self.quick = quick
        self.inline = inline

    def _open_inline(self) -> sqlite3.Connection:
        # Never waits for the write lock (busy timeout 0: the append goes to the
        # writer thread instead) and never checkpoints the log at COMMIT (the
        # writer does, see Writer.append): it blocks the event loop only for
        # its own transaction.
        conn = sqlite3.connect(
            self.path,
            timeout=0,
            isolation_level=None,
            check_same_thread=False,  # opened here, used on the event loop
            cached_statements=64,
        )
        try:
            self.retrying(conn.execute, f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            conn.close()
            raise
        return conn

    def detach(self) -> list[sqlite3.Connection]:
        """Take back the writer, quick and inline connections (for the caller to close)."""
        conns = [c for c in (self.writer, self.quick, self.inline) if c is not None]
        self.writer = self.quick = self.inline = None
        return conns

    def retrying(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn``; while SQLite reports the file busy, wait and retry, up to the bound.

        The connection's busy timeout does most of the waiting; this covers the
        busy errors SQLite returns without calling its busy handler (a WAL
        recovery in progress, a checkpoint, opening the log).
        """
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.001
        while True:
            try:
                return fn(*args)
            except sqlite3.OperationalError as exc:
                if not _errors.is_busy(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def begin(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``: take the file's write lock, waiting up to the bound."""
        self.retrying(conn.execute, "BEGIN IMMEDIATE")

    def begin_mapped(self, conn: sqlite3.Connection) -> None:
        """:meth:`begin`, raising evsrc errors."""
        try:
            conn.execute("BEGIN IMMEDIATE")  # the usual case: no retry loop to set up
        except sqlite3.Error as exc:
            if not _errors.is_busy(exc):
                raise _errors.translate(exc) from exc
        else:
            return
        with _errors.mapped():
            self.begin(conn)


def setup(conn: sqlite3.Connection, connector: Connector) -> None:
    """Create the schema, or migrate an older one, in one ``BEGIN IMMEDIATE`` transaction."""
    latest = _sql.latest_version()
    with _errors.mapped():
        connector.begin(conn)
        try:
            stamp = now()
            if not conn.execute(_Q["has_schema"]).fetchone()[0]:
                for statement in _sql.schema_sql():
                    conn.execute(statement)
                conn.executemany(_Q["stamp_version"], [(n, stamp) for n in range(1, latest + 1)])
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
                    conn.execute(_Q["stamp_version"], (n, stamp))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version in the file; 0 when ``setup()`` never ran."""
    if not conn.execute(_Q["has_schema"]).fetchone()[0]:
        return 0
    return int(conn.execute(_Q["schema_version"]).fetchone()[0])
