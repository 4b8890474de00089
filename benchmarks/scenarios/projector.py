"""Scenario 3, last part: a framework projector catching up over the read data set.

The projector handles every event (a pydantic ``booking`` model) and counts
bookings per stream in a dict. Variants:

- evsrc: ``ProjectionRunner.catch_up()`` with an ``InMemoryCheckpointStore``;
- feed: evsrc's ``read_all`` alone, the projector's input, for scale;
- limit: in memory the dict-of-lists log; on PostgreSQL raw asyncpg paging
  evsrc's ``read_all`` statement (rows only).

On PostgreSQL there is also the transactional runner
(``PostgresProjectionRunner``: a batch's read-model rows and its checkpoint
commit in one transaction), over the *last* ``tx_events`` events of the data
set (its checkpoint is set just before them), inserting one row per event:

- evsrc: the runner, its projector declaring a batch handler (one
  ``executemany`` per batch of 500);
- evsrc_events: the runner, a per-event handler (one ``INSERT`` per event,
  still one transaction per batch);
- limit: reading through evsrc's ``read_all`` and inserting the same rows in
  500-row transactions with raw asyncpg (``executemany``), checkpoint included.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from benchmarks.harness import Case, NotAvailable, Sample
from benchmarks.scenarios.append import _unavailable
from benchmarks.targets import DictStore, open_evsrc_pg
from benchmarks.workloads import quoted
from evsrc.memory import InMemoryEventStore

if TYPE_CHECKING:
    from benchmarks.harness import Context
    from evsrc.records import Checkpoint
    from evsrc.store import EventStore

__all__ = ["run"]

_classes: dict[str, Any] = {}


def _api() -> dict[str, Any]:
    """The projector classes (built once: pydantic models and projectors are classes)."""
    if _classes:
        return _classes
    try:
        from evsrc.models import Event
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

    _classes.update(
        Booked=Booked,
        Counts=Counts,
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


_TX_TABLE = "bench_tx"
_TX_INSERT = f"INSERT INTO {_TX_TABLE} (stream, seq) VALUES ($1, $2)"
_TX_BATCH = 500


def _tx_classes() -> tuple[Any, Any]:
    api = _api()
    if "TxRows" not in api:
        from evsrc.projection import Projector, handles

        class TxRows(Projector):
            name = "bench-tx-rows"

            @handles(api["Booked"])
            async def on_booked(self, event: Any, recorded: Any, conn: Any) -> None:
                await conn.execute(_TX_INSERT, recorded.stream, recorded.seq)

        class TxBatchRows(TxRows):
            name = "bench-tx-batch-rows"

            async def handle_batch(self, events: Any, *context: Any) -> None:
                (conn,) = context
                await conn.executemany(_TX_INSERT, [(r.stream, r.seq) for r in events])

        api.update(TxRows=TxRows, TxBatchRows=TxBatchRows)
    return api["TxRows"], api["TxBatchRows"]


async def _tx_setup(url: str) -> None:
    store = await open_evsrc_pg(url, 1)
    try:
        await store.setup()  # type: ignore[attr-defined]  # creates evsrc_checkpoints
        await store.pool.execute(  # type: ignore[attr-defined]
            f"CREATE TABLE IF NOT EXISTS {_TX_TABLE} (stream text NOT NULL, seq bigint NOT NULL)"
        )
    finally:
        await store.close()


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


async def _tx_count(pool: Any, want: int, n: int, what: str) -> None:
    got = await pool.fetchval(f"SELECT count(*) FROM {_TX_TABLE}")
    if n != want or got != want:
        raise AssertionError(f"{what}: {n} processed, {got} rows, want {want}")


def _tx_evsrc(url: str, start: Checkpoint, want: int, batch_handler: bool) -> Any:
    async def prepare() -> Any:
        try:
            from evsrc.postgres.projection import PostgresProjectionRunner
        except ImportError as exc:
            raise NotAvailable(f"evsrc.postgres.projection not available ({exc})") from exc
        per_event, batched = _tx_classes()
        cls = batched if batch_handler else per_event

        async def rep() -> Sample:
            store = await open_evsrc_pg(url, 2)
            try:
                runner = PostgresProjectionRunner(store, cls(), batch_size=_TX_BATCH)  # type: ignore[arg-type]
                await store.pool.execute(f"TRUNCATE {_TX_TABLE}")  # type: ignore[attr-defined]
                await runner.pg_checkpoints.save(runner.name, start)
                t0 = time.perf_counter()
                n = await runner.catch_up()
                dt = time.perf_counter() - t0
                await _tx_count(store.pool, want, n, "tx projector")  # type: ignore[attr-defined]
            finally:
                await store.close()
            return Sample(n, dt)

        return rep

    return prepare


def _tx_raw(url: str, schema: str, start: Checkpoint, want: int) -> Any:
    async def prepare() -> Any:
        async def rep() -> Sample:
            store = await open_evsrc_pg(url, 2)
            pool: Any = store.pool  # type: ignore[attr-defined]
            save = (
                f"INSERT INTO {quoted(schema)}.evsrc_checkpoints (name, checkpoint, "
                "updated_at) VALUES ($1, $2, now()) ON CONFLICT (name) DO UPDATE SET "
                "checkpoint = EXCLUDED.checkpoint, updated_at = now()"
            )
            try:
                await pool.execute(f"TRUNCATE {_TX_TABLE}")
                n = 0
                rows: list[tuple[str, int]] = []
                last = ""

                async def flush() -> None:
                    async with pool.acquire() as conn, conn.transaction():
                        await conn.executemany(_TX_INSERT, rows)
                        await conn.execute(save, "raw-tx", last)
                    rows.clear()

                t0 = time.perf_counter()
                async for ev in store.read_all(after=start):
                    rows.append((ev.stream, ev.seq))
                    last = str(ev.checkpoint)
                    n += 1
                    if len(rows) == _TX_BATCH:
                        await flush()
                if rows:
                    await flush()
                dt = time.perf_counter() - t0
                await _tx_count(pool, want, n, "raw batched inserts")
            finally:
                await store.close()
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

    tx_events = ctx.size(50_000, 100)
    tx_labels = {
        "evsrc": "evsrc PostgresProjectionRunner, batch handler (500-event transactions)",
        "evsrc_events": "evsrc PostgresProjectionRunner, per-event handler (same transactions)",
        "limit": "evsrc read_all + raw asyncpg executemany, 500-row transactions",
    }
    if url and not reason:
        await _tx_setup(url)
        start = await _start_point(url, total, tx_events)
        tx_runners = {
            "evsrc": _tx_evsrc(url, start, tx_events, True),
            "evsrc_events": _tx_evsrc(url, start, tx_events, False),
            "limit": _tx_raw(url, schema, start, tx_events),
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
