"""Following the global log live: woken by this store's commits, polling for other processes'."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from evsrc.errors import StoreClosedError
from evsrc.sqlite import _rows
from evsrc.sqlite._reads import PAGE

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from evsrc.records import Checkpoint, RecordedEvent
    from evsrc.sqlite._connect import Connector
    from evsrc.sqlite._reads import Readers
    from evsrc.store import EventFilter

__all__ = ["Follower"]


class Follower:
    """Live subscriptions of one store.

    Subscribers wait on one shared event, set by :meth:`wake` after this
    store's own commits (and at close). Other processes' commits are noticed by
    polling ``PRAGMA data_version`` (a counter, not a read of the table) every
    ``poll_interval``.
    """

    def __init__(self, connector: Connector, readers: Readers) -> None:
        self._connector = connector
        self._readers = readers
        self._waiter: anyio.Event | None = None

    def wake(self) -> None:
        """Wake every waiting subscriber to read again."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    async def follow(
        self, start: Checkpoint | None, flt: EventFilter
    ) -> AsyncGenerator[RecordedEvent, None]:
        """The global log after ``start`` that passes ``flt``, then live, until the store closes."""
        connector, readers = self._connector, self._readers
        filters = _rows.filters_sql(flt)
        cursor = _rows.Cursor(start)
        while True:
            if connector.closed:
                raise StoreClosedError
            # Take the waiter and the change counter before reading, so that a
            # commit landing between the read and the wait still wakes us.
            waiter = self._waiter
            if waiter is None:
                waiter = self._waiter = anyio.Event()
            version = readers.data_version()
            events, _ = await readers.read(_rows.read_page, cursor, None, PAGE, filters)
            for e in events:
                yield e
            if len(events) == PAGE:
                continue  # more to catch up on
            while not connector.closed:
                with anyio.move_on_after(connector.poll_interval):
                    await waiter.wait()
                if waiter.is_set():
                    break
                now = readers.data_version()
                if now is None or now != version:
                    break  # another process committed
