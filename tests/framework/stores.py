"""Real stores with a hook at the moment of an append: racing writers, lost replies, gates.

These are not mocks: every call goes to the real backend underneath (in-memory or
PostgreSQL); the wrapper only does something a real concurrent world does — another
writer commits first, a reply is lost after the commit, an append is slow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from evsrc import EventStore, NewEvent, OutcomeUnknownError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from evsrc import Checkpoint, Committed, Conflict, RecordedEvent


class ProxyStore(EventStore):
    """Delegates every call to ``inner``; counts appends and events read."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner
        self.appends: list[tuple[str, int, int]] = []  # (stream, expected, n events)
        self.events_read = 0
        self.reads = 0

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        self.appends.append((stream, expected, len(events)))
        return await self.inner.append_expect(stream, expected, events)

    async def append(self, stream: str, events: Sequence[NewEvent]) -> Committed:
        return await self.inner.append(stream, events)

    async def read(
        self, stream: str, *, after: int = 0, limit: int | None = None, backwards: bool = False
    ) -> list[RecordedEvent]:
        out = await self.inner.read(stream, after=after, limit=limit, backwards=backwards)
        self.reads += 1
        self.events_read += len(out)
        return out

    async def last_seq(self, stream: str) -> int:
        return await self.inner.last_seq(stream)

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        limit: int | None = None,
        stream_prefix: str | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        return self.inner.read_all(after, limit=limit, stream_prefix=stream_prefix, types=types)

    def subscribe(
        self,
        after: Checkpoint | None = None,
        *,
        stream_prefix: str | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        return self.inner.subscribe(after, stream_prefix=stream_prefix, types=types)

    async def close(self) -> None:
        pass  # the fixture closes the inner store


class YieldingStore(ProxyStore):
    """Yields to the event loop inside every read and append, as a networked store does."""

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        await anyio.sleep(0)
        r = await super().append_expect(stream, expected, events)
        await anyio.sleep(0)
        return r

    async def read(self, stream: str, **kw: Any) -> list[RecordedEvent]:
        await anyio.sleep(0)
        out = await super().read(stream, **kw)
        await anyio.sleep(0)
        return out


class RacingStore(ProxyStore):
    """Before each of the first ``races`` conditional appends, another writer commits first."""

    def __init__(self, inner: EventStore, races: int, foreign: Callable[[], NewEvent]) -> None:
        super().__init__(inner)
        self.races = races
        self.foreign = foreign

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        if self.races > 0:
            self.races -= 1
            await self.inner.append(stream, [self.foreign()])
        return await super().append_expect(stream, expected, events)


class LostReplyStore(ProxyStore):
    """The first ``losses`` conditional appends raise ``OutcomeUnknownError``.

    ``commit_first`` says whether the append reached the store before its reply was lost.
    """

    def __init__(self, inner: EventStore, losses: int, *, commit_first: bool) -> None:
        super().__init__(inner)
        self.losses = losses
        self.commit_first = commit_first
        self.sent: list[list[NewEvent]] = []

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        self.sent.append(list(events))
        if self.losses > 0:
            self.losses -= 1
            if self.commit_first:
                await super().append_expect(stream, expected, events)
            raise OutcomeUnknownError("connection lost (test)", stream=stream)
        return await super().append_expect(stream, expected, events)


class GateStore(ProxyStore):
    """Conditional appends wait at a gate (before or after reaching the store) while it is shut."""

    def __init__(self, inner: EventStore, *, after: bool = False) -> None:
        super().__init__(inner)
        self.after = after
        self.open = anyio.Event()
        self.waiting = 0
        self.arrived = anyio.Event()

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        if self.after:
            r = await super().append_expect(stream, expected, events)
            await self._wait()
            return r
        await self._wait()
        return await super().append_expect(stream, expected, events)

    async def _wait(self) -> None:
        if self.open.is_set():
            return
        self.waiting += 1
        self.arrived.set()
        try:
            await self.open.wait()
        finally:
            self.waiting -= 1
