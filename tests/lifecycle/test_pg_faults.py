"""Real faults during deletions on PostgreSQL: killed backends, cancelled tasks, waiting readers.

A second connection blocks the deleter (an append in flight: the ROW EXCLUSIVE
lock on the events table every append holds, which a removal waits out; or a
row lock on one of the events it removes) and kills its backend with
``pg_terminate_backend`` or cancels its task. A deletion is all or nothing, the
pool heals, and global readers that waited for it miss nothing.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio
import asyncpg
import pytest

from evsrc import STREAM_DELETED, NewEvent, RecordedEvent, StoreUnavailableError
from tests.pgfixtures import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.postgres

#: What an append in flight holds (from before its snapshot to its commit).
APPENDING = "LOCK TABLE evsrc_events IN ROW EXCLUSIVE MODE"


@pytest.fixture
async def other(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def waiting_backend(conn: asyncpg.Connection, wait_event: str) -> int:
    with anyio.fail_after(20):
        while True:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            pids = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND wait_event = $1",
                wait_event,
            )
            if len(pids) == 1:
                return int(pids[0]["pid"])
            await anyio.sleep(0.01)


def ev(i: int) -> NewEvent:
    return NewEvent("t", {"i": i})


@pytest.mark.parametrize("hard", [False, True])
async def test_a_delete_killed_while_it_waits_for_the_stream_changes_nothing(
    pg_dsn: str, other: asyncpg.Connection, hard: bool
) -> None:
    async with open_store(pg_dsn, max_size=1) as store:
        await store.append("s", [ev(i) for i in range(50)])
        async with other.transaction():
            await other.execute(APPENDING)  # an append in progress
            task = asyncio.ensure_future(store.delete_stream("s", hard=hard))
            pid = await waiting_backend(other, "relation")
            assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises(StoreUnavailableError):
                await task
        assert [e.seq for e in await store.read("s")] == list(range(1, 51))
        assert [e.type async for e in store.read_all()] == ["t"] * 50
        d = await store.delete_stream("s", hard=hard)  # the pool healed
        assert d.last_seq == 50


async def test_a_delete_killed_in_the_middle_of_its_delete_is_rolled_back(
    pg_dsn: str, other: asyncpg.Connection
) -> None:
    async with open_store(pg_dsn, max_size=2) as store:
        await store.append("s", [ev(i) for i in range(50)])
        async with other.transaction():
            # The deleter removes rows up to this one and waits for its lock.
            await other.execute(
                "SELECT 1 FROM evsrc_events WHERE stream = 's' AND seq = 40 FOR UPDATE"
            )
            task = asyncio.ensure_future(store.delete_stream("s", hard=True))
            pid = await waiting_backend(other, "transactionid")
            assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises(StoreUnavailableError):
                await task
        assert [e.seq for e in await store.read("s")] == list(range(1, 51))
        r = await store.append("s", [ev(50)])  # not tombstoned
        assert r.last_seq == 51


async def test_a_cancelled_delete_changes_nothing(pg_dsn: str, other: asyncpg.Connection) -> None:
    async with open_store(pg_dsn, max_size=1) as store:
        await store.append("s", [ev(i) for i in range(10)])
        async with other.transaction():
            await other.execute(APPENDING)
            task = asyncio.ensure_future(store.delete_stream("s"))
            await waiting_backend(other, "relation")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert len(await store.read("s")) == 10
        assert await store.last_seq("s") == 10
        assert (await store.delete_stream("s")).last_seq == 10


async def test_appends_wait_for_a_slow_delete_then_readers_miss_nothing(
    pg_dsn: str, other: asyncpg.Connection
) -> None:
    """Appends to other streams wait for a stuck delete; a subscriber then sees all, in order."""
    async with open_store(pg_dsn, max_size=4) as store:
        await store.append("s", [ev(i) for i in range(50)])
        seen: list[RecordedEvent] = []

        async def follow() -> None:
            async for e in store.subscribe():
                seen.append(e)

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            async with other.transaction():
                await other.execute(
                    "SELECT 1 FROM evsrc_events WHERE stream = 's' AND seq = 40 FOR UPDATE"
                )
                deleting = asyncio.ensure_future(store.delete_stream("s"))
                await waiting_backend(other, "transactionid")
                # The deletion holds the events table against appends (it waited
                # out those in flight): later appends queue until it commits.
                appending = [
                    asyncio.ensure_future(store.append(f"other-{k}", [ev(k)])) for k in range(5)
                ]
                await anyio.sleep(0.3)
                assert not any(a.done() for a in appending)
            d = await deleting
            await asyncio.gather(*appending)
            with anyio.fail_after(30):
                while sum(e.stream.startswith("other-") for e in seen) < 5:
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        checkpoints = [e.checkpoint for e in seen]
        assert checkpoints == sorted(checkpoints)
        assert len(set(checkpoints)) == len(checkpoints)
        marker = next(e for e in seen if e.type == STREAM_DELETED)
        assert marker.checkpoint == d.checkpoint
        # The appends got their ids after the deletion committed: they follow it.
        after = [e.stream for e in seen if e.checkpoint > marker.checkpoint]
        assert sorted(after) == [f"other-{k}" for k in range(5)]
        stored = [e.id async for e in store.read_all()]
        assert set(stored) <= {e.id for e in seen}
