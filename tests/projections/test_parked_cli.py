"""``python -m evsrc parked …`` as operators run it: a subprocess against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evsrc import (
    FailurePolicy,
    InMemoryCheckpointStore,
    NewEvent,
    ParkedEvents,
    ProjectionRunner,
    open_store,
)
from tests.projections.test_poison import Picky, ticks

ROOT = Path(__file__).resolve().parents[2]


def evsrc(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EVSRC_STORE"}
    return subprocess.run(
        [sys.executable, "-m", "evsrc", "--store", url, "--json", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'parked.db'}"
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


async def test_list_show_replay_and_discard(url: str) -> None:
    cps = InMemoryCheckpointStore()
    async with await open_store(url) as store:
        await store.append("s", ticks(6))
        proj = Picky(poison={1, 4})
        runner = ProjectionRunner(store, proj, cps, on_failure=FailurePolicy.park())
        await runner.catch_up()

    rows = ok(evsrc(url, "parked", "list"))
    assert [(r["projection"], r["stream"], r["seq"], r["status"]) for r in rows] == [
        ("picky", "s", 2, "parked"),
        ("picky", "s", 5, "parked"),
    ]
    first, second = (r["number"] for r in rows)
    shown = ok(evsrc(url, "parked", "show", "picky", str(first)))
    assert shown["event"]["data"] == {"n": 1}
    assert "cannot take tick 1" in shown["error"]

    refused(evsrc(url, "parked", "replay", "picky"))  # neither numbers nor --all
    refused(evsrc(url, "parked", "discard", "picky", "999"))  # no such parked event
    refused(evsrc(url, "parked", "show", "nobody", "1"))
    assert ok(evsrc(url, "parked", "replay", "picky", str(first)))["numbers"] == [first]
    assert ok(evsrc(url, "parked", "discard", "picky", str(second)))["numbers"] == [second]

    async with await open_store(url) as store:
        await store.append("s", [NewEvent("tick", {"n": 6})])
        proj.poison.clear()
        runner = ProjectionRunner(store, proj, cps, on_failure=FailurePolicy.park())
        assert await runner.replay_parked() == 1
        await runner.catch_up()
        assert proj.seen == [0, 2, 3, 5, 1, 6]
        assert await ParkedEvents(store, "picky").pending() == []
    assert ok(evsrc(url, "parked", "list")) == []
    statuses = [r["status"] for r in ok(evsrc(url, "parked", "list", "picky", "--all"))]
    assert statuses == ["replayed", "discarded"]
