"""Projections on PostgreSQL: checkpoints in a table, and exactly-once transactional projectors.

``PostgresCheckpointStore`` keeps checkpoints in ``evsrc_checkpoints`` in the
store's schema (``await checkpoints.setup()`` creates it; harmless to re-run).

``PostgresProjectionRunner`` handles each event inside a transaction on a
connection of the store's pool, passes that connection to the projector's
handlers (``await method(event, recorded, conn)``) and saves the checkpoint in
the same transaction. The read-model change and the checkpoint commit
together or not at all, so after any crash or dropped connection the
projection resumes exactly after the last event whose change committed —
each event's change lands exactly once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from evsrc.errors import StoreUnavailableError
from evsrc.events import Checkpoint
from evsrc.projection import ProjectionRunner, Projector

if TYPE_CHECKING:
    from evsrc.events import RecordedEvent
    from evsrc.postgres.store import PostgresEventStore

__all__ = ["PostgresCheckpointStore", "PostgresProjectionRunner"]

_DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


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

    async def setup(self) -> None:
        """Create the checkpoint table if it does not exist."""
        # Checkpoints are stored as their text form ("commit:position") so that the
        # table does not depend on how a backend numbers commits.
        sql = (
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            " name text PRIMARY KEY,"
            " checkpoint text NOT NULL,"
            " updated_at timestamptz NOT NULL DEFAULT now())"
        )
        try:
            await self.store.pool.execute(sql)
        except _DB_ERRORS as exc:
            msg = f"could not create {self.table}: {type(exc).__name__}: {exc}"
            raise StoreUnavailableError(msg) from exc

    async def load(self, name: str, conn: Any = None) -> Checkpoint | None:
        """The saved checkpoint of ``name``, or ``None``."""
        try:
            if conn is not None:
                text = await conn.fetchval(self._q_load, name)
            else:
                text = await self.store.pool.fetchval(self._q_load, name)
        except _DB_ERRORS as exc:
            msg = f"could not load checkpoint {name!r}: {type(exc).__name__}: {exc}"
            raise StoreUnavailableError(msg) from exc
        return None if text is None else Checkpoint.parse(text)

    async def save(self, name: str, checkpoint: Checkpoint, conn: Any = None) -> None:
        """Save the checkpoint of ``name`` (on ``conn``, inside its transaction, if given)."""
        if conn is not None:
            await conn.execute(self._q_save, name, str(checkpoint))
            return
        try:
            await self.store.pool.execute(self._q_save, name, str(checkpoint))
        except _DB_ERRORS as exc:
            msg = f"could not save checkpoint {name!r}: {type(exc).__name__}: {exc}"
            raise StoreUnavailableError(msg) from exc


class PostgresProjectionRunner(ProjectionRunner):
    """A runner that commits each event's read-model change and its checkpoint in one transaction.

    The projector's handlers get the transaction's connection as their last
    argument: ``async def on_booked(self, event, recorded, conn)``. Everything
    they write through ``conn`` commits with the checkpoint; if they raise,
    the transaction rolls back, the checkpoint stays before the event and the
    runner stops with ``ProjectionError``.
    """

    def __init__(
        self,
        store: PostgresEventStore,
        projector: Projector,
        *,
        name: str | None = None,
        save_skipped_every: int = 256,
    ) -> None:
        self.pg_checkpoints = PostgresCheckpointStore(store)
        super().__init__(
            store,
            projector,
            self.pg_checkpoints,
            name=name,
            save_skipped_every=save_skipped_every,
        )
        self.pg_store = store

    async def setup(self) -> None:
        """Create the checkpoint table if it does not exist."""
        await self.pg_checkpoints.setup()

    async def _process(self, recorded: RecordedEvent) -> None:
        async with self.pg_store.pool.acquire() as conn, conn.transaction():
            await self.projector.handle(recorded, conn)
            await self.pg_checkpoints.save(self.name, recorded.checkpoint, conn)
