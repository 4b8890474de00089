"""The benchmark suite's CI smoke: ``python -m benchmarks --quick`` for every scenario.

It checks that every scenario runs and produces results that are *correct* —
exact booking counts, event counts, every variant present or saying why not —
and never looks at a time. PostgreSQL follows the suite's policy
(``tests/pgfixtures.py``): skipped with a hint when unreachable, a failure
under ``CI=true``.

The ``bench`` extra (eventsourcing, matplotlib) is optional: one run hides
those packages whatever is installed and checks they are reported as
"skipped: install .[bench]"; the other uses them when they are installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.pgfixtures import admin_dsn

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = [
    "append_expect",
    "append_batch",
    "read",
    "hot_seat",
    "decision",
    "handler_cpu",
    "sqlite",
    "subscribers",
    "reactions",
    "lifecycle",
    "telemetry",
]
SKIP_BENCH = "skipped: install .[bench]"

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _pg_reachable() -> None:
    """Skip (locally) or fail (CI=true) when PostgreSQL cannot be reached."""

    async def probe() -> None:
        conn = await asyncpg.connect(admin_dsn(), timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL at {admin_dsn()} is unreachable ({type(exc).__name__}: {exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason + "; set EVSRC_TEST_DSN to run the PostgreSQL smoke")


def _run(out: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    prefix = f"evsrc_smoke_{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--quiet", "--out", str(out)]
    cmd += ["--dsn", admin_dsn(), "--db-prefix", prefix, *extra]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data: dict[str, Any] = json.loads((out / "latest.json").read_text())
    assert [s["name"] for s in data["scenarios"]] == SCENARIOS
    for s in data["scenarios"]:
        assert s["status"] == "ok", (s["name"], s["status"], s["notes"])
        assert s["checks"] or s["name"] in (
            "append_expect",
            "append_batch",
            "read",
            "decision",
            "handler_cpu",
            "lifecycle",  # timings only; tests/lifecycle checks what sweeps and deletes leave
        )
        for check in s["checks"]:
            assert check["ok"], check
    md = (out / "latest.md").read_text()
    assert "## Goals" in md
    for name in SCENARIOS:
        assert f"## {name}:" in md
    return data


def _cases(data: dict[str, Any], scenario: str, backend: str) -> list[dict[str, Any]]:
    s = next(s for s in data["scenarios"] if s["name"] == scenario)
    cases = [c for c in s["cases"] if c["params"].get("backend") == backend]
    assert cases, (scenario, backend)
    return cases


def _ok(case: dict[str, Any], variant: str) -> dict[str, Any]:
    v = case["variants"][variant]
    assert v["status"] == "ok", (case["name"], variant, v["status"])
    assert v["median"] is not None and v["median"] > 0
    return v  # type: ignore[no-any-return]


def _check_memory(data: dict[str, Any]) -> None:
    for scenario in ("append_expect", "append_batch"):
        for c in _cases(data, scenario, "memory"):
            _ok(c, "evsrc")
            _ok(c, "limit")
    for c in _cases(data, "read", "memory"):
        for v in c["variants"]:
            _ok(c, v)
    for c in _cases(data, "hot_seat", "memory"):
        seats = c["params"]["seats"]
        for v in ("evsrc", "evsrc_nobatch"):
            assert _ok(c, v)["extra"]["booked"]["median"] == seats
    for c in _cases(data, "handler_cpu", "memory"):
        assert _ok(c, "evsrc")["extra"]["us_per_command"]["median"] > 0
        _ok(c, "limit")
        if c["params"]["yielding"] and c["params"]["callers"] > 1:
            # An append that yields lets concurrent commands batch.
            assert _ok(c, "evsrc")["extra"]["commands_per_append"]["median"] > 1
    decision = next(s for s in data["scenarios"] if s["name"] == "decision")
    for c in decision["cases"]:
        if c["params"]["backend"] != "postgres":
            _ok(c, "small")
            _ok(c, "big")
            assert c["ratios"]["cost_ratio"] is not None


def _check_sqlite(data: dict[str, Any]) -> None:
    for c in _cases(data, "sqlite", "sqlite"):
        _ok(c, "evsrc")
        if "beside a task" not in c["name"]:  # the event-loop stall case has no raw variant
            _ok(c, "limit")
        if "sequential, synchronous=" in c["name"]:  # raw sqlite3 through a worker thread
            _ok(c, "raw_thread")
            assert c["ratios"]["evsrc/raw_thread"] is not None
        if "seats" in c["params"]:
            assert _ok(c, "evsrc_nobatch")["extra"]["booked"]["median"] == c["params"]["seats"]
            assert _ok(c, "postgres")["extra"]["booked"]["median"] == c["params"]["seats"]


def _hot_seat_pg(data: dict[str, Any], *, peer: bool) -> None:
    for c in _cases(data, "hot_seat", "postgres"):
        seats = c["params"]["seats"]
        for v in ("evsrc", "evsrc_nobatch"):
            extra = _ok(c, v)["extra"]
            assert extra["booked"]["median"] == seats
            assert extra["appends"]["median"] >= 1
        _ok(c, "limit")
        if peer:
            assert _ok(c, "peer")["extra"]["booked"]["median"] == seats


def test_quick_run_without_bench_extra(tmp_path: Path) -> None:
    """With eventsourcing and matplotlib hidden, they say "skipped: install .[bench]"."""
    _pg_reachable()
    hide = tmp_path / "hide"
    hide.mkdir()
    for mod in ("eventsourcing", "matplotlib"):
        (hide / f"{mod}.py").write_text(f"raise ImportError('{mod} hidden by the smoke test')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(hide), str(ROOT)])
    out = tmp_path / "out"
    data = _run(out, env=env)
    assert data["outputs"]["chart"].startswith(f"chart {SKIP_BENCH}")
    assert not (out / "latest.png").exists()
    _check_memory(data)
    _check_sqlite(data)
    for scenario in ("append_expect", "append_batch", "read", "hot_seat"):
        for c in _cases(data, scenario, "postgres"):
            if "peer" in c["variants"]:
                assert SKIP_BENCH in c["variants"]["peer"]["status"], c["name"]
    for c in _cases(data, "append_expect", "postgres"):
        _ok(c, "evsrc")
        _ok(c, "limit")
    _hot_seat_pg(data, peer=False)
    assert SKIP_BENCH in (out / "latest.md").read_text()


def test_quick_run_every_scenario(tmp_path: Path) -> None:
    """Every scenario, every variant available here, correct results, JSON + table + chart."""
    _pg_reachable()
    bench = all(importlib.util.find_spec(m) for m in ("eventsourcing", "matplotlib"))
    data = _run(tmp_path)
    _check_memory(data)
    _check_sqlite(data)
    for scenario in ("append_expect", "append_batch"):
        for c in _cases(data, scenario, "postgres"):
            _ok(c, "evsrc")
            _ok(c, "limit")
            assert c["ratios"]["evsrc/limit"] is not None
            if bench:
                _ok(c, "peer")
    for c in _cases(data, "read", "postgres"):
        for v in c["variants"]:
            if v != "peer" or bench:
                _ok(c, v)
        if c["params"]["what"] in ("stream", "all"):
            assert "peer" in c["variants"]
    _hot_seat_pg(data, peer=bench)
    decision = next(s for s in data["scenarios"] if s["name"] == "decision")
    pg = next(c for c in decision["cases"] if c["params"]["backend"] == "postgres")
    _ok(pg, "small")
    _ok(pg, "big")
    goals = {g["goal"]: g["status"] for g in data["goals"]}
    assert len(goals) == 17
    # Issue 14's two SQLite goals and issue 16's replay goal are judged from figures.
    for title in goals:
        if "(issue 14)" in title or "replay" in title:
            assert goals[title] in ("met", "missed"), (title, goals[title])
    assert all(s in ("met", "missed", "partial", "not available") for s in goals.values())
    if bench:
        assert data["outputs"]["chart"] == "ok"
        assert (tmp_path / "latest.png").stat().st_size > 10_000
    assert data["machine"]["postgresql"]


def test_scale_run_at_a_small_size(tmp_path: Path) -> None:
    """``--scale`` grows its own database, reports every figure beside raw, and drops it."""
    _pg_reachable()
    name = f"evsrc_smoke_scale_{uuid.uuid4().hex[:8]}"
    chart = tmp_path / "scale.png"
    cmd = [sys.executable, "-m", "benchmarks", "--scale", "--scale-to", "4000", "--quiet"]
    cmd += ["--scale-db", name, "--scale-chart", str(chart), "--out", str(tmp_path)]
    cmd += ["--dsn", admin_dsn()]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = tmp_path.glob("scale-*.json")
    data = json.loads(result.read_text())
    (size,) = data["sizes"]
    assert size["size"] == 4000 and size["streams"] == 400
    # The store holds the grown events plus one per measured append.
    assert size["events"] > 4000
    assert size["table_bytes_per_event"] > 0 and size["index_bytes_per_event"] > 0
    for what in ("append", "last_seq", "read_stream"):
        for who in ("evsrc", "raw"):
            assert 0 < size[what][who]["p50_ms"] <= size[what][who]["p99_ms"]
    for where in ("from_start", "from_tail"):
        assert size[f"read_all_{where}"]["evsrc"] > 0 and size[f"read_all_{where}"]["raw"] > 0
    if importlib.util.find_spec("matplotlib"):
        assert chart.stat().st_size > 10_000

    async def gone() -> bool:
        conn = await asyncpg.connect(admin_dsn(), timeout=5)
        try:
            return not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        finally:
            await conn.close()

    assert asyncio.run(gone())
