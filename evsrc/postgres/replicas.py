"""Reads on hot standbys, appends on the primary: ``ReplicatedPostgresEventStore``.

Made by ``PostgresEventStore.connect(primary_dsn, replicas=[standby_dsn, ...])``.
Appends, the conflict check and ``setup()`` go to the primary; ``read``,
``last_seq``, ``read_all`` and ``subscribe`` (and so projection feeds) go to
the standbys in turn (a standby that is down, or has not yet replayed
``setup()``, is passed over; the primary serves when none can). The global
order holds on a standby unchanged: a standby's snapshot counts as running
every transaction id it has not yet seen end, so its ``pg_snapshot_xmin``
fence never lets a reader pass an event that commits later in front of it; a
lagging standby shows lag, never a skip (docs/scaling.md, "Why the order holds on a standby").

A stale standby cannot make a writer decide wrong: ``append_expect`` runs its
check on the primary, so a decision taken on an old head comes back as a
``Conflict``. So that the retry does not read the same stale head again, the
store remembers the head each append or conflict reported per stream, and a
``read``/``last_seq`` whose standby answer is behind it is served by the
primary instead.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Self

import anyio

from evsrc.errors import (
    InvalidInputError,
    SchemaError,
    StoreClosedError,
    StoreUnavailableError,
)
from evsrc.postgres.store import PostgresEventStore
from evsrc.records import Committed

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Sequence

    import asyncpg

    from evsrc.records import Checkpoint, Conflict, NewEvent, RecordedEvent
    from evsrc.store import EncodedEvent, EventFilter

__all__ = ["ReplicatedPostgresEventStore"]

#: What a standby may raise while it cannot serve: down, or not yet replayed setup().
_NOT_SERVING = (StoreUnavailableError, SchemaError)

#: Streams whose last reported head is remembered (least recently used dropped).
_KNOWN_HEADS = 65536


class ReplicatedPostgresEventStore(PostgresEventStore):
    """A ``PostgresEventStore`` whose reads are served by hot standbys.

    ``replicas`` are stores on the standbys' pools (borrowed when built
    directly; owned when made by :meth:`connect`). Subscribers on a standby
    are woken by this process's own appends and otherwise poll every
    ``poll_interval`` (a standby cannot ``LISTEN``).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        replicas: Sequence[PostgresEventStore] = (),
        owns_replicas: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(pool, **options)
        self._replicas: list[PostgresEventStore] = list(replicas)
        self._owns_replicas = owns_replicas
        self._turn = itertools.count()
        self._heads: OrderedDict[str, int] = OrderedDict()

    @classmethod
    async def connect(
        cls,
        dsn: str | None = None,
        *,
        replicas: Sequence[str] = (),
        schema: str = "public",
        poll_interval: float = 0.5,
        notify: bool = True,
        **pool_options: Any,
    ) -> Self:
        """Open pools on the primary ``dsn`` and on each standby DSN in ``replicas``.

        ``dsn`` may list several hosts with ``target_session_attrs=read-write``
        (libpq syntax, as asyncpg reads it) so that the pool follows a
        promotion; a standby DSN may likewise list hosts.
        """
        if isinstance(replicas, str) or not replicas:
            msg = "replicas must be a non-empty list of standby DSNs"
            raise InvalidInputError(msg, argument="replicas", value=replicas)
        opened: list[PostgresEventStore] = []
        try:
            for replica_dsn in replicas:
                replica = await PostgresEventStore.connect(
                    replica_dsn, schema=schema, poll_interval=poll_interval, notify=False,
                    **pool_options,
                )  # fmt: skip
                replica._wakeups.can_listen = (
                    False  # a standby cannot LISTEN; NOTIFY is not replicated
                )
                opened.append(replica)
            store = await super().connect(
                dsn, schema=schema, poll_interval=poll_interval, notify=notify, **pool_options
            )
        except BaseException:
            for replica in opened:
                with contextlib.suppress(Exception):
                    await replica.close()
            raise
        store._replicas = opened
        store._owns_replicas = True
        return store

    @property
    def replicas(self) -> tuple[PostgresEventStore, ...]:
        """The stores on the standbys that serve reads."""
        return tuple(self._replicas)

    # -- heads reported by the primary ------------------------------------------

    def _note_head(self, stream: str, head: int) -> None:
        heads = self._heads
        if heads.get(stream, -1) < head:
            heads[stream] = head
        heads.move_to_end(stream)
        if len(heads) > _KNOWN_HEADS:
            heads.popitem(last=False)

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        result = await super().append_expect(stream, expected, events)
        self._note_head(stream, result.last_seq if isinstance(result, Committed) else result.actual)
        return result

    async def append(self, stream: str, events: Sequence[NewEvent]) -> Committed:
        result = await super().append(stream, events)
        self._note_head(stream, result.last_seq)
        return result

    def _committed(self, stream: str, encoded: list[EncodedEvent]) -> None:
        super()._committed(stream, encoded)
        for replica in self._replicas:
            replica._wake()

    # -- reads ---------------------------------------------------------------------

    def _readers(self) -> list[PostgresEventStore]:
        """Standbys starting with the next in turn, then the primary as the last resort."""
        n = len(self._replicas)
        if n == 0:
            return [self]
        start = next(self._turn) % n
        return [*self._replicas[start:], *self._replicas[:start], self]

    async def _read_stream(
        self, stream: str, after: int, limit: int | None, backwards: bool
    ) -> list[RecordedEvent]:
        known = self._heads.get(stream, 0)
        for reader in self._readers():
            if reader is self:
                return await super()._read_stream(stream, after, limit, backwards)
            try:
                events = await reader.read(stream, after=after, limit=limit, backwards=backwards)
            except _NOT_SERVING:
                continue
            if known > after and (limit is None or len(events) < limit):
                newest = (events[0] if backwards else events[-1]).seq if events else after
                if newest < known:  # the standby is behind what the primary told us
                    return await super()._read_stream(stream, after, limit, backwards)
            return events
        raise AssertionError  # pragma: no cover - the primary is always last

    async def _head(self, stream: str) -> int:
        known = self._heads.get(stream, 0)
        for reader in self._readers():
            if reader is self:
                return await super()._head(stream)
            try:
                seq = await reader.last_seq(stream)
            except _NOT_SERVING:
                continue
            if seq >= known:
                return seq
            return await super()._head(stream)
        raise AssertionError  # pragma: no cover - the primary is always last

    async def _read_global(
        self, start: Checkpoint | None, flt: EventFilter, limit: int | None
    ) -> AsyncGenerator[RecordedEvent, None]:
        position = start
        filters = _filter_args(flt)
        left = limit
        readers = self._readers()
        for i, reader in enumerate(readers):
            source = (
                super()._read_global(position, flt, left)
                if reader is self
                else reader.read_all(position, limit=left, **filters)
            )
            try:
                async for event in source:
                    yield event
                    position = event.checkpoint
                    if left is not None:
                        left -= 1
                return
            except _NOT_SERVING:
                if i == len(readers) - 1:
                    raise
                # Checkpoints mean the same on every member: resume on the next.

    async def _follow(
        self, start: Checkpoint | None, flt: EventFilter
    ) -> AsyncGenerator[RecordedEvent, None]:
        position = start
        filters = _filter_args(flt)
        failures = 0
        while True:
            if self._closed:
                raise StoreClosedError
            for reader in self._readers():
                source = (
                    super()._follow(position, flt)
                    if reader is self
                    else reader.subscribe(position, **filters)
                )
                try:
                    async for event in source:
                        failures = 0
                        yield event
                        position = event.checkpoint
                except _NOT_SERVING:
                    continue
                except StoreClosedError:
                    if self._closed:
                        raise
                    continue
            failures += 1
            await anyio.sleep(min(0.05 * 2**failures, 2.0))

    async def close(self) -> None:
        """Close the store and, when it owns them, the standbys' stores."""
        if self._closed:
            return
        await super().close()
        if self._owns_replicas:
            for replica in self._replicas:
                with contextlib.suppress(Exception):
                    await replica.close()


def _filter_args(flt: EventFilter) -> dict[str, Any]:
    """A checked filter as the keyword arguments of a member's ``read_all``/``subscribe``."""
    return {
        "stream_prefix": flt.stream_prefix,
        "types": None if flt.types is None else sorted(flt.types),
    }
