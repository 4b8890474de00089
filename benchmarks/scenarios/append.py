"""Scenarios 1 and 2: ``append_expect`` of one event, and of 100 events.

Memory: evsrc's ``InMemoryEventStore`` beside :class:`~benchmarks.targets.DictStore`.
PostgreSQL: evsrc's ``PostgresEventStore`` beside raw asyncpg running the same
append statement, beside the ``eventsourcing`` recorder. Sequential (one loop,
one stream) and on 1/4/16/64 concurrent streams, one writer task per stream.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from benchmarks.harness import Case, Context, NotAvailable, Sample
from benchmarks.peer import EsRecorder, require_eventsourcing
from benchmarks.targets import DictStore, RawPg, event_args, open_evsrc_pg
from benchmarks.workloads import (
    PgDatabases,
    make_events,
    pool_size,
    quoted,
    run_appends,
    stream_names,
)
from evsrc.memory import InMemoryEventStore
from evsrc.records import Committed

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["run_append_batch", "run_append_expect"]

CONCURRENCY = (1, 4, 16, 64)
#: Pool size of the sequential cases: evsrc's default ``max_size``.
SEQ_POOL = 10

LABELS_MEM = {"evsrc": "evsrc InMemoryEventStore", "limit": "dict-of-lists store"}
LABELS_PG = {
    "evsrc": "evsrc PostgresEventStore",
    "evsrc_nonotify": "evsrc, notify=False (diagnostic)",
    "limit": "raw asyncpg, same SQL",
    "peer": "eventsourcing recorder",
}


def _layout(total: int, streams: int) -> int:
    """Appends per stream so that ``streams`` writers do about ``total`` appends."""
    return max(2, total // streams)


# -- memory ---------------------------------------------------------------------


def _mem(
    variant: str,
    streams: int,
    per_stream: int,
    batch: int,
    sequential: bool,
    clock: Callable[[], float] = time.perf_counter,
) -> Any:
    async def prepare() -> Any:
        async def rep() -> Sample:
            names = stream_names("m", streams)
            payloads = [[make_events(batch, i * batch) for i in range(per_stream)] for _ in names]
            if variant == "evsrc":
                store = InMemoryEventStore()

                async def append(stream: str, expected: int, events: Any) -> bool:
                    return type(await store.append_expect(stream, expected, events)) is Committed

            else:
                dstore = DictStore()

                async def append(stream: str, expected: int, events: Any) -> bool:
                    return (await dstore.append_expect(stream, expected, events))[0]

            return await run_appends(
                append, names, payloads, batch=batch, sequential=sequential, clock=clock
            )

        return rep

    return prepare


# -- PostgreSQL -----------------------------------------------------------------


async def _warm_pool(append: Any, size: int, batch: int) -> None:
    # One untimed append per pooled connection: connections open, statements prepared.
    names = stream_names("warm", size)
    await asyncio.gather(*(append(n, 0, make_events(batch)) for n in names))


def _pg_evsrc(
    url: str, streams: int, per_stream: int, batch: int, sequential: bool, **options: Any
) -> Any:
    async def prepare() -> Any:
        async def rep() -> Sample:
            size = SEQ_POOL if sequential else pool_size(streams)
            store = await open_evsrc_pg(url, size, **options)
            try:

                async def append(stream: str, expected: int, events: Any) -> bool:
                    return type(await store.append_expect(stream, expected, events)) is Committed

                await _warm_pool(append, size, batch)
                names = stream_names("e", streams)
                payloads = [
                    [make_events(batch, i * batch) for i in range(per_stream)] for _ in names
                ]
                return await run_appends(
                    append, names, payloads, batch=batch, sequential=sequential
                )
            finally:
                await store.close()

        return rep

    return prepare


def _pg_raw(
    url: str, dbs: PgDatabases, streams: int, per_stream: int, batch: int, sequential: bool
) -> Any:
    async def prepare() -> Any:
        async def rep() -> Sample:
            size = SEQ_POOL if sequential else pool_size(streams)
            raw = await RawPg.open(url, size, quoted(dbs.schema))
            try:
                sql = raw.sql["append"]
                fetchrow = raw.pool.fetchrow

                async def append(stream: str, expected: int, args: Any) -> bool:
                    row = await fetchrow(sql, stream, expected, *args)
                    return row is not None and row[1] is not None

                async def warm(stream: str, expected: int, events: Any) -> bool:
                    return await append(stream, expected, event_args(events))

                await _warm_pool(warm, size, batch)
                names = stream_names("r", streams)
                payloads = [
                    [event_args(make_events(batch, i * batch)) for i in range(per_stream)]
                    for _ in names
                ]
                return await run_appends(
                    append, names, payloads, batch=batch, sequential=sequential
                )
            finally:
                await raw.close()

        return rep

    return prepare


def _pg_peer(dsn: str, dbname: str, streams: int, per_stream: int, batch: int) -> Any:
    async def prepare() -> Any:
        require_eventsourcing()

        async def rep() -> Sample:
            def work() -> tuple[int, float]:
                rec = EsRecorder(dsn, dbname, pool_size(streams))
                try:
                    return rec.timed_append(streams, per_stream, batch)
                finally:
                    rec.close()

            n, dt = await asyncio.to_thread(work)
            return Sample(n, dt, {"events_per_s": n * batch / dt})

        return rep

    return prepare


async def _run(ctx: Context, *, batch: int, scenario: str) -> None:
    total_mem = ctx.size(20_000 if batch == 1 else 400, 200 if batch == 1 else 4)
    total_pg = ctx.size(1_500 if batch == 1 else 200, 16 if batch == 1 else 2)
    unit = "appends/s"
    levels: list[tuple[str, int, bool]] = [("sequential", 1, True)]
    levels += [
        (f"{k} stream{'' if k == 1 else 's'}", k, False)
        for k in (CONCURRENCY if batch == 1 else (1, 16))
    ]

    ctx.note(
        "In-memory cases count process CPU time, not wall time: nothing there waits, and "
        "on a shared machine CPU time is what the two variants' code costs."
    )
    for label, k, seq in levels:
        per = _layout(total_mem, k)
        case = Case(
            f"memory · {label}",
            unit,
            {"backend": "memory", "streams": k, "sequential": seq, "batch": batch},
            dict(LABELS_MEM),
        )
        await ctx.run_case(
            case,
            {
                "evsrc": _mem("evsrc", k, per, batch, seq, time.process_time),
                "limit": _mem("limit", k, per, batch, seq, time.process_time),
            },
        )

    dbs = PgDatabases(ctx, scenario)
    try:
        urls: dict[str, str] = {}
        peer_db = ""
        try:
            urls["evsrc"] = await dbs.evsrc_db("evsrc")
            urls["raw"] = await dbs.evsrc_db("raw")
        except NotAvailable as exc:
            reason = str(exc)
            urls.clear()
        else:
            reason = ""
        try:
            require_eventsourcing()
            ctx.require_pg()
            _, peer_db = await dbs.plain_db("es")
        except NotAvailable as exc:
            peer_reason = str(exc)
        else:
            peer_reason = ""

        for label, k, seq in levels:
            per = _layout(total_pg, k)
            case = Case(
                f"postgres · {label}",
                unit,
                {"backend": "postgres", "streams": k, "sequential": seq, "batch": batch},
                dict(LABELS_PG),
            )
            runners: dict[str, Any] = {}
            if urls:
                runners["evsrc"] = _pg_evsrc(urls["evsrc"], k, per, batch, seq)
                runners["evsrc_nonotify"] = _pg_evsrc(
                    urls["evsrc"], k, per, batch, seq, notify=False
                )
                runners["limit"] = _pg_raw(urls["raw"], dbs, k, per, batch, seq)
            else:
                runners["evsrc"] = runners["evsrc_nonotify"] = runners["limit"] = _unavailable(
                    reason
                )
            if peer_db:
                runners["peer"] = _pg_peer(ctx.require_pg(), peer_db, k, per, batch)
            else:
                runners["peer"] = _unavailable(peer_reason)
            await ctx.run_case(case, runners)
    finally:
        await dbs.drop_all()


def _unavailable(reason: str) -> Any:
    async def prepare() -> Any:
        raise NotAvailable(reason)

    return prepare


async def run_append_expect(ctx: Context) -> None:
    """Scenario 1: single-event ``append_expect``."""
    ctx.note(
        "Sequential cases: one loop; every variant gets a pool of "
        f"{SEQ_POOL} (evsrc's default max_size). Concurrent cases: one writer task "
        "(eventsourcing: thread) per stream; every variant gets the same pool, "
        f"min(streams, {pool_size(10**6)}) connections (the server is shared). Pools are "
        "opened and warmed before the clock starts. `evsrc, notify=False` is a diagnostic: "
        "the same store without its post-commit NOTIFY."
    )
    ctx.note(
        "eventsourcing runs in its default PostgreSQL mode: each insert takes LOCK TABLE "
        "… IN EXCLUSIVE MODE (and NOTIFY) so that its notification ids commit in order — "
        "the guarantee evsrc's (commit, position) order gives without a global lock. Its "
        "POSTGRES_ENABLE_DB_FUNCTIONS mode inserts through a function without that lock; "
        "it is faster but gives up that ordering, so it is not the like-for-like peer."
    )
    await _run(ctx, batch=1, scenario="append")


async def run_append_batch(ctx: Context) -> None:
    """Scenario 2: 100-event appends (rate in appends/s; events/s in the JSON)."""
    await _run(ctx, batch=100, scenario="batch")
