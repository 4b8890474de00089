"""The lock-free append keeps each stream's seq order in the global (commit, position) order.

The append is one statement with no lock (docs/postgres.md, "Appends"). The
claim: at READ COMMITTED a single-statement transaction takes its snapshot
before it gets a transaction id, so a writer whose head read saw the stream's
previous writer committed gets a larger id than that writer. These tests try
to refute it under heavy per-stream contention with commits held open at
random (so that commit order and id order disagree), and show that the checks
catch the order breaking when a transaction takes its id *before* its head read.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import anyio
import asyncpg
import pytest

from evsrc import Committed, Conflict, NewEvent, RecordedEvent
from evsrc.sqlfiles import named_sections, read_sql
from tests.integration.test_pg_races import check_feed
from tests.pgfixtures import open_store

if TYPE_CHECKING:
    from evsrc.postgres import PostgresEventStore

pytestmark = pytest.mark.postgres

#: The store's own append statement.
APPEND = named_sections(read_sql("evsrc.postgres", "queries.sql"))["append"].replace(
    "{schema}", '"public"'
)
#: Rows whose stream's previous row in (commit, position) order is not seq - 1.
OUT_OF_ORDER = """
SELECT count(*) FROM (
    SELECT seq, lag(seq, 1, 0::bigint) OVER (PARTITION BY stream ORDER BY commit, position) AS prev
    FROM evsrc_events
) x
WHERE seq <> prev + 1
"""

#: Every inserted row waits up to 4 ms after its transaction got its id (the
#: id is taken in the INSERT's SELECT list, before the row reaches the trigger).
SLOW_INSERTS = """
CREATE FUNCTION evsrc_test_dawdle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(random() * 0.004);
    RETURN NEW;
END $$;
CREATE TRIGGER evsrc_test_dawdle BEFORE INSERT ON evsrc_events
    FOR EACH ROW EXECUTE FUNCTION evsrc_test_dawdle();
"""


async def test_hot_streams_keep_seq_order_in_the_global_order(pg_dsn: str) -> None:
    """16 writers on 3 streams, append_expect and append mixed, commits dawdling at random."""
    writers, per_writer = 16, 10
    streams = ["a", "b", "c"]
    committed: list[tuple[str, int]] = []
    seen: list[RecordedEvent] = []
    conflicts = 0
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(SLOW_INSERTS)
        async with (
            open_store(pg_dsn, min_size=4, max_size=16) as store,
            open_store(pg_dsn, max_size=2) as reader,
        ):

            async def writer(w: int) -> None:
                nonlocal conflicts
                rnd = random.Random(w)
                for k in range(per_writer):
                    stream = rnd.choice(streams)
                    events = [NewEvent("e", {"w": w, "k": k}) for _ in range(rnd.randint(1, 3))]
                    if rnd.random() < 0.3:
                        r: Committed | Conflict = await store.append(stream, events)
                    else:
                        seq = await store.last_seq(stream)
                        while isinstance(
                            r := await store.append_expect(stream, seq, events), Conflict
                        ):
                            conflicts += 1
                            seq = r.actual
                    assert isinstance(r, Committed)
                    committed.extend((stream, s) for s in range(r.first_seq, r.last_seq + 1))

            async def subscriber() -> None:
                async for e in reader.subscribe():
                    seen.append(e)
                    if e.stream == "the-end":
                        return

            with anyio.fail_after(120):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(subscriber)
                    async with anyio.create_task_group() as wg:
                        for w in range(writers):
                            wg.start_soon(writer, w)
                    await store.append("the-end", [NewEvent("end")])
                    committed.append(("the-end", 1))
            read = [e async for e in store.read_all()]
        assert conflicts > 0  # the writers really raced on the streams
        assert await admin.fetchval(OUT_OF_ORDER) == 0
        check_feed(seen, committed)  # live: every event once, each stream in seq order
        check_feed(read, committed)  # read_all after the fact: the same
        assert [e.checkpoint for e in read] == [e.checkpoint for e in seen]
    finally:
        await admin.close()


async def test_the_checks_catch_an_id_taken_before_the_head_read(
    pg_store: PostgresEventStore, pg_dsn: str
) -> None:
    """The broken interleaving, forced: an explicit transaction takes its id, then appends.

    Its head read (a fresh snapshot at READ COMMITTED) sees a later writer's
    commit, so its event follows that writer's in seq but precedes it in
    (commit, position): a reader that passed the later event would skip it.
    The store never runs its append inside a transaction that has an id.
    """
    await pg_store.append("s", [NewEvent("e")])
    early = await asyncpg.connect(pg_dsn)
    try:
        async with early.transaction():
            await early.execute("SELECT pg_current_xact_id()")  # the id, before the head read
            r = await pg_store.append_expect("s", 1, [NewEvent("e")])  # a later id, committed
            assert isinstance(r, Committed)
            e = NewEvent("early")
            row = await early.fetchrow(
                APPEND,
                "s",
                2,
                [e.id],
                [e.type],
                [1],
                ["{}"],
                ["{}"],
            )
            assert row is not None and row[1] is not None  # inserted as seq 3
        assert await early.fetchval(OUT_OF_ORDER) == 2  # 1 -> 3 and 3 -> 2
        seqs = [(x.stream, x.seq) async for x in pg_store.read_all()]
        assert seqs == [("s", 1), ("s", 3), ("s", 2)]  # what check_feed refuses
        with pytest.raises(AssertionError, match="went 1 -> 3"):
            check_feed([x async for x in pg_store.read_all()], [("s", 1), ("s", 2), ("s", 3)])
    finally:
        await early.close()


async def test_appends_without_expectation_racing_on_one_stream_all_commit(pg_dsn: str) -> None:
    """16 tasks ``append`` to one stream at once: losers of a race retry; none is refused."""
    tasks, appends = 16, 10
    async with open_store(pg_dsn, min_size=4, max_size=16) as store:

        async def writer(t: int) -> None:
            for k in range(appends):
                await store.append("log", [NewEvent("e", {"t": t, "k": k})])

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for t in range(tasks):
                    tg.start_soon(writer, t)
        events = await store.read("log")
    assert [e.seq for e in events] == list(range(1, tasks * appends + 1))
    for t in range(tasks):  # each task's appends in its own order, each once
        assert [e.data["k"] for e in events if e.data["t"] == t] == list(range(appends))
    admin = await asyncpg.connect(pg_dsn)
    try:
        assert await admin.fetchval(OUT_OF_ORDER) == 0
        # The races happened: inserts were attempted and rolled back (dead rows for vacuum).
        await admin.execute("SELECT pg_stat_force_next_flush()")
        attempted = await admin.fetchval(
            "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'evsrc_events'"
        )
        assert attempted > tasks * appends
    finally:
        await admin.close()
