"""Scenario: what idle live subscribers cost writers.

50 subscribers follow ``store.subscribe(stream_prefix="idle:")`` — a prefix
nobody writes — while writers append single events to other streams, on the
same store (as in an app whose projections run beside its commands). Beside
it, the same appends with no subscriber, in the same run:

- evsrc: appends with ``SUBSCRIBERS`` idle subscribers on the store;
- limit: the same appends, no subscriber.

Sequential (one writer) and 4 concurrent writers; memory and PostgreSQL.
Goal: the subscribers cost appends at most 15 % (evsrc / limit ≥ 0.85).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio

from benchmarks.harness import Case, Sample
from benchmarks.scenarios.append import _unavailable
from benchmarks.targets import open_evsrc_pg
from benchmarks.workloads import PgDatabases, make_events, stream_names
from evsrc.memory import InMemoryEventStore
from evsrc.records import Committed

if TYPE_CHECKING:
    from benchmarks.harness import Context
    from evsrc.store import EventStore

__all__ = ["run_subscribers"]

SUBSCRIBERS = 50
WRITERS = (1, 4)
LABELS = {
    "evsrc": f"appends with {SUBSCRIBERS} idle subscribers",
    "limit": "the same appends, no subscriber",
}


#: Events the idle subscribers received, per repetition (checked to be none).
received: list[int] = []


async def _appends(store: EventStore, writers: int, per_writer: int, subscribers: int) -> Sample:
    """``writers`` tasks appending ``per_writer`` single events each, with idle subscribers."""
    names = stream_names(f"w{time.monotonic_ns()}", writers)
    payloads = [[make_events(1, i) for i in range(per_writer)] for _ in names]
    seen: list[object] = []
    listening = anyio.Event()
    started = 0

    async def idle() -> None:
        nonlocal started
        started += 1
        if started == subscribers:
            listening.set()
        async for e in store.subscribe(stream_prefix="idle:"):
            seen.append(e)  # pragma: no cover - nobody writes there

    async def writer(stream: str, items: list[Any]) -> None:
        for expected, events in enumerate(items):
            r = await store.append_expect(stream, expected, events)
            if type(r) is not Committed:
                raise AssertionError(f"append to {stream} at {expected} did not commit")

    async with anyio.create_task_group() as tg:
        for _ in range(subscribers):
            tg.start_soon(idle)
        if subscribers:
            await listening.wait()
        await anyio.sleep(0.2)  # every subscriber caught up and waiting (both variants)
        t0 = time.perf_counter()
        async with anyio.create_task_group() as wg:
            for s, items in zip(names, payloads, strict=True):
                wg.start_soon(writer, s, items)
        dt = time.perf_counter() - t0
        tg.cancel_scope.cancel()
    received.append(len(seen))
    return Sample(writers * per_writer, dt)


def _mem(writers: int, per_writer: int, subscribers: int) -> Any:
    async def prepare() -> Any:
        async def rep() -> Sample:
            async with InMemoryEventStore() as store:
                return await _appends(store, writers, per_writer, subscribers)

        return rep

    return prepare


def _pg(dbs: PgDatabases, writers: int, per_writer: int, subscribers: int) -> Any:
    async def prepare() -> Any:
        variant = "subs" if subscribers else "none"
        url = await dbs.evsrc_db(f"{variant}{writers}")

        async def rep() -> Sample:
            store = await open_evsrc_pg(url, 10)
            try:
                await store.read("warm", limit=1)
                return await _appends(store, writers, per_writer, subscribers)
            finally:
                await store.close()

        return rep

    return prepare


async def run_subscribers(ctx: Context) -> None:
    """Appends with 50 idle subscribers beside none, memory and PostgreSQL."""
    per_writer_mem = ctx.size(5000, 50)
    per_writer_pg = ctx.size(1000, 20)
    for writers in WRITERS:
        await ctx.run_case(
            Case(
                f"memory · {writers} writer(s), {SUBSCRIBERS} idle subscribers vs none",
                "appends/s",
                {"backend": "memory", "writers": writers, "subscribers": SUBSCRIBERS},
                dict(LABELS),
            ),
            {
                "evsrc": _mem(writers, per_writer_mem // writers, SUBSCRIBERS),
                "limit": _mem(writers, per_writer_mem // writers, 0),
            },
        )
    dbs = PgDatabases(ctx, "subscribers")
    try:
        for writers in WRITERS:
            if ctx.dsn is None or ctx.pg_reason is not None:
                why = ctx.pg_reason or "PostgreSQL not available"
                runners = {"evsrc": _unavailable(why), "limit": _unavailable(why)}
            else:
                n = per_writer_pg // writers
                runners = {
                    "evsrc": _pg(dbs, writers, n, SUBSCRIBERS),
                    "limit": _pg(dbs, writers, n, 0),
                }
            await ctx.run_case(
                Case(
                    f"postgres · {writers} writer(s), {SUBSCRIBERS} idle subscribers vs none",
                    "appends/s",
                    {"backend": "postgres", "writers": writers, "subscribers": SUBSCRIBERS},
                    dict(LABELS),
                ),
                runners,
            )
    finally:
        await dbs.drop_all()
    ctx.check(
        "idle subscribers receive no event",
        bool(received) and not any(received),
        f"{sum(received)} events over {len(received)} repetitions",
    )
