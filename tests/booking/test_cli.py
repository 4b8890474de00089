"""The command line: ``python -m examples.booking`` and ``main(argv)``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from examples.booking.cli import main
from examples.booking.progress import Progress

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_race_as_a_module_in_a_subprocess():
    env = {k: v for k, v in os.environ.items() if k != "EVSRC_DSN"}
    p = subprocess.run(
        [sys.executable, "-m", "examples.booking", "race", "--bookers", "50", "--seats", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    assert "race on memory: 50 bookers for 10 seats" in p.stdout
    lines = dict(line.strip().split(None, 1) for line in p.stdout.splitlines()[1:3] if line.strip())
    assert lines == {"booked": "10", "full": "40"}
    assert "check: OK — roster equals capacity (10/10)" in p.stdout
    # Not a TTY: plain progress lines on stderr, ending at 50/50.
    assert "progress 50/50 (100%)" in p.stderr
    assert "\r" not in p.stderr


def test_race_json(capsys):
    code, out = run("race", "--bookers", "30", "--seats", "7", "--json", "--occurrence", "r1")
    assert code == 0
    report = json.loads(out)
    assert report["counts"] == {"booked": 7, "full": 23}
    assert report["roster_size"] == 7 and report["problems"] == []
    seats = sorted(r["seat"] for r in report["results"] if r["status"] == "booked")
    assert seats == list(range(1, 8))
    assert capsys.readouterr().err == ""  # no progress with --json


def test_race_with_more_seats_than_bookers():
    code, out = run("race", "--bookers", "5", "--seats", "8")
    assert code == 0
    assert "roster is within capacity (5/8)" in out


def test_help_explains_the_in_memory_store(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["book", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "in-memory store that vanishes" in text and "--dsn" in text


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["race", "--bookers", "0"])
    assert exc.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([])


def test_invalid_input_is_a_clear_error(capsys):
    code, _ = run("book", "", "ann", "--capacity", "3")
    assert code == 2
    assert "occurrence must not be empty" in capsys.readouterr().err
    code, _ = run("book", "yoga", "ann", "--capacity", "0")
    assert code == 2
    assert "capacity must be an int" in capsys.readouterr().err
    code, _ = run("book", "yoga", "ann")  # unscheduled, no capacity
    assert code == 1
    assert "not scheduled" in capsys.readouterr().err


def test_single_commands_on_memory():
    assert run("book", "yoga", "ann", "--capacity", "3") == (0, "ann: booked seat 1 on yoga\n")
    code, out = run("roster", "yoga", "--capacity", "3")
    assert code == 0 and "0 booked of 3, 3 seats left" in out  # nothing persisted
    assert run("schedule", "yoga", "4") == (0, "yoga: scheduled with capacity 4\n")
    assert run("cancel", "yoga", "ann")[0] == 4  # absent


def test_progress_bar_on_a_tty():
    out = io.StringIO()
    bar = Progress(10, out, tty=True, width=10, tty_interval=0)
    bar.update(5, "half")
    bar.finish(10, "done")
    text = out.getvalue()
    assert text.startswith("\r[█████·····]  5/10  half")
    assert "\r[██████████] 10/10  done" in text and text.endswith("\x1b[K\n")


@pytest.mark.postgres
def test_commands_persist_with_a_dsn(pg_dsn, capsys):
    d = ("--dsn", pg_dsn)
    assert run("schedule", "yoga", "2", *d) == (0, "yoga: scheduled with capacity 2\n")
    assert run("schedule", "yoga", "2", *d) == (0, "yoga: already scheduled with capacity 2\n")
    assert run("book", "yoga", "ann", *d) == (0, "ann: booked seat 1 on yoga\n")
    assert run("book", "yoga", "bob", *d) == (0, "bob: booked seat 2 on yoga\n")
    assert run("book", "yoga", "ann", *d) == (0, "ann: already seat 1 on yoga\n")
    code, out = run("book", "yoga", "cat", *d)
    assert code == 3 and "full" in out
    assert run("book", "yoga", "cat", "--waitlist", *d) == (
        0,
        "cat: waitlisted at position 1 on yoga\n",
    )
    assert run("cancel", "yoga", "ann", *d) == (
        0,
        "ann: cancelled on yoga; cat promoted from the waitlist to seat 2\n",
    )
    code, out = run("roster", "yoga", *d)
    assert code == 0
    assert out == "yoga: 2 booked of 2, 0 seats left\n     1  bob\n     2  cat\n"
    code, out = run("roster", "yoga", "--json", *d)
    assert json.loads(out)["roster"] == ["bob", "cat"]
    code, _ = run("schedule", "yoga", "3", *d)
    assert code == 1
    assert "already scheduled with capacity 2" in capsys.readouterr().err


@pytest.mark.postgres
def test_race_on_postgres(pg_dsn):
    code, out = run("race", "--bookers", "200", "--seats", "20", "--dsn", pg_dsn, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["backend"] == "postgres"
    assert report["counts"] == {"booked": 20, "full": 180}
    assert report["problems"] == []
