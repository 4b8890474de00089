"""Rows in and out: decoding events, finding ids, global-order pages, filters."""

from __future__ import annotations

import gc
from collections import deque
from datetime import datetime
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, NamedTuple
from uuid import UUID, SafeUUID

from evsrc.backend import Place
from evsrc.errors import StreamDeletedError
from evsrc.records import Checkpoint, RecordedEvent
from evsrc.sqlite import _sql
from evsrc.store import decode_metadata, decode_objects

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable

    from evsrc.store import EncodedEvent, EventFilter

__all__ = [
    "MAX_INT",
    "NO_FILTERS",
    "Cursor",
    "Filters",
    "Written",
    "decode",
    "decode_stream",
    "filters_sql",
    "find_ids",
    "head",
    "read_page",
]

#: SQLite's largest INTEGER; bigger positions, seqs and limits are clamped to it.
MAX_INT: Final = 2**63 - 1
#: Ids per ``id IN (…)`` lookup (well under SQLite's bound-parameter limit).
_ID_CHUNK: Final = 500
_Q: Final = _sql.queries()
_Q_HEAD: Final = _Q["head"]
_Q_LAST_POSITION: Final = _Q["last_position"]
_Q_READ_ALL: Final = _Q["read_all"]
_Q_FIND_IDS: Final = _Q["find_ids"]
_new = object.__new__
_tuple_new = tuple.__new__
# UUID keeps its fields in slots (and forbids setting them through __setattr__):
# their descriptors set them directly, cheaper than object.__setattr__ by name.
_set_int = UUID.__dict__["int"].__set__
_set_safe = UUID.__dict__["is_safe"].__set__
_UNKNOWN = SafeUUID.unknown
_from_bytes = int.from_bytes
_parse_time = datetime.fromisoformat


def _consume(calls: Iterable[object]) -> None:
    deque(calls, maxlen=0)  # runs an iterator of calls to the end in C


#: Getters of seq, position, txn, id, type, version, data, metadata and
#: recorded_at: in a full row (index 0) and in a row without the stream (index 1).
_STREAM: Final = itemgetter(0)
_COLUMNS: Final = tuple(tuple(itemgetter(i - skip) for i in range(1, 10)) for skip in (0, 1))


def uuid(raw: bytes) -> UUID:
    # What UUID.__setstate__ (unpickling) does: 16 stored bytes are a valid UUID.
    u: UUID = _new(UUID)
    _set_int(u, _from_bytes(raw, "big"))
    _set_safe(u, _UNKNOWN)
    return u


class Written(NamedTuple):
    """What an append transaction did: committed (``last_position``), or why not."""

    head: int
    last_position: int | None
    txn: int
    found: dict[UUID, Place]


class Filters(NamedTuple):
    sql: str
    args: tuple[Any, ...]


NO_FILTERS: Final = Filters("", ())


def filters_sql(flt: EventFilter) -> Filters:
    """A checked filter as a WHERE fragment and its arguments."""
    sql = ""
    args: list[Any] = []
    if flt.stream_prefix is not None:
        sql += " AND substr(stream, 1, ?) = ?"
        args += [len(flt.stream_prefix), flt.stream_prefix]
    if flt.types is not None:
        wanted = sorted(flt.types)
        sql += f" AND type IN ({', '.join('?' * len(wanted))})"
        args += wanted
    return Filters(sql, tuple(args)) if sql else NO_FILTERS


def decode(rows: list[Any]) -> list[RecordedEvent]:
    """RecordedEvents from rows of (stream, seq, position, txn, id, type, version, data,
    metadata, recorded_at): JSON in one call per column, the rest column by column in C.

    The cyclic garbage collector is paused for this synchronous loop, as the
    PostgreSQL backend does (evsrc/postgres/_rows.py says why): every object it
    makes is acyclic and freed by reference counting.
    """
    if not rows:
        return []
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _decode(rows, map(_STREAM, rows), 0)
    finally:
        if enabled:
            gc.enable()


def decode_stream(stream: str, rows: list[Any]) -> list[RecordedEvent]:
    """:func:`decode` for rows of one stream read, without the stream column (the
    caller knows it: ``stream`` is the same str object in every event)."""
    if not rows:
        return []
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _decode(rows, repeat(stream, len(rows)), 1)
    finally:
        if enabled:
            gc.enable()


def _decode(rows: list[Any], streams: Iterable[str], skip: int) -> list[RecordedEvent]:
    # Column by column, each through map() (C loops, no bytecode per row): the
    # JSON in one call per column, the ids as UUIDs through their slots, each
    # time parsed once per append (its events share it), each tuple in one C call.
    # Column i of a full row is column i - skip of the row (skip=1: no stream column).
    seq, pos, txn, id_, type_, ver, data, meta, time = _COLUMNS[skip]
    n = len(rows)
    positions = list(map(pos, rows))
    ids: list[UUID] = list(map(_new, repeat(UUID, n)))
    _consume(map(_set_int, ids, map(_from_bytes, map(id_, rows))))
    _consume(map(_set_safe, ids, repeat(_UNKNOWN, n)))
    times = list(map(time, rows))
    parsed = {text: _parse_time(text) for text in set(times)}
    checkpoints = map(
        _tuple_new, repeat(Checkpoint, n), zip(map(txn, rows), positions, strict=True)
    )
    fields = zip(
        streams,
        map(seq, rows),
        positions,
        checkpoints,
        ids,
        map(type_, rows),
        map(ver, rows),
        decode_objects(list(map(data, rows))),
        decode_metadata(list(map(meta, rows))),
        map(parsed.__getitem__, times),
        strict=True,
    )
    return list(map(_tuple_new, repeat(RecordedEvent, n), fields))


class Cursor:
    """Where a global read stands: the caller's checkpoint, and the position scanned to.

    Rows after a checkpoint ``(commit, position)`` are those with ``(txn,
    position)`` greater. Every stored row has ``txn <= position``, so they all
    lie beyond position ``min(commit, position)``: the scan starts there. Once
    a read has scanned up to position ``p`` (returning what matched), nothing
    can ever commit at or below ``p``, and the next read starts after it.
    """

    __slots__ = ("position", "scanned", "txn")

    def __init__(self, after: Checkpoint | None) -> None:
        commit, position = (0, 0) if after is None else after
        self.txn = min(commit, MAX_INT)
        self.position = min(position, MAX_INT)
        self.scanned = min(self.txn, self.position)


def head(conn: sqlite3.Connection, stream: str) -> int:
    """The stream's last seq (0: no events); ``StreamDeletedError`` for a tombstone."""
    row = conn.execute(_Q_HEAD, (stream,)).fetchone()
    if row is None:
        return 0
    if row[1]:
        raise StreamDeletedError(stream=stream)
    return int(row[0])


def read_page(
    conn: sqlite3.Connection, cursor: Cursor, end: int | None, page: int, filters: Filters
) -> tuple[list[RecordedEvent], int]:
    """One page of the global order after ``cursor`` (advanced), up to position ``end``.

    ``end=None`` reads up to the last position committed now (and returns it).
    """
    conn.execute("BEGIN")  # one snapshot for the bound and the page
    try:
        if end is None:
            end = int(conn.execute(_Q_LAST_POSITION).fetchone()[0])
        rows = conn.execute(
            _Q_READ_ALL + filters.sql + " ORDER BY position LIMIT ?",
            (cursor.scanned, end, cursor.txn, cursor.txn, cursor.position, *filters.args, page),
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    # Filtered out or not, nothing new can appear at or below what was scanned.
    cursor.scanned = rows[-1][2] if len(rows) == page else max(cursor.scanned, end)
    return decode(rows), end


def find_ids(conn: sqlite3.Connection, encoded: list[EncodedEvent]) -> dict[UUID, Place]:
    """Where the append's event ids are already stored (if anywhere)."""
    found: dict[UUID, Place] = {}
    ids = [e.id.bytes for e in encoded]
    for i in range(0, len(ids), _ID_CHUNK):
        chunk = ids[i : i + _ID_CHUNK]
        query = f"{_Q_FIND_IDS} ({', '.join('?' * len(chunk))})"
        for row in conn.execute(query, chunk):
            found[uuid(row[0])] = Place(*row[1:])
    return found
