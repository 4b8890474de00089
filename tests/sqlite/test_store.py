"""SQLite's own basics: schema and migrations, filtered reads, retries, errors, trio."""

from __future__ import annotations

import re
import sqlite3
import threading
from contextlib import aclosing
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from evsrc import (
    Checkpoint,
    ConfigurationError,
    DuplicateEventIdError,
    InvalidInputError,
    NewEvent,
    SchemaError,
    StoreClosedError,
)
from evsrc.sqlite import SqliteEventStore, _sql, _writer

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
async def store(tmp_path: Path):
    async with await SqliteEventStore.connect(tmp_path / "s.db") as store:
        await store.setup()
        yield store


def _catalog(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
            "ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()

    def norm(sql: str | None) -> str:
        text = re.sub(r"--[^\n]*", "", sql or "")
        return " ".join(text.split())

    return [(t, n, norm(s)) for t, n, s in rows]


async def test_migrations_reach_exactly_schema_sql(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    async with await SqliteEventStore.connect(fresh) as store:
        assert await store.schema_version() == 0
        await store.setup()
        await store.setup()  # idempotent
        assert await store.schema_version() == _sql.latest_version() >= 2
    # The other road: version 1 only, then setup() migrates it.
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    ((_version, statements),) = _sql.migrations(0)[:1]
    for statement in statements:
        conn.execute(statement)
    conn.execute("INSERT INTO evsrc_schema_version VALUES (1, 'then')")
    conn.close()
    async with await SqliteEventStore.connect(old) as store:
        assert await store.schema_version() == 1
        await store.setup()
        assert await store.schema_version() == _sql.latest_version()
    assert _catalog(old) == _catalog(fresh)


async def test_a_newer_schema_is_refused_and_a_missing_one_is_a_schema_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "n.db"
    async with await SqliteEventStore.connect(path) as store:
        with pytest.raises(SchemaError):
            await store.append("s", [NewEvent("t")])
        with pytest.raises(SchemaError):
            await store.read("s")
        await store.setup()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO evsrc_schema_version VALUES (999, 'future')")
    conn.close()
    async with await SqliteEventStore.connect(path) as store:
        with pytest.raises(SchemaError, match="999"):
            await store.setup()


async def test_filtered_reads_keep_order_and_checkpoints(store: SqliteEventStore) -> None:
    await store.append("booking:a", [NewEvent("booking"), NewEvent("cancel")])
    await store.append("other:b", [NewEvent("booking")])
    await store.append("booking:c", [NewEvent("booking")])
    await store.append("bookingx", [NewEvent("booking")])
    await store.append("booking%_", [NewEvent("booking")])
    everything = [e async for e in store.read_all()]

    async def got(**filters):
        return [e async for e in store.read_all(**filters)]

    def want(pred):
        return [e for e in everything if pred(e)]

    assert await got(stream_prefix="booking:") == want(lambda e: e.stream.startswith("booking:"))
    assert await got(stream_prefix="booking%") == want(lambda e: e.stream == "booking%_")
    assert await got(types=["cancel"]) == want(lambda e: e.type == "cancel")
    assert await got(stream_prefix="booking", types=("booking",)) == want(
        lambda e: e.stream.startswith("booking") and e.type == "booking"
    )
    # The shared rule (evsrc.store.check_filter): empty filters are refused, None reads all.
    with pytest.raises(InvalidInputError):
        await got(types=[])
    with pytest.raises(InvalidInputError):
        await got(stream_prefix="")
    # Resuming from a filtered event's checkpoint, and limits, work as unfiltered.
    first = (await got(stream_prefix="booking:"))[0]
    assert await got(after=first.checkpoint, stream_prefix="booking:") == want(
        lambda e: e.stream.startswith("booking:") and e.checkpoint > first.checkpoint
    )
    assert len(await got(types=["booking"], limit=2)) == 2
    # subscribe takes the same filters.
    seen = []
    with anyio.fail_after(10):
        async for e in store.subscribe(types=["cancel"]):
            seen.append(e)
            break
    assert seen == want(lambda e: e.type == "cancel")
    for bad in ({"stream_prefix": 3}, {"types": "booking"}, {"types": [1]}):
        with pytest.raises(InvalidInputError):
            await got(**bad)


async def test_filtered_subscriber_skips_a_long_tail_once(store: SqliteEventStore) -> None:
    await store.append("noise", [NewEvent("n") for _ in range(1200)])
    got = []

    async def follow() -> None:
        async for e in store.subscribe(stream_prefix="wanted"):
            got.append(e)
            if len(got) == 2:
                return

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await anyio.sleep(0.05)
            await store.append("noise", [NewEvent("n")])
            await store.append("wanted", [NewEvent("w")])
            await store.append("wanted", [NewEvent("w")])
    assert [(e.stream, e.seq) for e in got] == [("wanted", 1), ("wanted", 2)]


async def test_a_retry_with_other_content_is_a_duplicate(store: SqliteEventStore) -> None:
    e = NewEvent("t", {"a": 1, "b": 2}, {"m": 1})
    first = await store.append_expect("s", 0, [e])
    # Same content (keys in another order): the original result.
    same = NewEvent("t", {"b": 2, "a": 1}, {"m": 1}, id=e.id)
    assert await store.append_expect("s", 0, [same]) == first
    assert await store.append("s", [same]) == first
    for other in (
        NewEvent("t", {"a": 2, "b": 2}, {"m": 1}, id=e.id),
        NewEvent("u", {"a": 1, "b": 2}, {"m": 1}, id=e.id),
        NewEvent("t", {"a": 1, "b": 2}, {"m": 2}, id=e.id),
        NewEvent("t", {"a": 1, "b": 2}, {"m": 1}, id=e.id, version=2),
    ):
        with pytest.raises(DuplicateEventIdError) as info:
            await store.append_expect("s", 0, [other])
        assert (info.value.stream, info.value.seq) == ("s", 1)
    assert await store.last_seq("s") == 1


async def test_huge_numbers_are_clamped_not_errors(store: SqliteEventStore) -> None:
    await store.append("s", [NewEvent("t")])
    r = await store.append_expect("s", 2**70, [NewEvent("t")])
    assert (r.expected, r.actual) == (2**70, 1)  # type: ignore[union-attr]
    assert await store.read("s", after=2**70) == []
    assert len(await store.read("s", limit=2**70)) == 1
    assert [e async for e in store.read_all(after=Checkpoint(2**64, 2**64))] == []


@pytest.mark.parametrize(
    "options",
    [
        {"synchronous": "OFF"},
        {"synchronous": 1},
        {"busy_timeout": 0},
        {"busy_timeout": "1"},
        {"poll_interval": -1},
        {"readers": 0},
        {"readers": True},
        {"inline_appends": 1},
    ],
)
async def test_bad_options_are_configuration_errors(tmp_path: Path, options) -> None:
    with pytest.raises(ConfigurationError):
        await SqliteEventStore.connect(tmp_path / "o.db", **options)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["", ":memory:", "file:x.db?mode=memory", "a\x00b"])
async def test_paths_that_are_not_files_are_refused(path: str) -> None:
    with pytest.raises(ConfigurationError):
        await SqliteEventStore.connect(path)


async def test_closed_store(tmp_path: Path) -> None:
    store = await SqliteEventStore.connect(tmp_path / "c.db")
    await store.setup()
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.read("s")
    with pytest.raises(StoreClosedError):
        await store.last_seq("s")
    with pytest.raises(StoreClosedError):
        await store.setup()
    with pytest.raises(StoreClosedError):
        async with store.transaction():
            pass


def test_runs_under_trio(tmp_path: Path) -> None:
    async def main() -> list[int]:
        async with await SqliteEventStore.connect(tmp_path / "t.db") as store:
            await store.setup()
            await store.append_expect("s", 0, [NewEvent("t"), NewEvent("t")])
            seqs = [e.seq async for e in store.read_all()]
            async with aclosing(store.subscribe(after=None)) as feed:
                async for e in feed:
                    seqs.append(e.seq)
                    break
            return seqs

    assert anyio.run(main, backend="trio") == [1, 2, 1]


async def test_one_bad_append_in_a_group_commit_spares_the_others(
    store: SqliteEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = NewEvent("t", {"n": 0})
    await store.append("a", [taken])
    results: dict[str, object] = {}

    async def run(name: str, coro) -> None:
        try:
            results[name] = await coro
        except Exception as exc:
            results[name] = exc

    sizes: list[int] = []
    batch = _writer.append_batch

    def counting(connector, conn, items):
        sizes.append(len(items))
        return batch(connector, conn, items)

    monkeypatch.setattr(_writer, "append_batch", counting)
    # Started together, the appends queue behind the writer and commit together, in order.
    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "first", store.append("s", [NewEvent("t", {"n": 1})]))
        tg.start_soon(run, "dup", store.append("b", [NewEvent("t"), taken]))
        tg.start_soon(run, "ok", store.append_expect("s", 1, [NewEvent("t", {"n": 2})]))
        tg.start_soon(run, "stale", store.append_expect("s", 1, [NewEvent("t", {"n": 3})]))
        tg.start_soon(run, "new", store.append_expect("c", 0, [NewEvent("t"), NewEvent("t")]))
        tg.start_soon(run, "retry", store.append_expect("a", 0, [taken]))
    assert sum(sizes) == 6 and max(sizes) >= 5  # committed together
    assert isinstance(results["dup"], DuplicateEventIdError)
    assert results["ok"].last_seq == 2  # type: ignore[attr-defined]
    assert (results["stale"].expected, results["stale"].actual) == (1, 2)  # type: ignore[attr-defined]
    assert results["new"].last_seq == 2  # type: ignore[attr-defined]
    assert results["retry"].last_seq == 1  # type: ignore[attr-defined]
    assert [e.data["n"] for e in await store.read("s")] == [1, 2]
    assert await store.last_seq("b") == 0
    events = [e async for e in store.read_all()]
    assert [e.position for e in events] == sorted(e.position for e in events)
    assert len({e.checkpoint.commit for e in events}) == 4  # a, s, s, c: one per append


@pytest.mark.parametrize(("option", "level"), [(None, 2), ("NORMAL", 1), ("extra", 3)])
async def test_wal_and_durable_by_default(tmp_path: Path, option: str | None, level: int) -> None:
    kwargs = {} if option is None else {"synchronous": option}
    async with await SqliteEventStore.connect(tmp_path / "d.db", **kwargs) as store:
        await store.setup()
        await store.append("s", [NewEvent("t")])

        def pragmas(conn: sqlite3.Connection) -> tuple[int, str]:
            sync = conn.execute("PRAGMA synchronous").fetchone()[0]
            return sync, conn.execute("PRAGMA journal_mode").fetchone()[0]

        assert await store._write(pragmas) == (level, "wal")  # the writer: FULL is 2
        assert await store._read(pragmas) == (level, "wal")


async def test_a_store_built_without_connect_says_so(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "x.db")
    for call in (store.read("s"), store.last_seq("s"), store.append("s", [NewEvent("t")])):
        with pytest.raises(StoreClosedError, match="connect"):
            await call
    await store.close()


async def _until(event: threading.Event) -> None:
    await anyio.to_thread.run_sync(event.wait, 10.0)
    assert event.is_set()


async def test_a_cancelled_append_waits_for_its_transaction_then_is_cancelled(
    store: SqliteEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    batch = _writer.append_batch

    def held(connector, conn, items):
        started.set()
        release.wait(10.0)
        return batch(connector, conn, items)

    monkeypatch.setattr(_writer, "append_batch", held)
    events = [NewEvent("t", {"n": 1}), NewEvent("t", {"n": 2})]
    outcome: list[str] = []

    async def append(scope: anyio.CancelScope) -> None:
        with scope:
            await store.append_expect("s", 0, events)
            outcome.append("returned")
            await anyio.lowlevel.checkpoint()
            outcome.append("not cancelled")
        outcome.append("cancelled" if scope.cancelled_caught else "done")

    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()
        tg.start_soon(append, scope)
        await _until(started)
        scope.cancel()
        await anyio.sleep(0.05)
        assert outcome == []  # still waiting for the writer: never abandoned
        release.set()
    assert outcome[-1] == "cancelled" and "not cancelled" not in outcome
    monkeypatch.setattr(_writer, "append_batch", batch)
    # It committed (the cancellation came too late to stop it), all of it.
    assert [e.data["n"] for e in await store.read("s")] == [1, 2]
    # The writer is free and consistent: a retry is idempotent, a new append goes on.
    retried = await store.append_expect("s", 0, events)
    assert (retried.first_seq, retried.last_seq) == (1, 2)  # type: ignore[union-attr]
    nxt = await store.append_expect("s", 2, [NewEvent("t", {"n": 3})])
    assert nxt.last_seq == 3  # type: ignore[union-attr]


async def test_a_transaction_cancelled_while_beginning_leaves_no_transaction_open(
    store: SqliteEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    connector = store._connector
    begin = connector.begin_mapped

    def held(conn: sqlite3.Connection) -> None:
        begin(conn)  # BEGIN IMMEDIATE succeeds...
        started.set()
        release.wait(10.0)  # ...while the caller is cancelled

    monkeypatch.setattr(connector, "begin_mapped", held)
    reached: list[str] = []

    async def work(scope: anyio.CancelScope) -> None:
        with scope:
            async with store.transaction() as conn:
                reached.append("body")
                conn.execute("CREATE TABLE t (x)")

    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()
        tg.start_soon(work, scope)
        await _until(started)
        scope.cancel()
        release.set()
    monkeypatch.setattr(connector, "begin_mapped", begin)
    assert scope.cancelled_caught
    writer = connector.writer
    assert writer is not None and not writer.in_transaction  # rolled back, lock released
    with anyio.fail_after(5):
        await store.append("s", [NewEvent("t")])
    assert await store.last_seq("s") == 1
