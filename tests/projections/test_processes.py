"""Three runner processes of one projection; the active one is killed with SIGKILL, twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from .readmodel import TABLE, check_exactly_once
from .test_deployed import write

if TYPE_CHECKING:
    from evsrc.postgres import PostgresEventStore

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HOLDER = (
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() "
    "AND a.application_name LIKE 'runner-%'"
)


async def holder(store: PostgresEventStore, exclude: set[str]) -> str:
    """The tag of the process holding the projection's lock (waits for one not in ``exclude``)."""
    with anyio.fail_after(10):  # the takeover bound is 5 s; the rest is slack for a busy host
        while True:
            names = {r[0] for r in await store.pool.fetch(HOLDER)} - exclude
            if len(names) == 1:
                return names.pop().removeprefix("runner-")
            assert len(names) < 2, f"two runners hold the lock: {names}"
            await anyio.sleep(0.02)


async def test_three_processes_two_killed_apply_every_event_once(
    pg_store: PostgresEventStore, pg_dsn: str
) -> None:
    await pg_store.pool.execute(TABLE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {
        tag: subprocess.Popen(
            [sys.executable, "-m", "tests.projections._runner_proc", pg_dsn, tag],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
        )
        for tag in ("p1", "p2", "p3")
    }
    try:
        for p in procs.values():
            assert p.stdout is not None
            line = await anyio.to_thread.run_sync(p.stdout.readline)
            assert line.strip() == b"ready"
        killed: set[str] = set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(write, pg_store, 300, 0.01)
            for _ in range(2):
                await anyio.sleep(0.5)
                active = await holder(pg_store, killed)
                before = await pg_store.pool.fetchval("SELECT count(*) FROM applied")
                os.kill(procs[active].pid, signal.SIGKILL)
                procs[active].wait()
                killed.add(active)
                # Another process takes over and makes progress.
                await holder(pg_store, killed)
                with anyio.fail_after(10):
                    while await pg_store.pool.fetchval("SELECT count(*) FROM applied") <= before:
                        await anyio.sleep(0.02)
        ticks = len([e async for e in pg_store.read_all(types=["tick"])])
        with anyio.fail_after(30):
            while await pg_store.pool.fetchval("SELECT count(*) FROM applied") < ticks:
                await anyio.sleep(0.05)
        await anyio.sleep(0.5)  # a duplicate, were there one, would land meanwhile
        assert await check_exactly_once(pg_store) == ticks
        survivor = ({"p1", "p2", "p3"} - killed).pop()
        runners = {r[0] for r in await pg_store.pool.fetch("SELECT DISTINCT runner FROM applied")}
        assert survivor in runners and len(killed) == 2
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
