"""``InMemoryEventStore``: the whole contract in one process's memory.

For tests, demos and single-process applications. Every operation runs to
completion without yielding to the event loop between its check and its write,
so ``append_expect`` is atomic with no lock; event data is kept as JSON text
and decoded on read, so readers never share mutable state with the store and
the same data is accepted and refused as on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID, SafeUUID

import anyio
import anyio.lowlevel

from evsrc._memory_append import append_expect
from evsrc._memory_lifecycle import GONE, MemoryLifecycle, Row
from evsrc.backend import Place
from evsrc.errors import StreamDeletedError
from evsrc.records import (
    Checkpoint,
    Committed,
    Conflict,
    RecordedEvent,
    StreamMetadata,
    recorded,
)
from evsrc.store import decode_metadata, decode_objects

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Mapping, Sequence

    from evsrc.records import NewEvent
    from evsrc.store import EncodedEvent, EventFilter

__all__ = ["InMemoryEventStore"]

_now = datetime.now
_new = object.__new__
_set = object.__setattr__
_UNKNOWN = SafeUUID.unknown
_tuple_new = tuple.__new__

#: How many events a read decodes at a time (one json.loads per page).
_PAGE = 1024

if set(getattr(UUID, "__slots__", ())) >= {"int", "is_safe"}:

    def _uuid(value: int) -> UUID:
        # What UUID.__setstate__ (unpickling) does: the int is already valid.
        u: UUID = _new(UUID)
        _set(u, "int", value)
        _set(u, "is_safe", _UNKNOWN)
        return u

else:  # pragma: no cover - a future UUID without these slots

    def _uuid(value: int) -> UUID:
        return UUID(int=value)


def _matching(
    log: list[Row], index: int, end: int, flt: EventFilter, limit: int | None
) -> tuple[list[Row], int]:
    """Up to a page (and ``limit``) of rows from ``log[index:end]`` that pass ``flt``.

    Scans at most a few pages' worth of rows per call, so a sparse filter
    still yields to the event loop. Returns the rows and the next index.
    """
    want = _PAGE if limit is None else min(_PAGE, limit)
    stop = min(end, index + 16 * _PAGE)
    prefix = flt.stream_prefix
    types = flt.types
    out: list[Row] = []
    while index < stop and len(out) < want:
        r = log[index]
        index += 1
        if r is GONE:
            continue
        if (prefix is None or r[0].startswith(prefix)) and (types is None or r[5] in types):
            out.append(r)
    return out, index


def _events(rows: Sequence[Row]) -> list[RecordedEvent]:
    """Decode stored rows, their JSON in one call per column."""
    if not rows:
        return []
    data = decode_objects([r[7] for r in rows])
    metadata = decode_metadata([r[8] for r in rows])
    event = recorded
    uuid = _uuid
    return [
        event(r[0], r[1], r[2], r[3], uuid(r[4]), r[5], r[6], d, m, r[9])
        for r, d, m in zip(rows, data, metadata, strict=True)
    ]


class InMemoryEventStore(MemoryLifecycle):
    """An event store held in memory; checkpoints are ``commit:position`` counters."""

    def __init__(self) -> None:
        self._streams: dict[str, list[Row]] = {}
        self._log: list[Row] = []
        # Each stored event id (as its int) to its position.
        self._ids: dict[int, int] = {}
        self._commits = 0
        self._waiter: anyio.Event | None = None
        # Filtered subscribers waiting for a matching event: woken by the writer
        # only when one commits, so idle ones cost appends a string test each.
        self._filtered: dict[EventFilter, list[anyio.Event]] = {}
        self._closed = False
        # Whether append_expect may take its fast path: the store is open and
        # _write_batch is this class's own (a subclass that overrides it gets
        # the general path, which calls it).
        self._plain_writes = type(self)._write_batch is InMemoryEventStore._write_batch
        # The stream lifecycle: tombstoned streams, retention, the first slot of
        # each stream not known to be removed, how many slots of the log are removed.
        self._tombstones: set[str] = set()
        self._meta: dict[str, StreamMetadata] = {}
        self._first: dict[str, int] = {}
        self._removed = 0

    # -- writing -----------------------------------------------------------

    # The common append in one function (evsrc._memory_append), the general
    # path (Backend.append_expect) for anything unusual.
    append_expect = append_expect

    async def _write_batch(
        self, stream: str, expected: int | None, encoded: list[EncodedEvent]
    ) -> Committed | Conflict | Mapping[UUID, Place]:
        # No await between the check and the write: atomic without a lock.
        ids = self._ids
        for e in encoded:
            if e.id.int in ids:
                return self._places(encoded)
        rows = self._streams.get(stream)
        if rows is None:
            rows = self._streams[stream] = []
        actual = len(rows)
        if self._tombstones and stream in self._tombstones:
            raise StreamDeletedError(stream=stream)
        if expected is not None and actual != expected:
            return Conflict(stream, expected, actual)
        log = self._log
        self._commits = commit = self._commits + 1
        now = _now(UTC)
        seq = actual
        position = len(log)
        for e in encoded:
            seq += 1
            position += 1
            key = e.id.int
            row = (stream, seq, position, commit, key, e.type, e.version, e.data, e.metadata, now)
            rows.append(row)
            log.append(row)
            ids[key] = position
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()
        if self._filtered:
            self._wake_filtered(stream, encoded)
        return _tuple_new(
            Committed,
            (stream, actual + 1, seq, position, _tuple_new(Checkpoint, (commit, position))),
        )

    def _wake_filtered(
        self, stream: str, encoded: Sequence[EncodedEvent] | Sequence[NewEvent]
    ) -> None:
        # One test per distinct filter, however many subscribers share it.
        woken = None
        for flt in self._filtered:
            prefix = flt.stream_prefix
            if prefix is not None and not stream.startswith(prefix):
                continue
            types = flt.types
            if types is not None and not any(e.type in types for e in encoded):
                continue
            if woken is None:
                woken = [flt]
            else:
                woken.append(flt)
        if woken is not None:
            for flt in woken:
                for event in self._filtered.pop(flt):
                    event.set()

    def _places(self, encoded: list[EncodedEvent]) -> dict[UUID, Place]:
        """Where the append's ids are stored, with what they hold."""
        found: dict[UUID, Place] = {}
        for e in encoded:
            where = self._ids.get(e.id.int)
            if where is not None:
                row = self._log[where - 1]
                found[e.id] = Place(row[0], row[1], row[2], row[3], row[5], row[6], row[7], row[8])
        return found

    # -- reading -----------------------------------------------------------

    async def _read_stream(
        self, stream: str, after: int, limit: int | None, backwards: bool
    ) -> list[RecordedEvent]:
        rows = self._streams.get(stream)
        if not rows:
            return []
        if stream in self._first or stream in self._meta or stream in self._tombstones:
            return _events(self._kept(stream, rows, after, limit, backwards))
        if after >= len(rows):
            return []  # nothing new: the usual catch-up read (no slice, no decoding call)
        selected = rows[after:]
        if backwards:
            selected.reverse()
        if limit is not None:
            selected = selected[:limit]
        return _events(selected)

    async def _head(self, stream: str) -> int:
        rows = self._streams.get(stream)
        if self._tombstones and stream in self._tombstones:
            raise StreamDeletedError(stream=stream)
        return len(rows) if rows else 0

    async def _read_global(
        self, start: Checkpoint | None, flt: EventFilter, limit: int | None
    ) -> AsyncGenerator[RecordedEvent, None]:
        index = self._start_index(start)
        end = len(self._log)
        log = self._log
        if flt.everything and not self._removed:
            if limit is not None:
                end = min(end, index + limit)
            while index < end:
                page = _events(log[index : min(end, index + _PAGE)])
                index += len(page)
                for event in page:
                    yield event
                await anyio.lowlevel.checkpoint()
            return
        left = limit
        while index < end and (left is None or left > 0):
            rows, index = _matching(log, index, end, flt, left)
            for event in _events(rows):
                yield event
            if left is not None:
                left -= len(rows)
            await anyio.lowlevel.checkpoint()

    async def _follow(
        self, start: Checkpoint | None, flt: EventFilter
    ) -> AsyncGenerator[RecordedEvent, None]:
        index = self._start_index(start)
        log = self._log
        while True:
            if self._closed:
                raise self._closed_error()
            while index < len(log):
                if flt.everything and not self._removed:
                    page = _events(log[index : index + _PAGE])
                    index += len(page)
                else:
                    rows, index = _matching(log, index, len(log), flt, None)
                    page = _events(rows)
                for event in page:
                    yield event
                await anyio.lowlevel.checkpoint()
            if self._closed:
                raise self._closed_error()
            if flt.everything:
                if self._waiter is None:
                    self._waiter = anyio.Event()
                await self._waiter.wait()
            else:
                woken = anyio.Event()
                self._filtered.setdefault(flt, []).append(woken)
                try:
                    await woken.wait()
                finally:
                    if not woken.is_set():
                        events = self._filtered.get(flt, [])
                        events.remove(woken)
                        if not events:
                            self._filtered.pop(flt, None)

    def _start_index(self, after: Checkpoint | None) -> int:
        # Commit order and position order coincide here: the index is the position.
        if after is None:
            return 0
        return min(after.position, len(self._log))

    async def close(self) -> None:
        """Close the store: subscribers end with ``StoreClosedError``."""
        self._closed = True
        self._plain_writes = False
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()
        filtered, self._filtered = self._filtered, {}
        for events in filtered.values():
            for event in events:
                event.set()
