"""Projections on SQLite: checkpoints in the file, and exactly-once transactional projectors.

``SqliteCheckpointStore`` keeps checkpoints in ``evsrc_checkpoints`` (created by
the store's ``setup()``).

``SqliteProjectionRunner`` handles each event inside one write transaction on
the store's file (:meth:`SqliteEventStore.transaction`), passes its
``sqlite3.Connection`` to the projector's handlers (``await method(event,
recorded, conn)``) and saves the checkpoint in the same transaction. The
read-model change and the checkpoint commit together or not at all, so after
any crash the projection resumes exactly after the last event whose change
committed: each event's change lands exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from evsrc.projection import ProjectionRunner, Projector
from evsrc.records import Checkpoint
from evsrc.sqlite import _sql

if TYPE_CHECKING:
    import sqlite3

    from evsrc.records import RecordedEvent
    from evsrc.sqlite.store import SqliteEventStore

__all__ = ["SqliteCheckpointStore", "SqliteProjectionRunner"]

_Q = _sql.queries()


def _load(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute(_Q["checkpoint_load"], (name,)).fetchone()
    return None if row is None else str(row[0])


def _save(conn: sqlite3.Connection, name: str, checkpoint: Checkpoint) -> None:
    conn.execute(_Q["checkpoint_save"], (name, str(checkpoint), datetime.now(UTC).isoformat()))


class SqliteCheckpointStore:
    """Checkpoints in the table ``evsrc_checkpoints`` of the store's file."""

    def __init__(self, store: SqliteEventStore) -> None:
        self.store = store

    async def setup(self) -> None:
        """Create (or migrate) the store's schema, which holds the checkpoint table."""
        await self.store.setup()

    async def load(self, name: str) -> Checkpoint | None:
        """The saved checkpoint of ``name``, or ``None``."""
        text: str | None = await self.store._read(_load, name)
        return None if text is None else Checkpoint.parse(text)

    async def save(
        self, name: str, checkpoint: Checkpoint, conn: sqlite3.Connection | None = None
    ) -> None:
        """Save the checkpoint of ``name`` (on ``conn``, inside its transaction, if given)."""
        if conn is not None:
            _save(conn, name, checkpoint)
            return
        async with self.store.transaction() as tx:
            _save(tx, name, checkpoint)


class SqliteProjectionRunner(ProjectionRunner):
    """A runner that commits each event's read-model change and its checkpoint in one transaction.

    The projector's handlers get the transaction's ``sqlite3.Connection`` as
    their last argument: ``async def on_booked(self, event, recorded, conn)``.
    Everything they write through ``conn`` (read-model tables in the same file)
    commits with the checkpoint; if they raise, the transaction rolls back, the
    checkpoint stays before the event and the runner stops with
    ``ProjectionError``. The connection holds the file's write lock while a
    handler runs: keep handlers short.
    """

    def __init__(
        self,
        store: SqliteEventStore,
        projector: Projector,
        *,
        name: str | None = None,
        save_skipped_every: int = 256,
    ) -> None:
        self.sqlite_checkpoints = SqliteCheckpointStore(store)
        super().__init__(
            store,
            projector,
            self.sqlite_checkpoints,
            name=name,
            save_skipped_every=save_skipped_every,
        )
        self.sqlite_store = store

    async def setup(self) -> None:
        """Create (or migrate) the store's schema, which holds the checkpoint table."""
        await self.sqlite_checkpoints.setup()

    async def _process(self, recorded: RecordedEvent) -> None:
        async with self.sqlite_store.transaction() as conn:
            await self.projector.handle(recorded, conn)
            _save(conn, self.name, recorded.checkpoint)
