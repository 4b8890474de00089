"""The store keeps a pooled connection from one statement to its next, and gives it back.

``evsrc.postgres._pool.Held``: a connection whose statement answered cleanly
is kept for the store's next statement instead of going through asyncpg's
release; what nobody takes within ``HOLD`` goes back to the pool, nothing is
kept while another task waits for the pool, and close() gives everything back.
Real pools on the real server; the fault is a real ``pg_terminate_backend``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import asyncpg
import pytest

from evsrc import Committed, NewEvent
from evsrc.postgres import PostgresEventStore
from evsrc.postgres._pool import HOLD, Held

pytestmark = pytest.mark.postgres


async def _borrowed(
    dsn: str, size: int, *, notify: bool = True
) -> tuple[asyncpg.Pool, PostgresEventStore]:
    pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size)
    assert pool is not None
    return pool, PostgresEventStore(pool, notify=notify)


def _ended(conn: Any) -> bool:
    """Whether the client saw ``conn`` end (asyncpg then takes the proxy back itself)."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True


async def _back_in_pool(pool: asyncpg.Pool, within: float = 2.0) -> float:
    """Seconds until every connection of ``pool`` is idle in it; fails after ``within``."""
    start = time.monotonic()
    while pool.get_idle_size() != pool.get_size():
        assert time.monotonic() - start < within, (pool.get_idle_size(), pool.get_size())
        await asyncio.sleep(HOLD / 4)
    return time.monotonic() - start


async def test_sequential_appends_reuse_one_connection_and_give_it_back(pg_dsn: str) -> None:
    # Without NOTIFYs: the store's coalesced NOTIFY after a commit runs on a
    # pooled connection of its own, which would be out of the pool whenever
    # one is in flight at the count below (it made this test flaky).
    pool, store = await _borrowed(pg_dsn, 4, notify=False)
    try:
        pids: set[int] = set()
        for i in range(50):
            assert isinstance(await store.append_expect("held-seq", i, [NewEvent("E")]), Committed)
            kept = store._held._idle  # what the next statement will take
            assert len(kept) == 1
            pids.add(kept[0].get_server_pid())
        # The same connection served every append; between them it stayed out of the pool.
        assert len(pids) == 1
        assert pool.get_idle_size() == pool.get_size() - 1
        # Nobody took it: it is back within about HOLD.
        assert await _back_in_pool(pool) < 1.0
        assert store._held._idle == []
        assert len(await store.read("held-seq")) == 50
    finally:
        await store.close()
        await pool.close()


async def test_a_task_waiting_for_the_pool_is_not_starved_by_busy_writers(pg_dsn: str) -> None:
    """Two writers keep both connections busy; a third task still gets one, promptly."""
    pool, store = await _borrowed(pg_dsn, 2)
    stop = asyncio.Event()
    counts = [0, 0]

    async def writer(n: int) -> None:
        while not stop.is_set():
            r = await store.append_expect(f"held-busy-{n}", counts[n], [NewEvent("E")])
            assert isinstance(r, Committed)
            counts[n] += 1

    try:
        writers = [asyncio.create_task(writer(n)) for n in (0, 1)]
        while min(counts) < 20:  # both writers are going
            await asyncio.sleep(0.005)
        waits = []
        for _ in range(10):
            t = time.monotonic()
            async with pool.acquire() as conn:
                waits.append(time.monotonic() - t)
                assert await conn.fetchval("SELECT 1") == 1
            before = sum(counts)
            while sum(counts) < before + 4:  # the writers go on meanwhile
                await asyncio.sleep(0.002)
        stop.set()
        await asyncio.gather(*writers)
        # Each acquire waited for one append at most, never for the writers to stop.
        assert max(waits) < 1.0, waits
    finally:
        stop.set()
        await store.close()
        await pool.close()


async def test_close_gives_every_kept_connection_back(pg_dsn: str) -> None:
    pool, store = await _borrowed(pg_dsn, 8)
    try:
        assert isinstance(await store.append_expect("held-close", 0, [NewEvent("E")]), Committed)
        assert len(store._held._idle) == 1  # kept for the next statement
        await store.close()
        assert store._held._idle == []
        assert pool.get_idle_size() == pool.get_size()
        t = time.monotonic()
        await pool.close()  # nothing checked out: closes at once, no grace period
        assert time.monotonic() - t < 2.0
    finally:
        await store.close()
        pool.terminate()


async def test_a_kept_connection_the_server_ended_is_replaced(pg_dsn: str) -> None:
    pool = await asyncpg.create_pool(pg_dsn, min_size=2, max_size=2)
    assert pool is not None
    admin = await asyncpg.connect(pg_dsn)
    held = Held(pool)
    try:
        conn = await held.acquire()
        assert await conn.fetchval("SELECT 1") == 1
        assert held.keep(conn)
        assert held._timer is not None
        held._timer.cancel()  # kept however long the server takes to end it
        held._timer = None
        pid = conn.get_server_pid()
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        while not _ended(conn):
            await asyncio.sleep(0.001)
        fresh = await held.acquire()  # the dead one is given back, not handed out
        assert fresh.get_server_pid() != pid
        assert await fresh.fetchval("SELECT 2") == 2
        assert held.keep(fresh)
        await held.close()
        assert await _back_in_pool(pool) < 2.0
    finally:
        await held.close()
        await admin.close()
        await pool.close()


async def test_a_cancelled_statement_goes_back_through_the_pool(pg_dsn: str) -> None:
    """A statement cancelled mid-flight leaves its connection to asyncpg's release, not kept."""
    pool, store = await _borrowed(pg_dsn, 1)
    admin = await asyncpg.connect(pg_dsn)
    try:
        async with admin.transaction():
            await admin.execute("LOCK TABLE evsrc_events IN ACCESS EXCLUSIVE MODE")
            task = asyncio.create_task(store.append_expect("held-cancel", 0, [NewEvent("E")]))
            await asyncio.sleep(0.2)  # the append waits on the lock, on the server
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert store._held._idle == []
        # The one connection came back usable: the store goes on.
        assert await _back_in_pool(pool) < 2.0
        r = await store.append_expect("held-cancel-2", 0, [NewEvent("E")])
        assert isinstance(r, Committed)
    finally:
        await admin.close()
        await store.close()
        await pool.close()


async def test_nothing_is_kept_once_closed(pg_dsn: str) -> None:
    """A statement that ends after close() gives its connection straight back."""
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    assert pool is not None
    held = Held(pool)
    try:
        conn = await held.acquire()
        assert await conn.fetchval("SELECT 1") == 1
        await held.close()  # the statement above was "in flight" when the store closed
        assert not held.keep(conn)
        await held.release(conn)
        assert await _back_in_pool(pool) < 1.0
    finally:
        await pool.close()


async def test_a_store_made_before_its_pool_is_set_up_still_keeps_connections(
    pg_dsn: str,
) -> None:
    pool = asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)  # set up when awaited
    store = PostgresEventStore(pool)
    await pool
    try:
        assert isinstance(await store.append_expect("held-late", 0, [NewEvent("E")]), Committed)
        assert len(store._held._idle) == 1
    finally:
        await store.close()
        await pool.close()


async def test_close_waits_once_for_release_tasks_that_just_ended(pg_dsn: str) -> None:
    """A release task that ended but has not yet left the set does not make close() spin.

    (Python 3.12's gather() over done tasks returns without letting their
    callbacks run: a loop "while tasks remain" never ended.) A timer signal
    turns such a hang into a failure after 10 s.
    """
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    assert pool is not None
    held = Held(pool)

    async def ended() -> None:
        return None

    task = asyncio.get_running_loop().create_task(ended())
    await task
    held._releasing.add(task)
    task.add_done_callback(held._releasing.discard)  # queued: runs on the loop's next turn

    def spinning(signum: int, frame: object) -> None:
        raise TimeoutError("Held.close() did not return within 10 s")

    before = signal.signal(signal.SIGALRM, spinning)
    signal.setitimer(signal.ITIMER_REAL, 10)  # interrupts even a loop that never yields
    try:
        await held.close()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
        await pool.close()
