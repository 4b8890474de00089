"""Long stream reads under real concurrent changes return one snapshot's events.

A read of a multi-page stream (far more events than one page of any read path)
runs again and again while another pool (so another connection) appends,
truncates, changes retention or deletes the stream. Every result must be what
one statement returns at one moment: consecutive seqs (no gap, no repeat),
each event the one written at its seq, ending at the stream's head of that
moment, and a window that one of the states the writer went through allows —
never a mix of two windows, and never more events than ``max_count`` lets
through. Each test also checks that the reads saw more than one state, so the
changes really happened while the reads ran.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from evsrc import NewEvent, RecordedEvent
from evsrc.errors import StreamDeletedError
from tests.pgfixtures import open_store

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from evsrc.postgres import PostgresEventStore

pytestmark = pytest.mark.postgres

STREAM = "long"
#: Events written before the reads start: several pages of every read path.
N = 3000
#: Reads per test; the writer keeps changing the stream until they are done.
READS = 25


async def _fill(store: PostgresEventStore, first: int, count: int) -> None:
    for start in range(first, first + count, 500):
        part = range(start, min(start + 500, first + count))
        await store.append(STREAM, [NewEvent("e", {"i": i}) for i in part])


def _window(events: list[RecordedEvent]) -> tuple[int, int]:
    """``(first seq, last seq)`` of a gapless read of events written by ``_fill``."""
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap or a repeat"
    for e in events:
        assert e.type == "e"
        assert e.data == {"i": e.seq}, "an event that is not the one at its seq"
    return seqs[0], seqs[-1]


async def _race(
    dsn: str, write: Callable[[PostgresEventStore, asyncio.Event], Awaitable[None]]
) -> list[list[RecordedEvent] | StreamDeletedError]:
    """``READS`` reads of ``STREAM`` while ``write`` changes it from another pool."""
    results: list[list[RecordedEvent] | StreamDeletedError] = []
    async with open_store(dsn) as reader, open_store(dsn) as writer:
        await _fill(writer, 1, N)
        done = asyncio.Event()
        task = asyncio.create_task(write(writer, done))
        try:
            for _ in range(READS):
                try:
                    results.append(await reader.read(STREAM))
                except StreamDeletedError as exc:
                    results.append(exc)
                await asyncio.sleep(0)
        finally:
            done.set()
            await task
    return results


def _states(results: list[list[RecordedEvent] | StreamDeletedError]) -> set[object]:
    return {
        "deleted" if isinstance(r, StreamDeletedError) else (r[0].seq, r[-1].seq) for r in results
    }


async def test_long_read_while_appending(pg_dsn: str) -> None:
    async def write(store: PostgresEventStore, done: asyncio.Event) -> None:
        head = N
        while not done.is_set():
            await _fill(store, head + 1, 7)
            head += 7

    results = await _race(pg_dsn, write)
    for r in results:
        assert isinstance(r, list)
        first, last = _window(r)
        assert first == 1
        assert last >= N
        assert (last - N) % 7 == 0, "a part of an append"
    assert len(_states(results)) > 1


async def test_long_read_while_truncating(pg_dsn: str) -> None:
    async def write(store: PostgresEventStore, done: asyncio.Event) -> None:
        before = 1
        while not done.is_set() and before < N - 100:
            before += 37
            await store.truncate_before(STREAM, before)
            await asyncio.sleep(0.002)

    results = await _race(pg_dsn, write)
    for r in results:
        assert isinstance(r, list)
        first, last = _window(r)
        assert last == N
        assert (first - 1) % 37 == 0, "not a window any truncation left"
    assert len(_states(results)) > 1


async def test_long_read_while_changing_max_count(pg_dsn: str) -> None:
    counts = [700, None, 1200, 2500, 40]

    async def write(store: PostgresEventStore, done: asyncio.Event) -> None:
        k = 0
        while not done.is_set():
            await store.set_stream_metadata(STREAM, max_count=counts[k % len(counts)])
            k += 1
            await asyncio.sleep(0.002)

    results = await _race(pg_dsn, write)
    allowed = {N if c is None else c for c in counts}
    for r in results:
        assert isinstance(r, list)
        _, last = _window(r)
        assert last == N
        assert len(r) in allowed, f"{len(r)} events: no max_count the stream had lets that through"
    assert len(_states(results)) > 1


async def test_long_read_while_appending_and_truncating(pg_dsn: str) -> None:
    """Both at once: each result is one moment's window, [truncation point, head]."""

    async def write(store: PostgresEventStore, done: asyncio.Event) -> None:
        head, before = N, 1
        while not done.is_set():
            await _fill(store, head + 1, 5)
            head += 5
            before += 11
            await store.truncate_before(STREAM, before)

    results = await _race(pg_dsn, write)
    for r in results:
        assert isinstance(r, list)
        first, last = _window(r)
        assert (last - N) % 5 == 0
        assert (first - 1) % 11 == 0
        # The writer alternates: append k, then truncation k. A moment has
        # either as many truncations as appends, or one fewer.
        appends, truncations = (last - N) // 5, (first - 1) // 11
        assert truncations in (appends, appends - 1), "two moments' head and start"
    assert len(_states(results)) > 1


@pytest.mark.parametrize("hard", [False, True])
async def test_long_read_while_deleting(pg_dsn: str, hard: bool) -> None:
    async def write(store: PostgresEventStore, done: asyncio.Event) -> None:
        await asyncio.sleep(0.05)
        await store.delete_stream(STREAM, hard=hard)

    results = await _race(pg_dsn, write)
    seen = set()
    for r in results:
        if isinstance(r, StreamDeletedError):
            assert hard
            seen.add("deleted")
        elif len(r) == 1 and r[0].type != "e":
            assert not hard
            assert r[0].type == "$stream-deleted"
            assert r[0].seq == N + 1
            seen.add("deleted")
        else:
            assert _window(r) == (1, N)
            seen.add("whole")
    assert seen == {"whole", "deleted"}
