"""``PostgresEventStore``: the store contract on PostgreSQL through an asyncpg pool.

How it keeps the contract, in short (``docs/postgres.md`` has the long form):

* An append is one statement (``append_one``, ``append`` in ``queries.sql``), one round trip
  whatever the number of events, with no lock: it reads the stream's head and
  inserts every event after it iff the head is the one expected. The unique
  ``(stream, seq)`` key turns a race between writers of one head into a failed
  insert for the later one (retried: a ``Conflict``, or the next seqs), and is
  the database's own last word against gaps and duplicates (``_write.py``).
* Global order is ``(commit, position)``: the writing transaction's id and a
  sequence-allocated position. Readers only return rows of transactions below
  the snapshot's ``xmin`` (docs/postgres.md, "Global order"), so nothing ever commits
  in front of a checkpoint a reader has passed, and writers never share a lock.
  Per stream it agrees with ``seq``: a writer gets its transaction id after its
  head read saw the previous writer committed (docs/postgres.md, "Appending").
* Every asyncpg error becomes an evsrc error in one place, ``_errors.translate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self, cast

from evsrc.errors import InvalidInputError, StoreClosedError, StreamDeletedError
from evsrc.postgres import (
    _errors,
    _global,
    _lifecycle,
    _pool,
    _rows,
    _schema,
    _sql,
    _wakeups,
    _write,
)

if TYPE_CHECKING:
    import uuid
    from collections.abc import AsyncGenerator, Mapping, Sequence

    import asyncpg

    from evsrc.backend import Place
    from evsrc.postgres._feed import Feed
    from evsrc.records import Checkpoint, Committed, Conflict, RecordedEvent
    from evsrc.store import EncodedEvent, EventFilter

__all__ = ["PostgresEventStore", "translate_error"]

#: The evsrc error for an asyncpg or socket error (for callers that hold a driver error).
translate_error = _errors.translate


def _checked_poll_interval(value: object) -> float:
    if not (isinstance(value, (int, float)) and 0 < value <= 3600):
        msg = f"poll_interval must be a number of seconds in (0, 3600], got {value!r}"
        raise InvalidInputError(msg, argument="poll_interval", value=value)
    return float(value)


class PostgresEventStore(_lifecycle.Primitives):
    """An event store in PostgreSQL, owning (or borrowing) an asyncpg pool.

    Create it with :meth:`connect`, call :meth:`setup` once to create or migrate
    the schema, and close it with ``await store.close()`` or ``async with``.
    Tables live in ``schema`` and share the ``evsrc_`` prefix.

    Subscribers wake after this store's appends at once, after other processes'
    through a ``NOTIFY`` sent after each commit (``notify=False`` turns it off),
    and at the latest every ``poll_interval`` (docs/postgres.md, "Subscriptions").
    Built directly, the store borrows ``pool`` and leaves it open on close.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        schema: str = "public",
        poll_interval: float = 0.5,
        notify: bool = True,
        owns_pool: bool = False,
        listen_dsn: str | None = None,
        listen_options: dict[str, Any] | None = None,
    ) -> None:
        self._quoted = _sql.quote_schema(schema)
        self._poll_interval = _checked_poll_interval(poll_interval)
        self._schema = schema
        self._pool = pool
        self._owns_pool = owns_pool
        self._q = _sql.Queries.of(self._quoted)
        self._closed = False
        self._plain_writes = type(self)._write_batch is PostgresEventStore._write_batch
        self._wakeups = _wakeups.Wakeups(
            pool=pool,
            notify_query=self._q.notify,
            schema=schema,
            notify=bool(notify),
            can_listen=owns_pool,
            listen_dsn=listen_dsn,
            listen_options=dict(listen_options or {}),
            wake=self._wake,
            closed=self._is_closed,
        )
        self._global = _global.GlobalLog(
            fetch=self._fetch,
            queries=self._q,
            schema=schema,
            closed=self._is_closed,
            poll_interval=self._poll_interval,
            listen=self._wakeups.ensure_listening,
        )
        self._held = _pool.Held(pool)
        self._writer = _write.Writer(
            held=self._held,
            queries=self._q,
            closed=self._is_closed,
            fetch=self._fetch,
            head=self._head,
            committed=self._committed,
        )
        self._lifecycle = _lifecycle.Lifecycle(
            queries=self._q, fetch=self._fetch, head=self._head, committed=self._deleted
        )

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
        """Open a pool on ``dsn`` and return a store that owns it.

        With ``replicas`` (standby DSNs), reads go to the standbys, appends to ``dsn``
        (:class:`~evsrc.postgres.replicas.ReplicatedPostgresEventStore`, docs/scaling.md).
        ``pool_options`` go to :func:`asyncpg.create_pool` (``min_size`` 1, ``max_size``
        10 by default). Raises ``ConfigurationError`` for a mistake only the operator
        can fix, ``StoreUnavailableError`` if the server is unreachable, ``InvalidInputError``
        for a bad ``schema``. Connections run at ``READ COMMITTED`` and are not reset on
        release: borrowing ``store.pool``, leave no session state (docs/postgres.md).
        """
        if replicas:
            from evsrc.postgres.replicas import ReplicatedPostgresEventStore

            replicated = ReplicatedPostgresEventStore.connect(
                dsn,
                replicas=replicas,
                schema=schema,
                poll_interval=poll_interval,
                notify=notify,
                **pool_options,
            )
            return cast("Self", await replicated)
        _sql.quote_schema(schema)
        options = _pool.pool_options(pool_options)
        pool = await _pool.open_pool(dsn, options)
        return cls(
            pool,
            schema=schema,
            poll_interval=poll_interval,
            notify=notify,
            owns_pool=True,
            listen_dsn=dsn,
            listen_options=_pool.listen_options(options),
        )

    # -- public properties, for code that builds on the same database ---------

    @property
    def pool(self) -> asyncpg.Pool:
        """The asyncpg pool the store runs on (read-only)."""
        return self._pool

    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding the store's tables (unquoted)."""
        return self._schema

    def table(self, name: str) -> str:
        """The quoted, schema-qualified name of an ``evsrc_`` table.

        ``store.table("events")`` and ``store.table("evsrc_events")`` both give
        ``"public"."evsrc_events"``. ``name`` must be an identifier.
        """
        _sql.quote_schema(name, argument="name")
        if not name.startswith("evsrc_"):
            name = "evsrc_" + name
        return _sql.qualified(self._schema, name)

    # -- schema ------------------------------------------------------------------

    async def setup(self) -> None:
        """Create the schema, or migrate an older one; harmless to run again.

        Concurrent calls (several processes starting at once) queue on an
        advisory lock. Raises ``SchemaError`` if the database holds a newer
        schema than this release knows.
        """
        if await _schema.setup(self._pool, self._schema, self._q, closed=self._is_closed):
            self._global.repaired = True

    async def schema_version(self) -> int:
        """The schema version in the database; 0 when ``setup()`` never ran."""
        table = f"{self._quoted}.evsrc_schema_version"
        if not await self._fetchval("SELECT to_regclass($1) IS NOT NULL", table):
            return 0
        return int(await self._fetchval(self._q.schema_version) or 0)

    # -- writing (the write path is _write.Writer) -------------------------------------
    append_expect = _write.append_expect  # Backend's, two coroutines fewer per append

    async def _write_batch(
        self, stream: str, expected: int | None, encoded: list[EncodedEvent]
    ) -> Committed | Conflict | Mapping[uuid.UUID, Place]:
        return await self._writer.append(stream, expected, encoded)

    async def _resolve(
        self,
        stream: str,
        expected: int | None,
        encoded: list[EncodedEvent],
        found: Mapping[uuid.UUID, Place],
    ) -> Committed:
        return await self._writer.resolve(stream, expected, encoded, found)

    def _is_closed(self) -> bool:
        return self._closed

    # -- reading -------------------------------------------------------------------

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        if self._closed:
            raise StoreClosedError
        with _errors.mapped(closed=self._is_closed):
            return await self._held.fetch(query, *args)

    async def _fetchval(self, query: str, *args: Any) -> Any:
        if self._closed:
            raise StoreClosedError
        with _errors.mapped(closed=self._is_closed):
            return await self._pool.fetchval(query, *args)

    async def _read_stream(
        self, stream: str, after: int, limit: int | None, backwards: bool
    ) -> list[RecordedEvent]:
        rows = await self._fetch(
            self._q.read_backward if backwards else self._q.read_forward,
            stream,
            min(after, _rows.MAX_POSITION),
            limit if limit is None else min(limit, _rows.MAX_POSITION),
        )
        # One row per event and the head's tombstone flag; a row of NULLs when
        # nothing matched; no row for a stream without events (docs/lifecycle.md).
        if rows and rows[0][_rows.TOMBSTONED]:
            raise StreamDeletedError(stream=stream)
        if not rows or rows[0][0] is None:
            return []
        return _rows.stream_events(stream, rows)

    async def _head(self, stream: str) -> int:
        rows = await self._fetch(self._q.last_seq, stream)
        seq, tombstoned = rows[0]
        if tombstoned:
            raise StreamDeletedError(stream=stream)
        return 0 if seq is None else int(seq)

    # -- the global log (_global.GlobalLog) ---------------------------------------------

    @property
    def _feed(self) -> Feed | None:  # the live feed while anyone subscribes (for tests)
        return self._global.feed

    def _read_global(
        self, start: Checkpoint | None, flt: EventFilter, limit: int | None
    ) -> AsyncGenerator[RecordedEvent, None]:
        return self._global.read(start, flt, limit)

    def _follow(
        self, start: Checkpoint | None, flt: EventFilter
    ) -> AsyncGenerator[RecordedEvent, None]:
        return self._global.follow(start, flt)

    def _wake(self) -> None:
        self._global.wake()

    def _deleted(self) -> None:
        # A deletion appended its event: wake subscribers as an append does.
        self._global.wake()
        self._wakeups.committed()

    def _committed(self, stream: str, encoded: list[EncodedEvent]) -> None:
        self._global.committed(stream, encoded)
        self._wakeups.committed()

    # -- lifecycle -----------------------------------------------------------------

    async def close(self) -> None:
        """Close the store: subscribers end with ``StoreClosedError``; an owned pool closes."""
        if self._closed:
            return
        self._closed = True
        await self._global.close()
        await self._wakeups.close()
        await self._held.close()
        if self._owns_pool:
            await _pool.close(self._pool)
