"""Scenario: process-manager reactions — how many per second, and how long after the event.

A process manager reacts to each ``ping`` with one command on another
aggregate (a ``pong``), through a ``CommandHandler`` with deterministic event
ids, its position kept as events (``StreamCheckpointStore``). Beside it, in the
same run, the *limit*: a hand-written loop doing the same commands from
``read_all`` with no checkpoint and no derived ids (what the framework adds
is the exactly-once bookkeeping).

- catch-up: N pings committed first, then ``catch_up()``; reactions/s.
- live: a running manager, pings appended one at a time, each waited for;
  reactions/s end to end, and the delay from the ping's commit to its pong's
  (``delay_p50_ms``, ``delay_p99_ms``).

In memory only: a PostgreSQL figure would need raw asyncpg doing the same
work beside it, which this scenario does not have yet.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from benchmarks.harness import Case, Sample
from evsrc import (
    Aggregate,
    CommandHandler,
    Event,
    EventRegistry,
    ProcessManager,
    ProjectionRunner,
    RecordedEvent,
    Send,
    StreamCheckpointStore,
    applies,
    handles,
)
from evsrc.memory import InMemoryEventStore

if TYPE_CHECKING:
    from benchmarks.harness import Context

__all__ = ["run_reactions"]

KEYS = 16
#: Per repetition: whether every ping got exactly one pong (checked at the end).
exact: list[bool] = []


class Pinged(Event, type="bench.pinged"):
    n: int


class Ponged(Event, type="bench.ponged"):
    n: int


class Pinger(Aggregate):
    stream_prefix = "bping"
    registry = EventRegistry(Pinged)

    @applies(Pinged)
    def _pinged(self, e: Pinged) -> None:
        pass


class Ponger(Aggregate):
    stream_prefix = "bpong"
    registry = EventRegistry(Ponged)

    @applies(Ponged)
    def _ponged(self, e: Ponged) -> None:
        pass


class Reactor(ProcessManager):
    name = "bench-reactor"
    stream_prefix = "bping:"

    def __init__(self, pongs: CommandHandler[Ponger]) -> None:
        self.pongs = pongs
        self.done: dict[int, float] = {}

    @handles(Pinged)
    async def on_ping(self, e: Pinged, r: RecordedEvent) -> Send:
        return Send(self.pongs, str(e.n % KEYS), lambda s: [Ponged(n=e.n)])

    async def reacted(self, recorded: RecordedEvent, send: Send, outcome: Any) -> None:
        self.done[recorded.data["n"]] = time.perf_counter()


async def _pings(store: InMemoryEventStore, n: int) -> None:
    h = CommandHandler(store, Pinger)
    for i in range(n):
        await h.execute(str(i), lambda s, i=i: [Pinged(n=i)])


async def _pong_count(store: InMemoryEventStore) -> int:
    return sum([await store.count(f"bpong:{k}") for k in range(KEYS)])


def _catch_up(n: int, framework: bool) -> Any:
    async def prepare() -> Any:
        async def rep() -> Sample:
            async with InMemoryEventStore() as store:
                await _pings(store, n)
                pongs = CommandHandler(store, Ponger)
                t0 = time.perf_counter()
                if framework:
                    runner = ProjectionRunner(store, Reactor(pongs), StreamCheckpointStore(store))
                    done = await runner.catch_up()
                else:
                    done = 0
                    async for e in store.read_all(types=["bench.pinged"]):
                        i = e.data["n"]
                        await pongs.execute(str(i % KEYS), lambda s, i=i: [Ponged(n=i)])
                        done += 1
                dt = time.perf_counter() - t0
                exact.append(done == n and await _pong_count(store) == n)
                return Sample(n, dt)

        return rep

    return prepare


def _live(n: int) -> Any:
    async def prepare() -> Any:
        async def rep() -> Sample:
            async with InMemoryEventStore() as store:
                reactor = Reactor(CommandHandler(store, Ponger))
                runner = ProjectionRunner(store, reactor, StreamCheckpointStore(store))
                pings = CommandHandler(store, Pinger)
                delays: list[float] = []
                async with runner.running():
                    t0 = time.perf_counter()
                    for i in range(n):
                        sent = time.perf_counter()
                        await pings.execute(str(i), lambda s, i=i: [Pinged(n=i)])
                        while i not in reactor.done:
                            await anyio.lowlevel.checkpoint()
                        delays.append(reactor.done[i] - sent)
                    dt = time.perf_counter() - t0
                exact.append(await _pong_count(store) == n)
                q = statistics.quantiles(delays, n=100)
                return Sample(n, dt, {"delay_p50_ms": q[49] * 1000, "delay_p99_ms": q[98] * 1000})

        return rep

    return prepare


async def run_reactions(ctx: Context) -> None:
    """Process-manager reactions per second (catch-up, live) and the delay to each."""
    n = ctx.size(5000, 200)
    await ctx.run_case(
        Case(
            f"memory · catch-up, {n} pings",
            "reactions/s",
            {"backend": "memory", "pings": n},
            {
                "evsrc": "ProcessManager + StreamCheckpointStore",
                "limit": "read_all loop, handler.execute, no checkpoint",
            },
        ),
        {"evsrc": _catch_up(n, True), "limit": _catch_up(n, False)},
    )
    live = ctx.size(1000, 50)
    case = await ctx.run_case(
        Case(
            f"memory · live, {live} pings one at a time",
            "reactions/s",
            {"backend": "memory", "pings": live},
            {"evsrc": "running ProcessManager: ping committed → pong committed"},
        ),
        {"evsrc": _live(live)},
    )
    for metric in ("delay_p50_ms", "delay_p99_ms"):
        values = case.extra.get("evsrc", {}).get(metric, [])
        if values:
            ctx.note(f"live delay from ping to pong, {metric}: {statistics.median(values):.3f} ms")
    ctx.check(
        "every ping got exactly one pong",
        bool(exact) and all(exact),
        f"{exact.count(False)} of {len(exact)} repetitions off",
    )
