"""``python -m benchmarks``: run the scenarios, write JSON, a markdown table and a chart.

Each scenario runs in a process of its own (evsrc, its limit and its peer side
by side in that one process), one after another. ``--quick`` is the CI smoke:
tiny sizes, one repetition, correctness checks only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import db
from benchmarks.harness import CheckFailed, Context, Progress, ScenarioResult, machine_info
from benchmarks.scenarios import SCENARIOS, load

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="evsrc benchmarks: every scenario beside raw asyncpg and eventsourcing.",
    )
    p.add_argument(
        "--scenario",
        action="append",
        choices=[*SCENARIOS, "all"],
        help="scenario to run (repeatable; default: all)",
    )
    p.add_argument("--quick", action="store_true", help="CI smoke: tiny sizes, 1 repetition")
    p.add_argument(
        "--dsn",
        default=os.environ.get("EVSRC_BENCH_DSN")
        or os.environ.get("EVSRC_TEST_DSN")
        or DEFAULT_DSN,
        help="PostgreSQL server (its database is only used to create/drop our own databases)",
    )
    p.add_argument("--out", default="benchmarks/results", help="results directory")
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 5; --quick: 1)")
    p.add_argument(
        "--db-prefix", default="evsrc_bench", help="prefix of the databases the run creates"
    )
    p.add_argument("--no-pg", action="store_true", help="skip PostgreSQL (memory only)")
    p.add_argument("--in-process", action="store_true", help="run scenarios in this process")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument(
        "--scale",
        action="store_true",
        help="instead of the scenarios: grow a PostgreSQL store to --scale-to events and "
        "report what grows with it (benchmarks/scale.py; not in CI, ~30 min at 10^7)",
    )
    p.add_argument("--scale-to", type=int, default=10_000_000, help="--scale: final size")
    p.add_argument("--scale-db", default="evsrc_scale", help="--scale: the database it creates")
    p.add_argument(
        "--scale-chart", default="docs/scale.png", help="--scale: chart path ('' for none)"
    )
    p.add_argument("--child-json", help=argparse.SUPPRESS)
    return p.parse_args(argv)


async def run_scenario(name: str, args: argparse.Namespace, progress: Progress) -> ScenarioResult:
    """Run scenario ``name`` in this process."""
    title = SCENARIOS[name][0]
    result = ScenarioResult(name, title)
    reps = args.reps if args.reps is not None else (1 if args.quick else 5)
    pg_reason = "disabled by --no-pg" if args.no_pg else await db.check_server(args.dsn)
    ctx = Context(
        quick=args.quick,
        reps=reps,
        dsn=None if args.no_pg else args.dsn,
        db_prefix=args.db_prefix,
        progress=progress,
        result=result,
        pg_reason=pg_reason,
    )
    if pg_reason:
        result.notes.append(f"PostgreSQL not available: {pg_reason}")
    t0 = time.monotonic()
    try:
        await load(name)(ctx)
    except CheckFailed as exc:
        result.status = f"FAILED check: {exc}"
    except Exception as exc:
        result.status = f"error: {type(exc).__name__}: {exc}"
        result.notes.append(traceback.format_exc())
    result.seconds = time.monotonic() - t0
    progress.done(f"{name}: {result.status} in {result.seconds:.1f}s")
    return result


def run_child(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Run scenario ``name`` in a fresh interpreter; its result as JSON data."""
    path = out / f".{name}.json"
    cmd = [sys.executable, "-m", "benchmarks", "--scenario", name, "--child-json", str(path)]
    cmd += ["--dsn", args.dsn, "--db-prefix", args.db_prefix]
    if args.quick:
        cmd.append("--quick")
    if args.reps is not None:
        cmd += ["--reps", str(args.reps)]
    if args.no_pg:
        cmd.append("--no-pg")
    if args.quiet:
        cmd.append("--quiet")
    limit = 300 if args.quick else 900
    try:
        proc = subprocess.run(cmd, check=False, timeout=limit)
        status = f"error: scenario process exited with {proc.returncode}"
        failed = proc.returncode != 0
    except subprocess.TimeoutExpired:
        status, failed = f"error: scenario process killed after {limit}s", True
    if failed or not path.exists():
        return {
            "name": name,
            "title": SCENARIOS[name][0],
            "status": status,
            "cases": [],
            "checks": [],
            "notes": [],
        }
    data: dict[str, Any] = json.loads(path.read_text())
    path.unlink()
    return data


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (1 if any check failed or a scenario errored)."""
    args = parse_args(argv)
    if args.scale:
        from benchmarks import scale

        return scale.main(args)
    names = list(SCENARIOS) if not args.scenario or "all" in args.scenario else args.scenario
    names = list(dict.fromkeys(names))
    progress = Progress(quiet=args.quiet)

    if args.child_json:
        result = asyncio.run(run_scenario(names[0], args, progress))
        Path(args.child_json).write_text(json.dumps(result.to_json()))
        return 0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    scenarios: list[dict[str, Any]] = []
    for name in names:
        progress.done(f"== {name}: {SCENARIOS[name][0]}")
        if args.in_process:
            scenarios.append(asyncio.run(run_scenario(name, args, progress)).to_json())
        else:
            scenarios.append(run_child(name, args, out))

    from benchmarks import report

    machine = machine_info()
    if not args.no_pg:
        try:
            machine["postgresql"] = asyncio.run(db.server_version(args.dsn))
        except Exception as exc:
            machine["postgresql"] = f"unavailable ({type(exc).__name__})"
    data: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "reps": args.reps if args.reps is not None else (1 if args.quick else 5),
        "command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine,
        "scenarios": scenarios,
    }
    data["goals"] = report.goals(data)
    paths = report.write_all(data, out)
    for p in paths:
        progress.done(f"wrote {p}")
    bad = [s["name"] for s in scenarios if s["status"] != "ok"]
    if bad:
        progress.done(f"scenarios not ok: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
