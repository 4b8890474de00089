"""The SQLite driver comparison behind docs/backends.md: stdlib ``sqlite3`` through anyio
worker threads vs ``aiosqlite``.

``python -m benchmarks.scenarios.sqlite_driver`` (needs ``pip install aiosqlite``,
which evsrc does not depend on). Prints, per driver, the cost of one no-op call
and the rate of sequential single-row conditional appends (``BEGIN IMMEDIATE``,
read the head, insert, ``COMMIT``) at ``synchronous=NORMAL`` and ``FULL``: the
threads variant runs each append in one worker-thread call, aiosqlite awaits
each statement. Medians of ``--reps`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from typing import Any

import anyio.to_thread

SCHEMA = (
    "CREATE TABLE e (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, seq INTEGER NOT NULL,"
    " data TEXT NOT NULL, UNIQUE (stream, seq))"
)
HEAD = "SELECT coalesce(max(seq), 0) FROM e WHERE stream = ?"
INSERT = "INSERT INTO e (stream, seq, data) VALUES (?, ?, ?)"


def _new_file(root: str) -> str:
    path = os.path.join(tempfile.mkdtemp(dir=root), "d.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(SCHEMA)
    conn.close()
    return path


def _append(conn: sqlite3.Connection, i: int) -> None:
    stream = f"s{i % 10}"
    conn.execute("BEGIN IMMEDIATE")
    head = conn.execute(HEAD, (stream,)).fetchone()[0]
    conn.execute(INSERT, (stream, head + 1, '{"actor": "ann"}'))
    conn.execute("COMMIT")


async def threads(path: str, sync: str, n: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA synchronous = {sync}")
    t0 = time.perf_counter()
    for i in range(n):
        await anyio.to_thread.run_sync(_append, conn, i)
    dt = time.perf_counter() - t0
    conn.close()
    return n / dt


async def aio(path: str, sync: str, n: int) -> float:
    import aiosqlite

    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await conn.execute(f"PRAGMA synchronous = {sync}")
        t0 = time.perf_counter()
        for i in range(n):
            stream = f"s{i % 10}"
            await conn.execute("BEGIN IMMEDIATE")
            cur = await conn.execute(HEAD, (stream,))
            row: Any = await cur.fetchone()
            await conn.execute(INSERT, (stream, row[0] + 1, '{"actor": "ann"}'))
            await conn.execute("COMMIT")
        return n / (time.perf_counter() - t0)


async def noop_threads(calls: int) -> float:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    t0 = time.perf_counter()
    for _ in range(calls):
        await anyio.to_thread.run_sync(conn.execute, "SELECT 1")
    return (time.perf_counter() - t0) / calls * 1e6


async def noop_aio(calls: int) -> float:
    import aiosqlite

    async with aiosqlite.connect(":memory:") as conn:
        t0 = time.perf_counter()
        for _ in range(calls):
            await conn.execute("SELECT 1")
        return (time.perf_counter() - t0) / calls * 1e6


async def main(reps: int, n: int) -> None:
    root = tempfile.mkdtemp(prefix="evsrc-driver-", dir=os.environ.get("EVSRC_BENCH_SQLITE_DIR"))
    try:
        noop: dict[str, list[float]] = {"threads": [], "aiosqlite": []}
        rates: dict[tuple[str, str], list[float]] = {}
        for _ in range(reps):
            noop["threads"].append(await noop_threads(2000))
            noop["aiosqlite"].append(await noop_aio(2000))
            for sync in ("NORMAL", "FULL"):
                for name, fn in (("threads", threads), ("aiosqlite", aio)):
                    rate = await fn(_new_file(root), sync, n)
                    rates.setdefault((name, sync), []).append(rate)
        for name, values in noop.items():
            print(f"{name:10} no-op call  {statistics.median(values):8.0f} us")
        for (name, sync), values in rates.items():
            print(f"{name:10} {sync:6} appends {statistics.median(values):8.0f} /s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--appends", type=int, default=1000)
    args = p.parse_args()
    asyncio.run(main(args.reps, args.appends))
