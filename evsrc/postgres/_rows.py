"""Rows in and out of PostgreSQL: decoding pages into RecordedEvents, page cursors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from evsrc.records import Checkpoint, RecordedEvent, recorded
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


# -- decoding rows: JSON decoded a page at a time, each RecordedEvent built in one C call.


def stream_events(stream: str, rows: list[asyncpg.Record]) -> list[RecordedEvent]:
    if not rows:
        return []
    data = decode_objects([r[6] for r in rows])
    metadata = decode_metadata([r[7] for r in rows])
    event = recorded
    return [
        event(stream, r[0], r[1], r[2], r[3], r[4], r[5], d, m, r[8])
        for r, d, m in zip(rows, data, metadata, strict=True)
    ]


def global_events(rows: list[asyncpg.Record]) -> tuple[list[RecordedEvent], bool]:
    """The ready prefix of a read_all page, and whether the page was all ready."""
    complete = True
    for i, r in enumerate(rows):
        if not r[10]:
            rows = rows[:i]
            complete = False
            break
    if not rows:
        return [], complete
    data = decode_objects([r[7] for r in rows])
    metadata = decode_metadata([r[8] for r in rows])
    event = recorded
    events = [
        event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], d, m, r[9])
        for r, d, m in zip(rows, data, metadata, strict=True)
    ]
    return events, complete
