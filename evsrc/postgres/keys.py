"""``PostgresKeyStore``: subjects' keys in a table beside the events, in the same schema.

``evsrc_subject_keys`` holds one row per subject: the subject, its random key
id and its key. ``forget`` deletes the row; what PostgreSQL keeps of a deleted
row until ``VACUUM``, the write-ahead log and backups age out is described in
docs/lifecycle.md, "Forgetting a person".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evsrc.keys import DEFAULT_KEY_CACHE_TTL, KeyStore, SubjectKey
from evsrc.postgres import _errors

if TYPE_CHECKING:
    from collections.abc import Callable

    import asyncpg

    from evsrc.postgres.store import PostgresEventStore

__all__ = ["PostgresKeyStore"]


class PostgresKeyStore(KeyStore):
    """Subjects' keys in ``table`` (quoted, schema-qualified), through ``pool``.

    Usually built with :meth:`beside` from the event store, so the keys live in
    its schema and use its pool. The pool stays the caller's. Call
    ``await keys.setup()`` once (concurrent calls are safe).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        table: str,
        *,
        cache_ttl: float = DEFAULT_KEY_CACHE_TTL,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(cache_ttl=cache_ttl, clock=clock)
        self.pool = pool
        self.table = table

    @classmethod
    def beside(
        cls, store: PostgresEventStore, *, cache_ttl: float = DEFAULT_KEY_CACHE_TTL
    ) -> PostgresKeyStore:
        """The key store in ``store``'s schema, on ``store``'s pool."""
        return cls(store.pool, store.table("subject_keys"), cache_ttl=cache_ttl)

    async def setup(self) -> None:
        """Create the key table if it does not exist; harmless to run again, even at once."""
        with _errors.mapped(only=_errors.DRIVER_ERRORS):
            async with self.pool.acquire() as conn, conn.transaction():
                # CREATE TABLE IF NOT EXISTS can still collide when two sessions run it
                # at once; a transaction-scoped advisory lock queues them.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.table)
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.table} ("
                    " subject text PRIMARY KEY,"
                    " key_id text NOT NULL UNIQUE,"
                    " key bytea NOT NULL,"
                    " created_at timestamptz NOT NULL DEFAULT now())"
                )

    async def _insert_or_get(self, subject: str, candidate: SubjectKey) -> SubjectKey:
        with _errors.mapped(only=_errors.DRIVER_ERRORS):
            # Two writers inserting at once: one row wins, and both read it back
            # (the CTE's SELECT would not see the winner's row, hence the UNION).
            row = await self.pool.fetchrow(
                f"WITH ins AS (INSERT INTO {self.table} (subject, key_id, key) "
                "VALUES ($1, $2, $3) ON CONFLICT (subject) DO NOTHING RETURNING key_id, key) "
                f"SELECT key_id, key FROM ins UNION ALL "
                f"SELECT key_id, key FROM {self.table} WHERE subject = $1 LIMIT 1",
                subject,
                candidate.key_id,
                candidate.key,
            )
            if row is None:
                # The conflicting row was not visible to this statement's snapshot
                # (it committed after the snapshot was taken): read it again.
                row = await self.pool.fetchrow(
                    f"SELECT key_id, key FROM {self.table} WHERE subject = $1",
                    subject,
                )
        if row is None:  # pragma: no cover - forgotten between the two statements
            return await self._insert_or_get(subject, candidate)
        return SubjectKey(str(row["key_id"]), bytes(row["key"]))

    async def _fetch(self, key_ids: list[str]) -> dict[str, bytes]:
        with _errors.mapped(only=_errors.DRIVER_ERRORS):
            rows = await self.pool.fetch(
                f"SELECT key_id, key FROM {self.table} WHERE key_id = ANY($1::text[])",
                key_ids,
            )
        return {str(r["key_id"]): bytes(r["key"]) for r in rows}

    async def _delete(self, subject: str) -> str | None:
        with _errors.mapped(only=_errors.DRIVER_ERRORS):
            key_id = await self.pool.fetchval(
                f"DELETE FROM {self.table} WHERE subject = $1 RETURNING key_id",
                subject,
            )
        return None if key_id is None else str(key_id)
