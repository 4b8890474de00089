"""The stream lifecycle on PostgreSQL (docs/lifecycle.md): delete, truncate, retention, sweep.

Deletion, truncation and each batch of the sweep are SQL functions
(``evsrc_delete_stream``, ``evsrc_truncate``, ``evsrc_sweep_range``, migration
0005) that first wait out the appends in flight (appends take no lock; see
schema.sql, WHY EVERY REMOVAL...), so a deletion's ``$stream-deleted`` event is
ordered after every event of the stream exactly as an append would be
(docs/postgres.md, "Appending"), and no append that read an older head can land
where rows were removed. The sweep deletes in batches, one short transaction
each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from evsrc.backend import Backend, deletion_marker
from evsrc.errors import StreamDeletedError
from evsrc.records import Checkpoint, Deleted, StreamMetadata

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from datetime import datetime

    import asyncpg

    from evsrc.postgres._sql import Queries

__all__ = ["STREAMS_PAGE", "SWEEP_BATCH", "Lifecycle", "Primitives"]

#: Most events one sweep transaction deletes.
SWEEP_BATCH: Final = 5000
#: Retained streams listed per query by the sweep.
STREAMS_PAGE: Final = 500


class Lifecycle:
    """A store's lifecycle operations; ``fetch`` is the store's (closed check, error mapping)."""

    def __init__(
        self,
        *,
        queries: Queries,
        fetch: Callable[..., Awaitable[list[asyncpg.Record]]],
        head: Callable[[str], Awaitable[int]],
        committed: Callable[[], None],
    ) -> None:
        self._q = queries
        self._fetch = fetch
        self._head = head
        self._committed = committed

    async def delete(self, stream: str, hard: bool) -> Deleted:
        """``Backend._delete``."""
        marker = deletion_marker(0, hard=hard)
        (row,) = await self._fetch(self._q.delete_stream, stream, hard, marker.id)
        last_seq, position, commit, tombstoned = row
        if tombstoned:
            raise StreamDeletedError(stream=stream)
        if position is None:
            return Deleted(stream, last_seq, hard, None)
        self._committed()
        return Deleted(stream, last_seq, hard, Checkpoint(commit, position))

    async def truncate(self, stream: str, before: int) -> int:
        """``Backend._truncate``."""
        (row,) = await self._fetch(self._q.truncate, stream, before)
        removed: int = row[0]
        if removed < 0:
            raise StreamDeletedError(stream=stream)
        return removed

    async def write_metadata(self, stream: str, meta: StreamMetadata) -> None:
        """``Backend._write_metadata``: a tombstone refuses it."""
        await self._head(stream)
        if meta == StreamMetadata():
            await self._fetch(self._q.clear_metadata, stream)
        else:
            await self._fetch(self._q.set_metadata, stream, meta.max_count, meta.max_age)

    async def read_metadata(self, stream: str) -> StreamMetadata:
        """``Backend._read_metadata``."""
        rows = await self._fetch(self._q.get_metadata, stream)
        return StreamMetadata(rows[0][0], rows[0][1]) if rows else StreamMetadata()

    async def sweep(self, now: datetime) -> int:
        """``Backend._sweep``: stream by stream, an index range at a time."""
        removed, after = 0, ""
        while True:
            page = await self._fetch(self._q.retained_streams, after, STREAMS_PAGE)
            streams = [r[0] for r in page]
            for stream in streams:
                removed += await self._sweep_stream(stream, now)
            if len(streams) < STREAMS_PAGE:
                return removed
            after = streams[-1]

    async def _sweep_stream(self, stream: str, now: datetime) -> int:
        # What retention hides is the oldest part of a stream (recorded_at grows
        # with seq, up to lock waits): ranges of SWEEP_BATCH seqs from the first,
        # below the head, until a range with nothing to remove.
        rows = await self._fetch(self._q.sweep_bounds, stream)
        if not rows or rows[0][0] is None:
            return 0
        first, head, max_count, max_age = rows[0]
        floor = 0 if max_count is None else head - max_count
        cutoff = None if max_age is None else now - max_age
        removed, low = 0, first - 1
        while low < head - 1:
            high = min(low + SWEEP_BATCH, head - 1)
            (row,) = await self._fetch(self._q.sweep_range, stream, low, high, floor, cutoff)
            gone: int = row[0]
            removed += gone
            if gone == 0:
                break
            low = high
        return removed


class Primitives(Backend):
    """The lifecycle primitives of ``Backend``, forwarded to the store's :class:`Lifecycle`."""

    _lifecycle: Lifecycle

    async def _delete(self, stream: str, hard: bool) -> Deleted:
        return await self._lifecycle.delete(stream, hard)

    async def _truncate(self, stream: str, before: int) -> int:
        return await self._lifecycle.truncate(stream, before)

    async def _write_metadata(self, stream: str, meta: StreamMetadata) -> None:
        await self._lifecycle.write_metadata(stream, meta)

    async def _read_metadata(self, stream: str) -> StreamMetadata:
        return await self._lifecycle.read_metadata(stream)

    async def _sweep(self, now: datetime) -> int:
        return await self._lifecycle.sweep(now)
