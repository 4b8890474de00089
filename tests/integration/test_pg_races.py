"""Real concurrency on a real server: many connections, several OS processes."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import asyncpg
import pytest

from evsrc import Committed, Conflict, NewEvent, RecordedEvent
from tests.pgfixtures import open_store

if TYPE_CHECKING:
    from evsrc.postgres import PostgresEventStore

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


async def race_on_one_stream(
    store: PostgresEventStore, tasks: int, appends: int, stream: str = "hot"
) -> int:
    """``tasks`` writers each commit ``appends`` events to ``stream`` by append_expect.

    Each writer retries on conflict with the actual head. Returns how many
    ``append_expect`` calls the writers made in all; asserts the stream is
    gapless and holds every event exactly once.
    """
    calls = 0

    async def writer(t: int) -> None:
        nonlocal calls
        seq = await store.last_seq(stream)
        for k in range(appends):
            event = NewEvent("race", {"who": f"{t}/{k}"})
            while True:
                calls += 1
                r = await store.append_expect(stream, seq, [event])
                if isinstance(r, Committed):
                    seq = r.last_seq
                    break
                assert isinstance(r, Conflict)
                assert r.actual != seq
                seq = r.actual

    async with anyio.create_task_group() as tg:
        for t in range(tasks):
            tg.start_soon(writer, t)
    events = await store.read(stream)
    assert [e.seq for e in events] == list(range(1, tasks * appends + 1))
    whos = [e.data["who"] for e in events]
    assert sorted(whos) == sorted(f"{t}/{k}" for t in range(tasks) for k in range(appends))
    return calls


async def test_16_connections_race_on_one_stream(pg_dsn: str) -> None:
    tasks, appends = 16, 25
    async with open_store(pg_dsn, min_size=2, max_size=16) as store:
        calls = await race_on_one_stream(store, tasks, appends)
    assert calls > tasks * appends  # they really raced


async def test_4_processes_race_on_one_stream(pg_dsn: str) -> None:
    procs, tasks, appends = 4, 4, 15
    cmd = [sys.executable, "-m", "tests.integration._pg_worker", pg_dsn, "hot"]
    children = [
        await asyncio.create_subprocess_exec(
            *cmd, f"p{p}", str(tasks), str(appends), cwd=ROOT, stdout=subprocess.PIPE
        )
        for p in range(procs)
    ]
    outputs = [await child.communicate() for child in children]
    assert [child.returncode for child in children] == [0] * procs
    conflicts = sum(int(out.strip()) for out, _ in outputs)
    async with open_store(pg_dsn) as store:
        events = await store.read("hot")
        total = procs * tasks * appends
        assert [e.seq for e in events] == list(range(1, total + 1))  # gapless
        whos = Counter(e.data["who"] for e in events)
        assert whos == Counter(
            f"p{p}/{t}/{k}" for p in range(procs) for t in range(tasks) for k in range(appends)
        )  # each append exactly once
        # Per process and task, its own appends are in order.
        order = [tuple(int(x.lstrip("p")) for x in e.data["who"].split("/")) for e in events]
        for p in range(procs):
            for t in range(tasks):
                ks = [k for pp, tt, k in order if (pp, tt) == (p, t)]
                assert ks == sorted(ks)
    assert conflicts > 0


def check_feed(seen: list[RecordedEvent], committed: list[tuple[str, int]]) -> None:
    keys = [(e.stream, e.seq) for e in seen]
    assert Counter(keys) == Counter(committed)  # every committed event, exactly once
    last: dict[str, int] = defaultdict(int)
    for stream, seq in keys:
        assert seq == last[stream] + 1, f"{stream} went {last[stream]} -> {seq}"
        last[stream] = seq
    checkpoints = [e.checkpoint for e in seen]
    assert checkpoints == sorted(checkpoints)
    assert len(set(checkpoints)) == len(checkpoints)


async def test_live_subscriber_in_another_store_never_skips_a_late_commit(pg_dsn: str) -> None:
    """16 writers on 48 streams while one transaction commits long after others that began later.

    The late transaction takes its position (and transaction id) first, then
    stays open while every writer commits. A reader ordered by position alone
    would pass its position before it commits and skip it for ever. The
    subscriber runs on a second store (as if in another process): it is woken
    through LISTEN/NOTIFY, not in-process.
    """
    writers, per_writer = 16, 12
    streams = [f"live-{i}" for i in range(48)]
    committed: list[tuple[str, int]] = []
    seen: list[RecordedEvent] = []
    late_open = anyio.Event()
    release_late = anyio.Event()

    async with (
        open_store(pg_dsn, min_size=4, max_size=16) as writer_store,
        open_store(pg_dsn, max_size=2, poll_interval=30) as reader_store,
    ):
        # poll_interval=30: within the test's time only a wakeup can bring news.
        late_conn = await asyncpg.connect(pg_dsn)

        async def late_writer() -> None:
            async with late_conn.transaction():
                row = await late_conn.fetchrow(
                    "SELECT head, last_position FROM evsrc_append($1, 0, $2, $3, $4, $5, $6)",
                    "late",
                    [NewEvent("late").id],
                    ["late"],
                    [1],
                    ['{"late": true}'],
                    ["{}"],
                )
                assert row["last_position"] is not None
                late_open.set()
                await release_late.wait()
            committed.append(("late", 1))

        async def writer(w: int) -> None:
            rnd = random.Random(w)
            for _ in range(per_writer):
                stream = rnd.choice(streams)
                seq = await writer_store.last_seq(stream)
                while True:
                    size = rnd.randint(1, 3)
                    r = await writer_store.append_expect(
                        stream, seq, [NewEvent("e", {"w": w}) for _ in range(size)]
                    )
                    if isinstance(r, Committed):
                        committed.extend((stream, s) for s in range(r.first_seq, r.last_seq + 1))
                        break
                    seq = r.actual

        async def subscriber() -> None:
            async for e in reader_store.subscribe():
                seen.append(e)
                if e.stream == "the-end":
                    return

        try:
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(subscriber)
                    tg.start_soon(late_writer)
                    await late_open.wait()
                    async with anyio.create_task_group() as wg:
                        for w in range(writers):
                            wg.start_soon(writer, w)
                    # Everything the writers did is committed, but nothing of it
                    # can be delivered yet: the late transaction is older.
                    await anyio.sleep(0.2)
                    assert seen == []
                    release_late.set()
                    await writer_store.append("the-end", [NewEvent("end")])
                    committed.append(("the-end", 1))
        finally:
            await late_conn.close()
    check_feed(seen, committed)
    late = next(i for i, e in enumerate(seen) if e.stream == "late")
    assert late == 0  # it began first, so it is first in global order
    assert len(seen) > writers * per_writer


async def test_read_all_pages_through_many_events(pg_store: PostgresEventStore) -> None:
    for b in range(12):
        await pg_store.append(f"s{b % 3}", [NewEvent("e", {"n": b * 100 + i}) for i in range(100)])
    got = [e.data["n"] async for e in pg_store.read_all()]
    assert got == list(range(1200))
    got = [e.data["n"] async for e in pg_store.read_all(limit=777)]
    assert got == list(range(777))


async def test_read_all_waits_for_commits_held_back_and_warns(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An open older transaction holds back a newer commit; read_all waits, never skips."""
    from evsrc.postgres import _feed

    monkeypatch.setattr(_feed, "HELD_BACK_WARNING", 0.05)
    old = await asyncpg.connect(pg_dsn)
    try:
        async with open_store(pg_dsn) as store:
            tx = old.transaction()
            await tx.start()
            await old.execute("SELECT pg_current_xact_id()")  # an id older than what follows
            r = await store.append("newer", [NewEvent("e")])
            got: list[RecordedEvent] = []

            async def read() -> None:
                got.extend([e async for e in store.read_all()])

            with anyio.fail_after(30), caplog.at_level("WARNING", logger="evsrc.postgres"):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read)
                    while not caplog.records:
                        await anyio.sleep(0.01)
                    assert got == []  # committed, visible, but not yet orderable
                    await tx.commit()
            assert [e.checkpoint for e in got] == [r.checkpoint]
            assert "open transaction" in caplog.records[0].getMessage()
    finally:
        await old.close()


@pytest.mark.parametrize("expectation", ["expected", "any"])
async def test_concurrent_retries_of_one_append_commit_it_once(
    pg_dsn: str, expectation: str
) -> None:
    """16 connections send the same append (same ids) at once: one commit, 16 equal results."""
    batch = [NewEvent("part", {"i": i}) for i in range(3)]
    results: list[Committed | Conflict] = []
    async with open_store(pg_dsn, min_size=2, max_size=16) as store:
        await store.append("s", [NewEvent("first")])

        async def send() -> None:
            if expectation == "expected":
                results.append(await store.append_expect("s", 1, batch))
            else:
                results.append(await store.append("s", batch))

        async with anyio.create_task_group() as tg:
            for _ in range(16):
                tg.start_soon(send)
        assert len(results) == 16
        assert all(r == results[0] for r in results)
        r = results[0]
        assert isinstance(r, Committed)
        assert (r.first_seq, r.last_seq) == (2, 4)
        assert [e.id for e in await store.read("s", after=1)] == [e.id for e in batch]
        assert await store.last_seq("s") == 4


async def test_checkpoints_beyond_the_column_ranges(pg_store: PostgresEventStore) -> None:
    from evsrc import Checkpoint

    r = await pg_store.append("s", [NewEvent("e")])
    for far in ["99999999999999999999:1", "18446744073709551615:0"]:
        assert [e async for e in pg_store.read_all(after=Checkpoint.parse(far))] == []
    # An early commit with an enormous position still precedes later commits.
    early = Checkpoint.parse("1:99999999999999999999")
    assert [e.checkpoint async for e in pg_store.read_all(after=early)] == [r.checkpoint]


async def test_numbers_beyond_bigint_are_handled(pg_store: PostgresEventStore) -> None:
    await pg_store.append("s", [NewEvent("e"), NewEvent("e")])
    huge = 2**70
    assert await pg_store.append_expect("s", huge, [NewEvent("e")]) == Conflict("s", huge, 2)
    assert await pg_store.read("s", after=huge) == []
    assert [e.seq for e in await pg_store.read("s", limit=huge)] == [1, 2]
    assert await pg_store.last_seq("s") == 2
