"""Stream lifecycle on PostgreSQL: the sweep of a large stream, and deleting one.

Each repetition loads a fresh stream (not timed), then times the removal:

- sweep: ``set_stream_metadata(max_count=keep)`` then ``store.sweep()``, which
  deletes in bounded batches (one short transaction each); the limit is raw
  asyncpg deleting the same rows in ONE ``DELETE`` statement (no batches).
- delete: ``delete_stream`` (one function call: lock, ``DELETE``, insert the
  ``$stream-deleted`` event); the limit is raw asyncpg running the same
  ``DELETE`` and ``INSERT`` in one transaction, without the lock.

Both report events removed per second; the ratio is evsrc over the limit.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.harness import Case, Context, NotAvailable, Sample
from benchmarks.scenarios.append import _unavailable
from benchmarks.targets import RawPg, open_evsrc_pg
from benchmarks.workloads import PgDatabases, chunks, make_events, quoted

__all__ = ["run_lifecycle"]


async def _load(store: Any, stream: str, n: int) -> None:
    for part in chunks(make_events(n), 1000):
        await store.append(stream, part)


def _evsrc(url: str, what: str, n: int, keep: int) -> Any:
    async def prepare() -> Any:
        counter = 0

        async def rep() -> Sample:
            nonlocal counter
            counter += 1
            stream = f"life-evsrc-{what}-{counter}"
            store = await open_evsrc_pg(url, 1)
            try:
                await _load(store, stream, n)
                await store.read(stream, limit=1)  # warm: statements prepared
                t0 = time.perf_counter()
                if what == "sweep":
                    await store.set_stream_metadata(stream, max_count=keep)
                    removed = await store.sweep()
                else:
                    removed = (await store.delete_stream(stream)).last_seq
                dt = time.perf_counter() - t0
                left = len(await store.read(stream))
            finally:
                await store.close()
            want, want_left = (n - keep, keep) if what == "sweep" else (n, 1)
            if removed != want or left != want_left:
                msg = f"evsrc {what}: removed {removed}, left {left}; expected {want}, {want_left}"
                raise AssertionError(msg)
            return Sample(removed, dt)

        return rep

    return prepare


def _raw(url: str, dbs: PgDatabases, what: str, n: int, keep: int) -> Any:
    async def prepare() -> Any:
        counter = 0
        schema = quoted(dbs.schema)

        async def rep() -> Sample:
            nonlocal counter
            counter += 1
            stream = f"life-raw-{what}-{counter}"
            store = await open_evsrc_pg(url, 1)
            try:
                await _load(store, stream, n)
            finally:
                await store.close()
            raw = await RawPg.open(url, 1, schema)
            try:
                async with raw.pool.acquire() as conn:
                    t0 = time.perf_counter()
                    if what == "sweep":
                        status = await conn.execute(
                            f"DELETE FROM {schema}.evsrc_events WHERE stream = $1 AND seq <= $2",
                            stream,
                            n - keep,
                        )
                    else:
                        async with conn.transaction():
                            status = await conn.execute(
                                f"DELETE FROM {schema}.evsrc_events WHERE stream = $1", stream
                            )
                            await conn.execute(
                                f"INSERT INTO {schema}.evsrc_events "
                                "(stream, seq, commit, id, type, version, data, metadata) "
                                "VALUES ($1, $2, pg_current_xact_id(), gen_random_uuid(), "
                                "'$stream-deleted', 1, '{}'::jsonb, '{}'::jsonb)",
                                stream,
                                n + 1,
                            )
                    dt = time.perf_counter() - t0
            finally:
                await raw.close()
            removed = int(status.split()[-1])
            want = n - keep if what == "sweep" else n
            if removed != want:
                raise AssertionError(f"raw {what}: removed {removed}, expected {want}")
            return Sample(removed, dt)

        return rep

    return prepare


async def run_lifecycle(ctx: Context) -> None:
    """Sweep and delete on PostgreSQL beside raw asyncpg."""
    n = ctx.size(100_000, 2_000)
    keep = ctx.size(1_000, 100)
    dbs = PgDatabases(ctx, "lifecycle")
    labels = {
        "evsrc": "evsrc PostgresEventStore",
        "limit": "raw asyncpg, one DELETE (no batches, no lock)",
    }
    try:
        url, reason = "", ""
        try:
            url = await dbs.evsrc_db("evsrc")
        except NotAvailable as exc:
            reason = str(exc)
        for what, name in (
            ("sweep", f"postgres · sweep a {n:,}-event stream to max_count={keep:,}"),
            ("delete", f"postgres · delete_stream of a {n:,}-event stream"),
        ):
            runners: dict[str, Any] = {}
            if url:
                runners["evsrc"] = _evsrc(url, what, n, keep)
                runners["limit"] = _raw(url, dbs, what, n, keep)
            else:
                runners["evsrc"] = runners["limit"] = _unavailable(reason)
            case = Case(name, "events removed/s", {"backend": "postgres", "what": what}, labels)
            await ctx.run_case(case, runners)
    finally:
        await dbs.drop_all()
