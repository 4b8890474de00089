"""``python -m benchmarks --scale``: what a PostgreSQL store costs as it grows (issue 16).

Grows one store, in a database of its own (``evsrc_scale``, dropped at the
end), to 10⁴, 10⁵, 10⁶ and 10⁷ events — ten events per stream, so 10⁶ streams
at the end — and at each size measures, evsrc beside raw asyncpg sending the
same statements on the same server in the same run:

* ``append_expect`` latency (p50, p99) of one event to an existing stream;
* ``last_seq`` and stream-read latency (p50, p99) of a random stream;
* ``read_all`` throughput over 10,000 events from the start and from the tail;
* table and index bytes per event, and each B-tree's depth.

The store is grown by the store's own SQL: a server-side procedure calls the
schema's ``evsrc_append`` once per stream (ten events each, expected seq 0)
and commits after each call, so every row, id, position, commit id and index
entry is exactly what one ``append_expect`` per stream writes — without a
client round trip per append, which would make the 10⁷ step take hours on a
shared machine. The loading session turns ``synchronous_commit`` off (its own
setting only, nothing server-wide): commits then skip the WAL flush, which
changes no row. Measurements run after a ``VACUUM (ANALYZE)``, as autovacuum
leaves an insert-only table.

Not part of CI: about 20-30 minutes and ~6 GB of disk at 10⁷ events. Results go
to ``benchmarks/results/scale-<time>.json`` and the chart to ``docs/scale.png``.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from benchmarks import db
from benchmarks.harness import machine_info
from benchmarks.targets import RawPg, event_args, open_evsrc_pg
from evsrc.records import Checkpoint, Committed, NewEvent

if TYPE_CHECKING:
    import argparse

    from evsrc.store import EventStore

__all__ = ["SIZES", "main", "run_scale"]

DB_NAME = "evsrc_scale"
SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
#: Events per stream, so streams = events / 10.
PER_STREAM = 10
#: Streams grown per CALL (each committed on its own inside it).
CHUNK = 20_000
#: Operations per variant for each latency figure, and reps of each read_all.
OPS = 400
READ_ALL_N = 10_000
READ_ALL_REPS = 5

_GROW = """
CREATE OR REPLACE PROCEDURE public.evsrc_scale_grow(p_from bigint, p_to bigint, p_per integer)
LANGUAGE plpgsql
AS $proc$
DECLARE
    s bigint;
    r record;
    cmd text;
BEGIN
    FOR s IN p_from .. p_to - 1 LOOP
        -- The metadata the command handler stamps: a command id as both ids.
        cmd := left(md5(s::text), 24) || '-' || to_hex(s);
        SELECT * INTO r FROM public.evsrc_append(
            'scale-' || s, 0,
            ARRAY(SELECT gen_random_uuid() FROM generate_series(1, p_per)),
            array_fill('booking'::text, ARRAY[p_per]),
            array_fill(1, ARRAY[p_per]),
            ARRAY(SELECT '{"actor":"actor-' || s || '-' || k || '"}'
                  FROM generate_series(1, p_per) AS k),
            array_fill('{"causation_id":"' || cmd || '","correlation_id":"' || cmd || '"}',
                       ARRAY[p_per]));
        IF r.last_position IS NULL THEN
            RAISE EXCEPTION 'append to scale-% did not commit (head %)', s, r.head;
        END IF;
        COMMIT;
    END LOOP;
END;
$proc$;
"""

_INDEXES = """
SELECT c.relname, pg_relation_size(c.oid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'public.evsrc_events'::regclass
ORDER BY c.relname
"""


def _stream(i: int) -> str:
    return f"scale-{i}"


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _lat(values: list[float]) -> dict[str, float]:
    return {"p50_ms": _pct(values, 0.5) * 1000, "p99_ms": _pct(values, 0.99) * 1000}


def _metadata(i: int) -> dict[str, str]:
    cmd = f"{uuid.uuid4().hex[:24]}-{i:x}"
    return {"causation_id": cmd, "correlation_id": cmd}


class _Picker:
    """Random existing streams, each used at most once by the appends (expected = 10)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.used: set[int] = set()

    def fresh(self, streams: int, n: int) -> list[str]:
        if len(self.used) + n > streams:
            raise ValueError(f"only {streams - len(self.used)} unused streams left, {n} wanted")
        out: list[str] = []
        while len(out) < n:
            i = self.rng.randrange(streams)
            if i not in self.used:
                self.used.add(i)
                out.append(_stream(i))
        return out

    def any(self, streams: int, n: int) -> list[str]:
        return [_stream(self.rng.randrange(streams)) for _ in range(n)]


async def _grow(conn: asyncpg.Connection, start: int, stop: int, say: Any) -> float:
    """Streams ``start … stop-1`` appended (ten events each); returns seconds taken."""
    t0 = time.perf_counter()
    s = start
    while s < stop:
        e = min(stop, s + CHUNK)
        await conn.execute(f"CALL public.evsrc_scale_grow({s}, {e}, {PER_STREAM})")
        s = e
        done = s * PER_STREAM
        say(f"grown to {done:,} events ({done / (time.perf_counter() - t0 + 1e-9) / 1:,.0f}/s)")
    return time.perf_counter() - t0


async def _sizes(conn: asyncpg.Connection) -> dict[str, Any]:
    count = int(await conn.fetchval("SELECT count(*) FROM public.evsrc_events"))
    table = int(await conn.fetchval("SELECT pg_table_size('public.evsrc_events')"))
    indexes = {str(r[0]): int(r[1]) for r in await conn.fetch(_INDEXES)}
    depth: dict[str, int | None] = {}
    for name in indexes:
        try:
            depth[name] = int(await conn.fetchval(f"SELECT level FROM bt_metap('{name}')"))
        except asyncpg.PostgresError:
            depth[name] = None
    total_idx = sum(indexes.values())
    return {
        "events": count,
        "table_bytes": table,
        "index_bytes": total_idx,
        "table_bytes_per_event": table / count,
        "index_bytes_per_event": total_idx / count,
        "index_bytes_per_event_each": {k: v / count for k, v in indexes.items()},
        "btree_levels": depth,
    }


async def _timed(calls: list[Any]) -> list[float]:
    out: list[float] = []
    for call in calls:
        t0 = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t0)
    return out


async def _measure(
    store: EventStore, raw: RawPg, conn: asyncpg.Connection, streams: int, picker: _Picker
) -> dict[str, Any]:
    sql = raw.sql
    fetchrow, fetch, fetchval = raw.pool.fetchrow, raw.pool.fetch, raw.pool.fetchval
    out: dict[str, Any] = {}
    lat: dict[str, dict[str, list[float]]] = {
        k: {"evsrc": [], "raw": []} for k in ("append", "last_seq", "read_stream")
    }
    reps = 5
    # Appends take fresh streams (expected = 10): at most a quarter of them per size.
    per = max(1, min(OPS, streams // 4) // reps)
    for rep in range(reps):
        # Alternate which variant goes first, so neither always follows the other.
        order = ["evsrc", "raw"] if rep % 2 == 0 else ["raw", "evsrc"]
        for who in order:
            names = picker.fresh(streams, per)
            if who == "evsrc":
                evs = [
                    [NewEvent("booking", {"actor": f"x-{n}"}, _metadata(i))]
                    for i, n in enumerate(names)
                ]

                async def ap(s: str, e: list[NewEvent]) -> None:
                    r = await store.append_expect(s, PER_STREAM, e)
                    assert type(r) is Committed, r

                calls: list[Any] = [
                    lambda s=s, e=e: ap(s, e) for s, e in zip(names, evs, strict=True)
                ]
            else:
                args = [
                    event_args([NewEvent("booking", {"actor": f"x-{n}"}, _metadata(i))])
                    for i, n in enumerate(names)
                ]

                async def rap(s: str, a: Any) -> None:
                    row = await fetchrow(sql["append"], s, PER_STREAM, *a)
                    assert row is not None and row[1] is not None, row

                calls = [lambda s=s, a=a: rap(s, a) for s, a in zip(names, args, strict=True)]
            lat["append"][who] += await _timed(calls)

            names = picker.any(streams, per)
            if who == "evsrc":
                calls = [lambda s=s: store.last_seq(s) for s in names]
            else:
                calls = [lambda s=s: fetchval(sql["last_seq"], s) for s in names]
            lat["last_seq"][who] += await _timed(calls)

            names = picker.any(streams, per)
            if who == "evsrc":
                calls = [lambda s=s: store.read(s) for s in names]
            else:
                calls = [lambda s=s: fetch(sql["read_forward"], s, 0, None) for s in names]
            lat["read_stream"][who] += await _timed(calls)
    for k, v in lat.items():
        out[k] = {who: _lat(values) for who, values in v.items()}
        out[k]["ratio_p50"] = out[k]["evsrc"]["p50_ms"] / out[k]["raw"]["p50_ms"]

    # read_all over READ_ALL_N events (all of a smaller store), from the start and the tail.
    want = min(READ_ALL_N, streams * PER_STREAM)
    row = await conn.fetchrow(
        "SELECT commit, position FROM public.evsrc_events "
        "ORDER BY commit DESC, position DESC OFFSET $1 LIMIT 1",
        want,
    )
    # The tail: after the event `want` from the end (a store of exactly `want` events
    # has none; then the tail is the whole store, as the start is).
    tail = (0, 0) if row is None else (int(row[0]), int(row[1]))
    for where, (c0, p0) in (("from_start", (0, 0)), ("from_tail", tail)):
        rates: dict[str, list[float]] = {"evsrc": [], "raw": []}
        after = None if (c0, p0) == (0, 0) else Checkpoint(c0, p0)
        for rep in range(READ_ALL_REPS):
            for who in ["evsrc", "raw"] if rep % 2 == 0 else ["raw", "evsrc"]:
                t0 = time.perf_counter()
                if who == "evsrc":
                    n = 0
                    async for _ in store.read_all(after, limit=want):
                        n += 1
                else:
                    n = await _raw_read_all(raw, c0, p0, want)
                dt = time.perf_counter() - t0
                assert n == want, (who, where, n)
                rates[who].append(n / dt)
        ev, rw = statistics.median(rates["evsrc"]), statistics.median(rates["raw"])
        out[f"read_all_{where}"] = {"evsrc": ev, "raw": rw, "ratio": ev / rw}
    return out


async def _raw_read_all(raw: RawPg, commit: int, position: int, n: int) -> int:
    """The read_all statements evsrc sends (horizon, then pages), for ``n`` events."""
    from benchmarks.targets import pg_page_size

    page = pg_page_size()
    got = 0
    bound = await raw.pool.fetchval(raw.sql["horizon"])
    while got < n:
        rows = await raw.pool.fetch(
            raw.sql["read_all"], commit, position, min(page, n - got), bound
        )
        if not rows or not rows[-1][10]:
            got += sum(1 for r in rows if r[10])
            break
        got += len(rows)
        commit, position = rows[-1][3], rows[-1][2]
    return got


async def run_scale(
    dsn: str, top: int, out_dir: Path, chart: Path | None, say: Any, name: str = DB_NAME
) -> Path:
    """Grow, measure at each size up to ``top``, write JSON (and the chart); drop the database."""
    sizes = [s for s in SIZES if s <= top] or [top]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = out_dir / f"scale-{stamp}.json"
    url = await db.fresh_db(dsn, name)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "per_stream": PER_STREAM,
        "ops_per_variant": OPS,
        "read_all_events": READ_ALL_N,
        "sizes": [],
    }
    try:
        store = await open_evsrc_pg(url, 2)
        await store.setup()  # type: ignore[attr-defined]
        raw = await RawPg.open(url, 2, '"public"')
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SET synchronous_commit = off")
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
            except asyncpg.PostgresError as exc:
                say(f"pageinspect unavailable, no B-tree depths: {exc}")
            await conn.execute(_GROW)
            picker = _Picker(16)
            have = 0
            for size in sizes:
                streams = size // PER_STREAM
                grow_s = await _grow(conn, have, streams, say)
                grown = (streams - have) * PER_STREAM
                have = streams
                t0 = time.perf_counter()
                await conn.execute("VACUUM (ANALYZE) public.evsrc_events")
                vac = time.perf_counter() - t0
                say(f"{size:,} events: measuring")
                m = await _measure(store, raw, conn, streams, picker)
                m.update(await _sizes(conn))
                m["size"] = size
                m["streams"] = streams
                m["grow"] = {"events": grown, "seconds": grow_s, "events_per_s": grown / grow_s}
                m["vacuum_analyze_s"] = vac
                results["sizes"].append(m)
                say(_line(m))
                _save(results, path)
        finally:
            await conn.close()
            await raw.close()
            await store.close()
    finally:
        await db.drop_db(dsn, name)
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    _save(results, path)
    if chart is not None:
        from benchmarks.scale_chart import plot

        plot(results, chart)
    return path


def _save(results: dict[str, Any], path: Path) -> None:
    """Write what is measured so far (after each size: a long run keeps its figures)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))


def _line(m: dict[str, Any]) -> str:
    a, ls, rs = m["append"], m["last_seq"], m["read_stream"]
    return (
        f"{m['size']:>11,} events | append p50 {a['evsrc']['p50_ms']:.2f} ms "
        f"(raw {a['raw']['p50_ms']:.2f}) p99 {a['evsrc']['p99_ms']:.2f} "
        f"| last_seq p50 {ls['evsrc']['p50_ms']:.3f} (raw {ls['raw']['p50_ms']:.3f}) "
        f"| read p50 {rs['evsrc']['p50_ms']:.3f} (raw {rs['raw']['p50_ms']:.3f}) "
        f"| read_all start {m['read_all_from_start']['evsrc']:,.0f}/s "
        f"tail {m['read_all_from_tail']['evsrc']:,.0f}/s "
        f"| {m['table_bytes_per_event']:.0f} + {m['index_bytes_per_event']:.0f} B/event "
        f"| grow {m['grow']['events_per_s']:,.0f} events/s"
    )


def main(args: argparse.Namespace) -> int:
    """Entry point of ``--scale``."""
    from benchmarks.harness import Progress

    progress = Progress(quiet=args.quiet)
    chart: Path | None = Path(args.scale_chart) if args.scale_chart else None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        progress.done("matplotlib not installed (.[bench]): no chart")
        chart = None
    path = asyncio.run(
        run_scale(args.dsn, args.scale_to, Path(args.out), chart, progress.done, args.scale_db)
    )
    progress.done(f"wrote {path}" + (f" and {chart}" if chart else ""))
    return 0
