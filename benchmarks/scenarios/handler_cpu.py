"""Scenario: the command handler's CPU per command on a warm in-memory aggregate (issue 16).

Process CPU time (``time.process_time``) over the commands executed, so what
the handler costs shows apart from waiting: deciding, encoding the events,
their ids, the append's checks, the outcome, the lane's scheduling and the
cache's fold. The aggregate is a small counter whose state does not grow (its
``clone`` is cheap), warmed before the clock starts.

- ``lone``: one caller, one command after another (one append each);
- ``16 callers`` / ``1,000 callers``: concurrent callers on the one stream.

Each runs on the in-memory store as it is — its append never yields to the
event loop, so a command finishes before the next one starts and nothing
batches — and through a wrapper whose append yields once to the event loop
first, as a database round trip does: then commands queue in the stream's
lane and are committed in batches, as on PostgreSQL (commands per append is
reported). The limit is an idealised handler of the same commands: decide
with the same aggregate method, build a ``NewEvent`` (fresh uuid4 id, the data
as a dict), append it to a dict-of-lists store, fold it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

from benchmarks.harness import Case, Context, Sample
from evsrc import Aggregate, CommandHandler, Decision, Event, NewEvent, applies
from evsrc.memory import InMemoryEventStore
from evsrc.store import DelegatingStore

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evsrc.records import Committed, Conflict

__all__ = ["Counter", "run_handler_cpu"]


class Counted(Event, type="counted", version=1):
    """One command's mark on the counter."""

    by: str


class Counter(Aggregate):
    """A counter whose state does not grow with its stream: the warm aggregate."""

    stream_prefix = "counter"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.last = ""

    def clone(self) -> Counter:
        """A cheap copy (the default deepcopy would dominate a batch)."""
        c = Counter()
        c.count, c.last, c.seq = self.count, self.last, self.seq
        return c

    @applies
    def _counted(self, e: Counted) -> None:
        self.count += 1
        self.last = e.by

    def count_one(self, by: str) -> Decision[int]:
        """Count one, returning the new count."""
        return Decision([Counted(by=by)], self.count + 1)


class Yielding(DelegatingStore):
    """The store, with one pass through the event loop before each append (a round trip).

    Counts its appends (``appends``) itself: a second wrapper to count them
    would add its own coroutine per append to what is measured.
    """

    appends = 0

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """Yield once, then append."""
        self.appends += 1
        await asyncio.sleep(0)
        return await self.inner.append_expect(stream, expected, events)


async def handler_run(callers: int, per_caller: int, *, yielding: bool) -> Sample:
    """``callers`` tasks each executing ``per_caller`` commands on one warm counter."""
    inner = InMemoryEventStore()
    yielder = Yielding(inner) if yielding else None
    handler = CommandHandler(inner if yielder is None else yielder, Counter)
    await handler.execute("hot", lambda c: c.count_one("warm"))
    if yielder is not None:
        yielder.appends = 0

    async def caller(i: int) -> None:
        for k in range(per_caller):
            out = await handler.execute("hot", lambda c, by=f"c{i}-{k}": c.count_one(by))
            if not out.ok:  # pragma: no cover - a counter never refuses
                raise AssertionError(out)

    n = callers * per_caller
    t0, w0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    state = await handler.load("hot")
    if state.count != n + 1:
        raise AssertionError(f"counted {state.count}, expected {n + 1}")
    extra = {"us_per_command": cpu / n * 1e6, "wall_us_per_command": wall / n * 1e6}
    if yielder is not None:
        extra["commands_per_append"] = n / max(1, yielder.appends)
    return Sample(n, cpu, extra)


async def limit_run(n: int) -> Sample:
    """The idealised handler: decide, a NewEvent with a fresh uuid4, a list append, a fold."""
    state = Counter()
    log: list[NewEvent] = []
    streams: dict[str, list[NewEvent]] = {"counter:hot": []}
    new_id = uuid.uuid4

    async def append(stream: str, expected: int, events: list[NewEvent]) -> bool:
        rows = streams[stream]
        if len(rows) != expected:
            return False
        rows.extend(events)
        log.extend(events)
        return True

    t0 = time.process_time()
    for k in range(n):
        decided = state.count_one(f"c0-{k}")
        events = [NewEvent(e.event_type, e.model_dump(), {}, new_id()) for e in decided.events]
        if not await append("counter:hot", state.seq, events):
            raise AssertionError("conflict in the limit")
        state.apply_new(decided.events)
    cpu = time.process_time() - t0
    return Sample(n, cpu, {"us_per_command": cpu / n * 1e6})


def _runner(fn: Any, *args: Any, **kw: Any) -> Any:
    async def prepare() -> Any:
        async def rep() -> Sample:
            s: Sample = await fn(*args, **kw)
            return s

        return rep

    return prepare


async def run_handler_cpu(ctx: Context) -> None:
    """Per-command CPU of the command handler (memory only)."""
    total = ctx.size(16_000, 320)
    ctx.note(
        "µs/command = process CPU time / commands (lower is better; the table's rate is "
        "commands per CPU-second). `yield per append`: the store's append passes once "
        "through the event loop, as a round trip does, so concurrent commands batch."
    )
    for label, callers in (("lone caller", 1), ("16 callers", 16), ("1,000 callers", 1000)):
        per = max(1, total // callers)
        for yielding in (False, True):
            name = f"memory · {label}" + (" · yield per append" if yielding else "")
            case = Case(
                name,
                "commands per CPU-s",
                {"backend": "memory", "callers": callers, "yielding": yielding},
                {"evsrc": "evsrc CommandHandler", "limit": "decide + NewEvent + list append"},
            )
            await ctx.run_case(
                case,
                {
                    "evsrc": _runner(handler_run, callers, per, yielding=yielding),
                    "limit": _runner(limit_run, callers * per),
                },
            )
