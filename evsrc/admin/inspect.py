"""What the admin command reports, gathered from any store (PostgreSQL-specific where it is)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsrc.errors import ConfigurationError, InvalidCheckpointError, InvalidInputError
from evsrc.parking import PARKED_PREFIX
from evsrc.records import Checkpoint

if TYPE_CHECKING:
    from evsrc.postgres import PostgresEventStore
    from evsrc.store import EventStore

__all__ = ["reset_projection", "status", "streams"]

#: Lag is counted up to this many events (a count beyond is reported as "at least").
LAG_LIMIT = 1_000_000


def _postgres(store: EventStore) -> PostgresEventStore | None:
    try:
        from evsrc.postgres import PostgresEventStore
    except ImportError:  # pragma: no cover - without asyncpg there is no such store
        return None
    return store if isinstance(store, PostgresEventStore) else None


async def streams(store: EventStore, prefix: str = "") -> list[dict[str, Any]]:
    """``[{"stream", "events"}]`` of every stream starting with ``prefix``, by name."""
    if type(prefix) is not str:
        msg = f"prefix must be a str, got {type(prefix).__name__}"
        raise InvalidInputError(msg, argument="prefix", value=prefix)
    pg = _postgres(store)
    if pg is not None:
        rows = await pg.pool.fetch(
            f"SELECT stream, max(seq) AS events FROM {pg.table('events')} "
            "WHERE left(stream, length($1)) = $1 GROUP BY stream ORDER BY stream",
            prefix,
        )
        return [{"stream": r["stream"], "events": r["events"]} for r in rows]
    # Any other backend: one pass over the global log.
    lengths: dict[str, int] = {}
    async for event in store.read_all():
        if event.stream.startswith(prefix):
            lengths[event.stream] = event.seq
    return [{"stream": s, "events": n} for s, n in sorted(lengths.items())]


async def status(store: EventStore) -> dict[str, Any]:
    """Schema version, counts, head checkpoint, projections and (PostgreSQL) what holds back."""
    pg = _postgres(store)
    if pg is not None:
        return await _pg_status(pg)
    events = 0
    names: set[str] = set()
    head: Checkpoint | None = None
    async for event in store.read_all():
        events += 1
        names.add(event.stream)
        head = event.checkpoint
    return {
        "backend": type(store).__name__,
        "schema_version": None,
        "events": events,
        "streams": len(names),
        "head": None if head is None else str(head),
        "projections": [],
    }


async def _pg_status(store: PostgresEventStore) -> dict[str, Any]:
    events_table = store.table("events")
    async with store.pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT count(*) AS events, count(DISTINCT stream) AS streams,"
            f" (SELECT commit::text || ':' || position FROM {events_table}"
            f"  ORDER BY commit DESC, position DESC LIMIT 1) AS head,"
            f" count(*) FILTER (WHERE commit >= pg_snapshot_xmin(pg_current_snapshot()))"
            f"  AS held_back"
            f" FROM {events_table}"
        )
        assert row is not None
        projections: list[dict[str, Any]] = []
        checkpoints = store.table("checkpoints")
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", checkpoints):
            for name, text in await conn.fetch(
                f"SELECT name, checkpoint FROM {checkpoints} ORDER BY name"
            ):
                # A handled parked replay is remembered as a marker row in the same table
                # (``$parked:<name>#<n>``); it is not a projection.
                if not name.startswith(PARKED_PREFIX):
                    projections.append(await _projection(conn, events_table, name, text))
        oldest = await conn.fetchrow(
            "SELECT pid, datname, usename, state, xact_start::text AS xact_start,"
            " (now() - xact_start)::text AS age, left(query, 200) AS query"
            " FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
            " ORDER BY age(backend_xid) DESC LIMIT 1"
        )
    return {
        "backend": "PostgresEventStore",
        "schema": store.schema,
        "schema_version": await store.schema_version(),
        "events": row["events"],
        "streams": row["streams"],
        "head": row["head"],
        "held_back": row["held_back"],
        "projections": projections,
        "oldest_transaction": None if oldest is None else dict(oldest),
    }


async def _projection(conn: Any, events_table: str, name: str, text: str) -> dict[str, Any]:
    try:
        cp = Checkpoint.parse(text)
    except InvalidCheckpointError:
        return {"name": name, "checkpoint": text, "lag": None}
    lag = await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM {events_table}"
        " WHERE (commit, position) > ($1::text::xid8, $2::bigint) LIMIT $3) s",
        str(cp.commit),
        cp.position,
        LAG_LIMIT,
    )
    return {"name": name, "checkpoint": text, "lag": lag}


async def reset_projection(store: EventStore, name: str) -> bool:
    """Forget the saved checkpoint of projection ``name``; ``False`` if it had none.

    The projection replays from the start the next time it runs (its read
    model must be cleared by whoever owns it).
    """
    pg = _postgres(store)
    if pg is None:
        msg = f"{type(store).__name__} keeps no projection checkpoints"
        raise ConfigurationError(msg)
    table = pg.table("checkpoints")
    async with pg.pool.acquire() as conn:
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
            return False
        done: str = await conn.execute(f"DELETE FROM {table} WHERE name = $1", name)
    return done != "DELETE 0"
