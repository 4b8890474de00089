"""Test doubles: real stores with a hook at the moment of an append.

These are not mocks: every call goes to a real store underneath (in-memory,
PostgreSQL, any backend); a wrapper only does what a real concurrent world
does — another writer commits first (:class:`RacingStore`), a reply is lost
after the commit (:class:`LostReplyStore`), an append waits
(:class:`GateStore`), a round trip yields or takes time
(:class:`YieldingStore`, :class:`LatencyStore`). :class:`ProxyStore` under
them all counts appends, conflicts and reads::

    store = RacingStore(InMemoryEventStore(), races=2, foreign=lambda: NewEvent(type="x"))
    handler = CommandHandler(store, Account)
    ...
    assert len(store.appends) == 3 and store.conflicts == 2

They need only anyio (no pytest).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from evsrc.errors import OutcomeUnknownError
from evsrc.records import Conflict
from evsrc.store import DelegatingStore, EventStore

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from evsrc.records import Committed, NewEvent, RecordedEvent

__all__ = [
    "GateStore",
    "LatencyStore",
    "LostReplyStore",
    "ProxyStore",
    "RacingStore",
    "YieldingStore",
]


class ProxyStore(DelegatingStore):
    """Delegates every call to ``inner`` (a :class:`~evsrc.store.DelegatingStore`), counting
    what goes through.

    ``appends`` lists each ``append_expect`` as ``(stream, expected, number of
    events)``; ``conflicts`` counts those that returned ``Conflict``;
    ``reads`` and ``events_read`` count ``read`` calls and the events they
    returned. ``close()`` closes ``inner`` only when ``owns_inner`` (off by
    default: a test double wraps a store the test owns).
    """

    def __init__(self, inner: EventStore, *, owns_inner: bool = False) -> None:
        super().__init__(inner, owns_inner=owns_inner)
        self.appends: list[tuple[str, int, int]] = []
        self.conflicts = 0
        self.reads = 0
        self.events_read = 0

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """``inner.append_expect``, counted."""
        self.appends.append((stream, expected, len(events)))
        r = await self.inner.append_expect(stream, expected, events)
        if isinstance(r, Conflict):
            self.conflicts += 1
        return r

    async def read(
        self, stream: str, *, after: int = 0, limit: int | None = None, backwards: bool = False
    ) -> list[RecordedEvent]:
        """``inner.read``, counted."""
        out = await self.inner.read(stream, after=after, limit=limit, backwards=backwards)
        self.reads += 1
        self.events_read += len(out)
        return out


class YieldingStore(ProxyStore):
    """Yields to the event loop before and after every read and append, as a network does.

    With ``seed``, each yields a random 0–2 times (reproducibly) instead of once.
    """

    def __init__(
        self, inner: EventStore, *, seed: int | None = None, owns_inner: bool = False
    ) -> None:
        super().__init__(inner, owns_inner=owns_inner)
        self._rng = random.Random(seed) if seed is not None else None

    async def _yield(self) -> None:
        for _ in range(1 if self._rng is None else self._rng.randint(0, 2)):
            await anyio.lowlevel.checkpoint()

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """``inner.append_expect`` between two yields."""
        await self._yield()
        r = await super().append_expect(stream, expected, events)
        await self._yield()
        return r

    async def read(
        self, stream: str, *, after: int = 0, limit: int | None = None, backwards: bool = False
    ) -> list[RecordedEvent]:
        """``inner.read`` between two yields."""
        await self._yield()
        out = await super().read(stream, after=after, limit=limit, backwards=backwards)
        await self._yield()
        return out


class LatencyStore(ProxyStore):
    """Waits a random 0…``latency`` seconds before every read and append, as a network would.

    On a store that never yields (the in-memory one), concurrent writers run
    one after another; with latency they observe the same state, race,
    conflict and batch.
    """

    def __init__(
        self,
        inner: EventStore,
        latency: float,
        *,
        seed: int | None = None,
        owns_inner: bool = False,
    ) -> None:
        super().__init__(inner, owns_inner=owns_inner)
        self.latency = latency
        self._rng = random.Random(seed)

    async def _round_trip(self) -> None:
        await anyio.sleep(self._rng.uniform(0, self.latency))

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """``inner.append_expect`` after a simulated round trip."""
        await self._round_trip()
        return await super().append_expect(stream, expected, events)

    async def read(
        self, stream: str, *, after: int = 0, limit: int | None = None, backwards: bool = False
    ) -> list[RecordedEvent]:
        """``inner.read`` after a simulated round trip."""
        await self._round_trip()
        return await super().read(stream, after=after, limit=limit, backwards=backwards)


class RacingStore(ProxyStore):
    """Before each of the next ``races`` conditional appends, another writer commits first.

    The other writer appends ``foreign()`` to the same stream, so the append
    that follows conflicts (unless it expected nothing in particular).
    """

    def __init__(
        self,
        inner: EventStore,
        races: int,
        foreign: Callable[[], NewEvent],
        *,
        owns_inner: bool = False,
    ) -> None:
        super().__init__(inner, owns_inner=owns_inner)
        self.races = races
        self.foreign = foreign

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """Let the other writer commit first (while races remain), then append."""
        if self.races > 0:
            self.races -= 1
            await self.inner.append(stream, [self.foreign()])
        return await super().append_expect(stream, expected, events)


class LostReplyStore(ProxyStore):
    """The next ``losses`` conditional appends raise ``OutcomeUnknownError``.

    ``commit_first`` says whether the append reached the store before its
    reply was lost. ``sent`` lists the events of every conditional append.
    """

    def __init__(
        self,
        inner: EventStore,
        losses: int,
        *,
        commit_first: bool,
        owns_inner: bool = False,
    ) -> None:
        super().__init__(inner, owns_inner=owns_inner)
        self.losses = losses
        self.commit_first = commit_first
        self.sent: list[list[NewEvent]] = []

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """Append, or lose the reply (having committed first or not)."""
        self.sent.append(list(events))
        if self.losses > 0:
            self.losses -= 1
            if self.commit_first:
                await super().append_expect(stream, expected, events)
            msg = "connection lost (a LostReplyStore)"
            raise OutcomeUnknownError(msg, stream=stream)
        return await super().append_expect(stream, expected, events)


class GateStore(ProxyStore):
    """Conditional appends wait at a gate while it is shut: before reaching the store, or after.

    ``open`` is the gate (an ``anyio.Event``; set it to let appends through),
    ``waiting`` how many appends wait at it, ``arrived`` is set when the
    first one does.
    """

    def __init__(self, inner: EventStore, *, after: bool = False, owns_inner: bool = False) -> None:
        super().__init__(inner, owns_inner=owns_inner)
        self.after = after
        self.open = anyio.Event()
        self.waiting = 0
        self.arrived = anyio.Event()

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """Wait at the gate before (or after) appending."""
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
