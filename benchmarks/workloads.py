"""Workloads shared by the scenarios, identical for every variant.

Each variant hands in its own ``append(stream, expected, payload) -> bool``
(True when committed) and payloads built before the clock starts; the timing
loop around it is this one, whatever the variant, so only what is under test
differs.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from benchmarks import db
from benchmarks.harness import CheckFailed, Context, NotAvailable, Sample
from benchmarks.targets import POOL_CAP, open_evsrc_pg, require_evsrc_pg
from evsrc.records import NewEvent

__all__ = ["PgDatabases", "make_events", "run_appends", "stream_names"]

AppendFn = Callable[[str, int, Any], Awaitable[bool]]

_counter = itertools.count(1)


def stream_names(prefix: str, n: int) -> list[str]:
    """``n`` stream names never used before in this process."""
    run = next(_counter)
    return [f"{prefix}-{run}-{i}" for i in range(n)]


def make_events(n: int, start: int = 0) -> list[NewEvent]:
    """``n`` booking-shaped events (``{"actor": ...}``), fresh ids."""
    return [NewEvent(type="booking", data={"actor": f"actor-{start + i}"}) for i in range(n)]


async def run_appends(
    append: AppendFn,
    streams: list[str],
    payloads: list[list[Any]],
    *,
    batch: int,
    sequential: bool,
    clock: Callable[[], float] = time.perf_counter,
) -> Sample:
    """Each stream's payloads appended in order with ``expected`` = events so far.

    ``sequential``: one loop over the streams' appends in turn, on the calling
    task. Otherwise one writer task per stream, all started together.
    Returns appends done per second (of ``clock``: wall time by default);
    a refused append is a failed check.
    """

    async def writer(stream: str, items: list[Any]) -> None:
        expected = 0
        for p in items:
            if not await append(stream, expected, p):
                raise CheckFailed(f"append to {stream} at {expected} did not commit")
            expected += batch

    n = sum(len(p) for p in payloads)
    # The payloads were just built: collect now, or a full collection of them
    # lands inside the timed loop of whichever variant comes first.
    gc.collect()
    if sequential:
        t0 = clock()
        for s, items in zip(streams, payloads, strict=True):
            await writer(s, items)
        dt = clock() - t0
    else:
        tasks = [writer(s, items) for s, items in zip(streams, payloads, strict=True)]
        t0 = clock()
        await asyncio.gather(*tasks)
        dt = clock() - t0
    return Sample(n, dt, {"events_per_s": n * batch / dt})


class PgDatabases:
    """A scenario's own databases: one per variant, fresh, dropped at the end."""

    def __init__(self, ctx: Context, scenario: str) -> None:
        self.ctx = ctx
        self.scenario = scenario
        self.names: dict[str, str] = {}
        self.schema = "public"

    def name(self, variant: str) -> str:
        """The database name of ``variant`` in this scenario."""
        return f"{self.ctx.db_prefix}_{self.scenario}_{variant}"[:63]

    async def evsrc_db(self, variant: str) -> str:
        """A fresh database with the evsrc schema (``setup()``); its DSN."""
        dsn = self.ctx.require_pg()
        require_evsrc_pg()
        name = self.name(variant)
        url = await db.fresh_db(dsn, name)
        self.names[variant] = name
        store = await open_evsrc_pg(url, 1)
        try:
            await store.setup()  # type: ignore[attr-defined]
            self.schema = str(getattr(store, "schema", None) or "public")
        finally:
            await store.close()
        return url

    async def plain_db(self, variant: str) -> tuple[str, str]:
        """A fresh empty database: (DSN, name)."""
        dsn = self.ctx.require_pg()
        name = self.name(variant)
        url = await db.fresh_db(dsn, name)
        self.names[variant] = name
        return url, name

    async def drop_all(self) -> None:
        """Drop every database this scenario made."""
        dsn = self.ctx.dsn
        if dsn is None or self.ctx.pg_reason is not None:
            return
        for name in self.names.values():
            await db.drop_db(dsn, name)
        self.names.clear()


def pool_size(concurrency: int) -> int:
    """The pool size every variant gets for ``concurrency`` writers."""
    return max(1, min(concurrency, POOL_CAP))


def quoted(schema: str) -> str:
    """``schema`` as a quoted identifier, unless it already is one."""
    if schema.startswith('"'):
        return schema
    return '"' + schema.replace('"', '""') + '"'


def require(cond: bool, reason: str) -> None:
    """NotAvailable(reason) unless ``cond``."""
    if not cond:
        raise NotAvailable(reason)


def chunks(seq: Sequence[Any], n: int) -> list[list[Any]]:
    """``seq`` in lists of ``n``."""
    return [list(seq[i : i + n]) for i in range(0, len(seq), n)]
