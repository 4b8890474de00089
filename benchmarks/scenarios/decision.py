"""Scenario 5: the cost of a booking decision as the roster grows (framework cache warm).

An occurrence is loaded with R bookings (R = 10 and R = 10,000), written in
bulk through the store; one booking then warms the command handler's cache.
Timed: M further bookings one after another, each a whole
``BookingService.book`` (observe from the cache → decide → ``append_expect``)
— in memory, where the decision's own cost shows, and on PostgreSQL, where a
round trip surrounds it. Also timed: the bare decision, ``Occurrence.book``
called on the loaded state. The goal compares time per booking at R = 10,000
with R = 10 (``cost_ratio`` = rate at 10 / rate at 10,000).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from benchmarks.harness import Case, Context, NotAvailable, Sample
from benchmarks.scenarios.append import _unavailable
from benchmarks.targets import open_evsrc_pg
from benchmarks.workloads import PgDatabases, chunks, stream_names
from evsrc.memory import InMemoryEventStore

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["run_decision"]


def _booking() -> Any:
    try:
        import examples.booking as booking
        from examples.booking.domain import Booked, Occurrence
    except ImportError as exc:
        raise NotAvailable(f"examples.booking not available ({exc})") from exc
    return booking.BookingService, Booked, Occurrence


async def _load(store: EventStore, roster: int) -> str:
    """A fresh occurrence with ``roster`` bookings, written in bulk; its name."""
    _, booked, occurrence = _booking()
    occ = stream_names("dec", 1)[0]
    events = [occurrence.registry.encode(booked(actor=f"pre-{i}")) for i in range(roster)]
    for part in chunks(events, 1000):
        await store.append(f"{occurrence.stream_prefix}:{occ}", part)
    return occ


async def _bookings(store: EventStore, roster: int, m: int) -> Sample:
    service_cls, _, _ = _booking()
    occ = await _load(store, roster)
    capacity = roster + m + 10
    svc = service_cls(store)
    first = await svc.book(occ, capacity, "warm-up")  # folds the stream: cache warm
    if str(getattr(first.status, "value", first.status)) != "booked":
        raise AssertionError(f"warm-up booking was {first.status}")
    t0 = time.perf_counter()
    for i in range(m):
        r = await svc.book(occ, capacity, f"new-{i}")
        if r.seat != roster + 2 + i:
            raise AssertionError(f"booking {i} got seat {r.seat}")
    return Sample(m, time.perf_counter() - t0)


async def _mem_bookings(roster: int, m: int) -> Sample:
    return await _bookings(InMemoryEventStore(), roster, m)


async def _decide(roster: int, m: int) -> Sample:
    service_cls, _, _ = _booking()
    store = InMemoryEventStore()
    occ = await _load(store, roster)
    svc = service_cls(store)
    state = await svc.state(occ)
    capacity = roster + 10
    actors = [f"new-{i}" for i in range(m)]
    book = state.book
    t0 = time.perf_counter()
    for a in actors:
        book(a, capacity)
    return Sample(m, time.perf_counter() - t0)


def _runner(fn: Any, *args: Any) -> Any:
    async def prepare() -> Any:
        _booking()

        async def rep() -> Sample:
            return await fn(*args)  # type: ignore[no-any-return]

        return rep

    return prepare


def _pg_runner(url: str, roster: int, m: int) -> Any:
    async def prepare() -> Any:
        _booking()

        async def rep() -> Sample:
            store = await open_evsrc_pg(url, 1)
            try:
                return await _bookings(store, roster, m)
            finally:
                await store.close()

        return rep

    return prepare


async def run_decision(ctx: Context) -> None:
    """Scenario 5."""
    small, big = 10, ctx.size(10_000, 500)
    m_mem, m_pg, m_pure = ctx.size(2000, 20), ctx.size(300, 5), ctx.size(20_000, 100)
    labels = {"small": f"roster {small}", "big": f"roster {big:,}"}

    async def one(name: str, unit: str, backend: str, runners: dict[str, Any]) -> None:
        case = Case(
            name,
            unit,
            {"backend": backend, "group": "all", "small": small, "big": big},
            dict(labels),
        )
        await ctx.run_case(case, runners)
        a, b = case.rate("small"), case.rate("big")
        case.derived["cost_ratio"] = a / b if a and b else None

    await one(
        "bare decision (Occurrence.book on the loaded state)",
        "decisions/s",
        "decide",
        {"small": _runner(_decide, small, m_pure), "big": _runner(_decide, big, m_pure)},
    )
    await one(
        "memory · BookingService.book",
        "bookings/s",
        "memory",
        {
            "small": _runner(_mem_bookings, small, m_mem),
            "big": _runner(_mem_bookings, big, m_mem),
        },
    )
    dbs = PgDatabases(ctx, "decision")
    try:
        try:
            _booking()
            url = await dbs.evsrc_db("evsrc")
        except NotAvailable as exc:
            runners = {"small": _unavailable(str(exc)), "big": _unavailable(str(exc))}
        else:
            runners = {"small": _pg_runner(url, small, m_pg), "big": _pg_runner(url, big, m_pg)}
        await one("postgres · BookingService.book", "bookings/s", "postgres", runners)
    finally:
        await dbs.drop_all()
