"""The live feed of a PostgreSQL store: one task reads the log for every subscriber.

docs/postgres.md, "Subscriptions: how they wake up", tells why and how.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import logging
import math
import random
from typing import TYPE_CHECKING, Final

import anyio

from evsrc.errors import EvsrcError, StoreUnavailableError
from evsrc.postgres import _rows

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import asyncpg

    from evsrc.postgres._sql import Queries
    from evsrc.records import RecordedEvent
    from evsrc.store import EncodedEvent, EventFilter

__all__ = ["FEED_KEEP", "HELD_BACK_WARNING", "PAGE", "RETRY_MAX", "Feed", "HeldBack", "jittered"]

#: Longest pause of a subscriber retrying through an outage, in seconds.
RETRY_MAX: Final = 2.0
#: Events the live feed keeps in memory for subscribers that lag a little.
FEED_KEEP: Final = 4 * 500
#: Rows per page of read_all / subscribe.
PAGE: Final = 500
#: Seconds readers may be held back by an open transaction before a warning.
HELD_BACK_WARNING: Final = 10.0
_log = logging.getLogger("evsrc.postgres")


def jittered(failures: int) -> float:
    """Capped exponential backoff with jitter, for retries through an outage."""
    ceiling = min(RETRY_MAX, 0.05 * 2.0 ** min(failures, 16))
    return ceiling * random.uniform(0.5, 1.0)


class HeldBack:
    """Warns (once per stall) when an open transaction holds a store's global order back."""

    def __init__(
        self, *, schema: str, fetch: Callable[..., Awaitable[list[asyncpg.Record]]], query: str
    ) -> None:
        self._schema = schema
        self._fetch = fetch
        self._query = query
        self._since: float | None = None

    async def note(self, complete: bool) -> None:
        """Note a page read: all ready (``complete``) or stopped at a held-back row."""
        if complete:
            self._since = None
            return
        now = asyncio.get_running_loop().time()
        since = self._since
        if since is None:
            self._since = now
        elif now - since > HELD_BACK_WARNING:
            self._since = math.inf  # warned; reset by the next complete page
            culprit = None
            with contextlib.suppress(EvsrcError):
                culprit = await self._fetch(self._query)
            _log.warning(
                "readers of %s have waited %.0f s for an open transaction to end "
                "(oldest: %s); see idle_in_transaction_session_timeout in docs/postgres.md",
                self._schema,
                HELD_BACK_WARNING,
                dict(culprit[0]) if culprit else "unknown",
            )


class Feed:
    """The store's live feed: reads the log once for all subscribers, keeps the last pages.

    ``cursor`` is the (commit, position) of the last event read; every event up
    to it is final (its transaction is below the snapshot's xmin: docs/postgres.md,
    "Global order"), so a subscriber caught up to the cursor misses nothing by
    taking the pages from there. ``pages`` holds the events in (``floor``,
    ``cursor``]. ``advanced`` is set (and replaced) whenever the cursor moves.
    """

    def __init__(
        self,
        *,
        fetch: Callable[..., Awaitable[list[asyncpg.Record]]],
        queries: Queries,
        closed: Callable[[], bool],
        waiter: Callable[[], anyio.Event],
        note_held_back: Callable[[bool], Awaitable[None]],
        poll_interval: float,
        listen: Callable[[], None],
        wake: Callable[[], None],
    ) -> None:
        self._fetch = fetch
        self._queries = queries
        self._closed = closed
        self._waiter = waiter
        self._note_held_back = note_held_back
        self._poll_interval = poll_interval
        self._listen = listen
        self._wake = wake
        self.subscribers = 0
        #: The filters of the subscribers, and how many share each.
        self.filters: dict[EventFilter, int] = {}
        #: Of the kept events, those each filter passes: matched once per filter,
        #: however many subscribers share it.
        self.matched: dict[EventFilter, list[RecordedEvent]] = {}
        self.cursor: tuple[int, int] = (0, 0)
        self.floor: tuple[int, int] = (0, 0)
        self.pages: collections.deque[RecordedEvent] = collections.deque()
        self.advanced = anyio.Event()
        self.error: BaseException | None = None
        self.done = False
        self._ready = anyio.Event()
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        if self._task is None and not self.done:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def wants(self, stream: str, encoded: list[EncodedEvent]) -> bool:
        """Whether a subscriber reads any of these events (one test per distinct filter)."""
        for flt in self.filters:
            prefix = flt.stream_prefix
            if prefix is not None and not stream.startswith(prefix):
                continue
            types = flt.types
            if types is None or any(e.type in types for e in encoded):
                return True
        return False

    async def started(self) -> None:
        """Wait until the cursor is set (the feed's first read)."""
        await self._ready.wait()
        if self.error is not None:
            raise self.error

    def after(self, flt: EventFilter, commit: int, position: int) -> list[RecordedEvent]:
        """The kept events that pass ``flt`` after (commit, position), in order."""
        at = (commit, position)
        if flt.everything:
            pages = self.pages
            if not pages or pages[-1].checkpoint <= at:
                return []
            return [e for e in pages if e.checkpoint > at]
        matched = self.matched.get(flt)
        if not matched or matched[-1].checkpoint <= at:
            return []
        return matched[bisect.bisect_right(matched, at, key=_rows.checkpoint_of) :]

    def _keep(self, events: list[RecordedEvent]) -> None:
        """Add new events to the pages, and to the matches of every subscriber filter."""
        pages = self.pages
        pages.extend(events)
        for flt in self.filters:
            if not flt.everything:
                found = [e for e in events if flt.matches(e.stream, e.type)]
                if found:
                    self.matched.setdefault(flt, []).extend(found)
        if len(pages) > FEED_KEEP:
            while len(pages) > FEED_KEEP:
                dropped = pages.popleft()
            self.floor = (dropped.checkpoint.commit, dropped.position)
            for flt, matched in list(self.matched.items()):
                if flt not in self.filters:
                    del self.matched[flt]
                    continue
                cut = bisect.bisect_right(matched, self.floor, key=_rows.checkpoint_of)
                if cut:
                    del matched[:cut]

    def _advance(self) -> None:
        advanced, self.advanced = self.advanced, anyio.Event()
        advanced.set()

    def stop(self) -> None:
        """End the feed after its read in flight (a cancelled query could spoil its connection)."""
        self.done = True
        self._wake()
        self._advance()

    async def close(self) -> None:
        task = self._task
        self.stop()
        self._ready.set()
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _run(self) -> None:
        try:
            failures = 0
            while True:
                try:
                    row = await self._fetch(self._queries.ready_head)
                    break
                except StoreUnavailableError:
                    failures += 1
                    await anyio.sleep(jittered(failures))
            if row:
                self.cursor = self.floor = (row[0][0], row[0][1])
            self._ready.set()
            pending_delay = 0.0
            failures = 0
            while not self.done and not self._closed():
                waiter = self._waiter()
                commit, position = self.cursor
                try:
                    rows = await self._fetch(
                        self._queries.read_all, commit, position, PAGE, _rows.NO_END
                    )
                except StoreUnavailableError:
                    failures += 1
                    await anyio.sleep(jittered(failures))
                    continue
                failures = 0
                events, complete = _rows.global_events(rows)
                if events:
                    self._keep(events)
                    last = events[-1]
                    self.cursor = (last.checkpoint.commit, last.position)
                    self._advance()
                await self._note_held_back(complete)
                if complete and len(rows) == PAGE:
                    continue
                if not complete:
                    pending_delay = min(max(pending_delay * 2, 0.002), self._poll_interval)
                    timeout = pending_delay
                else:
                    pending_delay = 0.0
                    timeout = self._poll_interval
                self._listen()
                with anyio.move_on_after(timeout):
                    await waiter.wait()
        except Exception as exc:  # SchemaError and the like: every subscriber raises it
            self.error = exc
        finally:
            self.done = True
            self._ready.set()
            self._advance()
