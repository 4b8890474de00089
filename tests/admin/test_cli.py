"""``python -m evsrc`` run as operators run it: a subprocess, against PostgreSQL and memory:."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from evsrc import Checkpoint, NewEvent
from evsrc.postgres.projection import PostgresCheckpointStore
from tests.pgfixtures import open_store

ROOT = Path(__file__).resolve().parents[2]


def evsrc(
    *args: str, store: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EVSRC_STORE"}
    if store is not None:
        env["EVSRC_STORE"] = store
    return subprocess.run(
        [sys.executable, "-m", "evsrc", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("evsrc") and "error: " in lines[0]
    return lines[0]


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result
    return json.loads(result.stdout)


# -- hostile arguments ---------------------------------------------------------


def _following(proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    """Wait for ``tail``'s "following" line on stderr: its start is fixed, its signals handled."""
    assert proc.stderr is not None
    with ThreadPoolExecutor(max_workers=1) as pool:
        line = pool.submit(proc.stderr.readline).result(timeout=timeout)
    assert line.startswith("evsrc tail: following after "), line
    return line


def test_no_store_is_a_usage_error() -> None:
    one_line_error(evsrc("status"), 2)


@pytest.mark.parametrize(
    "url",
    [
        "nope",
        "mysql://u:pw@h/db",
        "memory:x",
        "postgresql://u:hunter22@127.0.0.1:notaport/db",
        "postgresql://u:hunter22@[::1/db",
        "postgresql://u:hunter22@127.0.0.1:5432/db?sslmode=bogus",
    ],
)
def test_bad_urls_exit_2_with_one_line_and_no_password(url: str) -> None:
    line = one_line_error(evsrc("--store", url, "status"), 2)
    assert "hunter22" not in line


def test_unreachable_server_exits_1() -> None:
    one_line_error(evsrc("--store", "postgresql://postgres@127.0.0.1:1/x", "status"), 1)


@pytest.mark.parametrize(
    "args",
    [
        ["read", ""],
        ["read", "s", "--after", "-1"],
        ["read", "s", "--limit", "x"],
        ["tail", "--after", "1:2\n"],
        ["tail", "--after", "nonsense"],
        ["frobnicate"],
        ["projections"],
    ],
)
def test_hostile_arguments_exit_2(args: list[str]) -> None:
    one_line_error(evsrc("--store", "memory:", *args), 2)


# -- memory: --------------------------------------------------------------------


def test_memory_store_commands() -> None:
    facts = as_json(evsrc("--json", "status", store="memory:"))
    assert (facts["events"], facts["streams"], facts["head"]) == (0, 0, None)
    assert as_json(evsrc("--json", "streams", store="memory:")) == []
    assert as_json(evsrc("--json", "read", "s", store="memory:")) == []
    assert as_json(evsrc("--json", "setup", store="memory:")) == {"schema_version": None}
    one_line_error(evsrc("projections", "reset", "p", store="memory:"), 2)
    table = evsrc("status", store="memory:")
    assert table.returncode == 0 and "InMemoryEventStore" in table.stdout


# -- PostgreSQL -----------------------------------------------------------------


@pytest.mark.postgres
async def test_postgres_status_streams_read(pg_dsn: str) -> None:
    async with open_store(pg_dsn) as store:
        await store.append("booking:a", [NewEvent("booked", {"actor": "ann"})])
        await store.append("booking:b", [NewEvent("booked", {"n": i}) for i in range(3)])
        last = await store.append("other", [NewEvent("x")])
        checkpoints = PostgresCheckpointStore(store)
        await checkpoints.setup()
        head = [e async for e in store.read_all(limit=1)]
        first = head[0]
        await checkpoints.save("roster", first.checkpoint)
        # A handled parked replay leaves a marker row beside the checkpoints: not a projection.
        await checkpoints.save("$parked:roster#1", first.checkpoint)
    assert as_json(evsrc("--json", "setup", store=pg_dsn))["schema_version"] >= 2
    facts = as_json(evsrc("--json", "status", store=pg_dsn))
    assert (facts["events"], facts["streams"]) == (5, 3)
    assert Checkpoint.parse(facts["head"]) == last.checkpoint
    assert facts["schema_version"] >= 2 and facts["held_back"] == 0
    assert facts["projections"] == [
        {"name": "roster", "checkpoint": str(first.checkpoint), "lag": 4}
    ]
    assert "oldest_transaction" in facts
    assert as_json(evsrc("--json", "streams", "--prefix", "booking:", store=pg_dsn)) == [
        {"stream": "booking:a", "events": 1},
        {"stream": "booking:b", "events": 3},
    ]
    events = as_json(evsrc("--json", "read", "booking:b", "--after", "1", store=pg_dsn))
    assert [(e["seq"], e["data"]) for e in events] == [(2, {"n": 1}), (3, {"n": 2})]
    table = evsrc("status", store=pg_dsn)
    assert table.returncode == 0 and "roster" in table.stdout
    # reset forgets the checkpoint; a second reset finds nothing.
    assert evsrc("projections", "reset", "roster", store=pg_dsn).returncode == 0
    assert as_json(evsrc("--json", "status", store=pg_dsn))["projections"] == []
    one_line_error(evsrc("projections", "reset", "roster", store=pg_dsn), 1)


@pytest.mark.postgres
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_postgres_tail_follows_and_stops_cleanly(pg_dsn: str, sig: signal.Signals) -> None:
    async with open_store(pg_dsn) as store:
        await store.append("s", [NewEvent("before")])
        proc = subprocess.Popen(
            [sys.executable, "-m", "evsrc", "--store", pg_dsn, "--json", "tail"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            # tail starts at the head: "before" is not shown; appends after it are.
            _following(proc)
            for i in range(3):
                await store.append("s", [NewEvent("live", {"i": i})])
            seen = [json.loads(proc.stdout.readline()) for _ in range(3)]
            assert [(e["stream"], e["seq"], e["data"]) for e in seen] == [
                ("s", 2, {"i": 0}),
                ("s", 3, {"i": 1}),
                ("s", 4, {"i": 2}),
            ]
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.postgres
def test_postgres_tail_from_start_and_after(pg_dsn: str) -> None:
    import asyncio

    async def fill() -> list[Checkpoint]:
        async with open_store(pg_dsn) as store:
            appended = [await store.append("s", [NewEvent("e", {"i": i})]) for i in range(3)]
            return [r.checkpoint for r in appended]

    cps = asyncio.run(fill())
    for args, expected in ((["--from-start"], [0, 1, 2]), (["--after", str(cps[0])], [1, 2])):
        proc = subprocess.Popen(
            [sys.executable, "-m", "evsrc", "--store", pg_dsn, "--json", "tail", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            start = "the start" if args == ["--from-start"] else f"checkpoint {cps[0]}"
            assert _following(proc).rstrip() == (
                f"evsrc tail: following after {start}; Ctrl-C or SIGTERM stops"
            )
            got = [json.loads(proc.stdout.readline())["data"]["i"] for _ in expected]
            assert got == expected
            proc.terminate()
            proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0


def test_plain_columns_without_rich() -> None:
    code = (
        "import sys; sys.modules['rich'] = None; from evsrc.admin import main; "
        "raise SystemExit(main(['--store', 'memory:', 'status']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result
    assert "backend\tInMemoryEventStore" in result.stdout


def test_memory_tail_waits_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "evsrc", "--store", "memory:", "tail"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "after the start" in _following(proc)
        time.sleep(0.5)
        assert proc.poll() is None  # following: it does not end by itself
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == "" and "Traceback" not in err
