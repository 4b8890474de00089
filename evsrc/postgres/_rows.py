"""Rows in and out of PostgreSQL: decoding pages into RecordedEvents, page cursors."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from itertools import repeat
from typing import TYPE_CHECKING, Final

from evsrc.records import Checkpoint, RecordedEvent
from evsrc.store import decode_metadata, decode_objects

if TYPE_CHECKING:
    import uuid
    from collections.abc import Iterable, Sequence

    import asyncpg

__all__ = [
    "MAX_POSITION",
    "NO_END",
    "READY",
    "TOMBSTONED",
    "checkpoint_of",
    "global_events",
    "prefix_end",
    "start",
    "stream_events",
]

#: The largest transaction id (xid8): subscribe reads without an upper bound.
NO_END: Final = 2**64 - 1
#: The largest bigint: positions, seqs and limits beyond it are clamped to it.
MAX_POSITION: Final = 2**63 - 1
#: Column of a read_forward/read_backward row: the stream's head is a tombstone.
TOMBSTONED: Final = 10
#: Column of a read_all row: its transaction is below the snapshot's xmin.
READY: Final = 11


def checkpoint_of(e: RecordedEvent) -> Checkpoint:
    return e.checkpoint


def start(after: Checkpoint | None) -> tuple[int, int]:
    """Keyset start of a global read; a checkpoint past every possible one reads nothing."""
    if after is None:
        return 0, 0
    return min(after.commit, NO_END), min(after.position, MAX_POSITION)


def prefix_end(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix``, in code point order.

    Byte ("C") order of UTF-8 is code point order. ``None`` when there is none.
    """
    chars = list(prefix)
    while chars:
        c = ord(chars[-1]) + 1
        if c == 0xD800:  # surrogates are not characters; UTF-8 skips them
            c = 0xE000
        if c <= 0x10FFFF:
            chars[-1] = chr(c)
            return "".join(chars)
        chars.pop()
    return None


# -- decoding rows: JSON decoded a page at a time, each RecordedEvent built in C.
#
# A page is taken apart into columns (zip) and the events are built by map over
# them: no Python bytecode per row. A page makes several objects per row, all
# acyclic (tuples of plain values, dicts of JSON values) and freed by reference
# counting. Left on, the cyclic collector would run every few hundred of them and
# walk the half-built page each time: a large share of the decoding. It is paused
# for these synchronous loops only.
#
# recorded_at comes as two columns (queries.sql, "read_forward"): its Unix time in
# seconds (float8), and the timestamptz itself only when it lies outside
# 1900-2100. asyncpg's own timestamptz decoding costs about as much
# as the rest of the row; datetime.fromtimestamp is a third of that. Inside the
# range a float8's error is below 0.25 µs, so fromtimestamp, rounding to the
# nearest microsecond, gives the stored value exactly (tests/integration/
# test_pg_recorded_at.py); outside it asyncpg's datetime is used as it is.

_new = tuple.__new__
_fromtimestamp = datetime.fromtimestamp


def _recorded(epochs: Sequence[float], exact: Sequence[datetime | None]) -> Iterable[datetime]:
    if exact.count(None) == len(exact):
        return map(_fromtimestamp, epochs, repeat(UTC))
    return [
        _fromtimestamp(s, UTC) if x is None else x
        for s, x in zip(epochs, exact)  # noqa: B905 - columns of one page
    ]


def stream_events(stream: str, rows: list[asyncpg.Record]) -> list[RecordedEvent]:
    """``read_forward``/``read_backward`` rows of ``stream`` as RecordedEvents."""
    if not rows:
        return []
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _stream_events(stream, rows)
    finally:
        if enabled:
            gc.enable()


def _stream_events(stream: str, rows: list[asyncpg.Record]) -> list[RecordedEvent]:
    seq, position, commit, ids, types, versions, data, metadata, epochs, exact, _ = zip(
        *rows, strict=True
    )
    columns = (seq, position, commit, ids, types, versions, data, metadata, epochs, exact)
    return _events(repeat(stream), *columns)


def _events(
    stream: Iterable[str],
    seq: Sequence[int],
    position: Sequence[int],
    commit: Sequence[int],
    ids: Sequence[uuid.UUID],
    types: Sequence[str],
    versions: Sequence[int],
    data: Sequence[str],
    metadata: Sequence[str],
    epochs: Sequence[float],
    exact: Sequence[datetime | None],
) -> list[RecordedEvent]:
    """RecordedEvents from the columns of a page, each built by one C call."""
    checkpoints = map(_new, repeat(Checkpoint), zip(commit, position))  # noqa: B905
    fields = zip(  # noqa: B905 - columns of one page
        stream,
        seq,
        position,
        checkpoints,
        ids,
        types,
        versions,
        decode_objects(data),
        decode_metadata(metadata),
        _recorded(epochs, exact),
    )
    return list(map(_new, repeat(RecordedEvent), fields))


def global_events(rows: list[asyncpg.Record]) -> tuple[list[RecordedEvent], bool]:
    """The ready prefix of a read_all page, and whether the page was all ready."""
    complete = True
    if rows and not rows[-1][READY]:  # rows come in commit order: ready is a prefix
        for i, r in enumerate(rows):
            if not r[READY]:
                rows = rows[:i]
                complete = False
                break
    if not rows:
        return [], complete
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _global_events(rows), complete
    finally:
        if enabled:
            gc.enable()


def _global_events(rows: list[asyncpg.Record]) -> list[RecordedEvent]:
    stream, seq, position, commit, ids, types, versions, data, metadata, epochs, exact, _ = zip(
        *rows, strict=True
    )
    columns = (seq, position, commit, ids, types, versions, data, metadata, epochs, exact)
    return _events(stream, *columns)
