"""Rows in and out of PostgreSQL: decoding pages into RecordedEvents, page cursors."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Final

from evsrc.records import Checkpoint, RecordedEvent
from evsrc.store import decode_metadata, decode_objects

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "MAX_POSITION",
    "NO_END",
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
# A page makes several objects per row, all acyclic (tuples of plain values, dicts
# of JSON values) and freed by reference counting. Left on, the cyclic collector
# would run every few hundred of them and walk the half-built page each time: a
# large share of the decoding. It is paused for these synchronous loops only.

_new = tuple.__new__


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
    data = decode_objects([r[6] for r in rows])
    metadata = decode_metadata([r[7] for r in rows])
    new, event, checkpoint = _new, RecordedEvent, Checkpoint
    return [
        new(
            event, (stream, r[0], r[1], new(checkpoint, (r[2], r[1])), r[3], r[4], r[5], d, m, r[8])
        )
        for r, d, m in zip(rows, data, metadata)  # noqa: B905 - equal lengths by construction
    ]


def global_events(rows: list[asyncpg.Record]) -> tuple[list[RecordedEvent], bool]:
    """The ready prefix of a read_all page, and whether the page was all ready."""
    complete = True
    if rows and not rows[-1][10]:  # rows come in commit order: ready is a prefix
        for i, r in enumerate(rows):
            if not r[10]:
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
    data = decode_objects([r[7] for r in rows])
    metadata = decode_metadata([r[8] for r in rows])
    new, event, checkpoint = _new, RecordedEvent, Checkpoint
    return [
        new(event, (r[0], r[1], r[2], new(checkpoint, (r[3], r[2])), r[4], r[5], r[6], d, m, r[9]))
        for r, d, m in zip(rows, data, metadata)  # noqa: B905 - equal lengths by construction
    ]
