"""Scenarios 1 and 2: ``append_expect`` of one event, and of 100 events.

Memory: evsrc's ``InMemoryEventStore`` beside :class:`~benchmarks.targets.DictStore`.
PostgreSQL: evsrc's ``PostgresEventStore`` beside the limit — raw asyncpg running
the simplest correct conditional insert (:data:`PG_LIMIT_ONE`, :data:`PG_LIMIT_BATCH`)
— beside raw asyncpg running evsrc's own append statement (a diagnostic: client
overhead alone) and the ``eventsourcing`` recorder. Sequential (one loop, one
stream) and on 1/4/16/64 concurrent streams, one writer task per stream.
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
#: Pool size of every PostgreSQL variant in every case (the server is shared).
PG_POOL = 16

#: The limit for one event: the simplest correct conditional insert. One
#: statement, no lock; the unique (stream, seq) key turns a race into an error.
#: It writes evsrc's table (same columns, indexes, and commit id) so that both
#: do the same work on the server.
PG_LIMIT_ONE = """
INSERT INTO {schema}.evsrc_events (stream, seq, commit, id, type, version, data, metadata)
SELECT $1, h.head + 1, pg_current_xact_id(), $3, $4, $5, $6::jsonb, $7::jsonb
FROM (SELECT coalesce(max(seq), 0) AS head FROM {schema}.evsrc_events WHERE stream = $1) h
WHERE h.head = $2
RETURNING position
"""
#: The same for a batch: the events as arrays, in order, one statement.
PG_LIMIT_BATCH = """
INSERT INTO {schema}.evsrc_events (stream, seq, commit, id, type, version, data, metadata)
SELECT $1, h.head + u.ord, pg_current_xact_id(), u.id, u.type, u.version,
       u.data::jsonb, u.metadata::jsonb
FROM (SELECT coalesce(max(seq), 0) AS head FROM {schema}.evsrc_events WHERE stream = $1) h,
     unnest($3::uuid[], $4::text[], $5::integer[], $6::text[], $7::text[])
     WITH ORDINALITY AS u (id, type, version, data, metadata, ord)
WHERE h.head = $2
ORDER BY u.ord
RETURNING position
"""

LABELS_MEM = {"evsrc": "evsrc InMemoryEventStore", "limit": "dict-of-lists store"}
LABELS_PG = {
    "evsrc": "evsrc PostgresEventStore",
    "evsrc_nonotify": "evsrc, notify=False (diagnostic)",
    "evsrc_sql": "raw asyncpg, evsrc's SQL (diagnostic)",
    "limit": "raw asyncpg, simplest conditional insert",
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
            size = PG_POOL
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
    url: str,
    dbs: PgDatabases,
    streams: int,
    per_stream: int,
    batch: int,
    sequential: bool,
    pool: int | None = None,
) -> Any:
    """Raw asyncpg running evsrc's own append statement (``pool``: connections, by default
    those of the sequential or concurrent case)."""

    async def prepare() -> Any:
        async def rep() -> Sample:
            size = pool or (SEQ_POOL if sequential else pool_size(streams))
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


def _pg_limit(
    url: str, dbs: PgDatabases, streams: int, per_stream: int, batch: int, sequential: bool
) -> Any:
    async def prepare() -> Any:
        async def rep() -> Sample:
            raw = await RawPg.open(url, PG_POOL, quoted(dbs.schema))
            try:
                schema = quoted(dbs.schema)
                sql = (PG_LIMIT_ONE if batch == 1 else PG_LIMIT_BATCH).replace("{schema}", schema)
                fetchrow = raw.pool.fetchrow

                def args(events: Any) -> tuple[Any, ...]:
                    columns = event_args(events)
                    # One event: plain values, not arrays (the simplest statement).
                    return tuple(c[0] for c in columns) if batch == 1 else columns

                async def append(stream: str, expected: int, values: Any) -> bool:
                    return await fetchrow(sql, stream, expected, *values) is not None

                async def warm(stream: str, expected: int, events: Any) -> bool:
                    return await append(stream, expected, args(events))

                await _warm_pool(warm, PG_POOL, batch)
                names = stream_names("l", streams)
                payloads = [
                    [args(make_events(batch, i * batch)) for i in range(per_stream)] for _ in names
                ]
                return await run_appends(
                    append, names, payloads, batch=batch, sequential=sequential
                )
            finally:
                await raw.close()

        return rep

    return prepare


def _pg_peer(dsn: str, dbname: str, streams: int, per_stream: int, batch: int, pool: int) -> Any:
    async def prepare() -> Any:
        require_eventsourcing()

        async def rep() -> Sample:
            def work() -> tuple[int, float]:
                rec = EsRecorder(dsn, dbname, pool)
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
            urls["limit"] = await dbs.evsrc_db("limit")
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
                runners["evsrc_sql"] = _pg_raw(urls["raw"], dbs, k, per, batch, seq, PG_POOL)
                runners["limit"] = _pg_limit(urls["limit"], dbs, k, per, batch, seq)
            else:
                for v in ("evsrc", "evsrc_nonotify", "evsrc_sql", "limit"):
                    runners[v] = _unavailable(reason)
            if peer_db:
                runners["peer"] = _pg_peer(ctx.require_pg(), peer_db, k, per, batch, PG_POOL)
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
        "Sequential cases: one loop; concurrent cases: one writer task (eventsourcing: "
        "thread) per stream. Memory variants share one loop. Every PostgreSQL variant "
        f"gets a pool of {PG_POOL} in every case (the server is shared); pools are opened "
        "and warmed before the clock starts."
    )
    ctx.note(
        "The PostgreSQL limit is the simplest correct conditional insert through raw "
        "asyncpg: one INSERT … SELECT … WHERE head = $expected into evsrc's own table "
        "(same columns and indexes), the unique (stream, seq) key turning a race into an "
        "error. Diagnostics: `raw asyncpg, evsrc's SQL` (evsrc's append statement without "
        "the store: client overhead alone) and `evsrc, notify=False` (the store without "
        "its post-commit NOTIFY)."
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
