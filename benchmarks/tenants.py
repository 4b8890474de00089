"""What many tenants cost: ``python -m benchmarks.tenants [--tenants 1000] [--dsn DSN]``.

For each backend, opens ``--tenants`` tenants through :class:`evsrc.tenants.TenantStores`
(each set up, then one append and one read), and prints one JSON line: the
setup time (total and median per tenant), the process's resident memory
growth, the open stores and (PostgreSQL) the connections the run holds at the
end, the disk used (SQLite files, PostgreSQL database size), and the time of a
second pass when every tenant exists already (an evicted tenant reopened).
Bounded by ``--max-open`` open stores (PostgreSQL: one small pool each).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

from benchmarks import db
from evsrc import NewEvent
from evsrc.tenants import TenantStores


def _rss_mb() -> float:
    """Peak resident memory of this process, MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _pass(tenants: TenantStores, names: list[str]) -> list[float]:
    times = []
    for name in names:
        t0 = time.perf_counter()
        store = await tenants.store(name)
        await store.append("booking:yoga", [NewEvent("booking", {"actor": name})])
        if len(await store.read("booking:yoga")) < 1:  # pragma: no cover
            raise AssertionError(name)
        times.append(time.perf_counter() - t0)
    return times


async def measure(url: str, n: int, max_open: int, backend: str, dsn: str | None) -> dict[str, Any]:
    """Open ``n`` tenants of ``url`` twice; the costs."""
    names = [f"t{i:05d}" for i in range(n)]
    rss0 = _rss_mb()
    async with TenantStores(url, max_open=max_open) as tenants:
        t0 = time.perf_counter()
        first = await _pass(tenants, names)
        setup_s = time.perf_counter() - t0
        rss1 = _rss_mb()
        t1 = time.perf_counter()
        second = await _pass(tenants, names)
        again_s = time.perf_counter() - t1
        result: dict[str, Any] = {
            "backend": backend,
            "tenants": n,
            "max_open": max_open,
            "setup_s": round(setup_s, 2),
            "setup_median_ms": round(statistics.median(first) * 1000, 2),
            "second_pass_s": round(again_s, 2),
            "second_pass_median_ms": round(statistics.median(second) * 1000, 2),
            "rss_growth_mb": round(rss1 - rss0, 1),
            "open_stores": len(tenants.open_tenants()),
            "opened": tenants.opened,
            "evicted": tenants.evicted,
        }
        if dsn is not None:
            conn = await db.admin_connect(dsn)
            try:
                name = url.rsplit("/", 1)[-1]
                result["connections"] = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name
                )
                result["disk_mb"] = round(
                    await conn.fetchval("SELECT pg_database_size($1)", name) / 2**20, 1
                )
            finally:
                await conn.close()
    return result


def _disk_mb(directory: Path) -> float:
    return round(sum(p.stat().st_size for p in directory.iterdir()) / 2**20, 1)


async def main(args: argparse.Namespace) -> None:
    """Run the backends asked for and print a JSON line each."""
    if "memory" in args.backend:
        print(json.dumps(await measure("memory:", args.tenants, args.max_open, "memory", None)))
    if "sqlite" in args.backend:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/{{tenant}}.db"
            r = await measure(url, args.tenants, args.max_open, "sqlite", None)
            r["disk_mb"] = _disk_mb(Path(tmp))
            print(json.dumps(r))
    if "postgres" in args.backend and args.dsn:
        name = f"evsrc_tenants_{uuid.uuid4().hex[:8]}"
        url = await db.fresh_db(args.dsn, name)
        try:
            print(json.dumps(await measure(url, args.tenants, args.max_open, "postgres", args.dsn)))
        finally:
            await db.drop_db(args.dsn, name)
    sys.stdout.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tenants", description=__doc__)
    p.add_argument("--tenants", type=int, default=1000, help="how many tenants (default 1000)")
    p.add_argument("--max-open", type=int, default=20, help="open stores at most (default 20)")
    p.add_argument("--dsn", help="PostgreSQL server (a fresh database is created and dropped)")
    p.add_argument(
        "--backend",
        action="append",
        choices=["memory", "sqlite", "postgres"],
        help="repeatable; default: all (postgres needs --dsn)",
    )
    return p


if __name__ == "__main__":
    parsed = _parser().parse_args()
    parsed.backend = parsed.backend or ["memory", "sqlite", "postgres"]
    anyio.run(main, parsed)
