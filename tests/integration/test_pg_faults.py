"""Real faults: backends killed mid-append, cancelled tasks, every connection dropped.

Nothing here is mocked: a second connection blocks the appender (a table lock,
or a sleeping trigger installed in this test's own database) and kills its
backend with ``pg_terminate_backend``. After each fault every stream holds
whole appends only, the pool heals by itself, the caller got a typed error,
and retrying with the same event ids is safe.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import asyncpg
import pytest

from evsrc import (
    Committed,
    Conflict,
    NewEvent,
    OutcomeUnknownError,
    RecordedEvent,
    StoreClosedError,
    StoreUnavailableError,
)
from evsrc.postgres import PostgresEventStore
from tests.pgfixtures import admin_dsn, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.postgres


@pytest.fixture
async def other(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, outside the store's pool."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def waiting_backend(conn: asyncpg.Connection, wait_event: str) -> int:
    """The pid of the one other backend of this database waiting on ``wait_event``."""
    with anyio.fail_after(20):
        while True:
            # Inside a transaction pg_stat_activity is a snapshot; refresh it.
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            pids = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND wait_event = $1",
                wait_event,
            )
            if len(pids) == 1:
                return int(pids[0]["pid"])
            await anyio.sleep(0.01)


async def gone_or_idle(conn: asyncpg.Connection, pid: int) -> None:
    with anyio.fail_after(20):
        while await conn.execute("SELECT pg_stat_clear_snapshot()") and await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", pid
        ):
            await anyio.sleep(0.01)


def events(n: int, tag: str) -> list[NewEvent]:
    return [NewEvent("part", {"i": i}, {"append": tag, "size": n}) for i in range(n)]


def assert_whole(recorded: list[RecordedEvent]) -> None:
    assert [e.seq for e in recorded] == list(range(1, len(recorded) + 1))
    sizes = Counter(e.metadata["append"] for e in recorded)
    for e in recorded:
        assert sizes[e.metadata["append"]] == e.metadata["size"], "a partial append"


async def test_backend_killed_while_append_waits(pg_dsn: str, other: Any) -> None:
    async with open_store(pg_dsn, max_size=1) as store:
        await store.append_expect("s", 0, events(1, "first"))
        batch = events(3, "killed")
        async with other.transaction():
            # The appender gets as far as its INSERT and waits on this lock.
            await other.execute("LOCK TABLE evsrc_events IN SHARE MODE")
            task = asyncio.ensure_future(store.append_expect("s", 1, batch))
            pid = await waiting_backend(other, "relation")
            assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises(OutcomeUnknownError) as info:
                await task
        assert info.value.stream == "s"
        assert isinstance(info.value.__cause__, Exception)
        assert_whole(await store.read("s"))
        assert await store.last_seq("s") == 1  # it was rolled back
        # The pool (of one) replaced the dead connection; the retry is safe.
        r = await store.append_expect("s", 1, batch)
        assert isinstance(r, Committed)
        assert (r.first_seq, r.last_seq) == (2, 4)
        assert await store.append_expect("s", 1, batch) == r  # and idempotent
        assert_whole(await store.read("s"))
        assert [e.seq async for e in store.read_all()] == [1, 2, 3, 4]


async def test_backend_killed_between_rows_of_one_append(pg_dsn: str, other: Any) -> None:
    # A trigger that sleeps before the third row: rows 1 and 2 are written,
    # uncommitted, when the backend dies.
    await other.execute(
        """
        CREATE FUNCTION test_slow_third_row() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.seq = 3 THEN PERFORM pg_sleep(60); END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_slow_third_row BEFORE INSERT ON evsrc_events
            FOR EACH ROW EXECUTE FUNCTION test_slow_third_row();
        """
    )
    async with open_store(pg_dsn, max_size=2) as store:
        batch = events(5, "sleepy")
        task = asyncio.ensure_future(store.append("s", batch))
        pid = await waiting_backend(other, "PgSleep")
        assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(OutcomeUnknownError):
            await task
        assert await store.read("s") == []
        assert [e async for e in store.read_all()] == []
        await other.execute("DROP TRIGGER test_slow_third_row ON evsrc_events")
        r = await store.append("s", batch)
        assert (r.first_seq, r.last_seq) == (1, 5)
        assert await store.append("s", batch) == r
        assert_whole(await store.read("s"))
        assert await store.count("s") == 5


async def test_cancelled_append_writes_nothing_and_the_pool_recovers(
    pg_dsn: str, other: Any
) -> None:
    async with open_store(pg_dsn, max_size=1) as store:
        await store.append("s", events(2, "before"))
        batch = events(4, "cancelled")
        async with other.transaction():
            await other.execute("LOCK TABLE evsrc_events IN SHARE MODE")
            task = asyncio.ensure_future(store.append_expect("s", 2, batch))
            pid = await waiting_backend(other, "relation")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # asyncpg cancels the statement on the server; wait until it has,
            # then let the lock go: nothing may commit after the cancellation.
            await gone_or_idle(other, pid)
        assert_whole(await store.read("s"))
        assert await store.last_seq("s") == 2
        # The single pooled connection is usable again.
        r = await store.append_expect("s", 2, batch)
        assert (r.first_seq, r.last_seq) == (3, 6)  # type: ignore[union-attr]
        assert_whole(await store.read("s"))


async def test_every_backend_of_the_database_terminated(pg_dsn: str, other: Any) -> None:
    """The substitute for a server restart: drop every connection to this database."""
    seen: list[RecordedEvent] = []
    committed: list[tuple[str, int]] = []

    async def append_until_done(store: PostgresEventStore, stream: str, batch: Any) -> None:
        while True:
            try:
                r = await store.append(stream, batch)
            except (OutcomeUnknownError, StoreUnavailableError):
                await anyio.sleep(0.01)
                continue  # same ids: a retry cannot duplicate
            committed.extend((stream, s) for s in range(r.first_seq, r.last_seq + 1))
            return

    async with (
        open_store(pg_dsn, min_size=4, max_size=4) as writer,
        open_store(pg_dsn, max_size=2, poll_interval=0.05) as reader,
    ):

        async def subscriber() -> None:
            async for e in reader.subscribe():
                seen.append(e)
                if e.stream == "the-end":
                    return

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(subscriber)
                for k in range(8):
                    await append_until_done(writer, f"s{k % 3}", events(3, f"a{k}"))
                killed = await other.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'"
                )
                assert killed >= 2  # at least the writer's and the reader's connections
                async with anyio.create_task_group() as wg:
                    for k in range(8, 24):
                        wg.start_soon(append_until_done, writer, f"s{k % 3}", events(3, f"a{k}"))
                await append_until_done(writer, "the-end", events(1, "end"))
        for k in range(3):
            assert_whole(await writer.read(f"s{k}"))
        assert sum([await writer.count(f"s{k}") for k in range(3)]) == 24 * 3
    assert Counter((e.stream, e.seq) for e in seen) == Counter(committed)


async def test_unreachable_server_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailableError) as info:
        await PostgresEventStore.connect("postgresql://postgres@127.0.0.1:1/none", timeout=2)
    assert not isinstance(info.value, OutcomeUnknownError)


async def test_database_refusing_connections_is_store_unavailable(pg_dsn: str) -> None:
    database = pg_dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(admin_dsn())
    try:
        async with open_store(pg_dsn, min_size=0, max_size=2) as store:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            try:
                # No connection was ever opened, so none can be reused: the append
                # certainly did not reach the server.
                with pytest.raises(StoreUnavailableError) as info:
                    await store.append("s", events(1, "refused"))
                assert not isinstance(info.value, OutcomeUnknownError)
                with pytest.raises(StoreUnavailableError):
                    await store.read("s")
            finally:
                await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            r = await store.append("s", events(1, "accepted"))
            assert (r.first_seq, r.last_seq) == (1, 1)
    finally:
        await admin.close()


async def test_closed_store_refuses_and_ends_subscribers(pg_store: PostgresEventStore) -> None:
    await pg_store.append("s", events(1, "x"))
    got: list[BaseException] = []

    async def consume() -> None:
        try:
            async for _ in pg_store.subscribe():
                pass
        except StoreClosedError as exc:
            got.append(exc)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await anyio.sleep(0.05)
            await pg_store.close()
    assert len(got) == 1
    for call in (pg_store.read("s"), pg_store.last_seq("s"), pg_store.append("s", events(1, "y"))):
        with pytest.raises(StoreClosedError):
            await call
    with pytest.raises(StoreClosedError):
        async for _ in pg_store.read_all():
            pass


@pytest.mark.parametrize("expectation", ["expected", "any"])
async def test_the_database_refuses_a_duplicate_seq_from_a_foreign_writer(
    pg_dsn: str, other: Any, expectation: str
) -> None:
    """A writer that inserts rows itself still cannot make a gap or a dup.

    The unique (stream, seq) key stops the evsrc append, which waits for the
    intruder's commit; it re-reads the head and reports a conflict (or, without
    expectation, lands after the intruder).
    """
    async with open_store(pg_dsn) as store:
        await store.append_expect("s", 0, events(1, "first"))
        async with other.transaction():
            await other.execute(
                "INSERT INTO evsrc_events (commit, stream, seq, id, type, version, data, metadata)"
                " VALUES (pg_current_xact_id(), 's', 2, gen_random_uuid(), 'intruder', 1,"
                ' \'{}\', \'{"append": "intruder", "size": 1}\')'
            )
            batch = events(2, "mine")
            if expectation == "expected":
                task = asyncio.ensure_future(store.append_expect("s", 1, batch))
            else:
                task = asyncio.ensure_future(store.append("s", batch))
            await waiting_backend(other, "transactionid")  # on the intruder's index entry
        r = await task
        if expectation == "expected":
            assert r == Conflict("s", 1, 2)
            assert [e.type for e in await store.read("s")] == ["part", "intruder"]
        else:
            assert isinstance(r, Committed)
            assert (r.first_seq, r.last_seq) == (3, 4)
            assert_whole(await store.read("s"))
