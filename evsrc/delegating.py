"""``DelegatingStore``: the base of store wrappers. ``evsrc.store`` re-exports it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evsrc.store import EventStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from datetime import timedelta

    from evsrc.records import (
        Checkpoint,
        Committed,
        Conflict,
        Deleted,
        NewEvent,
        RecordedEvent,
        StreamMetadata,
    )

__all__ = ["DelegatingStore", "OpeningStore"]


class DelegatingStore(EventStore):
    """An ``EventStore`` that forwards every call to ``inner``: the base of store wrappers.

    Subclasses override only what they change (timing, counting, tracing).
    ``close()`` closes ``inner`` when ``owns_inner`` (the default), else nothing.
    """

    def __init__(self, inner: EventStore, *, owns_inner: bool = True) -> None:
        self.inner = inner
        self.owns_inner = owns_inner

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """``append_expect`` of the wrapped store."""
        return await self.inner.append_expect(stream, expected, events)

    async def append(self, stream: str, events: Sequence[NewEvent]) -> Committed:
        """``append`` of the wrapped store."""
        return await self.inner.append(stream, events)

    async def read(
        self, stream: str, *, after: int = 0, limit: int | None = None, backwards: bool = False
    ) -> list[RecordedEvent]:
        """``read`` of the wrapped store."""
        return await self.inner.read(stream, after=after, limit=limit, backwards=backwards)

    async def last_seq(self, stream: str) -> int:
        """``last_seq`` of the wrapped store."""
        return await self.inner.last_seq(stream)

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        limit: int | None = None,
        stream_prefix: str | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """``read_all`` of the wrapped store."""
        return self.inner.read_all(after, limit=limit, stream_prefix=stream_prefix, types=types)

    def subscribe(
        self,
        after: Checkpoint | None = None,
        *,
        stream_prefix: str | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """``subscribe`` of the wrapped store."""
        return self.inner.subscribe(after, stream_prefix=stream_prefix, types=types)

    async def delete_stream(self, stream: str, *, hard: bool = False) -> Deleted:
        """``delete_stream`` of the wrapped store."""
        return await self.inner.delete_stream(stream, hard=hard)

    async def truncate_before(self, stream: str, seq: int) -> int:
        """``truncate_before`` of the wrapped store."""
        return await self.inner.truncate_before(stream, seq)

    async def set_stream_metadata(
        self, stream: str, *, max_count: int | None = None, max_age: timedelta | None = None
    ) -> StreamMetadata:
        """``set_stream_metadata`` of the wrapped store."""
        return await self.inner.set_stream_metadata(stream, max_count=max_count, max_age=max_age)

    async def stream_metadata(self, stream: str) -> StreamMetadata:
        """``stream_metadata`` of the wrapped store."""
        return await self.inner.stream_metadata(stream)

    async def sweep(self) -> int:
        """``sweep`` of the wrapped store."""
        return await self.inner.sweep()

    async def close(self) -> None:
        """Close the wrapped store if this wrapper owns it."""
        if self.owns_inner:
            await self.inner.close()


class OpeningStore(DelegatingStore):
    """A wrapper that changes what the wrapped store's reads return, one place for all reads.

    Subclasses implement :meth:`open_events`; ``read``, ``read_all`` and
    ``subscribe`` pass every record through it (an early-stopped iteration
    closes the wrapped store's iterator too). Encryption and compression
    wrappers build on it.
    """

    async def open_events(self, records: list[RecordedEvent]) -> list[RecordedEvent]:
        """``records`` as this wrapper's readers should see them (as is, by default)."""
        return records

    async def read(
        self, stream: str, *, after: int = 0, limit: int | None = None, backwards: bool = False
    ) -> list[RecordedEvent]:
        """``read`` of the wrapped store, opened."""
        records = await self.inner.read(stream, after=after, limit=limit, backwards=backwards)
        return await self.open_events(records)

    async def _opening(self, source: AsyncIterator[RecordedEvent]) -> AsyncIterator[RecordedEvent]:
        try:
            async for record in source:
                (record,) = await self.open_events([record])
                yield record
        finally:
            # A consumer that stops early closes this generator; close the store's too.
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        limit: int | None = None,
        stream_prefix: str | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """``read_all`` of the wrapped store, opened."""
        return self._opening(
            self.inner.read_all(after, limit=limit, stream_prefix=stream_prefix, types=types)
        )

    def subscribe(
        self,
        after: Checkpoint | None = None,
        *,
        stream_prefix: str | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """``subscribe`` of the wrapped store, opened."""
        return self._opening(self.inner.subscribe(after, stream_prefix=stream_prefix, types=types))
