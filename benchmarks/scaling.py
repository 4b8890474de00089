"""``python -m benchmarks.scaling``: reads on standbys, synchronous replication, failover time.

Builds its own local clusters (a primary and two streaming standbys on
loopback ports 5461-5469, in a temporary directory removed afterwards) and
reports, each evsrc figure beside raw asyncpg running the same SQL on the same
servers in the same run:

* ``read_all`` throughput of concurrent readers served by 0, 1 and 2
  standbys while writers append on the primary;
* sequential append latency (p50, p99) with synchronous replication on and off;
* the time from the primary's death (kill -9) to the first append that
  succeeds on the promoted standby.

Not part of CI (it needs a few minutes). The clusters share this machine's
cores, so more standbys add no CPU here: the figures show what the design
costs, not what more machines would buy. Results go to
``benchmarks/results/scaling-<time>.json``; docs/scaling.md quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from evsrc import Committed, NewEvent
from evsrc.postgres import PostgresEventStore
from tests.pgcluster import ClusterSet

_READ_ALL_SQL = """
SELECT e.stream, e.seq, e.position, e.commit, e.id, e.type, e.version, e.data,
       e.metadata, e.recorded_at, e.commit < h.xmin AS ready
FROM public.evsrc_events e,
     (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) h
WHERE (e.commit, e.position) > ($1::xid8, $2::bigint) AND e.commit < $4::xid8
ORDER BY e.commit, e.position
LIMIT $3
"""
_APPEND_SQL = "SELECT * FROM public.evsrc_append($1, $2, $3, $4, $5, $6, $7)"


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each numeric leaf across repetitions of one measurement."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            out[key] = _median_of([r[key] for r in runs])
        else:
            out[key] = statistics.median(r[key] for r in runs)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _preload(dsn: str, events: int) -> None:
    async with await PostgresEventStore.connect(dsn, min_size=1, max_size=4) as store:
        await store.setup()
        batch = 500
        for i in range(events // batch):
            await store.append(
                f"load-{i % 200}", [NewEvent("load", {"i": i, "k": k}) for k in range(batch)]
            )


async def _wait_replayed(primary_dsn: str, standby_dsns: list[str]) -> None:
    p = await asyncpg.connect(primary_dsn)
    try:
        target = await p.fetchval("SELECT pg_current_wal_lsn()")
    finally:
        await p.close()
    for dsn in standby_dsns:
        s = await asyncpg.connect(dsn)
        try:
            # Polling the server: nothing in this process could signal an event.
            while (await s.fetchval("SELECT pg_last_wal_replay_lsn()")) < target:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        finally:
            await s.close()


async def _raw_scan(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        end = await conn.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())")
        commit, position, n = 0, 0, 0
        stmt = await conn.prepare(_READ_ALL_SQL)
        while True:
            rows = await stmt.fetch(commit, position, 1000, end)
            if not rows:
                return n
            n += len(rows)
            commit, position = rows[-1]["commit"], rows[-1]["position"]
            if len(rows) < 1000:
                return n
    finally:
        await conn.close()


async def _reads(primary: str, standbys: list[str], seconds: float, readers: int) -> dict[str, Any]:
    """Concurrent full read_all scans for ``seconds`` while 4 writers append on the primary."""
    stop = asyncio.Event()
    writes = 0

    async def writer(store: PostgresEventStore, w: int) -> None:
        nonlocal writes
        while not stop.is_set():
            await store.append(f"live-{w}", [NewEvent("live", {"w": w})])
            writes += 1

    async def evsrc_reader(store: PostgresEventStore) -> int:
        n = 0
        while not stop.is_set():
            async for _ in store.read_all():
                n += 1
        return n

    async def raw_reader(k: int) -> int:
        targets = standbys or [primary]
        n = 0
        while not stop.is_set():
            n += await _raw_scan(targets[k % len(targets)])
            k += 1
        return n

    out: dict[str, Any] = {}
    for variant in ("evsrc", "raw"):
        stop.clear()
        writes = 0
        options: dict[str, Any] = {"min_size": 1, "max_size": 8}
        if standbys:
            options["replicas"] = standbys
        async with await PostgresEventStore.connect(primary, **options) as store:
            tasks = [asyncio.create_task(writer(store, w)) for w in range(4)]
            if variant == "evsrc":
                reads = [asyncio.create_task(evsrc_reader(store)) for _ in range(readers)]
            else:
                reads = [asyncio.create_task(raw_reader(k)) for k in range(readers)]
            started = time.perf_counter()
            await asyncio.sleep(seconds)
            stop.set()
            counts = await asyncio.gather(*reads)
            elapsed = time.perf_counter() - started
            await asyncio.gather(*tasks)
        out[variant] = {"events_per_s": sum(counts) / elapsed, "appends_per_s": writes / elapsed}
    out["ratio"] = out["evsrc"]["events_per_s"] / out["raw"]["events_per_s"]
    return out


async def _append_latency(dsn: str, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with await PostgresEventStore.connect(dsn, min_size=1, max_size=2) as store:
        lat: list[float] = []
        stream = f"lat-{uuid.uuid4().hex[:8]}"
        for i in range(n):
            t = time.perf_counter()
            r = await store.append_expect(stream, i, [NewEvent("e", {"i": i})])
            lat.append(time.perf_counter() - t)
            assert isinstance(r, Committed)
        out["evsrc"] = {"p50_ms": _pct(lat, 0.5) * 1e3, "p99_ms": _pct(lat, 0.99) * 1e3}
    conn = await asyncpg.connect(dsn)
    try:
        stmt = await conn.prepare(_APPEND_SQL)
        lat = []
        stream = f"lat-{uuid.uuid4().hex[:8]}"
        for i in range(n):
            t = time.perf_counter()
            await stmt.fetchrow(stream, i, [uuid.uuid4()], ["e"], [1], [f'{{"i":{i}}}'], ["{}"])
            lat.append(time.perf_counter() - t)
        out["raw"] = {"p50_ms": _pct(lat, 0.5) * 1e3, "p99_ms": _pct(lat, 0.99) * 1e3}
    finally:
        await conn.close()
    out["ratio_p50"] = out["raw"]["p50_ms"] / out["evsrc"]["p50_ms"]
    return out


async def _failover_once(clusters: ClusterSet, base_port: int) -> float:
    primary = clusters.new(f"fo-primary-{base_port}", base_port).init(
        synchronous_standby_names=f"'fo_standby_{base_port}'", synchronous_commit="on"
    )
    primary.start()
    standby = clusters.new(f"fo_standby_{base_port}", base_port + 1)
    standby.basebackup_of(primary, synchronous_standby_names="''").start()
    dsn = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}"
        "/postgres?target_session_attrs=read-write"
    )
    async with await PostgresEventStore.connect(dsn, min_size=1, max_size=2, timeout=5) as store:
        await store.setup()
        await store.append("s", [NewEvent("e", {})])
        await asyncio.to_thread(primary.kill9)
        died = time.perf_counter()
        await asyncio.to_thread(standby.promote)
        while True:
            try:
                await store.append("s", [NewEvent("e", {})])
                return time.perf_counter() - died
            except Exception:
                await asyncio.sleep(0.01)


async def run(seconds: float, preload: int, latency_n: int, reps: int) -> dict[str, Any]:
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "repetitions": reps,
        "note": "medians of the repetitions; clusters on this machine, fsync on",
    }
    clusters = ClusterSet(prefix="evsrc-bench-clusters-")
    try:
        durable = {"fsync": "on", "full_page_writes": "on"}
        primary = clusters.new("primary", 5461).init(**durable).start()
        s1 = clusters.new("standby1", 5462).basebackup_of(primary, **durable).start()
        s2 = clusters.new("standby2", 5463).basebackup_of(primary, **durable).start()
        await _preload(primary.dsn, preload)
        await _wait_replayed(primary.dsn, [s1.dsn, s2.dsn])
        results["preloaded_events"] = preload
        reads = {}
        for label, standbys in (("0", []), ("1", [s1.dsn]), ("2", [s1.dsn, s2.dsn])):
            reads[label] = _median_of(
                [await _reads(primary.dsn, standbys, seconds, readers=4) for _ in range(reps)]
            )
            print(f"read_all, {label} standbys: {reads[label]}", flush=True)
        results["read_all_by_standbys"] = reads

        async def latency_of() -> dict[str, Any]:
            return _median_of([await _append_latency(primary.dsn, latency_n) for _ in range(reps)])

        latency = {"async": await latency_of()}
        primary.psql("ALTER SYSTEM SET synchronous_standby_names = 'standby1'")
        primary.psql("SELECT pg_reload_conf()")
        await asyncio.sleep(1.0)
        latency["sync_on"] = await latency_of()
        primary.psql("ALTER SYSTEM SET synchronous_commit = 'remote_apply'")
        primary.psql("SELECT pg_reload_conf()")
        await asyncio.sleep(1.0)
        latency["sync_remote_apply"] = await latency_of()
        for k, v in latency.items():
            print(f"append latency, {k}: {v}", flush=True)
        results["append_latency"] = latency

        failovers = []
        for i in range(reps):
            failovers.append(await _failover_once(clusters, 5464 + 2 * i))
            print(f"failover: first append {failovers[-1]:.3f} s after the primary died")
        results["failover_seconds"] = failovers
    finally:
        clusters.close()
    return results


def main(argv: list[str] | None = None) -> None:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__)
    p.add_argument("--seconds", type=float, default=4.0, help="per read measurement")
    p.add_argument("--preload", type=int, default=50_000, help="events before reading")
    p.add_argument("--latency-appends", type=int, default=1000)
    p.add_argument("--reps", type=int, default=3, help="repetitions; medians are reported")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    results = asyncio.run(run(args.seconds, args.preload, args.latency_appends, args.reps))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"scaling-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")
    medians = statistics.median(results["failover_seconds"])
    print(f"failover median {medians:.3f} s")


if __name__ == "__main__":
    main()
