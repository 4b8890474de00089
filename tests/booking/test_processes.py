"""Four OS processes, each with its own store and handler, race on one PostgreSQL occurrence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from examples.booking import seat_of
from tests.booking.history import checked_history
from tests.pgfixtures import open_store

ROOT = Path(__file__).resolve().parents[2]
PROCESSES, PER_PROCESS, CAPACITY = 4, 100, 25


@pytest.mark.postgres
# With batches of 8, the commands queued behind an append outnumber what it takes:
# those answered "full" or "already" ride the append in flight (evsrc/riding.py).
@pytest.mark.parametrize("max_batch", [256, 8])
async def test_four_processes_race_for_few_seats(pg_dsn, max_batch):
    # Neighbouring processes share half their actors, so the same actor races itself too.
    actors = [[f"a{(k * 50 + j) % 200:03d}" for j in range(PER_PROCESS)] for k in range(PROCESSES)]
    env = {**os.environ, "RACER_MAX_BATCH": str(max_batch)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.booking._racer", pg_dsn, "shared", str(CAPACITY), *a],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for a in actors
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for p in procs:  # all connected and waiting: start them together
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * PROCESSES
    results = [r for out in outputs for r in json.loads(out)]
    assert len(results) == PROCESSES * PER_PROCESS

    async with open_store(pg_dsn) as store:
        state = await checked_history(store, "shared")
    roster = state.roster
    assert len(roster) == CAPACITY == len(set(roster))
    counts = Counter(r["status"] for r in results)
    assert counts["booked"] == CAPACITY
    assert set(counts) <= {"booked", "already", "full"}
    booked = [r for r in results if r["status"] == "booked"]
    # Every booked caller, in whichever process, holds the distinct seat it was told.
    assert sorted(r["seat"] for r in booked) == list(range(1, CAPACITY + 1))
    for r in booked:
        assert seat_of(roster, r["actor"]) == r["seat"]
    # Every "already" is a real booking made by some other caller.
    booked_actors = {r["actor"] for r in booked}
    for r in results:
        if r["status"] == "already":
            assert r["actor"] in booked_actors
            assert seat_of(roster, r["actor"]) == r["seat"]
