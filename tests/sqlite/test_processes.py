"""Several OS processes on one SQLite file: racing writers, racing bookers, kill -9 mid-append."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import anyio
import pytest

from evsrc import NewEvent, StoreUnavailableError
from evsrc.sqlite import SqliteEventStore, _sql
from examples.booking import seat_of
from tests.booking.history import checked_history

ROOT = Path(__file__).resolve().parents[2]


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sqlite._worker", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _start_together(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()


def _kill_all(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
        for pipe in (p.stdin, p.stdout):
            if pipe is not None:
                pipe.close()


async def _setup(path: Path) -> None:
    async with await SqliteEventStore.connect(path) as store:
        await store.setup()


@pytest.mark.parametrize(
    ("tasks", "appends", "inline"),
    [(4, 15, False), (1, 40, True)],  # inline: each process appends alone, on its event loop
)
async def test_four_writer_processes_race_on_shared_streams(
    tmp_path: Path, tasks: int, appends: int, inline: bool
) -> None:
    path = tmp_path / "race.db"
    await _setup(path)
    procs_n, streams = 4, 3
    extra = ["inline"] if inline else []
    procs = [
        _spawn("race", str(path), f"p{k}", str(tasks), str(appends), str(streams), *extra)
        for k in range(procs_n)
    ]
    seen = []
    try:
        _start_together(procs)
        async with await SqliteEventStore.connect(path, poll_interval=0.05) as store:

            async def follow() -> None:
                # A live subscriber in this process sees the other processes' appends.
                async for e in store.subscribe():
                    seen.append(e)
                    if len(seen) == total_events[0]:
                        return

            total_events = [10**9]
            with anyio.fail_after(120):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(follow)
                    outputs = [
                        await anyio.to_thread.run_sync(lambda p=p: p.communicate(timeout=110)[0])
                        for p in procs
                    ]
                    assert [p.returncode for p in procs] == [0] * procs_n
                    total_events[0] = len(await _everything(store))
                    if len(seen) >= total_events[0]:
                        tg.cancel_scope.cancel()
            events = await _everything(store)
    finally:
        _kill_all(procs)
    results = [json.loads(out) for out in outputs]
    assert sum(r["conflicts"] for r in results) > 0  # they really raced
    if inline:  # many appends skipped the writer thread, some found the file busy
        assert 0 < sum(r["thread_batches"] for r in results) < sum(r["attempts"] for r in results)
    # Each append landed exactly once, whole and contiguous, in every stream without a gap.
    by_stream: dict[str, list[int]] = defaultdict(list)
    appends_seen: Counter[str] = Counter()
    for e in events:
        by_stream[e.stream].append(e.seq)
        appends_seen[e.data["who"]] += 1
    for stream, seqs in by_stream.items():
        assert seqs == list(range(1, len(seqs) + 1)), stream
    assert len(appends_seen) == procs_n * tasks * appends
    for e in events:
        assert appends_seen[e.data["who"]] == e.data["size"]
    # The subscriber saw every event exactly once, in the global order.
    assert [e.id for e in seen] == [e.id for e in events]
    assert [e.checkpoint for e in seen] == sorted(e.checkpoint for e in seen)


async def _everything(store: SqliteEventStore) -> list:
    return [e async for e in store.read_all()]


async def test_subscriber_sees_another_process_within_a_poll_interval(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    await _setup(path)
    async with await SqliteEventStore.connect(path, poll_interval=0.05) as store:
        got: list[float] = []
        waiting = anyio.Event()

        async def follow() -> None:
            waiting.set()
            async for _ in store.subscribe():
                got.append(time.monotonic())
                return

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                await waiting.wait()
                await anyio.sleep(0.3)  # the subscriber is idle, polling
                # Another process (a raw sqlite3 connection is one) commits an event.
                async with await SqliteEventStore.connect(path) as other:
                    await other.append("s", [NewEvent("t")])
                    sent = time.monotonic()
                    # `other` woke nobody here: only the file changed.
        assert len(got) == 1
        assert got[0] - sent < 1.0


CAPACITY, PER_PROCESS = 25, 100


async def test_four_processes_book_the_same_occurrence(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    await _setup(path)
    # Neighbouring processes share half their actors, so the same actor races itself too.
    actors = [[f"a{(k * 50 + j) % 200:03d}" for j in range(PER_PROCESS)] for k in range(4)]
    procs = [_spawn("book", str(path), "shared", str(CAPACITY), *a) for a in actors]
    try:
        _start_together(procs)
        outputs = [p.communicate(timeout=180)[0] for p in procs]
    finally:
        _kill_all(procs)
    assert [p.returncode for p in procs] == [0] * 4
    results = [r for out in outputs for r in json.loads(out)]
    assert len(results) == 4 * PER_PROCESS
    async with await SqliteEventStore.connect(path) as store:
        state = await checked_history(store, "shared")
    roster = state.roster
    assert len(roster) == CAPACITY == len(set(roster))  # never overbooked
    counts = Counter(r["status"] for r in results)
    assert counts["booked"] == CAPACITY
    assert set(counts) <= {"booked", "already", "full"}
    booked = [r for r in results if r["status"] == "booked"]
    assert sorted(r["seat"] for r in booked) == list(range(1, CAPACITY + 1))
    for r in booked:
        assert seat_of(roster, r["actor"]) == r["seat"]


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
async def test_kill_9_mid_append_leaves_each_append_whole(tmp_path: Path, synchronous: str) -> None:
    for round_ in range(3):
        path = tmp_path / f"kill-{round_}.db"
        await _setup(path)
        acknowledged: dict[str, int] = {}
        proc = _spawn("appender", str(path), synchronous)
        try:
            _start_together([proc])
            assert proc.stdout is not None
            # Let it append (without pause) a while, then kill it without warning.
            deadline = time.monotonic() + 0.3 + 0.2 * round_
            while time.monotonic() < deadline:
                tag, size = proc.stdout.readline().split()
                acknowledged[tag] = int(size)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            assert proc.returncode == -signal.SIGKILL
            for line in proc.stdout.read().splitlines():  # acknowledged before it died
                tag, size = line.split()
                acknowledged[tag] = int(size)
        finally:
            _kill_all([proc])
        await _check_after_kill(path, acknowledged)


async def _check_after_kill(path: Path, acknowledged: dict[str, int]) -> None:
    assert acknowledged, "the child acknowledged nothing before it was killed"
    async with await SqliteEventStore.connect(path) as store:
        await store.setup()
        parts: dict[str, list[tuple[str, int, int, int]]] = defaultdict(list)
        for k in range(4):
            events = await store.read(f"kill-{k}")
            assert [e.seq for e in events] == list(range(1, len(events) + 1))  # gapless
            for e in events:
                parts[e.metadata["tag"]].append((e.stream, e.seq, e.data["i"], e.data["size"]))
        # Every append is all there (contiguous, in order) or not at all.
        for tag, rows in parts.items():
            stream, first, _, size = rows[0]
            assert rows == [(stream, first + i, i, size) for i in range(size)], tag
        # Every acknowledged append survived the kill; at most the one in flight is extra.
        for tag, size in acknowledged.items():
            assert len(parts[tag]) == size, f"acknowledged append {tag} lost"
        assert len(set(parts) - set(acknowledged)) <= 1
        # The store is usable after the crash.
        r = await store.append("kill-0", [NewEvent("after")])
        assert r.last_seq == len(await store.read("kill-0"))


async def test_four_processes_create_the_same_new_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    procs = [_spawn("setup", str(path)) for _ in range(4)]
    try:
        _start_together(procs)  # none has opened the file yet
        outputs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        _kill_all(procs)
    assert [p.returncode for p in procs] == [0] * 4
    assert {out.strip() for out in outputs} == {str(_sql.latest_version())}
    async with await SqliteEventStore.connect(path) as store:
        assert [e.seq for e in await store.read("setup")] == [1, 2, 3, 4]
        assert await store.schema_version() == _sql.latest_version()


async def test_a_held_write_lock_is_waited_for_then_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    await _setup(path)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        async with await SqliteEventStore.connect(path, busy_timeout=0.3) as store:
            t0 = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="locked"):
                await store.append("s", [NewEvent("t")])
            assert time.monotonic() - t0 >= 0.25  # it waited
            assert await store.last_seq("s") == 0  # reads are not blocked
            holder.execute("COMMIT")
            # Released: the same append goes through, waiting instead of failing.
            holder.execute("BEGIN IMMEDIATE")

            async def release_soon() -> None:
                await anyio.sleep(0.1)
                holder.execute("COMMIT")

            async with anyio.create_task_group() as tg:
                tg.start_soon(release_soon)
                async with await SqliteEventStore.connect(path, busy_timeout=5) as patient:
                    r = await patient.append("s", [NewEvent("t")])
            assert r.last_seq == 1
    finally:
        holder.close()
