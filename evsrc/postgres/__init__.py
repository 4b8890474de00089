"""The PostgreSQL backend (asyncio, asyncpg): ``PostgresEventStore``.

Install with the ``postgres`` extra. See ``docs/postgres.md``.
"""

from evsrc.postgres.replicas import ReplicatedPostgresEventStore as ReplicatedPostgresEventStore
from evsrc.postgres.store import PostgresEventStore as PostgresEventStore

__all__ = ["PostgresEventStore", "ReplicatedPostgresEventStore"]
