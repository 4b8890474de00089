"""``inline_appends``: a lone append written on the event loop, never waiting for a lock."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

import anyio
import pytest

from evsrc import NewEvent
from evsrc.errors import ConfigurationError
from evsrc.sqlite import SqliteEventStore, _writer
from evsrc.urls import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
    path = tmp_path / "i.db"
    async with await SqliteEventStore.connect(path, inline_appends=True) as store:
        await store.setup()
        yield store


@pytest.fixture
def thread_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch written on the writer thread."""
    sizes: list[int] = []
    batch = _writer.append_batch

    def counting(connector, conn, items):
        sizes.append(len(items))
        return batch(connector, conn, items)

    monkeypatch.setattr(_writer, "append_batch", counting)
    return sizes


async def test_a_lone_appender_writes_inline_and_the_writer_checkpoints(
    tmp_path: Path, thread_batches: list[int]
) -> None:
    path = tmp_path / "w.db"
    runs = 8
    n = runs * (_writer.INLINE_RUN + 1)
    async with await SqliteEventStore.connect(
        path, inline_appends=True, synchronous="NORMAL"
    ) as store:
        await store.setup()
        for i in range(n):
            r = await store.append_expect("s", i, [NewEvent("t", {"i": i, "pad": "x" * 3000})])
            assert r.last_seq == i + 1  # type: ignore[union-attr]
        # One append in INLINE_RUN + 1 goes to the writer thread, whose
        # connection checkpoints the log; the rest never leave the event loop.
        assert thread_batches == [1] * runs
        assert [e.data["i"] for e in await store.read("s")] == list(range(n))
        # Each append adds a few pages to the log (its event fills one): without
        # the writer's checkpoints it would hold every one of them, n * 3 or more.
        conn = sqlite3.connect(path)
        try:
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()
        assert frames < 1000 + 10 * (_writer.INLINE_RUN + 1) < n * 3


async def test_concurrent_appenders_still_commit_together(
    store: SqliteEventStore, thread_batches: list[int]
) -> None:
    async def one(k: int) -> None:
        await store.append_expect(f"c{k}", 0, [NewEvent("t", {"k": k})])

    async with anyio.create_task_group() as tg:
        for k in range(16):
            tg.start_soon(one, k)
    assert sum(thread_batches) == 16 and max(thread_batches) >= 8
    assert sorted([e.data["k"] async for e in store.read_all()]) == list(range(16))


async def test_a_locked_file_sends_the_append_to_the_writer_thread(
    store: SqliteEventStore, thread_batches: list[int]
) -> None:
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the file
    gaps: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await anyio.sleep(0.01)
            gaps.append(time.perf_counter() - t)

    async def release() -> None:
        await anyio.sleep(0.5)
        other.execute("COMMIT")

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            tg.start_soon(release)
            r = await store.append_expect("s", 0, [NewEvent("t")])
            done.set()
    finally:
        other.close()
    assert r.last_seq == 1  # type: ignore[union-attr]
    assert thread_batches == [1]  # waited on the writer thread...
    assert len(gaps) >= 10 and max(gaps) < 0.25  # ...while the event loop ran on


async def test_conflicts_and_retries_inline(
    store: SqliteEventStore, thread_batches: list[int]
) -> None:
    events = [NewEvent("t", {"n": 1}), NewEvent("t", {"n": 2})]
    first = await store.append_expect("s", 0, events)
    again = await store.append_expect("s", 0, events)  # an idempotent retry
    assert again == first
    stale = await store.append_expect("s", 0, [NewEvent("t")])
    assert (stale.expected, stale.actual) == (0, 2)  # type: ignore[union-attr]
    assert thread_batches == []
    assert [e.data["n"] for e in await store.read("s")] == [1, 2]


def test_inline_appends_under_trio(tmp_path: Path, thread_batches: list[int]) -> None:
    async def main() -> list[int]:
        path = tmp_path / "t.db"
        async with await SqliteEventStore.connect(path, inline_appends=True) as store:
            await store.setup()
            for i in range(5):
                await store.append_expect("s", i, [NewEvent("t")])
            async with anyio.create_task_group() as tg:
                for k in range(8):
                    tg.start_soon(store.append_expect, f"c{k}", 0, [NewEvent("t")])
            return [e.seq for e in await store.read("s")]

    assert anyio.run(main, backend="trio") == [1, 2, 3, 4, 5]
    # The lone appends never reach the writer thread; the racing ones share it.
    assert sum(thread_batches) == 8 and max(thread_batches) >= 4


@pytest.mark.parametrize(
    ("value", "inline"),
    [
        *[(v, True) for v in ("true", "TRUE", "1", "on", "yes")],
        *[(v, False) for v in ("false", "False", "0", "off", "no")],
    ],
)
async def test_inline_appends_is_settable_by_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, inline: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store(f"sqlite:///u.db?inline_appends={value}&synchronous=NORMAL")
    try:
        assert isinstance(store, SqliteEventStore)
        assert store._connector.inline_appends is inline
        assert (store._connector.inline is not None) is inline
        await store.append_expect("s", 0, [NewEvent("t", {})])
        assert [e.seq for e in await store.read("s")] == [1]
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///x.db?inline_appends=",
        "sqlite:///x.db?inline_appends=maybe",
        "sqlite:///x.db?inline_appends=2",
        "sqlite:///x.db?inline_appends=true&inline_appends=false",
    ],
)
async def test_a_bad_inline_appends_in_a_url_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="inline_appends"):
        await open_store(url)
    with pytest.raises(ConfigurationError, match="inline_appends"):
        await open_store("sqlite:///x.db?inline_appends=true", inline_appends=False)
    assert list(tmp_path.iterdir()) == []  # nothing created
