"""Scenario 3, last part: a framework projector catching up over the read data set.

The projector handles every event (a pydantic ``booking`` model) and counts
bookings per stream in a dict. Variants:

- evsrc: ``ProjectionRunner.catch_up()`` with an ``InMemoryCheckpointStore``;
- feed: evsrc's ``read_all`` alone, the projector's input, for scale;
- limit: in memory the dict-of-lists log; on PostgreSQL raw asyncpg paging
  evsrc's ``read_all`` statement (rows only).

On PostgreSQL there is also the transactional runner
(``PostgresProjectionRunner``: each event's read-model UPDATE and its
checkpoint commit in one transaction), beside raw asyncpg doing the same
transaction per event. Its per-event commit makes it slow by design, so it
catches up over the *last* ``tx_events`` events of the data set (its
checkpoint is set just before them).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from benchmarks.harness import Case, NotAvailable, Sample
from benchmarks.scenarios.append import _unavailable
from benchmarks.targets import DictStore, RawPg, open_evsrc_pg, pg_page_size
from benchmarks.workloads import quoted
from evsrc.memory import InMemoryEventStore

if TYPE_CHECKING:
    from benchmarks.harness import Context
    from evsrc.events import Checkpoint
    from evsrc.store import EventStore

__all__ = ["run"]

_classes: dict[str, Any] = {}


def _api() -> dict[str, Any]:
    """The projector classes (built once: pydantic models and projectors are classes)."""
    if _classes:
        return _classes
    try:
        from evsrc.codec import Event
        from evsrc.projection import (
            InMemoryCheckpointStore,
            ProjectionRunner,
            Projector,
            handles,
        )
    except ImportError as exc:
        raise NotAvailable(f"evsrc.projection not available ({exc})") from exc

    class Booked(Event, type="booking"):
        actor: str

    class Counts(Projector):
        name = "bench-counts"

        def __init__(self) -> None:
            self.counts: dict[str, int] = {}

        @handles(Booked)
        async def on_booked(self, event: Any, recorded: Any, *context: Any) -> None:
            counts = self.counts
            counts[recorded.stream] = counts.get(recorded.stream, 0) + 1

    class TxCounts(Projector):
        name = "bench-tx-counts"
        sql = ""  # the read-model UPSERT, set before use

        @handles(Booked)
        async def on_booked(self, event: Any, recorded: Any, conn: Any) -> None:
            await conn.execute(self.sql, recorded.stream)

    _classes.update(
        Booked=Booked,
        Counts=Counts,
        TxCounts=TxCounts,
        Runner=ProjectionRunner,
        Checkpoints=InMemoryCheckpointStore,
    )
    return _classes


def _check(projector: Any, n: int, want: int, what: str) -> None:
    got = sum(projector.counts.values())
    if n != want or got != want:
        raise AssertionError(f"{what}: processed {n}, counted {got}, expected {want}")


async def _catch_up(store: EventStore, want: int) -> Sample:
    api = _api()
    projector = api["Counts"]()
    runner = api["Runner"](store, projector, api["Checkpoints"]())
    t0 = time.perf_counter()
    n = await runner.catch_up()
    dt = time.perf_counter() - t0
    _check(projector, n, want, "projector")
    return Sample(n, dt)


async def _feed(store: EventStore, want: int) -> Sample:
    t0 = time.perf_counter()
    n = 0
    async for _ in store.read_all():
        n += 1
    dt = time.perf_counter() - t0
    if n != want:
        raise AssertionError(f"read_all: {n} events, expected {want}")
    return Sample(n, dt)


def _ready(fn: Any, *args: Any) -> Any:
    async def prepare() -> Any:
        _api()

        async def rep() -> Sample:
            return await fn(*args)  # type: ignore[no-any-return]

        return rep

    return prepare


async def _pg(url: str, fn: Any, want: int) -> Sample:
    store = await open_evsrc_pg(url, 1)
    try:
        await store.read("warm", limit=1)
        return await fn(store, want)  # type: ignore[no-any-return]
    finally:
        await store.close()


# -- transactional ------------------------------------------------------------------


_TX_TABLE = "bench_counts"


async def _tx_setup(url: str) -> None:
    store = await open_evsrc_pg(url, 1)
    try:
        from evsrc.postgres.projection import PostgresCheckpointStore

        await PostgresCheckpointStore(store).setup()  # type: ignore[arg-type]
        await store.pool.execute(  # type: ignore[attr-defined]
            f"CREATE TABLE IF NOT EXISTS {_TX_TABLE} (stream text PRIMARY KEY, n bigint NOT NULL)"
        )
    finally:
        await store.close()


def _upsert() -> str:
    return (
        f"INSERT INTO {_TX_TABLE} (stream, n) VALUES ($1, 1) "
        "ON CONFLICT (stream) DO UPDATE SET n = bench_counts.n + 1"
    )


async def _start_point(url: str, total: int, tx_events: int) -> Checkpoint:
    """The checkpoint of the event just before the last ``tx_events``."""
    store = await open_evsrc_pg(url, 1)
    try:
        last = None
        async for ev in store.read_all(limit=total - tx_events):
            last = ev.checkpoint
        assert last is not None
        return last
    finally:
        await store.close()


def _tx_evsrc(url: str, start: Checkpoint, want: int) -> Any:
    async def prepare() -> Any:
        api = _api()
        try:
            from evsrc.postgres.projection import PostgresProjectionRunner
        except ImportError as exc:
            raise NotAvailable(f"evsrc.postgres.projection not available ({exc})") from exc

        async def rep() -> Sample:
            store = await open_evsrc_pg(url, 2)
            try:
                projector = api["TxCounts"]()
                projector.sql = _upsert()
                runner = PostgresProjectionRunner(store, projector)  # type: ignore[arg-type]
                await store.pool.execute(f"TRUNCATE {_TX_TABLE}")  # type: ignore[attr-defined]
                await runner.pg_checkpoints.save(runner.name, start)
                t0 = time.perf_counter()
                n = await runner.catch_up()
                dt = time.perf_counter() - t0
                got = await store.pool.fetchval(f"SELECT sum(n) FROM {_TX_TABLE}")  # type: ignore[attr-defined]
            finally:
                await store.close()
            if n != want or got != want:
                raise AssertionError(f"tx projector: {n} processed, {got} counted, want {want}")
            return Sample(n, dt)

        return rep

    return prepare


def _tx_raw(url: str, schema: str, start: Checkpoint, want: int, page: int) -> Any:
    async def prepare() -> Any:
        async def rep() -> Sample:
            raw = await RawPg.open(url, 2, quoted(schema))
            try:
                allq = raw.sql["read_all"]
                save = (
                    f"INSERT INTO {quoted(schema)}.evsrc_checkpoints (name, checkpoint, "
                    "updated_at) VALUES ($1, $2, now()) ON CONFLICT (name) DO UPDATE SET "
                    "checkpoint = EXCLUDED.checkpoint, updated_at = now()"
                )
                upsert = _upsert()
                await raw.pool.execute(f"TRUNCATE {_TX_TABLE}")
                t0 = time.perf_counter()
                bound: tuple[Any, ...] = ()
                if "$4" in allq:
                    bound = (await raw.pool.fetchval(raw.sql["horizon"]),)
                commit, position, n = start.commit, start.position, 0
                while True:
                    rows = await raw.pool.fetch(allq, commit, position, page, *bound)
                    for r in rows:
                        async with raw.pool.acquire() as conn, conn.transaction():
                            await conn.execute(upsert, r[0])
                            await conn.execute(save, "raw-tx", f"{r[3]}:{r[2]}")
                        n += 1
                    if rows:
                        commit, position = rows[-1][3], rows[-1][2]
                    if len(rows) < page:
                        break
                dt = time.perf_counter() - t0
                got = await raw.pool.fetchval(f"SELECT sum(n) FROM {_TX_TABLE}")
            finally:
                await raw.close()
            if n != want or got != want:
                raise AssertionError(f"raw tx projector: {n} processed, {got} counted")
            return Sample(n, dt)

        return rep

    return prepare


async def run(ctx: Context, ds: Any, url: str, raw_all: Any = None, schema: str = "public") -> None:
    """Projector catch-up: memory; PostgreSQL with in-memory and transactional checkpoints."""
    total = ds.total
    labels = {
        "evsrc": "evsrc ProjectionRunner (in-memory checkpoints)",
        "feed": "evsrc read_all alone (its input)",
    }
    try:
        _api()
        reason = ""
    except NotAvailable as exc:
        reason = str(exc)

    mem = InMemoryEventStore()
    dstore = DictStore()
    loaded: list[bool] = []

    async def load_mem() -> None:
        if not loaded:
            await ds.load(mem)
            ds.load_dict(dstore)
            loaded.append(True)

    async def dict_iter() -> Sample:
        t0 = time.perf_counter()
        n = 0
        async for _ in dstore.read_all():
            n += 1
        return Sample(n, time.perf_counter() - t0)

    def mem_runner(fn: Any, *args: Any) -> Any:
        async def prepare() -> Any:
            if reason:
                raise NotAvailable(reason)
            await load_mem()

            async def rep() -> Sample:
                return await fn(*args)  # type: ignore[no-any-return]

            return rep

        return prepare

    await ctx.run_case(
        Case(
            f"memory · projector catch-up over {total:,} events",
            "events/s",
            {"backend": "memory", "what": "projector"},
            {**labels, "limit": "dict-of-lists iteration"},
        ),
        {
            "evsrc": mem_runner(_catch_up, mem, total),
            "feed": mem_runner(_feed, mem, total),
            "limit": mem_runner(dict_iter),
        },
    )

    runners: dict[str, Any] = {}
    if url and not reason:
        runners["evsrc"] = _ready(_pg, url, _catch_up, total)
        runners["feed"] = _ready(_pg, url, _feed, total)
        if raw_all is not None:
            runners["limit"] = raw_all
    else:
        why = reason or ctx.pg_reason or "PostgreSQL not available"
        runners = {"evsrc": _unavailable(why), "feed": _unavailable(why)}
    await ctx.run_case(
        Case(
            f"postgres · projector catch-up over {total:,} events",
            "events/s",
            {"backend": "postgres", "what": "projector"},
            {**labels, "limit": "raw asyncpg read_all (rows only)"},
        ),
        runners,
    )

    tx_events = ctx.size(2000, 50)
    tx_labels = {
        "evsrc": "evsrc PostgresProjectionRunner (one transaction per event)",
        "limit": "raw asyncpg, same transaction per event",
    }
    if url and not reason:
        await _tx_setup(url)
        start = await _start_point(url, total, tx_events)
        tx_runners = {
            "evsrc": _tx_evsrc(url, start, tx_events),
            "limit": _tx_raw(url, schema, start, tx_events, pg_page_size()),
        }
    else:
        why = reason or ctx.pg_reason or "PostgreSQL not available"
        tx_runners = {"evsrc": _unavailable(why), "limit": _unavailable(why)}
    await ctx.run_case(
        Case(
            f"postgres · transactional projector over the last {tx_events:,} events",
            "events/s",
            {"backend": "postgres", "what": "projector_tx"},
            tx_labels,
        ),
        tx_runners,
    )
