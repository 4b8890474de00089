"""The write path of a PostgreSQL store: appends, and the lookups behind idempotent retries.

An append is one statement (``append_one`` or ``append`` in ``queries.sql``;
docs/postgres.md, "Appending"); its row is a ``Committed``, a ``Conflict``, a
tombstone (``StreamDeletedError``), or says that ids are already stored, whose
places ``Backend`` resolves into the original result or an error. Other writes
of the store belong here too, beside the append.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from evsrc.backend import Place, resolve_retry
from evsrc.checks import prepare_append
from evsrc.errors import (
    DuplicateEventIdError,
    EventIdReusedError,
    EvsrcError,
    StoreUnavailableError,
    StreamDeletedError,
)
from evsrc.postgres import _errors, _pool, _rows
from evsrc.records import Checkpoint, Committed, Conflict

if TYPE_CHECKING:
    import uuid
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    import asyncpg

    from evsrc.postgres._sql import Queries
    from evsrc.postgres.store import PostgresEventStore
    from evsrc.records import NewEvent
    from evsrc.store import EncodedEvent

__all__ = ["Writer"]

#: Re-tries of an append whose (stream, seq) key another writer took first (each
#: failure is that writer's commit: progress, never a livelock).
_SEQ_TAKEN_RETRIES: Final = 1000


async def append_expect(
    store: PostgresEventStore, stream: str, expected: int, events: Sequence[NewEvent]
) -> Committed | Conflict:
    """``PostgresEventStore.append_expect``: see ``EventStore.append_expect``.

    ``Backend.append_expect`` two coroutines shorter (each is resumed at every
    wait of the append): the writer answers directly, unless a subclass has its
    own ``_write_batch``, which the general path calls.
    """
    if store._closed:
        raise store._closed_error()
    encoded = prepare_append(stream, expected, events)
    if not store._plain_writes:
        return await store._append_encoded(stream, expected, encoded)
    result = await store._writer.append(stream, expected, encoded)
    if isinstance(result, (Committed, Conflict)):
        return result
    return await store._resolve(stream, expected, encoded, result)


class Writer:
    """Runs a store's writes on its pool and builds their results.

    ``fetch`` is the store's read (closed check and error mapping included),
    ``head`` its stream head, ``committed(stream, encoded)`` what it does after
    each commit (wake subscribers).
    """

    def __init__(
        self,
        *,
        held: _pool.Held,
        queries: Queries,
        closed: Callable[[], bool],
        fetch: Callable[..., Awaitable[list[asyncpg.Record]]],
        head: Callable[[str], Awaitable[int]],
        committed: Callable[[str, list[EncodedEvent]], None],
    ) -> None:
        self._held = held
        self._q = queries
        self._closed = closed
        self._fetch = fetch
        self._head = head
        self._committed = committed

    async def append(
        self, stream: str, expected: int | None, encoded: list[EncodedEvent]
    ) -> Committed | Conflict | Mapping[uuid.UUID, Place]:
        """``Backend._write_batch``: write iff the head is ``expected``, or say where ids are."""
        if expected is not None and expected > _rows.MAX_POSITION:  # beyond bigint: ahead of any
            return Conflict(stream, expected, await self._head(stream))
        if len(encoded) == 1:
            one = encoded[0]
            args: tuple[Any, ...] = (self._q.append_one, stream, expected, *one)
        else:
            # EncodedEvent is a NamedTuple: transpose into the five array parameters.
            ids, types, versions, data, metadata = zip(*encoded, strict=True)
            args = (self._q.append, stream, expected, ids, types, versions, data, metadata)
        taken = 0
        while True:
            try:
                row = await self._fetchrow(stream, args)
                if len(encoded) == 1:
                    if row is not None:  # inserted: append_one's row in append's shape
                        seq, position, commit = row
                        row = (seq - 1, position, commit, None, False)
                    else:
                        row = await self._refused(stream, expected, encoded[0])
            except DuplicateEventIdError as error:
                return await self._find_ids(encoded, error)
            except _errors.SeqTakenError as error:
                # A writer that read the same head committed first (the unique key
                # made this one wait for it). Nothing was written; the next try
                # reads a head that includes it: a Conflict for append_expect,
                # the next seqs for append. Each failure is another writer's commit.
                taken += 1
                if taken > _SEQ_TAKEN_RETRIES:
                    msg = (
                        f"the head of {stream!r} kept moving under the append: "
                        f"{taken} writers committed there first"
                    )
                    raise StoreUnavailableError(msg) from error
                continue
            if row is None:  # the head reached ``expected`` since the insert: try again
                continue
            head, last_position, commit, retried, tombstoned = row
            if tombstoned:  # a hard-deleted stream is never written again
                raise StreamDeletedError(stream=stream)
            if last_position is not None:
                self._committed(stream, encoded)
                return Committed(
                    stream,
                    head + 1,
                    head + len(encoded),
                    last_position,
                    Checkpoint(commit, last_position),
                )
            if retried:
                return await self._find_ids(encoded, None)
            assert expected is not None
            return Conflict(stream, expected, head)

    async def _refused(self, stream: str, expected: int | None, event: EncodedEvent) -> Any:
        """Why ``append_one`` inserted nothing, in the shape of ``append``'s row.

        (head, position, commit, retried, tombstoned), from a second statement
        (the conflict and tombstone paths only); ``None`` if the head is back
        at ``expected``.
        """
        q = self._q.append_refused
        head, tombstoned, retried = await self._fetchrow(stream, (q, stream, event.id))
        if tombstoned:
            return (head, None, None, None, True)
        if head == expected and not retried:
            return None  # an append filled the gap to ``expected`` meanwhile
        return (head, None, None, retried, False)

    async def _fetchrow(self, stream: str, args: tuple[Any, ...]) -> Any:
        """One row of one statement on a pooled connection; errors mapped as an append's.

        (``_errors.mapped`` inlined: this runs once per append.)
        """
        held = self._held
        try:
            conn = await held.acquire()
        except Exception as exc:
            raise _errors.translate(exc, stream=stream, closed=self._closed()) from exc
        try:
            row = await conn.fetchrow(*args)
        except BaseException as exc:
            await held.release(conn)
            if isinstance(exc, Exception) and not isinstance(exc, EvsrcError):
                raise _errors.translate(exc, stream=stream, sent=True) from exc
            raise
        if not held.keep(conn):
            await held.release(conn)
        return row

    async def resolve(
        self,
        stream: str,
        expected: int | None,
        encoded: list[EncodedEvent],
        found: Mapping[uuid.UUID, Place],
    ) -> Committed:
        """The original result if the re-sent events equal those stored (compared in SQL)."""
        committed = resolve_retry(stream, expected, encoded, found)
        ids, types, versions, data, metadata = zip(*encoded, strict=True)
        rows = await self._fetch(self._q.differing_ids, ids, types, versions, data, metadata)
        if rows:
            raise EventIdReusedError(event_id=rows[0][0], stream=rows[0][1], seq=rows[0][2])
        return committed

    async def _find_ids(
        self, encoded: list[EncodedEvent], error: DuplicateEventIdError | None
    ) -> dict[uuid.UUID, Place]:
        """Where the append's ids are stored; ``error`` if nowhere any more."""
        rows = await self._fetch(self._q.find_ids, [e.id for e in encoded])
        if not rows:  # pragma: no cover - the rows that refused us cannot vanish
            raise error or DuplicateEventIdError(event_id=encoded[0].id)
        return {r[0]: Place(r[1], r[2], r[3], r[4]) for r in rows}
