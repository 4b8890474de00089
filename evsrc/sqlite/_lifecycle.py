"""The stream lifecycle on SQLite (docs/lifecycle.md): delete, truncate, retention, sweep.

Writes run on the store's writer connection (``Writer.run``), each in its own
``BEGIN IMMEDIATE`` transaction: the file's write lock orders them with
appends, so a deletion's ``$stream-deleted`` event takes the next position
like any append (THE GLOBAL ORDER in ``_writer``). Reads run on a reader
connection: the stream's head row and retention row, then its events.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from evsrc.backend import deletion_marker
from evsrc.errors import StreamDeletedError
from evsrc.records import STREAM_DELETED, Checkpoint, Deleted, StreamMetadata
from evsrc.sqlite import _errors, _rows, _sql
from evsrc.sqlite._connect import now

if TYPE_CHECKING:
    import sqlite3

    from evsrc.records import RecordedEvent
    from evsrc.sqlite._connect import Connector

__all__ = [
    "STREAMS_PAGE",
    "SWEEP_BATCH",
    "delete_stream",
    "head_row",
    "read_kept",
    "read_metadata",
    "retained_streams",
    "sweep_stream",
    "truncate",
    "write_metadata",
]

#: Most events one sweep transaction removes (the writer lock is held that long).
SWEEP_BATCH: Final = 5000
#: Retained streams listed per query by the sweep.
STREAMS_PAGE: Final = 500

_Q: Final = _sql.queries()


def head_row(conn: sqlite3.Connection, stream: str) -> tuple[int, bool]:
    """The stream's head seq (0: no events) and whether it is a tombstone."""
    row = conn.execute(_Q["head"], (stream,)).fetchone()
    return (0, False) if row is None else (int(row[0]), bool(row[1]))


def _live_head(conn: sqlite3.Connection, stream: str) -> int:
    head, tombstoned = head_row(conn, stream)
    if tombstoned:
        raise StreamDeletedError(stream=stream)
    return head


def _metadata(conn: sqlite3.Connection, stream: str) -> StreamMetadata:
    row = conn.execute(_Q["get_metadata"], (stream,)).fetchone()
    if row is None:
        return StreamMetadata()
    age = None if row[1] is None else timedelta(microseconds=row[1])
    return StreamMetadata(row[0], age)


def read_kept(
    conn: sqlite3.Connection, stream: str, after: int, limit: int, backwards: bool
) -> list[RecordedEvent]:
    """A stream read within its retention; ``StreamDeletedError`` for a tombstone."""
    conn.execute("BEGIN")  # one snapshot for the head, the retention and the events
    try:
        head = _live_head(conn, stream)
        meta = _metadata(conn, stream)
        floor = 0 if meta.max_count is None else head - meta.max_count
        if meta.max_age is None:  # the common case: no time to compare per row
            query = _Q["read_backward" if backwards else "read_forward"]
            args: tuple[Any, ...] = (stream, max(after, floor), limit)
        else:
            cutoff = (datetime.now(UTC) - meta.max_age).isoformat()
            query = _Q["read_kept_backward" if backwards else "read_kept_forward"]
            args = (stream, max(after, floor), cutoff, head, limit)
        rows = conn.execute(query, args).fetchall()
    finally:
        conn.execute("COMMIT")
    return _rows.decode_stream(stream, rows)


def read_metadata(conn: sqlite3.Connection, stream: str) -> StreamMetadata:
    """The stream's retention."""
    return _metadata(conn, stream)


def _in_transaction(connector: Connector, conn: sqlite3.Connection, fn: Any, *args: Any) -> Any:
    with _errors.mapped():
        connector.begin(conn)
    try:
        with _errors.mapped():
            result = fn(conn, *args)
    except BaseException:
        _errors.rollback(conn)
        raise
    _errors.commit(conn)
    return result


def delete_stream(
    conn: sqlite3.Connection, connector: Connector, stream: str, hard: bool
) -> Deleted:
    """Remove the stream's events and append its ``$stream-deleted`` event, in one transaction."""
    return _in_transaction(connector, conn, _delete, stream, hard)  # type: ignore[no-any-return]


def _delete(conn: sqlite3.Connection, stream: str, hard: bool) -> Deleted:
    head = _live_head(conn, stream)
    if not hard:
        row = conn.execute(_Q["head_type"], (stream,)).fetchone()
        if row is None or row[0] == STREAM_DELETED:
            return Deleted(stream, head, hard, None)  # nothing live to delete
    conn.execute(_Q["delete_stream"], (stream,))
    marker = deletion_marker(head, hard=hard)
    position = int(conn.execute(_Q["last_position"]).fetchone()[0]) + 1
    conn.execute(
        _Q["insert"],
        (position, position, stream, head + 1, marker.id.bytes, marker.type, marker.version,
         marker.data, marker.metadata, now()),
    )  # fmt: skip
    if hard:
        conn.execute(_Q["clear_metadata"], (stream,))
    return Deleted(stream, head, hard, Checkpoint(position, position))


def truncate(conn: sqlite3.Connection, connector: Connector, stream: str, before: int) -> int:
    """Remove events below ``min(before, head)``; how many."""
    return _in_transaction(connector, conn, _truncate, stream, before)  # type: ignore[no-any-return]


def _truncate(conn: sqlite3.Connection, stream: str, before: int) -> int:
    head = _live_head(conn, stream)
    return conn.execute(_Q["truncate"], (stream, min(before, head))).rowcount


def write_metadata(
    conn: sqlite3.Connection, connector: Connector, stream: str, meta: StreamMetadata
) -> None:
    """Store (or, all ``None``, forget) the stream's retention."""
    _in_transaction(connector, conn, _write_metadata, stream, meta)


def _write_metadata(conn: sqlite3.Connection, stream: str, meta: StreamMetadata) -> None:
    _live_head(conn, stream)
    if meta == StreamMetadata():
        conn.execute(_Q["clear_metadata"], (stream,))
        return
    age = None if meta.max_age is None else meta.max_age // timedelta(microseconds=1)
    conn.execute(_Q["set_metadata"], (stream, meta.max_count, age, now()))


def retained_streams(conn: sqlite3.Connection, after: str, page: int) -> list[str]:
    """A page of the streams with retention, after ``after``."""
    return [r[0] for r in conn.execute(_Q["retained_streams"], (after, page)).fetchall()]


def sweep_stream(conn: sqlite3.Connection, connector: Connector, stream: str, at: datetime) -> int:
    """One batch (at most ``SWEEP_BATCH``) of the events retention hides; how many went."""
    return _in_transaction(connector, conn, _sweep, stream, at)  # type: ignore[no-any-return]


def _sweep(conn: sqlite3.Connection, stream: str, at: datetime) -> int:
    head, _ = head_row(conn, stream)
    meta = _metadata(conn, stream)
    floor = 0 if meta.max_count is None else head - meta.max_count
    cutoff = "" if meta.max_age is None else (at - meta.max_age).isoformat()
    return conn.execute(_Q["sweep_stream"], (stream, head, floor, cutoff, SWEEP_BATCH)).rowcount
