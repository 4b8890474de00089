"""Scenario 4: the hot seat — B bookers racing for C seats on one occurrence.

Every booker books fresh actors one after another until it is told ``full``,
so exactly C bookings land however the race goes (checked every repetition:
C booked, the roster exactly C distinct actors, every booker ended on
``full``). Measured: bookings per second (C / wall time), conflicts, attempts
per booking, appends issued, p50/p99 latency of the calls that booked.
The 1-booker case is the uncontended baseline: the p50 of its batching row
against its no-batching row is what batching costs a lone booking.

- evsrc: ``examples.booking.BookingService`` (the framework's command
  handler), with batching (the default) and without;
- limit: raw asyncpg, sequential single-row appends of evsrc's append
  statement (in memory: the dict-of-lists store) — the rate one writer gets;
- peer: ``eventsourcing`` — an Aggregate with a roster, its own optimistic
  version check, retry on ``IntegrityError``; one thread per booker, up to
  the pool cap.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import TYPE_CHECKING, Any

from benchmarks.harness import Case, Context, NotAvailable, Sample
from benchmarks.peer import EsBooking, require_eventsourcing
from benchmarks.scenarios.append import _mem, _pg_raw, _unavailable
from benchmarks.targets import open_evsrc_pg
from benchmarks.workloads import PgDatabases, pool_size, stream_names
from evsrc.memory import InMemoryEventStore
from evsrc.records import NewEvent
from evsrc.testing.stores import ProxyStore

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["run_hot_seat"]

LABELS = {
    "evsrc": "evsrc BookingService (batching)",
    "evsrc_nobatch": "evsrc BookingService (no batching)",
    "limit": "",
    "peer": "eventsourcing Application",
}


def _service() -> Any:
    try:
        from examples.booking import BookingService
    except ImportError as exc:
        raise NotAvailable(f"examples.booking not available ({exc})") from exc
    return BookingService


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _metrics(
    ctx: Context,
    who: str,
    *,
    seats: int,
    bookers: int,
    seconds: float,
    statuses: dict[str, int],
    attempts: list[int],
    appends: int,
    conflicts: int,
    latencies: list[float],
    roster: list[str],
) -> Sample:
    ctx.check(
        f"{who}: exactly {seats} booked",
        statuses.get("booked", 0) == seats and len(roster) == seats,
        f"booked={statuses.get('booked', 0)} roster={len(roster)}",
    )
    ctx.check(f"{who}: roster has no duplicates", len(set(roster)) == len(roster))
    ctx.check(
        f"{who}: every booker ended on full",
        statuses.get("full", 0) == bookers,
        f"statuses={statuses}",
    )
    return Sample(
        seats,
        seconds,
        {
            "bookings_per_s": seats / seconds,
            "booked": float(statuses.get("booked", 0)),
            "conflicts": float(conflicts),
            "attempts_per_booking": statistics.fmean(attempts) if attempts else float("nan"),
            "appends": float(appends),
            "p50_ms": _pct(latencies, 0.5) * 1000,
            "p99_ms": _pct(latencies, 0.99) * 1000,
        },
    )


async def _race(
    ctx: Context, store: EventStore, bookers: int, seats: int, *, batching: bool, who: str
) -> Sample:
    service_cls = _service()
    counting = ProxyStore(store)  # counts the appends issued
    svc = service_cls(counting, batching=batching, max_attempts=max(64, 2 * seats + 2))
    occ = stream_names("hot", 1)[0]
    latencies: list[float] = []
    attempts: list[int] = []
    statuses: dict[str, int] = {}

    async def booker(b: int) -> None:
        k = 0
        while True:
            t0 = time.perf_counter()
            r = await svc.book(occ, seats, f"b{b}-{k}")
            dt = time.perf_counter() - t0
            k += 1
            status = str(getattr(r.status, "value", r.status))
            statuses[status] = statuses.get(status, 0) + 1
            if status == "booked":
                latencies.append(dt)
                attempts.append(r.attempts)
            elif status == "full":
                return
            else:
                raise AssertionError(f"unexpected booking status {status}")

    t0 = time.perf_counter()
    await asyncio.gather(*(booker(b) for b in range(bookers)))
    seconds = time.perf_counter() - t0
    roster = await service_cls(store).roster(occ)
    return _metrics(
        ctx,
        who,
        seats=seats,
        bookers=bookers,
        seconds=seconds,
        statuses=statuses,
        attempts=attempts,
        appends=len(counting.appends),
        conflicts=counting.conflicts,
        latencies=latencies,
        roster=roster,
    )


def _mem_evsrc(ctx: Context, bookers: int, seats: int, batching: bool, who: str) -> Any:
    async def prepare() -> Any:
        _service()

        async def rep() -> Sample:
            return await _race(
                ctx, InMemoryEventStore(), bookers, seats, batching=batching, who=who
            )

        return rep

    return prepare


def _pg_evsrc(ctx: Context, url: str, bookers: int, seats: int, batching: bool, who: str) -> Any:
    async def prepare() -> Any:
        _service()

        async def rep() -> Sample:
            size = pool_size(bookers)
            store = await open_evsrc_pg(url, size)
            try:
                # Untimed warm-up: open and prepare every pooled connection, for
                # the one-event append the bookings use without batching and for
                # the several-event append (its own statement and array types)
                # that a batch commits. ``size`` calls in flight at once hold
                # ``size`` distinct connections.
                svc = _service()(store, batching=False)
                warm = stream_names("warm", 1)[0]
                await asyncio.gather(*(svc.book(warm, size * 2, f"w{i}") for i in range(size)))
                await asyncio.gather(
                    *(
                        store.append_expect(f"{warm}-{i}", 0, [NewEvent("Warm"), NewEvent("Warm")])
                        for i in range(size)
                    )
                )
                return await _race(ctx, store, bookers, seats, batching=batching, who=who)
            finally:
                await store.close()

        return rep

    return prepare


def _pg_peer(ctx: Context, dsn: str, dbname: str, bookers: int, seats: int, who: str) -> Any:
    async def prepare() -> Any:
        require_eventsourcing()

        async def rep() -> Sample:
            threads = pool_size(bookers)

            def work() -> dict[str, Any]:
                app = EsBooking(dsn, dbname, threads)
                try:
                    return app.race(bookers, seats, threads)
                finally:
                    app.close()

            r = await asyncio.to_thread(work)
            return _metrics(
                ctx,
                who,
                seats=seats,
                bookers=bookers,
                seconds=r["seconds"],
                statuses=r["statuses"],
                attempts=r["attempts"],
                appends=r["appends"],
                conflicts=r["appends"] - r["statuses"].get("booked", 0),
                latencies=r["latencies"],
                roster=r["roster"],
            )

        return rep

    return prepare


async def run_hot_seat(ctx: Context) -> None:
    """Scenario 4."""
    # One lone booker first: the latency batching adds when nobody contends
    # (compare the p50 of the batching and no-batching rows).
    races = [(1, 300), (16, 300), (1000, 100)] if not ctx.quick else [(1, 12), (4, 12), (40, 5)]
    seq_n = ctx.size(1000, 10)
    ctx.note(
        "Each booker books fresh actors until told `full`; bookings/s = seats / wall time; "
        "latency over the calls that booked; appends issued counted at the store (a batched "
        "append counts once); limit = one writer's sequential single-event append rate. "
        "Pools: evsrc runs B booker tasks on min(B, 32) connections; eventsourcing (sync) "
        "runs its B bookers on min(B, 32) threads with a pool of the same size."
    )
    for bookers, seats in races:
        labels = dict(LABELS)
        labels["limit"] = "dict-of-lists, sequential 1-event appends"
        case = Case(
            f"memory · {bookers} bookers / {seats} seats",
            "bookings/s",
            {"backend": "memory", "bookers": bookers, "seats": seats},
            {k: v for k, v in labels.items() if k != "peer"},
        )
        await ctx.run_case(
            case,
            {
                "evsrc": _mem_evsrc(ctx, bookers, seats, True, f"memory {bookers}/{seats}"),
                "evsrc_nobatch": _mem_evsrc(
                    ctx, bookers, seats, False, f"memory {bookers}/{seats} no batching"
                ),
                "limit": _mem("limit", 1, seq_n, 1, True),
            },
        )

    dbs = PgDatabases(ctx, "hot")
    try:
        urls: dict[str, str] = {}
        reason = peer_reason = ""
        peer_db = ""
        try:
            _service()
            urls["evsrc"] = await dbs.evsrc_db("evsrc")
            urls["raw"] = await dbs.evsrc_db("raw")
        except NotAvailable as exc:
            reason = str(exc)
            urls.clear()
        try:
            require_eventsourcing()
            ctx.require_pg()
            _, peer_db = await dbs.plain_db("es")
        except NotAvailable as exc:
            peer_reason = str(exc)
        for bookers, seats in races:
            labels = dict(LABELS)
            labels["limit"] = "raw asyncpg, sequential 1-event appends"
            case = Case(
                f"postgres · {bookers} bookers / {seats} seats",
                "bookings/s",
                {"backend": "postgres", "bookers": bookers, "seats": seats},
                labels,
            )
            who = f"postgres {bookers}/{seats}"
            runners: dict[str, Any] = {}
            if urls:
                runners["evsrc"] = _pg_evsrc(ctx, urls["evsrc"], bookers, seats, True, who)
                runners["evsrc_nobatch"] = _pg_evsrc(
                    ctx, urls["evsrc"], bookers, seats, False, who + " no batching"
                )
                runners["limit"] = _pg_raw(urls["raw"], dbs, 1, seq_n, 1, True)
            else:
                runners["evsrc"] = runners["evsrc_nobatch"] = runners["limit"] = _unavailable(
                    reason
                )
            if peer_db:
                runners["peer"] = _pg_peer(
                    ctx, ctx.require_pg(), peer_db, bookers, seats, who + " eventsourcing"
                )
            else:
                runners["peer"] = _unavailable(peer_reason)
            await ctx.run_case(case, runners)
    finally:
        await dbs.drop_all()
