"""The PostgreSQL schema: create, migrate, and repair the global order after a restore.

docs/postgres.md, "Schema and migrations" and "Backups and restores".
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import asyncpg

from evsrc.errors import SchemaError
from evsrc.postgres import _errors, _sql

if TYPE_CHECKING:
    from collections.abc import Callable

    from evsrc.postgres._sql import Queries

__all__ = ["migrate", "setup"]

_log = logging.getLogger("evsrc.postgres")
#: Serialises concurrent setup() calls (any constant; transaction-scoped).
_SETUP_LOCK: Final = 0x65767372635F7375  # "evsrc_su"
#: What setup() maps (other errors are bugs and pass through).
_SETUP_ERRORS: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def setup(
    pool: asyncpg.Pool, schema: str, queries: Queries, *, closed: Callable[[], bool]
) -> bool:
    """``PostgresEventStore.setup``: :func:`migrate` in a transaction, errors mapped."""
    with _errors.mapped(closed=closed, only=_SETUP_ERRORS):
        async with pool.acquire() as conn, conn.transaction():
            return await migrate(conn, schema, queries)


async def migrate(conn: asyncpg.pool.PoolConnectionProxy, schema: str, queries: Queries) -> bool:
    """Create ``schema``'s tables, or migrate them, on ``conn`` inside its transaction.

    Concurrent calls queue on an advisory lock. ``SchemaError`` if the database
    holds a newer schema than this release knows. Returns whether it repaired
    the global order after a restore.
    """
    latest = _sql.latest_version()
    q = _sql.quote_schema(schema)
    version = conn.get_server_version()
    if version.major < 13:
        msg = f"evsrc needs PostgreSQL 13 or newer (xid8), this server is {version}"
        raise SchemaError(msg)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _SETUP_LOCK)
    # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when
    # the schema exists: an application role without it may still run
    # setup() against a schema that is up to date.
    if await conn.fetchval("SELECT to_regnamespace($1) IS NULL", q):
        await conn.execute(f"CREATE SCHEMA {q}")
    has_version = await conn.fetchval(
        "SELECT to_regclass($1) IS NOT NULL", f"{q}.evsrc_schema_version"
    )
    if not has_version:
        await conn.execute(_sql.schema_sql(q))
        for n in range(1, latest + 1):
            await conn.execute(queries.stamp_version, n)
        return False
    current = await conn.fetchval(queries.schema_version) or 0
    if current > latest:
        msg = (
            f"schema {schema!r} is at version {current}, newer than this "
            f"release of evsrc ({latest}); upgrade evsrc"
        )
        raise SchemaError(msg)
    for n, sql in _sql.migrations(q, current):
        await conn.execute(sql)
        await conn.execute(queries.stamp_version, n)
    if await conn.fetchval(queries.order_broken):
        return await _repair_order(conn, schema, queries)
    return False


async def _repair_order(
    conn: asyncpg.pool.PoolConnectionProxy, schema: str, queries: Queries
) -> bool:
    """Make a restored store's global order this cluster's (queries.sql, THE ORDER AFTER
    A RESTORE).

    Old events keep their relative order, new ones sort after them, saved
    checkpoints move along; checkpoints from before, kept elsewhere, are
    refused by ``GlobalLog._check_restored`` (_global.py).
    """
    events = _sql.qualified(schema, "evsrc_events")
    checkpoints = _sql.qualified(schema, "evsrc_checkpoints")
    has_checkpoints = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", checkpoints)
    # Appends and checkpoint saves wait for the repair; reads go on (old order).
    locked = f"{events}, {checkpoints}" if has_checkpoints else events
    await conn.execute(f"LOCK TABLE {locked} IN SHARE ROW EXCLUSIVE MODE")
    moved = "UPDATE 0"
    if has_checkpoints:
        moved = await conn.execute(queries.repair_checkpoints)
    renumbered = await conn.execute(queries.repair_events)
    await conn.execute(queries.repair_positions)
    _log.warning(
        "setup() repaired the global order of schema %r after a restore from a cluster "
        "ahead of this one: %s events renumbered in their old order, %s saved "
        "checkpoints moved along; checkpoints kept elsewhere from before now are refused "
        "(docs/postgres.md, Backups and restores)",
        schema,
        renumbered.rsplit(" ", 1)[-1],
        moved.rsplit(" ", 1)[-1],
    )
    return True
