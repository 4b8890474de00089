"""Scenario 6: SQLite — appends, replay and the hot seat, each beside raw ``sqlite3``.

- append_expect of one event, sequential: evsrc's ``SqliteEventStore`` (as
  shipped, and with ``inline_appends=True``) beside raw ``sqlite3`` running the
  same conditional insert (``BEGIN IMMEDIATE``, read the stream's head, insert
  at head+1, ``COMMIT``) on the same schema with
  the same ``synchronous`` setting, called directly (no thread hop: the limit);
- the same appends beside a task that sleeps 1 ms in a loop: how late its
  ticks come (the event-loop stall an inline append's COMMIT causes);
- replay of a 10,000-event stream: ``store.read(stream)`` beside a raw
  ``fetchall()`` of the same rows (undecoded: the limit);
- the hot seat (``examples.booking.BookingService`` racing for few seats) on
  SQLite, with PostgreSQL's evsrc store on the same races beside it.

Files live in a fresh temporary directory (``EVSRC_BENCH_SQLITE_DIR`` picks
where: durability figures mean something only on a real disk, not tmpfs).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import anyio

from benchmarks.harness import Case, Context, NotAvailable, Sample
from benchmarks.scenarios.append import _unavailable
from benchmarks.scenarios.hot_seat import _pg_evsrc as _hot_pg, _race, _service
from benchmarks.workloads import PgDatabases, make_events, run_appends, stream_names
from evsrc.records import Committed
from evsrc.sqlite import SqliteEventStore
from evsrc.store import prepare_append

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["run_sqlite"]

_INSERT = (
    "INSERT INTO evsrc_events (position, txn, stream, seq, id, type, version, data, metadata,"
    " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_HEAD = "SELECT coalesce(max(seq), 0) FROM evsrc_events WHERE stream = ?"
_LAST = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'evsrc_events'), 0)"
_READ = (
    "SELECT stream, seq, position, txn, id, type, version, data, metadata, recorded_at "
    "FROM evsrc_events WHERE stream = ? AND seq > ? ORDER BY seq"
)


class _Files:
    """Fresh database files in one temporary directory, removed at the end."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(
            prefix="evsrc-bench-", dir=os.environ.get("EVSRC_BENCH_SQLITE_DIR")
        )
        self.n = 0

    def new(self, name: str) -> str:
        self.n += 1
        return os.path.join(self.dir, f"{name}-{self.n}.db")

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


async def _fresh_store(
    path: str | Path, synchronous: str, *, inline: bool = False
) -> SqliteEventStore:
    store = await SqliteEventStore.connect(path, synchronous=synchronous, inline_appends=inline)
    await store.setup()
    return store


# -- append_expect ----------------------------------------------------------------


def _timed(append: Any, took: list[float]) -> Any:
    """``append``, recording how long each call takes (for the median per append)."""

    async def timed(stream: str, expected: int, events: Any) -> bool:
        t = time.perf_counter()
        ok: bool = await append(stream, expected, events)
        took.append(time.perf_counter() - t)
        return ok

    return timed


def _with_median(sample: Sample, took: list[float]) -> Sample:
    took.sort()
    sample.extra["append_median_us"] = took[len(took) // 2] * 1e6
    return sample


def _evsrc_append(
    files: _Files,
    synchronous: str,
    streams: int,
    per: int,
    sequential: bool,
    *,
    inline: bool = False,
) -> Any:
    async def prepare() -> Any:
        async def rep() -> Sample:
            store = await _fresh_store(files.new("evsrc"), synchronous, inline=inline)
            try:

                async def append(stream: str, expected: int, events: Any) -> bool:
                    return type(await store.append_expect(stream, expected, events)) is Committed

                await append("warm", 0, make_events(1))
                names = stream_names("e", streams)
                payloads = [[make_events(1, i) for i in range(per)] for _ in names]
                took: list[float] = []
                sample = await run_appends(
                    _timed(append, took), names, payloads, batch=1, sequential=sequential
                )
                return _with_median(sample, took)
            finally:
                await store.close()

        return rep

    return prepare


def _raw_append(
    files: _Files, synchronous: str, streams: int, per: int, *, threaded: bool = False
) -> Any:
    """Raw sqlite3's conditional insert, called on the event loop (the limit) or,
    ``threaded``, handed to one worker thread per append through asyncio's
    ``run_in_executor`` (what an asyncio program does to keep its loop free: a
    diagnostic of what the thread hop alone costs)."""

    async def prepare() -> Any:
        async def rep() -> Sample:
            path = files.new("raw")
            store = await _fresh_store(path, synchronous)
            await store.close()
            conn = sqlite3.connect(
                path, isolation_level=None, timeout=30, check_same_thread=not threaded
            )
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            pool = ThreadPoolExecutor(max_workers=1) if threaded else None
            try:

                def write(stream: str, expected: int, rows: Any) -> bool:
                    # The same conditional insert, in its own BEGIN IMMEDIATE transaction.
                    conn.execute("BEGIN IMMEDIATE")
                    head = conn.execute(_HEAD, (stream,)).fetchone()[0]
                    if head != expected:
                        conn.execute("ROLLBACK")
                        return False
                    last = conn.execute(_LAST).fetchone()[0]
                    conn.executemany(
                        _INSERT,
                        [
                            (last + 1 + i, last + 1, stream, head + 1 + i, *r)
                            for i, r in enumerate(rows)
                        ],
                    )
                    conn.execute("COMMIT")
                    return True

                if pool is None:

                    async def append(stream: str, expected: int, rows: Any) -> bool:
                        return write(stream, expected, rows)

                else:
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(pool, int)  # the thread started, off the clock

                    async def append(stream: str, expected: int, rows: Any) -> bool:
                        return await loop.run_in_executor(pool, write, stream, expected, rows)

                names = stream_names("r", streams)
                payloads = [[_rows(make_events(1, i)) for i in range(per)] for _ in names]
                took: list[float] = []
                sample = await run_appends(
                    _timed(append, took), names, payloads, batch=1, sequential=True
                )
                return _with_median(sample, took)
            finally:
                if pool is not None:
                    pool.shutdown()
                conn.close()

        return rep

    return prepare


def _rows(events: list[Any]) -> list[tuple[Any, ...]]:
    """The insert parameters of ``events`` (encoded before the clock starts)."""
    from datetime import UTC, datetime

    now = datetime.now(UTC).isoformat()
    return [
        (e.id.bytes, e.type, e.version, e.data, e.metadata, now)
        for e in prepare_append("s", None, events, any_position=True)
    ]


def _stall(files: _Files, per: int, *, inline: bool) -> Any:
    """Sequential appends (FULL) beside a task that ticks every millisecond: how late it runs."""

    async def prepare() -> Any:
        async def rep() -> Sample:
            store = await _fresh_store(files.new("stall"), "FULL", inline=inline)
            gaps: list[float] = []
            done = False

            async def ticker() -> None:
                while not done:
                    t = time.perf_counter()
                    await anyio.sleep(0.001)
                    gaps.append(time.perf_counter() - t)

            async def append(stream: str, expected: int, events: Any) -> bool:
                return type(await store.append_expect(stream, expected, events)) is Committed

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(ticker)
                    await anyio.sleep(0.01)
                    payloads = [[make_events(1, i) for i in range(per)]]
                    sample = await run_appends(append, ["s"], payloads, batch=1, sequential=True)
                    done = True
            finally:
                await store.close()
            gaps.sort()
            sample.extra["tick_p99_ms"] = gaps[int(len(gaps) * 0.99)] * 1e3
            sample.extra["tick_max_ms"] = gaps[-1] * 1e3
            return sample

        return rep

    return prepare


# -- replay -----------------------------------------------------------------------


async def _load_stream(path: str, n: int) -> None:
    store = await _fresh_store(path, "NORMAL")
    try:
        for i in range(0, n, 500):
            await store.append("long", make_events(min(500, n - i), i))
    finally:
        await store.close()


def _evsrc_replay(path: str, n: int) -> Any:
    async def prepare() -> Any:
        store = await SqliteEventStore.connect(path)

        async def rep() -> Sample:
            t0 = time.perf_counter()
            events = await store.read("long")
            dt = time.perf_counter() - t0
            if len(events) != n or events[-1].seq != n:
                raise AssertionError(f"replay read {len(events)} events, expected {n}")
            return Sample(n, dt)

        return rep

    return prepare


def _raw_replay(path: str, n: int) -> Any:
    async def prepare() -> Any:
        conn = sqlite3.connect(path, isolation_level=None)

        async def rep() -> Sample:
            t0 = time.perf_counter()
            rows = conn.execute(_READ, ("long", 0)).fetchall()
            dt = time.perf_counter() - t0
            if len(rows) != n:
                raise AssertionError(f"raw fetch read {len(rows)} rows, expected {n}")
            return Sample(n, dt)

        return rep

    return prepare


# -- hot seat ---------------------------------------------------------------------


def _sqlite_hot(
    ctx: Context, files: _Files, bookers: int, seats: int, batching: bool, who: str
) -> Any:
    async def prepare() -> Any:
        _service()

        async def rep() -> Sample:
            store = await _fresh_store(files.new("hot"), "FULL")
            try:
                return await _race(ctx, store, bookers, seats, batching=batching, who=who)
            finally:
                await store.close()

        return rep

    return prepare


async def run_sqlite(ctx: Context) -> None:
    """Scenario 6."""
    files = _Files()
    ctx.note(
        "SQLite files in a fresh temporary directory (EVSRC_BENCH_SQLITE_DIR); limit = raw "
        "sqlite3 on the same schema, called directly on the event loop (no worker thread), "
        "same synchronous setting. FULL is evsrc's default (durable on power loss)."
    )
    try:
        per = ctx.size(400, 10)
        for synchronous in ("FULL", "NORMAL"):
            case = Case(
                f"sqlite · append_expect, sequential, synchronous={synchronous}",
                "appends/s",
                {"backend": "sqlite", "synchronous": synchronous, "streams": 1, "sequential": True},
                {
                    "evsrc": "evsrc SqliteEventStore",
                    "evsrc_inline": "evsrc SqliteEventStore, inline_appends=True",
                    "raw_thread": "raw sqlite3, same insert, run_in_executor (diagnostic)",
                    "limit": "raw sqlite3, same conditional insert",
                },
            )
            await ctx.run_case(
                case,
                {
                    "evsrc": _evsrc_append(files, synchronous, 1, per, True),
                    "evsrc_inline": _evsrc_append(files, synchronous, 1, per, True, inline=True),
                    "raw_thread": _raw_append(files, synchronous, 1, per, threaded=True),
                    "limit": _raw_append(files, synchronous, 1, per),
                },
                warmup=False,
            )
            ctx.note(
                f"Median time of one sequential append at {synchronous} (medians of the reps): "
                + "; ".join(
                    f"{label} {case.metric(v, 'append_median_us') or 0:.0f} µs"
                    for v, label in (
                        ("evsrc", "evsrc"),
                        ("evsrc_inline", "inline_appends"),
                        ("raw_thread", "raw sqlite3 through run_in_executor"),
                        ("limit", "raw sqlite3"),
                    )
                )
            )
            beyond_hop = case.ratio("evsrc", "raw_thread")
            case.derived["evsrc/raw_thread"] = beyond_hop
            if beyond_hop is not None:
                ctx.note(
                    f"At {synchronous}, evsrc's default (worker thread) reaches "
                    f"{beyond_hop:.2f}x raw sqlite3 handed to a worker thread the standard "
                    "way (run_in_executor): what evsrc adds beyond the thread hop itself."
                )
        case = Case(
            "sqlite · append_expect, sequential, FULL, beside a task ticking every ms",
            "appends/s",
            {"backend": "sqlite", "synchronous": "FULL", "streams": 1, "sequential": True},
            {
                "evsrc": "evsrc SqliteEventStore",
                "evsrc_inline": "evsrc SqliteEventStore, inline_appends=True",
            },
        )
        await ctx.run_case(
            case,
            {
                "evsrc": _stall(files, per, inline=False),
                "evsrc_inline": _stall(files, per, inline=True),
            },
            warmup=False,
        )
        ctx.note(
            "Event-loop stall (a task sleeping 1 ms: its p99 / longest tick, medians): "
            + "; ".join(
                f"{label} {case.metric(v, 'tick_p99_ms') or 0:.2f} / "
                f"{case.metric(v, 'tick_max_ms') or 0:.2f} ms"
                for v, label in (("evsrc", "default"), ("evsrc_inline", "inline_appends"))
            )
        )
        case = Case(
            "sqlite · append_expect, 16 streams, synchronous=FULL",
            "appends/s",
            {"backend": "sqlite", "synchronous": "FULL", "streams": 16, "sequential": False},
            {
                "evsrc": "evsrc SqliteEventStore, 16 writer tasks",
                "limit": "raw sqlite3, sequential",
            },
        )
        await ctx.run_case(
            case,
            {
                "evsrc": _evsrc_append(files, "FULL", 16, max(2, per // 16), False),
                "limit": _raw_append(files, "FULL", 1, per),
            },
            warmup=False,
        )

        n = ctx.size(10_000, 500)
        path = files.new("replay")
        await _load_stream(path, n)
        case = Case(
            f"sqlite · replay a {n:,}-event stream",
            "events/s",
            {"backend": "sqlite", "events": n},
            {"evsrc": "evsrc store.read(stream)", "limit": "raw sqlite3 fetchall, undecoded"},
        )
        await ctx.run_case(case, {"evsrc": _evsrc_replay(path, n), "limit": _raw_replay(path, n)})

        races = [(1, 300), (16, 300), (1000, 100)] if not ctx.quick else [(1, 12), (4, 12), (40, 5)]
        dbs = PgDatabases(ctx, "sqlhot")
        try:
            try:
                _service()
                pg_url = await dbs.evsrc_db("evsrc")
            except NotAvailable as exc:
                pg_url, reason = "", str(exc)
            for bookers, seats in races:
                who = f"sqlite {bookers}/{seats}"
                case = Case(
                    f"sqlite · hot seat, {bookers} bookers / {seats} seats",
                    "bookings/s",
                    {"backend": "sqlite", "bookers": bookers, "seats": seats},
                    {
                        "evsrc": "evsrc BookingService on SQLite (batching)",
                        "evsrc_nobatch": "evsrc BookingService on SQLite (no batching)",
                        "postgres": "evsrc BookingService on PostgreSQL (batching), same run",
                        "limit": "raw sqlite3, sequential 1-event appends (FULL)",
                    },
                )
                await ctx.run_case(
                    case,
                    {
                        "evsrc": _sqlite_hot(ctx, files, bookers, seats, True, who),
                        "evsrc_nobatch": _sqlite_hot(
                            ctx, files, bookers, seats, False, who + " no batching"
                        ),
                        "postgres": _hot_pg(ctx, pg_url, bookers, seats, True, f"postgres {who}")
                        if pg_url
                        else _unavailable(reason),
                        "limit": _raw_append(files, "FULL", 1, per),
                    },
                    warmup=False,
                )
        finally:
            await dbs.drop_all()
    finally:
        files.remove()
