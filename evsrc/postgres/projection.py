"""Projections on PostgreSQL: checkpoints in a table, one active runner, exactly-once batches.

``PostgresCheckpointStore`` keeps checkpoints in ``evsrc_checkpoints`` in the
store's schema (created by ``store.setup()``, migration ``0003``).

``PostgresProjectionRunner`` handles each *batch* of events inside one
transaction on a connection of the store's pool, passes that connection to the
projector's handlers (``await method(event, recorded, conn)``) and saves the
checkpoint in the same transaction, first thing, with a conditional
``UPDATE … WHERE checkpoint = <the one it replaces>``. The read-model change
and the checkpoint commit together or not at all, and a runner whose
checkpoint moved under it (another runner took over) writes nothing.

One runner of a projection name is active: the one holding a session advisory
lock keyed by the schema and the name, on a connection it keeps while active.
The others poll for the lock (``standby``); when the active runner's process
dies or its connection drops, PostgreSQL releases the lock and a standby takes
over within ``standby_interval`` (plus jitter). The lock decides who works;
the conditional checkpoint write guarantees that nobody applies a batch twice,
even in the moment when two runners both believe they are active.
"""

from __future__ import annotations

import contextlib
import random
from typing import TYPE_CHECKING, Any, Final

import anyio
import asyncpg
from asyncpg import exceptions as pgexc

from evsrc.errors import SchemaError, StoreUnavailableError
from evsrc.parking import PARKED_PREFIX
from evsrc.postgres import _sql
from evsrc.projection import FailurePolicy, ProjectionRunner, Projector
from evsrc.records import Checkpoint

if TYPE_CHECKING:
    from evsrc.postgres.store import PostgresEventStore
    from evsrc.records import RecordedEvent

__all__ = ["PostgresCheckpointStore", "PostgresProjectionRunner"]

_DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
#: Seed of the projection lock keys; stream locks use another (evsrc_append).
_LOCK_SEED: Final = 5309
_TRY_LOCK: Final = "SELECT pg_try_advisory_lock(hashtextextended($1, 5309))"
_UNLOCK: Final = "SELECT pg_advisory_unlock(hashtextextended($1, 5309))"
#: Errors after which a retry may succeed: lost connections, restarts, lock timeouts, deadlocks.
_TRANSIENT: Final = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a connection left mid-protocol by a drop: discarded
    pgexc.PostgresConnectionError,
    pgexc.OperatorInterventionError,
    pgexc.InsufficientResourcesError,
    pgexc.TransactionRollbackError,
    pgexc.LockNotAvailableError,
    pgexc.QueryCanceledError,
)


def _missing(exc: BaseException, table: str) -> SchemaError:
    msg = f"{table} is missing; run store.setup() to create or migrate the evsrc schema ({exc})"
    return SchemaError(msg)


class PostgresCheckpointStore:
    """Checkpoints in the table ``evsrc_checkpoints`` of the store's schema."""

    def __init__(self, store: PostgresEventStore) -> None:
        self.store = store
        table = store.table("checkpoints")
        self.table = table
        self._q_load = f"SELECT checkpoint FROM {table} WHERE name = $1"
        self._q_save = (
            f"INSERT INTO {table} (name, checkpoint, updated_at) VALUES ($1, $2, now()) "
            "ON CONFLICT (name) DO UPDATE SET checkpoint = EXCLUDED.checkpoint, updated_at = now()"
        )
        self._q_first = (
            f"INSERT INTO {table} (name, checkpoint, updated_at) VALUES ($1, $2, now()) "
            "ON CONFLICT (name) DO NOTHING RETURNING 1"
        )
        self._q_move = (
            f"UPDATE {table} SET checkpoint = $3, updated_at = now() "
            "WHERE name = $1 AND checkpoint = $2 RETURNING 1"
        )
        self._q_reset = f"DELETE FROM {table} WHERE name = $1"

    async def setup(self) -> None:
        """Create the checkpoint table: runs ``store.setup()`` (which creates it since 0003)."""
        await self.store.setup()

    async def _run(self, conn: Any, method: str, query: str, *args: Any) -> Any:
        try:
            target = conn if conn is not None else self.store.pool
            return await getattr(target, method)(query, *args)
        except pgexc.UndefinedTableError as exc:
            raise _missing(exc, self.table) from exc
        except _DB_ERRORS as exc:
            if conn is not None:
                raise  # inside the caller's transaction: the caller decides
            msg = f"checkpoint store {self.table}: {type(exc).__name__}: {exc}"
            raise StoreUnavailableError(msg) from exc

    async def load(self, name: str, conn: Any = None) -> Checkpoint | None:
        """The saved checkpoint of ``name``, or ``None``."""
        text = await self._run(conn, "fetchval", self._q_load, name)
        return None if text is None else Checkpoint.parse(text)

    async def save(self, name: str, checkpoint: Checkpoint, conn: Any = None) -> None:
        """Save the checkpoint of ``name`` unconditionally (on ``conn``, in its transaction)."""
        await self._run(conn, "execute", self._q_save, name, str(checkpoint))

    async def compare_and_save(
        self,
        name: str,
        previous: Checkpoint | None,
        checkpoint: Checkpoint,
        conn: Any = None,
    ) -> bool:
        """Save ``checkpoint`` iff the saved one is still ``previous``; whether it was saved.

        A concurrent writer of the same row waits for the first to commit and
        then finds the row moved: exactly one of them saves.
        """
        if previous is None:
            done = await self._run(conn, "fetchval", self._q_first, name, str(checkpoint))
        else:
            done = await self._run(
                conn, "fetchval", self._q_move, name, str(previous), str(checkpoint)
            )
        return done is not None

    async def reset(self, name: str) -> None:
        """Delete the checkpoint of ``name``: its next runner replays from the start.

        An active runner of ``name`` notices at its next batch (its write is
        refused), stands by, and resumes from the beginning.
        """
        await self._run(None, "execute", self._q_reset, name)


class PostgresProjectionRunner(ProjectionRunner):
    """A runner that commits each batch's read-model change and its checkpoint in one transaction.

    The projector's handlers get the transaction's connection as their last
    argument: ``async def on_booked(self, event, recorded, conn)`` (or
    ``handle_batch(events, conn)``). Everything they write through ``conn``
    commits with the checkpoint; if they raise, the batch rolls back, the
    events before the failing one are committed again without it, and the
    runner stops with ``ProjectionError``, its checkpoint just before the
    event. A lost connection is a fault, never a projector error: the batch
    rolls back and is retried.

    The active runner keeps one pool connection (its lock); standby runners
    borrow one for a moment every ``standby_interval`` seconds.
    """

    def __init__(
        self,
        store: PostgresEventStore,
        projector: Projector,
        *,
        name: str | None = None,
        save_skipped_every: int = 256,
        batch_size: int = 500,
        max_batch_latency: float = 0.0,
        retry_initial: float = 0.05,
        retry_max: float = 2.0,
        standby_interval: float = 1.0,
        on_failure: FailurePolicy | None = None,
        parked_poll: float = 1.0,
    ) -> None:
        self.pg_checkpoints = PostgresCheckpointStore(store)
        super().__init__(
            store,
            projector,
            self.pg_checkpoints,
            name=name,
            save_skipped_every=save_skipped_every,
            batch_size=batch_size,
            max_batch_latency=max_batch_latency,
            retry_initial=retry_initial,
            retry_max=retry_max,
            standby_interval=standby_interval,
            on_failure=on_failure,
            parked_poll=parked_poll,
        )
        self.pg_store = store
        #: The runner's lease: a session advisory lock.
        self.pg_lease = AdvisoryLockLease(self)
        self.lease = self.pg_lease

    async def setup(self) -> None:
        """Create the schema and checkpoint table: ``store.setup()``."""
        await self.pg_store.setup()

    @property
    def lease_pid(self) -> int | None:
        """The server process id of the connection holding the lock while active, else ``None``."""
        return self.pg_lease.pid

    # -- batches -------------------------------------------------------------------

    async def _process_batch(self, events: list[RecordedEvent]) -> None:
        last = events[-1].checkpoint
        async with self.pg_store.pool.acquire() as conn, conn.transaction():
            # The checkpoint first: a runner that lost its turn stops here, before
            # any read-model write, and a concurrent one waits on the row lock.
            try:
                moved = await self.pg_checkpoints.compare_and_save(
                    self.name, self._saved, last, conn
                )
            except pgexc.UndefinedTableError as exc:
                raise _missing(exc, self.pg_checkpoints.table) from exc
            if not moved:
                raise self._turn_taken()
            await self._apply(events, conn)
        self._saved = self.checkpoint = last

    async def _process(self, recorded: RecordedEvent) -> None:
        await self._process_batch([recorded])

    async def _replay(self, recorded: RecordedEvent, number: int) -> None:
        """Handle a parked event again in one transaction, once: a row keyed by its number
        in the checkpoint table commits with the handler's writes."""
        key = f"{PARKED_PREFIX}{self.name}#{number}"
        async with self.pg_store.pool.acquire() as conn, conn.transaction():
            if not await self.pg_checkpoints.compare_and_save(key, None, recorded.checkpoint, conn):
                return  # replayed before a crash kept it from being recorded
            await self._hand_over([recorded], conn)

    async def head(self) -> Checkpoint | None:
        """The checkpoint of the last committed event this projection reads: one look-up."""
        flt = self.feed_filter()
        types = flt.get("types")
        if types is None and "stream_prefix" in flt:
            return await super().head()  # a raw projector with a prefix: read the tail
        q = _sql.queries(_sql.quote_schema(self.pg_store.schema))
        try:
            if types is None:
                row = await self.pg_store.pool.fetchrow(q["head"])
            else:
                row = await self.pg_store.pool.fetchrow(
                    q["head_types"], types, flt.get("stream_prefix")
                )
        except _DB_ERRORS as exc:
            msg = f"could not read the head of the store: {type(exc).__name__}: {exc}"
            raise StoreUnavailableError(msg) from exc
        return None if row is None else Checkpoint(row[0], row[1])

    async def _save_skipped(self, checkpoint: Checkpoint) -> None:
        async with self.pg_store.pool.acquire() as conn:
            if not await self.pg_checkpoints.compare_and_save(
                self.name, self._saved, checkpoint, conn
            ):
                raise self._turn_taken()
        self._saved = checkpoint

    def _handler_error(self, exc: Exception, recorded: RecordedEvent, context: Any) -> Exception:
        # A handler that failed because the connection went away met a fault, not a bug.
        if context.is_closed():
            return exc
        return super()._handler_error(exc, recorded, context)

    def _is_fault(self, exc: BaseException) -> bool:
        return super()._is_fault(exc) or isinstance(exc, _TRANSIENT)


class AdvisoryLockLease:
    """The lease of a PostgreSQL runner: a session advisory lock keyed by schema and name.

    Held on a pool connection kept while active; a dropped connection loses it
    (noticed by a termination listener, and by a ``SELECT 1`` every
    ``standby_interval``). Standby runners try for it every ``standby_interval``
    seconds, jittered.
    """

    def __init__(self, runner: PostgresProjectionRunner) -> None:
        self._runner = runner
        self._key = f"{runner.pg_store.schema}\x1f{runner.name}"
        #: The connection holding the lock while active.
        self.conn: Any = None
        self._lost = False

    @property
    def pid(self) -> int | None:
        """The server process id of the connection holding the lock while active, else ``None``."""
        conn = self.conn
        if conn is None or self._lost:
            return None
        try:
            pid: int = conn.get_server_pid()
        except asyncpg.InterfaceError:  # the connection died and went back to the pool
            return None
        return pid

    async def acquire(self) -> bool:
        """Try for the lock on a pool connection, kept while it is held; whether it was got."""
        pool = self._runner.pg_store.pool
        conn = await pool.acquire()
        try:
            got = await conn.fetchval(_TRY_LOCK, self._key)
        except BaseException:
            await _release(pool, conn)
            raise
        if not got:
            await _release(pool, conn)
            return False
        self.conn = conn
        self._lost = False
        conn.add_termination_listener(self._on_lost)
        return True

    def _on_lost(self, conn: object) -> None:
        self._lost = True
        self._runner.waits.interrupt()

    async def release(self) -> None:
        """Unlock and give the connection back (a connection that will not unlock is closed)."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        pool = self._runner.pg_store.pool
        with contextlib.suppress(Exception):
            conn.remove_termination_listener(self._on_lost)
        try:
            with anyio.fail_after(5):
                await conn.fetchval(_UNLOCK, self._key)
        except Exception:
            # The lock goes with the session. A connection that died is already
            # back in the pool (asyncpg returns it), and its methods raise.
            with contextlib.suppress(Exception):
                conn.terminate()
        await _release(pool, conn)

    def lost(self) -> bool:
        """Whether the lock's connection dropped while active."""
        return self._lost

    async def watch(self) -> None:
        """Check the lock's connection every ``standby_interval``; a dead one loses the lease."""
        conn = self.conn
        if conn is None:
            return
        interval = self._runner.standby_interval
        while not self._lost:
            await anyio.sleep(interval)
            try:
                with anyio.fail_after(max(interval, 1.0)):
                    await conn.fetchval("SELECT 1")
            except Exception:
                self._lost = True
                self._runner.waits.interrupt()

    async def standby_wait(self) -> None:
        """Follow the active runner's checkpoint, then wait about ``standby_interval``."""
        r = self._runner
        await r.progress.follow_active()
        await r.waits.pause(r.standby_interval * (0.75 + 0.5 * _jitter()))


def _jitter() -> float:
    return random.random()


async def _release(pool: asyncpg.Pool, conn: Any) -> None:
    with contextlib.suppress(Exception):
        await pool.release(conn)
