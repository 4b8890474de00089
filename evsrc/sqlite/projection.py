"""Projections on SQLite: checkpoints in the file, and exactly-once transactional projectors.

``SqliteCheckpointStore`` keeps checkpoints in ``evsrc_checkpoints`` (created by
the store's ``setup()``).

``SqliteProjectionRunner`` handles each batch of events inside one write
transaction on the store's file (:meth:`SqliteEventStore.transaction`), passes
its ``sqlite3.Connection`` to the projector's handlers (``await method(event,
recorded, conn)`` or ``handle_batch(events, conn)``) and saves the checkpoint in
the same transaction. The read-model change and the checkpoint commit together
or not at all, so after any crash the projection resumes exactly after the last
batch whose change committed.

Several runners of one projection (in several processes on one file) apply
each event once: the checkpoint write is conditional — it replaces only the
checkpoint the runner last saw, and a refused write rolls the batch back before
its commit (the runner goes to standby). SQLite has no session locks, so within
one store object the runners take turns as everywhere (one active), and across
processes the conditional write is what keeps exactly-once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from evsrc.parking import PARKED_PREFIX
from evsrc.projection import ProjectionRunner, Projector
from evsrc.records import Checkpoint
from evsrc.sqlite import _sql

if TYPE_CHECKING:
    import sqlite3
    from typing import Any

    from evsrc.records import RecordedEvent
    from evsrc.sqlite.store import SqliteEventStore

__all__ = ["SqliteCheckpointStore", "SqliteProjectionRunner"]

_Q = _sql.queries()


def _load(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute(_Q["checkpoint_load"], (name,)).fetchone()
    return None if row is None else str(row[0])


def _save(conn: sqlite3.Connection, name: str, checkpoint: Checkpoint) -> None:
    conn.execute(_Q["checkpoint_save"], (name, str(checkpoint), datetime.now(UTC).isoformat()))


_INSERT_FIRST = (
    "INSERT INTO evsrc_checkpoints (name, checkpoint, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO NOTHING"
)
_REPLACE = (
    "UPDATE evsrc_checkpoints SET checkpoint = ?, updated_at = ? WHERE name = ? AND checkpoint = ?"
)


def _compare_and_save(
    conn: sqlite3.Connection, name: str, previous: Checkpoint | None, checkpoint: Checkpoint
) -> bool:
    """Save ``checkpoint`` iff the saved one is ``previous``; whether it was saved."""
    now = datetime.now(UTC).isoformat()
    if previous is None:
        cur = conn.execute(_INSERT_FIRST, (name, str(checkpoint), now))
    else:
        cur = conn.execute(_REPLACE, (str(checkpoint), now, name, str(previous)))
    return cur.rowcount == 1


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

    async def compare_and_save(
        self,
        name: str,
        previous: Checkpoint | None,
        checkpoint: Checkpoint,
        conn: sqlite3.Connection | None = None,
    ) -> bool:
        """Save ``checkpoint`` iff the saved one is ``previous``; whether it was saved."""
        if conn is not None:
            return _compare_and_save(conn, name, previous, checkpoint)
        async with self.store.transaction() as tx:
            return _compare_and_save(tx, name, previous, checkpoint)

    async def reset(self, name: str) -> None:
        """Forget the checkpoint of ``name``: its next runner starts from the beginning."""
        async with self.store.transaction() as tx:
            tx.execute("DELETE FROM evsrc_checkpoints WHERE name = ?", (name,))


class SqliteProjectionRunner(ProjectionRunner):
    """A runner that commits each batch's read-model change and its checkpoint in one transaction.

    The projector's handlers get the transaction's ``sqlite3.Connection`` as
    their last argument: ``async def on_booked(self, event, recorded, conn)``
    (or ``handle_batch(events, conn)``). Everything they write through ``conn``
    (read-model tables in the same file) commits with the checkpoint; if they
    raise, the batch rolls back, the events before the failing one are
    committed again without it, and the runner stops with ``ProjectionError``,
    its checkpoint just before the event. The connection holds the file's write
    lock while a handler runs: keep handlers short. Keyword options are those
    of :class:`~evsrc.projection.ProjectionRunner` (``batch_size``,
    ``max_batch_latency``, ``retry_initial``, ``retry_max``, ``standby_interval``).
    """

    def __init__(
        self,
        store: SqliteEventStore,
        projector: Projector,
        *,
        name: str | None = None,
        save_skipped_every: int = 256,
        **options: Any,
    ) -> None:
        self.sqlite_checkpoints = SqliteCheckpointStore(store)
        super().__init__(
            store,
            projector,
            self.sqlite_checkpoints,
            name=name,
            save_skipped_every=save_skipped_every,
            **options,
        )
        self.sqlite_store = store

    async def setup(self) -> None:
        """Create (or migrate) the store's schema, which holds the checkpoint table."""
        await self.sqlite_checkpoints.setup()

    async def _process_batch(self, events: list[RecordedEvent]) -> None:
        last = events[-1].checkpoint
        async with self.sqlite_store.transaction() as conn:
            # The checkpoint first: a runner whose turn another took stops here.
            if not _compare_and_save(conn, self.name, self._saved, last):
                raise self._turn_taken()
            await self._apply(events, conn)
        self._saved = self.checkpoint = last

    async def _process(self, recorded: RecordedEvent) -> None:
        await self._process_batch([recorded])

    async def _replay(self, recorded: RecordedEvent, number: int) -> None:
        """Handle a parked event again in one transaction, once: a row keyed by its number
        in the checkpoint table commits with the handler's writes."""
        key = f"{PARKED_PREFIX}{self.name}#{number}"
        async with self.sqlite_store.transaction() as conn:
            if _load(conn, key) is not None:
                return  # replayed before a crash kept it from being recorded
            await self._hand_over([recorded], conn)
            _save(conn, key, recorded.checkpoint)
