"""Several processes create the same new subjects' keys in one SQLite file at once: one key each."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from evsrc.keys import key_store_for
from evsrc.shredding import ShreddingStore
from evsrc.sqlite import SqliteEventStore
from tests.lifecycle_shred.conftest import registry

ROOT = Path(__file__).resolve().parents[2]
PROCESSES, ROUNDS = 3, 3


async def test_processes_racing_for_first_keys_end_with_one_key_per_subject(
    tmp_path: Path,
) -> None:
    path = tmp_path / "race.db"
    async with await SqliteEventStore.connect(path) as raw:
        await raw.setup()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.lifecycle_shred._writer", str(path), str(ROUNDS)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            p.communicate(timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * PROCESSES
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT subject, count(*) FROM evsrc_subject_keys GROUP BY subject")
        assert sorted(rows) == sorted((f"p{i}", 1) for i in range(20))
    finally:
        conn.close()
    async with await SqliteEventStore.connect(path) as raw, key_store_for(raw) as keys:
        store = ShreddingStore(raw, keys, registry, owns_inner=False)
        for i in range(20):
            events = await store.read(f"s-{i}")
            assert len(events) == PROCESSES * ROUNDS
            assert {e.data["actor"] for e in events} == {f"p{i}"}
