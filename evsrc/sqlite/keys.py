"""``SqliteKeyStore``: subjects' keys in a table of the event store's own SQLite file.

The table ``evsrc_subject_keys`` holds one row per subject: the subject, its
random key id and its key. ``forget`` deletes the row on a connection with
``PRAGMA secure_delete = ON`` (SQLite overwrites the freed bytes with zeros)
and then checkpoints the write-ahead log, so that the key's bytes leave the
live file as well as the table (docs/lifecycle.md, "Forgetting a person").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

import anyio
import anyio.to_thread

from evsrc.keys import DEFAULT_KEY_CACHE_TTL, KeyStore, SubjectKey
from evsrc.sqlite import _errors

if TYPE_CHECKING:
    from collections.abc import Callable
    from os import PathLike

__all__ = ["SqliteKeyStore"]

T = TypeVar("T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS evsrc_subject_keys (
    subject    TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL UNIQUE,
    key        BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)
"""


class SqliteKeyStore(KeyStore):
    """Subjects' keys in the SQLite file ``path`` (usually the event store's).

    It opens its own connection (several processes may share the file: SQLite's
    write lock and ``busy_timeout`` order them). Call ``await keys.setup()``
    once, ``await keys.close()`` at the end.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        busy_timeout: float = 5.0,
        cache_ttl: float = DEFAULT_KEY_CACHE_TTL,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(cache_ttl=cache_ttl, clock=clock)
        self.path = str(Path(path))
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = anyio.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            # Deleted keys are overwritten with zeros, not merely unlinked.
            conn.execute("PRAGMA secure_delete = ON")
            self._conn = conn
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with _errors.mapped():
                return fn(self._connection())

        async with self._lock:
            return await anyio.to_thread.run_sync(call)

    async def setup(self) -> None:
        """Create the key table if it does not exist; harmless to run again."""

        def create(conn: sqlite3.Connection) -> None:
            conn.execute(_SCHEMA)

        await self._run(create)

    async def _insert_or_get(self, subject: str, candidate: SubjectKey) -> SubjectKey:
        def insert(conn: sqlite3.Connection) -> SubjectKey:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO evsrc_subject_keys (subject, key_id, key) VALUES (?, ?, ?) "
                    "ON CONFLICT (subject) DO NOTHING",
                    (subject, candidate.key_id, candidate.key),
                )
                row = conn.execute(
                    "SELECT key_id, key FROM evsrc_subject_keys WHERE subject = ?", (subject,)
                ).fetchone()
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return SubjectKey(str(row[0]), bytes(row[1]))

        return await self._run(insert)

    async def _fetch(self, key_ids: list[str]) -> dict[str, bytes]:
        def fetch(conn: sqlite3.Connection) -> dict[str, bytes]:
            marks = ",".join("?" * len(key_ids))
            rows = conn.execute(
                f"SELECT key_id, key FROM evsrc_subject_keys WHERE key_id IN ({marks})",
                key_ids,
            ).fetchall()
            return {str(r[0]): bytes(r[1]) for r in rows}

        return await self._run(fetch)

    async def _delete(self, subject: str) -> str | None:
        def delete(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "DELETE FROM evsrc_subject_keys WHERE subject = ? RETURNING key_id", (subject,)
            ).fetchone()
            # Copy the zeroed page into the main file and empty the log, so the old
            # page with the key leaves the write-ahead log too (best effort: a
            # reader still on an old snapshot keeps the log until it finishes).
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            return None if row is None else str(row[0])

        return await self._run(delete)

    async def close(self) -> None:
        """Close the key store's connection. Idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            async with self._lock:
                await anyio.to_thread.run_sync(conn.close)
