"""The write path of a PostgreSQL store: appends, and the lookups behind idempotent retries.

An append is one call of the ``evsrc_append`` SQL function (docs/postgres.md,
"Appends"); its result row is a ``Committed``, a ``Conflict`` or the places of
ids already stored, which ``Backend`` resolves into the original result or an
error. Other writes of the store belong here too, beside the append.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from evsrc.backend import Place, resolve_retry
from evsrc.errors import (
    ConfigurationError,
    DuplicateEventIdError,
    EventIdReusedError,
    EvsrcError,
)
from evsrc.postgres import _errors, _pool, _rows
from evsrc.records import Checkpoint, Committed, Conflict

if TYPE_CHECKING:
    import uuid
    from collections.abc import Awaitable, Callable, Mapping

    import asyncpg

    from evsrc.postgres._sql import Queries
    from evsrc.store import EncodedEvent

__all__ = ["Writer"]

#: Re-tries of an append whose (stream, seq) key was taken under it.
_SEQ_TAKEN_RETRIES: Final = 2


class Writer:
    """Runs a store's writes on its pool and builds their results.

    ``fetch`` is the store's read (closed check and error mapping included),
    ``head`` its stream head, ``committed(stream, encoded)`` what it does after
    each commit (wake subscribers).
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        queries: Queries,
        closed: Callable[[], bool],
        fetch: Callable[..., Awaitable[list[asyncpg.Record]]],
        head: Callable[[str], Awaitable[int]],
        committed: Callable[[str, list[EncodedEvent]], None],
    ) -> None:
        self._pool = pool
        self._q = queries
        self._closed = closed
        self._fetch = fetch
        self._head = head
        self._committed = committed

    async def append(
        self, stream: str, expected: int | None, encoded: list[EncodedEvent], attempt: int = 0
    ) -> Committed | Conflict | Mapping[uuid.UUID, Place]:
        """``Backend._write_batch``: write iff the head is ``expected``, or say where ids are."""
        if expected is not None and expected > _rows.MAX_POSITION:  # beyond bigint: ahead of any
            return Conflict(stream, expected, await self._head(stream))
        pool = self._pool
        with _errors.mapped(stream=stream, closed=self._closed):
            conn = await pool.acquire()
        try:
            # EncodedEvent is a NamedTuple: transpose into the five array parameters.
            ids, types, versions, data, metadata = zip(*encoded, strict=True)
            with _errors.mapped(stream=stream, sent=True):
                row = await conn.fetchrow(
                    self._q.append, stream, expected, ids, types, versions, data, metadata
                )
        except EvsrcError as error:
            await _pool.release(pool, conn)
            if isinstance(error, DuplicateEventIdError):
                return await self._find_ids(encoded, error)
            if isinstance(error, _errors.SeqTakenError):
                # Only a writer bypassing evsrc_append (and its stream lock), or a
                # session not at READ COMMITTED (a stale head), gets here. Nothing
                # was written; the next attempt re-reads the head — a few times.
                if attempt < _SEQ_TAKEN_RETRIES:
                    return await self.append(stream, expected, encoded, attempt + 1)
                msg = (
                    f"the head of {stream!r} kept moving under the append: a session not at "
                    "READ COMMITTED, or a writer bypassing evsrc_append (docs/postgres.md, "
                    "Operations)"
                )
                raise ConfigurationError(msg) from error
            raise
        except BaseException:
            await _pool.release(pool, conn)
            raise
        await _pool.release(pool, conn)
        assert row is not None
        return self._result(stream, expected, encoded, row)

    def _result(
        self, stream: str, expected: int | None, encoded: list[EncodedEvent], row: Any
    ) -> Committed | Conflict | Mapping[uuid.UUID, Place]:
        head, last_position, commit = row[0], row[1], row[2]
        if last_position is not None:
            self._committed(stream, encoded)
            return Committed(
                stream,
                head + 1,
                head + len(encoded),
                last_position,
                Checkpoint(commit, last_position),
            )
        if row[3] is None:
            assert expected is not None
            return Conflict(stream, expected, head)
        return {
            i: Place(s, q, p, c)
            for i, s, q, p, c in zip(row[3], row[4], row[5], row[6], row[7], strict=True)
        }

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
        self, encoded: list[EncodedEvent], error: DuplicateEventIdError
    ) -> dict[uuid.UUID, Place]:
        """Where the append's ids are stored; ``error`` if nowhere any more."""
        rows = await self._fetch(self._q.find_ids, [e.id for e in encoded])
        if not rows:  # pragma: no cover - the row that refused us cannot vanish
            raise error
        return {r[0]: Place(r[1], r[2], r[3], r[4]) for r in rows}
