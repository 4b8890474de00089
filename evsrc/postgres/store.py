"""``PostgresEventStore``: the store contract on PostgreSQL through an asyncpg pool.

How it keeps the contract, in short (``docs/postgres.md`` has the long form):

* An append is one call of the ``evsrc_append`` SQL function — one round trip
  whatever the number of events. The function queues writers of the same
  stream on a transaction-scoped advisory lock, reads the stream's head on a
  fresh snapshot, and either inserts every event (one ``INSERT … SELECT FROM
  unnest(…)``) or reports the conflict. The unique ``(stream, seq)`` key is the
  database's own last word against gaps and duplicates.
* Global order is ``(commit, position)``: the writing transaction's id and a
  sequence-allocated position. Readers only return rows of transactions below
  the snapshot's ``xmin`` (docs/postgres.md, "Global order"), so nothing ever commits
  in front of a checkpoint a reader has passed, and writers never share a lock.
* Every asyncpg error becomes an evsrc error in one place, ``_errors.mapped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import TYPE_CHECKING, Any, Final, Self, cast

import anyio
import asyncpg

from evsrc.backend import Backend, Place, resolve_retry
from evsrc.errors import (
    ConfigurationError,
    DuplicateEventIdError,
    EventIdReusedError,
    EvsrcError,
    InvalidCheckpointError,
    InvalidInputError,
    StoreClosedError,
    StoreUnavailableError,
)
from evsrc.postgres import _errors, _feed, _rows, _schema, _sql, _wakeups
from evsrc.records import Checkpoint, Committed, Conflict, RecordedEvent

if TYPE_CHECKING:
    import uuid
    from collections.abc import AsyncGenerator, Mapping, Sequence

    from evsrc.store import EncodedEvent, EventFilter

__all__ = ["PostgresEventStore", "translate_error"]

#: The evsrc error for an asyncpg or socket error (for callers that hold a driver error).
translate_error = _errors.translate

#: Seconds close() waits for busy connections before terminating them.
_CLOSE_GRACE: Final = 10.0
#: Seconds readers may be held back by an open transaction before a warning.
_HELD_BACK_WARNING: Final = 10.0
_log = logging.getLogger("evsrc.postgres")
#: Session settings every pooled connection starts with (startup parameters, no round trip).
_SESSION: Final = {"default_transaction_isolation": "read committed"}
#: Re-tries of an append whose (stream, seq) key was taken under it.
_SEQ_TAKEN_RETRIES: Final = 2
#: What setup() maps (other errors are bugs and pass through).
_SETUP_ERRORS: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
_POOL_ONLY_OPTIONS: Final = frozenset(
    {
        "min_size",
        "max_size",
        "max_queries",
        "max_inactive_connection_lifetime",
        "setup",
        "init",
        "reset",
        "loop",
        "connection_class",
    }
)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset hook: nothing to undo beyond asyncpg's own rollback (see connect())."""


async def _release(pool: asyncpg.Pool, conn: asyncpg.pool.PoolConnectionProxy) -> None:
    """Give ``conn`` back; a connection that died after answering is dropped, not reported.

    asyncpg terminates a connection whose reset fails and opens a new one on
    demand, so the pool recovers by itself; the caller's result stands.
    """
    try:
        await pool.release(conn)
    except Exception as exc:
        _log.debug("dropped a broken connection on release: %r", exc)


class PostgresEventStore(Backend):
    """An event store in PostgreSQL, owning (or borrowing) an asyncpg pool.

    Create it with :meth:`connect`, call :meth:`setup` once to create or migrate
    the schema, and close it with ``await store.close()`` or ``async with``.
    Tables live in ``schema`` and share the ``evsrc_`` prefix.

    Live subscribers wake at once after this store's own appends; appends of
    other processes reach them through one ``LISTEN`` connection per store,
    fed by a coalesced ``NOTIFY`` each store sends *after* its commits (never
    inside them: docs/postgres.md, "Subscriptions: how they wake up"). ``notify=False`` turns the
    NOTIFY off. ``poll_interval`` bounds how long a subscriber waits when no
    wakeup comes (a store built on a borrowed pool has no LISTEN connection and
    relies on it for other processes' appends).

    Built directly, the store borrows ``pool`` and leaves it open on close;
    :meth:`connect` passes ``owns_pool=True`` with the ``listen_dsn`` and
    ``listen_options`` (the pool's connection arguments) for the LISTEN
    connection.
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
        if not (isinstance(poll_interval, (int, float)) and 0 < poll_interval <= 3600):
            msg = f"poll_interval must be a number of seconds in (0, 3600], got {poll_interval!r}"
            raise InvalidInputError(msg, argument="poll_interval", value=poll_interval)
        self._schema = schema
        self._pool = pool
        self._owns_pool = owns_pool
        self._poll_interval = float(poll_interval)
        self._q = _sql.Queries.of(self._quoted)
        self._repaired: bool | None = None
        self._waiter: anyio.Event | None = None
        self._closed = False
        self._feed: _feed.Feed | None = None
        self._held_back_since: float | None = None
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

        With ``replicas`` (standby DSNs), reads go to the standbys and appends
        to ``dsn``: see :class:`~evsrc.postgres.replicas.ReplicatedPostgresEventStore`
        and docs/scaling.md.

        ``pool_options`` go to :func:`asyncpg.create_pool` (``min_size`` defaults
        to 1 and ``max_size`` to 10 here). Raises ``ConfigurationError`` for a
        mistake only the operator can fix (malformed DSN, unknown database or
        role, bad password), ``StoreUnavailableError`` when the server cannot be
        reached (retry later) and ``InvalidInputError`` for a bad ``schema``.

        Every connection runs at ``READ COMMITTED`` whatever the server's,
        database's or role's ``default_transaction_isolation``: the pool sends it
        as a startup parameter (``server_settings``), which wins over those
        defaults and costs nothing per statement.

        Unlike asyncpg's default, the pool does not send ``RESET ALL; UNLISTEN
        *; …`` each time a connection is released: that is a second round trip
        per append, and the store's own statements leave no session state
        (its locks are transaction-scoped). asyncpg still rolls back a
        transaction left open. Code that borrows connections from ``store.pool``
        must not leave session state behind (use ``SET LOCAL``), or pass its own
        ``reset=`` here.
        """
        if replicas:
            from evsrc.postgres.replicas import ReplicatedPostgresEventStore

            replicated = await ReplicatedPostgresEventStore.connect(
                dsn,
                replicas=replicas,
                schema=schema,
                poll_interval=poll_interval,
                notify=notify,
                **pool_options,
            )
            return cast("Self", replicated)
        _sql.quote_schema(schema)
        options: dict[str, Any] = {"min_size": 1, "max_size": 10, "reset": _keep_session}
        options.update(pool_options)
        # The isolation level the append needs, whatever the database's or role's
        # default: a startup parameter, so it costs no round trip (docs/postgres.md,
        # "Global order" and "Server settings").
        options["server_settings"] = {**(options.get("server_settings") or {}), **_SESSION}
        with _errors.mapped(connecting=dsn or "", only=_errors.DRIVER_ERRORS):
            pool = await asyncpg.create_pool(dsn, **options)
        return cls(
            pool,
            schema=schema,
            poll_interval=poll_interval,
            notify=notify,
            owns_pool=True,
            listen_dsn=dsn,
            listen_options={k: v for k, v in options.items() if k not in _POOL_ONLY_OPTIONS},
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
        with _errors.mapped(closed=self._is_closed, only=_SETUP_ERRORS):
            async with self._pool.acquire() as conn, conn.transaction():
                if await _schema.migrate(conn, self._schema, self._q):
                    self._repaired = True

    async def _check_restored(self, after: Checkpoint | None) -> None:
        """Refuse a checkpoint from before a restore repair (it would skip events)."""
        if after is None or after.commit == 0:
            return
        if self._repaired is None:
            self._repaired = bool(await self._fetchval(self._q.repaired))
        if not self._repaired:
            return
        if after.commit <= _rows.NO_END and after.position <= _rows.MAX_POSITION:
            if await self._fetchval(self._q.checkpoint_exists, after.commit, after.position):
                return
        msg = (
            f"checkpoint {after} is not a place in this store: it predates the repair of its "
            "global order after a restore, or comes from another store. Resume from a "
            "checkpoint saved in the store's evsrc_checkpoints table, or from the start"
        )
        raise InvalidCheckpointError(msg, argument="after", value=after)

    async def schema_version(self) -> int:
        """The schema version in the database; 0 when ``setup()`` never ran."""
        q = self._quoted
        has = await self._fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f"{q}.evsrc_schema_version"
        )
        if not has:
            return 0
        return int(await self._fetchval(self._q.schema_version) or 0)

    # -- writing -----------------------------------------------------------------

    async def _write_batch(
        self, stream: str, expected: int | None, encoded: list[EncodedEvent], attempt: int = 0
    ) -> Committed | Conflict | Mapping[uuid.UUID, Place]:
        if expected is not None and expected > _rows.MAX_POSITION:  # beyond bigint: ahead of any
            return Conflict(stream, expected, await self._head(stream))
        pool = self._pool
        with _errors.mapped(stream=stream, closed=self._is_closed):
            conn = await pool.acquire()
        try:
            # EncodedEvent is a NamedTuple: transpose into the five array parameters.
            ids, types, versions, data, metadata = zip(*encoded, strict=True)
            with _errors.mapped(stream=stream, sent=True):
                row = await conn.fetchrow(
                    self._q.append, stream, expected, ids, types, versions, data, metadata
                )
        except EvsrcError as error:
            await _release(pool, conn)
            if isinstance(error, DuplicateEventIdError):
                return await self._find_ids(encoded, error)
            if isinstance(error, _errors.SeqTakenError):
                # Only a writer bypassing evsrc_append (and its stream lock), or a
                # session not at READ COMMITTED (a stale head), gets here. Nothing
                # was written; the next attempt re-reads the head — a few times.
                if attempt < _SEQ_TAKEN_RETRIES:
                    return await self._write_batch(stream, expected, encoded, attempt + 1)
                msg = (
                    f"the head of {stream!r} kept moving under the append: a session not at "
                    "READ COMMITTED, or a writer bypassing evsrc_append (docs/postgres.md, "
                    "Operations)"
                )
                raise ConfigurationError(msg) from error
            raise
        except BaseException:
            await _release(pool, conn)
            raise
        await _release(pool, conn)
        assert row is not None
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

    async def _resolve(
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

    def _is_closed(self) -> bool:
        return self._closed

    def _take_waiter(self) -> anyio.Event:
        """The event the next commit of this store sets."""
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = anyio.Event()
        return waiter

    def _ensure_listening(self) -> None:
        self._wakeups.ensure_listening()

    # -- reading -------------------------------------------------------------------

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        if self._closed:
            raise StoreClosedError
        with _errors.mapped(closed=self._is_closed):
            return await self._pool.fetch(query, *args)

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
        return _rows.stream_events(stream, rows)

    async def _head(self, stream: str) -> int:
        value: int = await self._fetchval(self._q.last_seq, stream)
        return value

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

    async def _read_global(
        self, start: Checkpoint | None, flt: EventFilter, limit: int | None
    ) -> AsyncGenerator[RecordedEvent, None]:
        query, extra, local = self._filtered(flt)
        await self._check_restored(start)
        commit, position = _rows.start(start)
        # "What was committed when it got there": transactions below this id.
        # Of those, any still held back by an older running transaction are
        # waited for (briefly, normally), so a reader sees its own appends.
        end = await self._fetchval(self._q.horizon)
        left = limit
        delay = 0.0
        while left is None or left > 0:
            page = _feed.PAGE if left is None else min(_feed.PAGE, left)
            rows = await self._fetch(query, commit, position, page, end, *extra)
            events, complete = _rows.global_events(rows)
            if events:
                commit, position = events[-1].checkpoint.commit, events[-1].position
                if local is not None:
                    events = [e for e in events if local.matches(e.stream, e.type)]
                for e in events:
                    yield e
                if left is not None:
                    left -= len(events)
            await self._note_held_back(complete)
            if complete:
                if len(rows) < page:
                    return
                delay = 0.0
            else:
                delay = min(max(delay * 2, 0.001), 0.1)
                await anyio.sleep(delay)

    async def _follow(
        self, start: Checkpoint | None, flt: EventFilter
    ) -> AsyncGenerator[RecordedEvent, None]:
        query, extra, local = self._filtered(flt)
        await self._check_restored(start)
        # One feed per store, shared by its subscribers once caught up:
        # docs/postgres.md, "Subscriptions: how they wake up".
        feed = self._feed_attach(flt)
        try:
            commit, position = _rows.start(start)
            await feed.started()
            failures = 0
            while True:
                # Catching up, by itself: what is ready now, after its cursor.
                if self._closed:
                    raise StoreClosedError
                seen = feed.cursor  # every event up to here is final (see _feed.Feed)
                try:
                    rows = await self._fetch(
                        query, commit, position, _feed.PAGE, _rows.NO_END, *extra
                    )
                except StoreUnavailableError:
                    if self._closed:
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
                        await self._note_held_back(False)
                        await anyio.sleep(0.002)
                    continue
                # Caught up with everything ready when the read began: at least up
                # to the feed's cursor then. Live from the feed's pages from here.
                if seen > (commit, position):
                    commit, position = seen
                while True:
                    if self._closed:
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
            self._feed_detach(feed, flt)

    def _feed_attach(self, flt: EventFilter) -> _feed.Feed:
        feed = self._feed
        if feed is None or feed.done:
            feed = self._feed = _feed.Feed(
                fetch=self._fetch,
                queries=self._q,
                closed=self._is_closed,
                waiter=self._take_waiter,
                note_held_back=self._note_held_back,
                poll_interval=self._poll_interval,
                listen=self._ensure_listening,
                wake=self._wake,
            )
        feed.subscribers += 1
        feed.filters[flt] = feed.filters.get(flt, 0) + 1
        feed.ensure_running()
        return feed

    def _feed_detach(self, feed: _feed.Feed, flt: EventFilter) -> None:
        feed.subscribers -= 1
        left = feed.filters.get(flt, 0) - 1
        if left > 0:
            feed.filters[flt] = left
        else:
            feed.filters.pop(flt, None)
            feed.matched.pop(flt, None)
        if feed.subscribers <= 0:
            feed.stop()
            if self._feed is feed:
                self._feed = None

    async def _note_held_back(self, complete: bool) -> None:
        """Warn (once per stall) when an open transaction holds the global order back."""
        if complete:
            self._held_back_since = None
            return
        now = asyncio.get_running_loop().time()
        since = self._held_back_since
        if since is None:
            self._held_back_since = now
        elif now - since > _HELD_BACK_WARNING:
            self._held_back_since = math.inf  # warned; reset by the next complete page
            culprit = None
            with contextlib.suppress(EvsrcError):
                culprit = await self._fetch(self._q.oldest_xact)
            _log.warning(
                "readers of %s have waited %.0f s for an open transaction to end "
                "(oldest: %s); see idle_in_transaction_session_timeout in docs/postgres.md",
                self._schema,
                _HELD_BACK_WARNING,
                dict(culprit[0]) if culprit else "unknown",
            )

    # -- waking subscribers ----------------------------------------------------------
    #
    # Wakeups are hints to read again; why NOTIFY is sent after commits, coalesced,
    # and never inside them: docs/postgres.md, "Subscriptions: how they wake up".

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    def _committed(self, stream: str, encoded: list[EncodedEvent]) -> None:
        feed = self._feed
        if feed is None or feed.wants(stream, encoded):
            self._wake()  # the feed reads; a commit no subscriber reads waits for a poll
        self._wakeups.committed()

    # -- lifecycle -----------------------------------------------------------------

    async def close(self) -> None:
        """Close the store: subscribers end with ``StoreClosedError``; an owned pool closes."""
        if self._closed:
            return
        self._closed = True
        self._wake()
        feed, self._feed = self._feed, None
        if feed is not None:
            await feed.close()
        await self._wakeups.close()
        if self._owns_pool:
            # Let queries in flight finish; a connection still busy after the
            # grace period (say, an append queued on a lock held elsewhere) is cut.
            try:
                with anyio.fail_after(_CLOSE_GRACE):
                    await self._pool.close()
            except Exception:
                self._pool.terminate()
