"""The global log of a PostgreSQL store: ``read_all`` pages, and ``subscribe`` on the live feed.

Readers return only rows of transactions below the snapshot's xmin
(docs/postgres.md, "Global order"), waiting for rows held back by an older
open transaction; subscribers share one :class:`~evsrc.postgres._feed.Feed`
once caught up (docs/postgres.md, "Subscriptions: how they wake up").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from evsrc.errors import InvalidCheckpointError, StoreClosedError, StoreUnavailableError
from evsrc.postgres import _feed, _rows

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable

    import asyncpg

    from evsrc.postgres._sql import Queries
    from evsrc.records import Checkpoint, RecordedEvent
    from evsrc.store import EncodedEvent, EventFilter

__all__ = ["GlobalLog"]


class GlobalLog:
    """A store's global reads, its live feed, and the wakeups of its subscribers.

    ``fetch`` is the store's read (closed check and error mapping included),
    ``listen`` starts the LISTEN connection for other processes' commits.
    """

    def __init__(
        self,
        *,
        fetch: Callable[..., Awaitable[list[asyncpg.Record]]],
        queries: Queries,
        schema: str,
        closed: Callable[[], bool],
        poll_interval: float,
        listen: Callable[[], None],
    ) -> None:
        self.fetch = fetch
        self._q = queries
        self._closed = closed
        #: Whether setup() repaired the global order after a restore (None: not asked yet).
        self.repaired: bool | None = None
        self._poll_interval = poll_interval
        self._listen = listen
        self._held_back = _feed.HeldBack(schema=schema, fetch=fetch, query=queries.oldest_xact)
        #: The live feed while anyone subscribes.
        self.feed: _feed.Feed | None = None
        self._waiter: anyio.Event | None = None

    async def _check_restored(self, after: Checkpoint | None) -> None:
        """Refuse a checkpoint from before a restore repair (it would skip events)."""
        if after is None or after.commit == 0:
            return
        if self.repaired is None:
            self.repaired = bool((await self.fetch(self._q.repaired))[0][0])
        if not self.repaired:
            return
        if after.commit <= _rows.NO_END and after.position <= _rows.MAX_POSITION:
            rows = await self.fetch(self._q.checkpoint_exists, after.commit, after.position)
            if rows[0][0]:
                return
        msg = (
            f"checkpoint {after} is not a place in this store: it predates the repair of its "
            "global order after a restore, or comes from another store. Resume from a "
            "checkpoint saved in the store's evsrc_checkpoints table, or from the start"
        )
        raise InvalidCheckpointError(msg, argument="after", value=after)

    def _filtered(self, flt: EventFilter) -> tuple[str, tuple[Any, ...], EventFilter | None]:
        """The page query of a filter, its extra arguments, and a filter left to apply here."""
        if flt.everything:
            return self._q.read_all, (), None
        if flt.types is not None:
            return self._q.read_all_types, (sorted(flt.types), flt.stream_prefix), None
        assert flt.stream_prefix is not None
        end = _rows.prefix_end(flt.stream_prefix)
        if end is None:  # a prefix of U+10FFFF only: no range; filter the full log
            return self._q.read_all, (), flt
        return self._q.read_all_prefix, (flt.stream_prefix, end), None

    async def read(
        self, start: Checkpoint | None, flt: EventFilter, limit: int | None
    ) -> AsyncGenerator[RecordedEvent, None]:
        """``Backend._read_global``."""
        query, extra, local = self._filtered(flt)
        await self._check_restored(start)
        commit, position = _rows.start(start)
        # "What was committed when it got there": transactions below this id.
        # Of those, any still held back by an older running transaction are
        # waited for (briefly, normally), so a reader sees its own appends.
        end = (await self.fetch(self._q.horizon))[0][0]
        left = limit
        delay = 0.0
        while left is None or left > 0:
            page = _feed.PAGE if left is None else min(_feed.PAGE, left)
            rows = await self.fetch(query, commit, position, page, end, *extra)
            events, complete = _rows.global_events(rows)
            if events:
                commit, position = events[-1].checkpoint.commit, events[-1].position
                if local is not None:
                    events = [e for e in events if local.matches(e.stream, e.type)]
                for e in events:
                    yield e
                if left is not None:
                    left -= len(events)
            await self._held_back.note(complete)
            if complete:
                if len(rows) < page:
                    return
                delay = 0.0
            else:
                delay = min(max(delay * 2, 0.001), 0.1)
                await anyio.sleep(delay)

    async def follow(
        self, start: Checkpoint | None, flt: EventFilter
    ) -> AsyncGenerator[RecordedEvent, None]:
        """``Backend._follow``."""
        query, extra, local = self._filtered(flt)
        await self._check_restored(start)
        # One feed per store, shared by its subscribers once caught up:
        # docs/postgres.md, "Subscriptions: how they wake up".
        feed = self._attach(flt)
        try:
            commit, position = _rows.start(start)
            await feed.started()
            failures = 0
            while True:
                # Catching up, by itself: what is ready now, after its cursor.
                if self._closed():
                    raise StoreClosedError
                seen = feed.cursor  # every event up to here is final (see _feed.Feed)
                try:
                    rows = await self.fetch(
                        query, commit, position, _feed.PAGE, _rows.NO_END, *extra
                    )
                except StoreUnavailableError:
                    if self._closed():
                        raise StoreClosedError from None
                    # An outage never ends a subscription: retry, capped and jittered.
                    failures += 1
                    await anyio.sleep(_feed.jittered(failures))
                    continue
                failures = 0
                events, complete = _rows.global_events(rows)
                if events:
                    commit, position = events[-1].checkpoint.commit, events[-1].position
                    if local is not None:
                        events = [e for e in events if local.matches(e.stream, e.type)]
                    for e in events:
                        yield e
                if not complete or len(rows) == _feed.PAGE:
                    if not complete:  # held back by an older open transaction
                        await self._held_back.note(False)
                        await anyio.sleep(0.002)
                    continue
                # Caught up with everything ready when the read began: at least up
                # to the feed's cursor then. Live from the feed's pages from here.
                if seen > (commit, position):
                    commit, position = seen
                while True:
                    if self._closed():
                        raise StoreClosedError
                    if feed.error is not None:
                        raise feed.error
                    if feed.floor > (commit, position):
                        break  # the pages moved past it: catch up by itself again
                    advanced = feed.advanced
                    for e in feed.after(flt, commit, position):
                        commit, position = e.checkpoint.commit, e.position
                        yield e
                    if feed.advanced is advanced:
                        # Every event up to the cursor that it reads was in that list.
                        if feed.cursor > (commit, position):
                            commit, position = feed.cursor
                        await advanced.wait()
        finally:
            self._detach(feed, flt)

    def _attach(self, flt: EventFilter) -> _feed.Feed:
        feed = self.feed
        if feed is None or feed.done:
            feed = self.feed = _feed.Feed(
                fetch=self.fetch,
                queries=self._q,
                closed=self._closed,
                waiter=self._take_waiter,
                note_held_back=self._held_back.note,
                poll_interval=self._poll_interval,
                listen=self._listen,
                wake=self.wake,
            )
        feed.subscribers += 1
        feed.filters[flt] = feed.filters.get(flt, 0) + 1
        feed.ensure_running()
        return feed

    def _detach(self, feed: _feed.Feed, flt: EventFilter) -> None:
        feed.subscribers -= 1
        left = feed.filters.get(flt, 0) - 1
        if left > 0:
            feed.filters[flt] = left
        else:
            feed.filters.pop(flt, None)
            feed.matched.pop(flt, None)
        if feed.subscribers <= 0:
            feed.stop()
            if self.feed is feed:
                self.feed = None

    # -- waking subscribers ----------------------------------------------------------
    #
    # Wakeups are hints to read again; why NOTIFY is sent after commits, coalesced,
    # and never inside them: docs/postgres.md, "Subscriptions: how they wake up".

    def _take_waiter(self) -> anyio.Event:
        """The event the next commit of this store sets."""
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = anyio.Event()
        return waiter

    def wake(self) -> None:
        """Wake the feed: read again."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    def committed(self, stream: str, encoded: list[EncodedEvent]) -> None:
        """This store committed ``encoded`` to ``stream``: wake the feed if it reads them."""
        feed = self.feed
        if feed is None or feed.wants(stream, encoded):
            self.wake()  # the feed reads; a commit no subscriber reads waits for a poll

    async def close(self) -> None:
        """End the feed; subscribers raise ``StoreClosedError`` (the store is closed first)."""
        self.wake()
        feed, self.feed = self.feed, None
        if feed is not None:
            await feed.close()
