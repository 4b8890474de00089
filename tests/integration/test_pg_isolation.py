"""The store does not depend on the server's default isolation level."""

from __future__ import annotations

from typing import Any

import anyio
import asyncpg
import pytest

from evsrc import Committed, ConfigurationError, Conflict, NewEvent, StoreUnavailableError
from evsrc.postgres import PostgresEventStore
from tests.integration.test_pg_races import race_on_one_stream
from tests.pgfixtures import open_store

pytestmark = pytest.mark.postgres

LEVELS = ["serializable", "repeatable read"]


async def set_database_default(dsn: str, setting: str, value: str) -> None:
    database = dsn.rsplit("/", 1)[1]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"ALTER DATABASE \"{database}\" SET {setting} = '{value}'")
    finally:
        await conn.close()


class CountingConnection(asyncpg.Connection):
    """Counts the append statements its pool sends (the statement that inserts events)."""

    appends = 0

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if "INSERT INTO" in query and "evsrc_events" in query:
            CountingConnection.appends += 1
        return await super().fetchrow(query, *args, **kwargs)


@pytest.fixture
def counting() -> type[CountingConnection]:
    CountingConnection.appends = 0
    return CountingConnection


@pytest.mark.parametrize("level", LEVELS)
async def test_hot_stream_race_under_a_stricter_database_default(
    pg_dsn: str, level: str, counting: type[CountingConnection]
) -> None:
    await set_database_default(pg_dsn, "default_transaction_isolation", level)
    probe = await asyncpg.connect(pg_dsn)
    try:  # the default really applies to a plain connection
        assert await probe.fetchval("SHOW transaction_isolation") == level
    finally:
        await probe.close()
    tasks, appends = 16, 15
    async with open_store(pg_dsn, min_size=4, max_size=16, connection_class=counting) as store:
        calls = await race_on_one_stream(store, tasks, appends)
        async with store.pool.acquire() as conn:
            assert await conn.fetchval("SHOW transaction_isolation") == "read committed"
    assert calls > tasks * appends  # they raced
    # One statement per call, a second only when a writer of the same head
    # committed first (the unique key refused this one): then a Conflict.
    conflicts = calls - tasks * appends
    assert calls <= counting.appends <= calls + conflicts


@pytest.mark.parametrize("level", LEVELS)
async def test_a_borrowed_pool_at_another_level_is_a_configuration_error(
    pg_dsn: str, level: str, counting: type[CountingConnection]
) -> None:
    """A pool built without connect() keeps the database default: never reported as an outage."""
    await set_database_default(pg_dsn, "default_transaction_isolation", level)
    pool = await asyncpg.create_pool(pg_dsn, min_size=8, max_size=8, connection_class=counting)
    assert pool is not None
    outcomes: dict[str, int] = {"committed": 0, "conflict": 0, "configuration": 0}
    try:
        store = PostgresEventStore(pool)
        ops = 0

        async def writer(t: int) -> None:
            nonlocal ops
            for k in range(10):
                ops += 1
                seq = await store.last_seq("hot")
                try:
                    r = await store.append_expect("hot", seq, [NewEvent("e", {"w": f"{t}/{k}"})])
                except ConfigurationError as exc:
                    assert "READ COMMITTED" in str(exc)
                    outcomes["configuration"] += 1
                    continue
                except StoreUnavailableError as exc:  # pragma: no cover - the bug this guards
                    raise AssertionError(f"reported as an outage: {exc!r}") from exc
                assert isinstance(r, (Committed, Conflict))
                outcomes["committed" if isinstance(r, Committed) else "conflict"] += 1

        async with anyio.create_task_group() as tg:
            for t in range(8):
                tg.start_soon(writer, t)
        events = await store.read("hot")
        assert [e.seq for e in events] == list(range(1, outcomes["committed"] + 1))
    finally:
        await pool.close()
    assert sum(outcomes.values()) == ops
    # Internal retries are bounded: at most two append statements per operation.
    assert ops <= counting.appends <= 2 * ops
