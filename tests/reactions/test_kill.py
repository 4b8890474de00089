"""kill -9 of a process mid-reaction: no reaction lost, none doubled (SQLite, PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from evsrc import CommandHandler, ProjectionRunner, StreamCheckpointStore, open_store
from tests.reactions.domain import Pinged, Pinger, PingPong, Ponger

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pm.db'}"
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


async def test_kill_9_mid_reaction_then_restart(store_url: str) -> None:
    async with await open_store(store_url) as store:
        pings = CommandHandler(store, Pinger)
        for n in range(1, 41):
            await pings.execute(str(n), lambda s, n=n: [Pinged(n=n)])
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reactions._pm_proc", store_url], cwd=ROOT
        )
        try:
            with anyio.fail_after(60):
                while await store.last_seq("ponger:all") < 7:
                    await anyio.sleep(0.005)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        done = await store.last_seq("ponger:all")
        assert done < 40, "the child finished before it was killed"
        pm = PingPong(CommandHandler(store, Ponger))
        await ProjectionRunner(store, pm, StreamCheckpointStore(store)).catch_up()
        all_ = [e.data["n"] for e in await store.read("ponger:all")]
        assert sorted(all_) == list(range(1, 41))
        per_key = [e.data["n"] for k in "012" for e in await store.read(f"ponger:{k}")]
        assert sorted(per_key) == list(range(1, 41))
