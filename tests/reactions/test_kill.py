"""kill -9 of a process mid-reaction: no reaction lost, none doubled (SQLite file, real process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio

from evsrc import CommandHandler, ProjectionRunner, StreamCheckpointStore
from evsrc.sqlite import SqliteEventStore
from tests.reactions.domain import Pinged, Pinger, PingPong, Ponger

ROOT = Path(__file__).resolve().parents[2]


async def test_kill_9_mid_reaction_then_restart(tmp_path: Path) -> None:
    path = tmp_path / "pm.db"
    async with await SqliteEventStore.connect(path) as store:
        await store.setup()
        pings = CommandHandler(store, Pinger)
        for n in range(1, 41):
            await pings.execute(str(n), lambda s, n=n: [Pinged(n=n)])
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reactions._pm_proc", str(path)], cwd=ROOT
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
