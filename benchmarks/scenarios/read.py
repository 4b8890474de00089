"""Scenario 3: reading — a 10,000-event stream, ``read_all`` over 100,000 events,
and a projector catching up over 100,000 events.

The data set (one 10,000-event stream plus 90 streams of 1,000) is written
once per backend before anything is timed; every repetition reads it all (on
PostgreSQL, evsrc and raw asyncpg read the big stream ``STREAM_READS`` times).
evsrc returns decoded ``RecordedEvent`` objects; the raw asyncpg limit runs
evsrc's own read statements (``read_forward``; ``read_all`` paged exactly as
evsrc pages it) and stops at the rows, every column decoded by asyncpg
(``recorded_at`` as a timestamptz: evsrc selects it in a cheaper form and makes
the datetime itself, see ``benchmarks.targets.full_rows``); ``eventsourcing``
reads through its recorder and decodes each event's JSON state.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from benchmarks.harness import Case, Context, NotAvailable, Sample
from benchmarks.peer import EsRecorder, require_eventsourcing
from benchmarks.scenarios.append import _unavailable
from benchmarks.targets import DictStore, RawPg, open_evsrc_pg, pg_page_size
from benchmarks.workloads import PgDatabases, chunks, make_events, quoted
from evsrc.memory import InMemoryEventStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from evsrc.records import NewEvent
    from evsrc.store import EventStore

__all__ = ["run_read"]

BIG = "read-big"
#: Reads of the big stream per PostgreSQL repetition: one read is tens of
#: milliseconds, short enough for a neighbour's burst on the shared machine to
#: halve a sample; several in a row make each sample steadier.
STREAM_READS = 5


class Dataset:
    """The events of the scenario: ``BIG`` with ``stream_n`` events, then the rest."""

    def __init__(self, stream_n: int, total: int, per_stream: int) -> None:
        self.stream_n = stream_n
        self.total = total
        self.streams: list[tuple[str, list[NewEvent]]] = [(BIG, make_events(stream_n))]
        rest = total - stream_n
        for i in range(max(0, rest // per_stream)):
            self.streams.append((f"read-{i}", make_events(per_stream, i * per_stream)))

    async def load(self, store: EventStore) -> None:
        """Write every event into ``store`` (not timed)."""
        for name, events in self.streams:
            for part in chunks(events, 1000):
                await store.append(name, part)

    def load_dict(self, store: DictStore) -> None:
        """Write every event into the dict store."""
        for name, events in self.streams:
            for part in chunks(events, 1000):
                store.streams.setdefault(name, []).extend(part)
                store.log.extend(part)


def _timed(n_expected: int, what: str) -> Callable[[Any], Any]:
    def wrap(fn: Any) -> Any:
        async def rep() -> Sample:
            t0 = time.perf_counter()
            n = await fn()
            dt = time.perf_counter() - t0
            if n != n_expected:
                raise AssertionError(f"{what}: read {n} events, expected {n_expected}")
            return Sample(n, dt)

        return rep

    return wrap


# -- memory -------------------------------------------------------------------------


def _mem_cases(ds: Dataset) -> tuple[dict[str, Any], dict[str, Any]]:
    """Runners for (read stream, read_all) in memory."""
    store = InMemoryEventStore()
    dstore = DictStore()
    loaded = False

    async def ensure() -> None:
        nonlocal loaded
        if not loaded:
            await ds.load(store)
            ds.load_dict(dstore)
            loaded = True

    def ready(fn: Any) -> Any:
        async def prepare() -> Any:
            await ensure()
            return fn

        return prepare

    @_timed(ds.stream_n, "memory read")
    async def ev_read() -> int:
        return len(await store.read(BIG))

    @_timed(ds.stream_n, "dict read")
    async def d_read() -> int:
        return len(await dstore.read(BIG))

    @_timed(ds.total, "memory read_all")
    async def ev_all() -> int:
        n = 0
        async for _ in store.read_all():
            n += 1
        return n

    @_timed(ds.total, "dict read_all")
    async def d_all() -> int:
        n = 0
        async for _ in dstore.read_all():
            n += 1
        return n

    return (
        {"evsrc": ready(ev_read), "limit": ready(d_read)},
        {"evsrc": ready(ev_all), "limit": ready(d_all)},
    )


# -- PostgreSQL ---------------------------------------------------------------------


def _pg_evsrc(url: str, what: str, ds: Dataset) -> Any:
    async def prepare() -> Any:
        async def rep() -> Sample:
            store = await open_evsrc_pg(url, 1)
            try:
                await store.read(BIG, limit=1)  # warm: connection open, statement prepared
                t0 = time.perf_counter()
                if what == "stream":
                    n = 0
                    for _ in range(STREAM_READS):
                        n += len(await store.read(BIG))
                    want = ds.stream_n * STREAM_READS
                else:
                    n = 0
                    async for _ in store.read_all():
                        n += 1
                    want = ds.total
                dt = time.perf_counter() - t0
            finally:
                await store.close()
            if n != want:
                raise AssertionError(f"evsrc {what}: read {n}, expected {want}")
            return Sample(n, dt)

        return rep

    return prepare


def _pg_raw(url: str, dbs: PgDatabases, what: str, ds: Dataset) -> Any:
    async def prepare() -> Any:
        page = pg_page_size()

        async def rep() -> Sample:
            raw = await RawPg.open(url, 1, quoted(dbs.schema))
            try:
                fwd, allq = raw.sql["read_forward"], raw.sql["read_all"]
                async with raw.pool.acquire() as conn:
                    await conn.fetch(fwd, BIG, 0, 1)  # warm, as evsrc
                    if what != "stream":
                        await conn.fetch(allq, 0, 0, 1, *((2**63,) if "$4" in allq else ()))
                t0 = time.perf_counter()
                if what == "stream":
                    n = 0
                    for _ in range(STREAM_READS):
                        n += len(await raw.pool.fetch(fwd, BIG, 0, None))
                    want = ds.stream_n * STREAM_READS
                else:
                    n, commit, position = 0, 0, 0
                    fetch = raw.pool.fetch
                    # The same statements evsrc sends: an upper bound ("horizon")
                    # first when its read_all statement takes one.
                    bound: tuple[Any, ...] = ()
                    if "$4" in allq:
                        bound = (await raw.pool.fetchval(raw.sql["horizon"]),)
                    while True:
                        rows = await fetch(allq, commit, position, page, *bound)
                        # Rows come in commit order, so "ready" holds for a prefix:
                        # all of them are ready when the last one is.
                        if not rows or not rows[-1][10]:
                            n += sum(1 for r in rows if r[10])
                            break
                        n += len(rows)
                        commit, position = rows[-1][3], rows[-1][2]
                        if len(rows) < page:
                            break
                    want = ds.total
                dt = time.perf_counter() - t0
            finally:
                await raw.close()
            if n != want:
                raise AssertionError(f"raw {what}: read {n}, expected {want}")
            return Sample(n, dt)

        return rep

    return prepare


def _pg_peer(rec_box: dict[str, Any], what: str, ds: Dataset) -> Any:
    async def prepare() -> Any:
        if "error" in rec_box:
            raise NotAvailable(rec_box["error"])

        async def rep() -> Sample:
            rec: EsRecorder = rec_box["rec"]

            def work() -> tuple[int, float]:
                t0 = time.perf_counter()
                if what == "stream":
                    n = rec.read_stream(rec_box["big"])
                else:
                    n = rec.read_all(page=pg_page_size())
                return n, time.perf_counter() - t0

            n, dt = await asyncio.to_thread(work)
            want = ds.stream_n if what == "stream" else ds.total
            if n != want:
                raise AssertionError(f"eventsourcing {what}: read {n}, expected {want}")
            return Sample(n, dt)

        return rep

    return prepare


def _es_load(dsn: str, dbname: str, ds: Dataset) -> dict[str, Any]:
    rec = EsRecorder(dsn, dbname, 1)
    big = rec.load_stream(ds.stream_n)
    for _, events in ds.streams[1:]:
        rec.load_stream(len(events))
    return {"rec": rec, "big": big}


async def run_read(ctx: Context) -> None:
    """Scenario 3."""
    ds = Dataset(ctx.size(10_000, 200), ctx.size(100_000, 1000), ctx.size(1000, 100))
    unit = "events/s"
    mem_read, mem_all = _mem_cases(ds)
    labels_mem = {"evsrc": "evsrc InMemoryEventStore", "limit": "dict-of-lists store"}
    await ctx.run_case(
        Case(
            f"memory · read a {ds.stream_n:,}-event stream",
            unit,
            {"backend": "memory", "what": "stream"},
            dict(labels_mem),
        ),
        mem_read,
    )
    await ctx.run_case(
        Case(
            f"memory · read_all over {ds.total:,} events",
            unit,
            {"backend": "memory", "what": "all"},
            dict(labels_mem),
        ),
        mem_all,
    )

    labels_pg = {
        "evsrc": "evsrc PostgresEventStore",
        "limit": "raw asyncpg, same SQL (rows only)",
        "peer": "eventsourcing recorder",
    }
    dbs = PgDatabases(ctx, "read")
    peer_box: dict[str, Any] = {}
    try:
        url = ""
        try:
            url = await dbs.evsrc_db("evsrc")
            ctx.progress.show(f"read: loading {ds.total:,} events into PostgreSQL (evsrc)")
            store = await open_evsrc_pg(url, 1)
            try:
                await ds.load(store)
            finally:
                await store.close()
        except NotAvailable as exc:
            reason = str(exc)
            url = ""
        try:
            require_eventsourcing()
            dsn = ctx.require_pg()
            _, es_name = await dbs.plain_db("es")
            ctx.progress.show(f"read: loading {ds.total:,} events into PostgreSQL (eventsourcing)")
            peer_box.update(await asyncio.to_thread(_es_load, dsn, es_name, ds))
        except NotAvailable as exc:
            peer_box["error"] = str(exc)

        for what, name in (
            ("stream", f"postgres · read a {ds.stream_n:,}-event stream"),
            ("all", f"postgres · read_all over {ds.total:,} events"),
        ):
            runners: dict[str, Any] = {}
            if url:
                runners["evsrc"] = _pg_evsrc(url, what, ds)
                runners["limit"] = _pg_raw(url, dbs, what, ds)
            else:
                runners["evsrc"] = runners["limit"] = _unavailable(reason)
            runners["peer"] = _pg_peer(peer_box, what, ds)
            await ctx.run_case(
                Case(name, unit, {"backend": "postgres", "what": what}, dict(labels_pg)), runners
            )
        if "rec" in peer_box:
            peer_box["rec"].close()
        from benchmarks.scenarios import projector

        raw_all = _pg_raw(url, dbs, "all", ds) if url else None
        await projector.run(ctx, ds, url, raw_all, dbs.schema)
    finally:
        await dbs.drop_all()
