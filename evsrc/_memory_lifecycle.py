"""The stream lifecycle primitives of ``InMemoryEventStore``, and its row layout.

Delete, truncate, retention and sweep (docs/lifecycle.md) on the in-memory
store's rows; :mod:`evsrc.memory` builds the store on :class:`MemoryLifecycle`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import anyio.lowlevel

from evsrc.backend import Backend, deletion_marker
from evsrc.errors import StreamDeletedError
from evsrc.records import STREAM_DELETED, Committed, Deleted, StreamMetadata

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["GONE", "MemoryLifecycle", "Row"]

_now = datetime.now

# A stored event is a plain tuple of atoms (no UUID objects), so that the cyclic
# garbage collector untracks it: a store holding millions of events then costs
# the collector nothing. Fields by index:
# (stream, seq, position, commit, id as int, type, version, data, metadata, recorded_at)
Row = tuple[str, int, int, int, int, str, int, str, str, datetime]

# What a removed event's slot holds (in its stream's rows and in the log), so
# that a row's index stays its seq - 1 and its position - 1.
GONE: Final[Row] = ("", 0, 0, 0, 0, "", 0, "", "", datetime.min.replace(tzinfo=UTC))


class MemoryLifecycle(Backend):
    """The stream lifecycle primitives of :class:`InMemoryEventStore` (docs/lifecycle.md).

    Like appends, each runs to completion without an await: atomic, no lock.
    """

    _streams: dict[str, list[Row]]
    _log: list[Row]
    _ids: dict[int, int]
    _tombstones: set[str]
    _meta: dict[str, StreamMetadata]
    _first: dict[str, int]
    _removed: int

    def _kept(
        self, stream: str, rows: list[Row], after: int, limit: int | None, backwards: bool
    ) -> list[Row]:
        """The rows a read returns: not removed, within retention."""
        if stream in self._tombstones:
            raise StreamDeletedError(stream=stream)
        hidden = self._hidden(stream, rows, _now(UTC))
        start = max(after, self._first.get(stream, 0))
        selected = [r for r in rows[start:] if r is not GONE and (hidden is None or not hidden(r))]
        if backwards:
            selected.reverse()
        return selected if limit is None else selected[:limit]

    def _hidden(self, stream: str, rows: list[Row], now: datetime) -> Callable[[Row], bool] | None:
        """What the stream's retention hides (never its head), or ``None``."""
        meta = self._meta.get(stream)
        if meta is None:
            return None
        head = len(rows)
        floor = 0 if meta.max_count is None else head - meta.max_count
        cutoff = None if meta.max_age is None else now - meta.max_age
        return lambda r: r[1] != head and (r[1] <= floor or (cutoff is not None and r[9] < cutoff))

    def _remove(self, stream: str, rows: list[Row], end: int, which: Callable[[Row], bool]) -> int:
        """Remove the rows of ``rows[:end]`` that ``which`` picks; return how many."""
        first = self._first.get(stream, 0)
        log = self._log
        ids = self._ids
        removed = 0
        for i in range(first, end):
            r = rows[i]
            if r is not GONE and which(r):
                rows[i] = GONE
                log[r[2] - 1] = GONE
                del ids[r[4]]
                removed += 1
        while first < len(rows) and rows[first] is GONE:
            first += 1
        self._first[stream] = first
        self._removed += removed
        return removed

    async def _delete(self, stream: str, hard: bool) -> Deleted:
        if stream in self._tombstones:
            raise StreamDeletedError(stream=stream)
        rows = self._streams.get(stream, [])
        head = len(rows)
        if not hard and (head == 0 or rows[-1][5] == STREAM_DELETED):
            return Deleted(stream, head, hard, None)  # nothing live to delete
        self._remove(stream, rows, head, lambda _: True)
        committed = await self._write_batch(stream, None, [deletion_marker(head, hard=hard)])
        assert isinstance(committed, Committed)
        if hard:
            self._tombstones.add(stream)
            self._meta.pop(stream, None)
        return Deleted(stream, head, hard, committed.checkpoint)

    async def _truncate(self, stream: str, before: int) -> int:
        if stream in self._tombstones:
            raise StreamDeletedError(stream=stream)
        rows = self._streams.get(stream)
        if not rows:
            return 0
        return self._remove(stream, rows, min(before, len(rows)) - 1, lambda _: True)

    async def _write_metadata(self, stream: str, meta: StreamMetadata) -> None:
        if stream in self._tombstones:
            raise StreamDeletedError(stream=stream)
        if meta == StreamMetadata():
            self._meta.pop(stream, None)
        else:
            self._meta[stream] = meta

    async def _read_metadata(self, stream: str) -> StreamMetadata:
        return self._meta.get(stream, StreamMetadata())

    async def _sweep(self, now: datetime) -> int:
        removed = 0
        for stream in list(self._meta):
            rows = self._streams.get(stream)
            hidden = self._hidden(stream, rows, now) if rows else None
            if rows and hidden is not None:
                removed += self._remove(stream, rows, len(rows) - 1, hidden)
            await anyio.lowlevel.checkpoint()
        return removed
