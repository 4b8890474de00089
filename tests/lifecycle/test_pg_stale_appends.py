"""Removals on PostgreSQL against appends that read the head before a row they race was removed.

Appends take no lock: one that read head h inserts at h + 1 and counts on the
unique (stream, seq) key to fail if another writer committed there first. A
removal makes that row a dead tuple, which the key ignores. So delete, truncate
and the sweep wait out the appends in flight first (schema.sql, WHY EVERY
REMOVAL...). Here a trigger makes one append dawdle between its head read and
its insert while another writer moves the head and a removal runs: the late
append must end after the new head (or refuse a tombstone), never below it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio
import asyncpg
import pytest

from evsrc import STREAM_DELETED, NewEvent, StreamDeletedError
from tests.pgfixtures import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from evsrc.postgres import PostgresEventStore

pytestmark = pytest.mark.postgres

DAWDLE = """
CREATE FUNCTION evsrc_test_dawdle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.type = 'slow' THEN
        PERFORM pg_sleep(0.5);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER evsrc_test_dawdle BEFORE INSERT ON evsrc_events
FOR EACH ROW EXECUTE FUNCTION evsrc_test_dawdle();
"""


@pytest.fixture
async def other(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def dawdling(other: asyncpg.Connection) -> None:
    """Until one backend sleeps in the trigger (it read the head already)."""
    with anyio.fail_after(20):
        while True:
            await other.execute("SELECT pg_stat_clear_snapshot()")
            n = await other.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event = 'PgSleep'"
            )
            if n:
                return
            await anyio.sleep(0.005)


def ev(i: int, type: str = "t") -> NewEvent:
    return NewEvent(type, {"i": i})


async def remove(store: PostgresEventStore, how: str) -> None:
    if how == "truncate":
        assert await store.truncate_before("s", 5) == 4  # seqs 1-4 go, head 5 stays
    else:
        await store.set_stream_metadata("s", max_count=1)
        assert await store.sweep() == 4


@pytest.mark.parametrize("how", ["truncate", "sweep"])
async def test_a_late_append_never_fills_a_removed_seq(
    pg_dsn: str, other: asyncpg.Connection, how: str
) -> None:
    async with open_store(pg_dsn, max_size=4) as store:
        await store.append("s", [ev(i) for i in range(3)])
        await other.execute(DAWDLE)
        late = asyncio.ensure_future(store.append("s", [ev(3, "slow")]))  # read head 3
        await dawdling(other)
        moved = await store.append("s", [ev(4), ev(5)])  # seqs 4 and 5, head 5
        assert (moved.first_seq, moved.last_seq) == (4, 5)
        await remove(store, how)
        committed = await late
        # It lost seq 4 to the other writer, then read the head again: after 5.
        assert (committed.first_seq, committed.last_seq) == (6, 6)
        rows = await other.fetch("SELECT seq, type FROM evsrc_events WHERE stream = 's'")
        assert sorted((r["seq"], r["type"]) for r in rows) == [(5, "t"), (6, "slow")]
        order = [(e.seq, e.checkpoint) async for e in store.read_all()]
        assert [seq for seq, _ in order] == sorted(seq for seq, _ in order)


async def test_a_late_append_never_writes_behind_a_tombstone(
    pg_dsn: str, other: asyncpg.Connection
) -> None:
    async with open_store(pg_dsn, max_size=4) as store:
        await store.append("s", [ev(i) for i in range(3)])
        await other.execute(DAWDLE)
        late = asyncio.ensure_future(store.append("s", [ev(3, "slow")]))  # read head 3
        await dawdling(other)
        await store.append("s", [ev(4)])  # seq 4
        deleted = await store.delete_stream("s", hard=True)  # the tombstone at 5
        assert deleted.last_seq == 4
        with pytest.raises(StreamDeletedError):
            await late
        rows = await other.fetch("SELECT seq, type FROM evsrc_events WHERE stream = 's'")
        assert [(r["seq"], r["type"]) for r in rows] == [(5, STREAM_DELETED)]


async def test_a_late_append_expect_sees_a_conflict_after_a_soft_delete(
    pg_dsn: str, other: asyncpg.Connection
) -> None:
    async with open_store(pg_dsn, max_size=4) as store:
        await store.append("s", [ev(i) for i in range(3)])
        await other.execute(DAWDLE)
        late = asyncio.ensure_future(store.append_expect("s", 3, [ev(3, "slow")]))
        await dawdling(other)
        await store.append("s", [ev(4)])  # seq 4
        await store.delete_stream("s")  # the deletion at 5
        result = await late
        assert (result.expected, result.actual) == (3, 5)  # a Conflict, nothing written
        rows = await other.fetch("SELECT seq, type FROM evsrc_events WHERE stream = 's'")
        assert [(r["seq"], r["type"]) for r in rows] == [(5, STREAM_DELETED)]
