"""Projections on SQLite: checkpoints in the file, exactly once across failures and kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from evsrc import Checkpoint, NewEvent, ProjectionError
from evsrc.sqlite import SqliteCheckpointStore, SqliteEventStore, SqliteProjectionRunner
from tests.sqlite._projector import Tally, make_table

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def store(tmp_path: Path):
    async with await SqliteEventStore.connect(tmp_path / "p.db") as store:
        await store.setup()
        await make_table(store)
        yield store


async def history(store: SqliteEventStore, n: int) -> None:
    for i in range(n):
        await store.append(f"s{i % 3}", [NewEvent("counted", {"n": i})])
        if i % 4 == 0:
            await store.append("noise", [NewEvent("ignored", {"n": -i})])


async def tally(store: SqliteEventStore) -> dict[tuple[str, int], int]:
    def rows(conn):
        return conn.execute("SELECT stream, seq, times FROM tally").fetchall()

    return {(s, q): t for s, q, t in await store._read(rows)}


async def counted(store: SqliteEventStore) -> set[tuple[str, int]]:
    return {(e.stream, e.seq) async for e in store.read_all() if e.type == "counted"}


async def test_checkpoint_store(store: SqliteEventStore) -> None:
    cps = SqliteCheckpointStore(store)
    await cps.setup()  # idempotent: the table comes with the store's schema
    assert await cps.load("x") is None
    await cps.save("x", Checkpoint(3, 4))
    await cps.save("x", Checkpoint(5, 6))
    assert await cps.load("x") == Checkpoint(5, 6)
    assert await cps.load("y") is None


async def test_exactly_once_across_a_failing_handler(store: SqliteEventStore) -> None:
    await history(store, 12)
    runner = SqliteProjectionRunner(store, Tally(fail_at=7))
    await runner.setup()
    with pytest.raises(ProjectionError) as info:
        await runner.catch_up()
    failed = info.value.event  # type: ignore[attr-defined]
    assert failed.data == {"n": 7}
    # The failed event's change rolled back with its checkpoint.
    done = await tally(store)
    assert (failed.stream, failed.seq) not in done
    assert set(done.values()) == {1}
    assert len(done) == 7
    saved = await runner.sqlite_checkpoints.load(runner.name)
    assert saved is not None and saved < failed.checkpoint
    # A restarted runner resumes right there and applies each event once.
    restarted = SqliteProjectionRunner(store, Tally())
    assert await restarted.catch_up() >= 5
    done = await tally(store)
    assert set(done) == await counted(store)
    assert set(done.values()) == {1}
    # Live: a new event is projected once, and the skipped ones are skipped.
    async with anyio.create_task_group() as tg:
        tg.start_soon(restarted.run)
        r = await store.append("s0", [NewEvent("counted", {"n": 99})])
        with anyio.fail_after(10):
            await restarted.wait_until(r)
        tg.cancel_scope.cancel()
    done = await tally(store)
    assert set(done) == await counted(store)
    assert set(done.values()) == {1}


async def test_exactly_once_across_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    async with await SqliteEventStore.connect(path) as store:
        await store.setup()
        await history(store, 300)
    for _round in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.sqlite._projector", str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            for _ in range(30 + 40 * _round):  # let it project a while, then kill it
                assert proc.stdout.readline().startswith("handled")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        async with await SqliteEventStore.connect(path) as store:
            done = await tally(store)
            assert set(done.values()) == {1}  # nothing applied twice
            assert 30 <= len(done) < 300  # it really stopped mid-way
            saved = await SqliteCheckpointStore(store).load("tally")
            assert saved is not None
            # The read model holds exactly the events up to the saved checkpoint.
            upto = {
                (e.stream, e.seq)
                async for e in store.read_all()
                if e.type == "counted" and e.checkpoint <= saved
            }
            assert set(done) == upto
    async with await SqliteEventStore.connect(path) as store:
        restarted = SqliteProjectionRunner(store, Tally())
        await restarted.catch_up()
        done = await tally(store)
        assert set(done) == await counted(store)
        assert set(done.values()) == {1}


async def test_runners_on_separate_connections_apply_each_event_once(tmp_path: Path) -> None:
    """Two store objects on one file (as two processes would be): each event applied once."""
    path = tmp_path / "two.db"
    async with (
        await SqliteEventStore.connect(path) as a_store,
        await SqliteEventStore.connect(path) as b_store,
    ):
        await a_store.setup()
        await make_table(a_store)
        await history(a_store, 40)
        a = SqliteProjectionRunner(a_store, Tally(delay=0.001), batch_size=7)
        b = SqliteProjectionRunner(b_store, Tally(delay=0.001), batch_size=5)
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.run)
            tg.start_soon(b.run)
            for i in range(40, 120):
                await (a_store if i % 2 else b_store).append(
                    f"s{i % 3}", [NewEvent("counted", {"n": i})]
                )
                if i % 10 == 0:
                    await anyio.sleep(0.01)
            with anyio.fail_after(30):
                await a.wait_until_head()
                await b.wait_until_head()
            tg.cancel_scope.cancel()
        done = await tally(a_store)
        assert set(done) == await counted(a_store)
        assert set(done.values()) == {1}  # no event applied twice


async def test_a_stale_checkpoint_write_is_refused(store: SqliteEventStore) -> None:
    cps = SqliteCheckpointStore(store)
    assert await cps.compare_and_save("x", None, Checkpoint(1, 1))
    assert not await cps.compare_and_save("x", None, Checkpoint(2, 2))  # not the first any more
    assert not await cps.compare_and_save("x", Checkpoint(9, 9), Checkpoint(2, 2))  # sideways
    assert await cps.compare_and_save("x", Checkpoint(1, 1), Checkpoint(2, 2))
    assert await cps.load("x") == Checkpoint(2, 2)
    await cps.reset("x")
    assert await cps.load("x") is None
