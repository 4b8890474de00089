"""The command line: ``python -m examples.booking`` and ``main(argv)``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from examples.booking.auth import read_token
from examples.booking.cli import main
from examples.booking.progress import Progress
from examples.booking.stores import default_store_path, default_store_url, resolve_store_url
from tests.booking.conftest import SECRET

ROOT = Path(__file__).resolve().parents[2]
STORE_VARS = ("EVSRC_DSN", "EVSRC_STORE", "EVSRC_BOOKING_SECRET")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No store from the caller's environment; the default store under tmp_path."""
    for name in STORE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m examples.booking ARGV`` in its own process (a separate invocation)."""
    return subprocess.run(
        [sys.executable, "-m", "examples.booking", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_race_as_a_module_in_a_subprocess():
    p = cli("race", "--bookers", "50", "--seats", "10")
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


def test_help_states_the_default_store(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["book", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    where = str(tmp_path / "data" / "evsrc-booking" / "bookings.db")
    assert f"sqlite:///{where}" in "".join(text.split())  # argparse may wrap it at a hyphen
    assert "--store URL" in text and "$EVSRC_STORE" in text and "--dsn" in text
    with pytest.raises(SystemExit):
        main(["race", "--help"])
    assert "else memory:" in " ".join(capsys.readouterr().out.split())


def test_store_url_resolution(monkeypatch, tmp_path):
    assert default_store_path() == tmp_path / "data" / "evsrc-booking" / "bookings.db"
    assert default_store_url() == f"sqlite:///{tmp_path}/data/evsrc-booking/bookings.db"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")  # XDG: relative paths are invalid
    assert default_store_path() == Path.home() / ".local/share/evsrc-booking/bookings.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_store_path() == Path.home() / ".local/share/evsrc-booking/bookings.db"
    assert resolve_store_url("memory:", "postgresql://x/y") == "memory:"
    assert resolve_store_url(None, "postgresql://x/y") == "postgresql://x/y"
    monkeypatch.setenv("EVSRC_DSN", "postgresql://dsn/env")
    assert resolve_store_url(None, None) == "postgresql://dsn/env"
    monkeypatch.setenv("EVSRC_STORE", "memory:")
    assert resolve_store_url(None, "postgresql://x/y") == "memory:"
    assert resolve_store_url("sqlite:///a.db", None) == "sqlite:///a.db"
    monkeypatch.delenv("EVSRC_STORE")
    monkeypatch.delenv("EVSRC_DSN")
    assert resolve_store_url(None, None, default="memory:") == "memory:"


def test_bad_store_urls_are_clear_errors(capsys):
    code, _ = run("roster", "yoga", "--store", "ftp://example.org/x")
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown store URL scheme 'ftp'" in err
    code, _ = run("roster", "yoga", "--store", "postgresql://u:hunter2@127.0.0.1:1/db")
    assert code != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "hunter2" not in err


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["race", "--bookers", "0"])
    assert exc.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([])


def test_invalid_input_is_a_clear_error(capsys):
    code, _ = run("book", "", "ann", "--capacity", "3", "--store", "memory:")
    assert code == 2
    assert "occurrence must not be empty" in capsys.readouterr().err
    code, _ = run("book", "yoga", "ann", "--capacity", "0", "--store", "memory:")
    assert code == 2
    assert "capacity must be an int" in capsys.readouterr().err
    code, _ = run("book", "yoga", "ann", "--store", "memory:")  # unscheduled, no capacity
    assert code == 1
    assert "not scheduled" in capsys.readouterr().err


def test_single_commands_on_memory():
    m = ("--store", "memory:")
    assert run("book", "yoga", "ann", "--capacity", "3", *m) == (0, "ann: booked seat 1 on yoga\n")
    code, out = run("roster", "yoga", "--capacity", "3", *m)
    assert code == 0 and "0 booked of 3, 3 seats left" in out  # memory: keeps nothing
    assert run("schedule", "yoga", "4", *m) == (0, "yoga: scheduled with capacity 4\n")
    assert run("cancel", "yoga", "ann", *m)[0] == 4  # absent


def test_token_command(monkeypatch, capsys):
    code, _ = run("token", "ann")
    assert code == 2
    assert "EVSRC_BOOKING_SECRET" in capsys.readouterr().err
    monkeypatch.setenv("EVSRC_BOOKING_SECRET", "short")
    assert run("token", "ann")[0] == 2
    assert "at least 32" in capsys.readouterr().err
    monkeypatch.setenv("EVSRC_BOOKING_SECRET", SECRET)
    code, out = run("token", "ann")
    assert code == 0
    assert read_token(SECRET, "Bearer " + out.strip()).actor == "ann"
    assert not read_token(SECRET, "Bearer " + out.strip()).admin
    code, out = run("token", "root", "--admin", "--ttl", "60")
    claims = jwt.decode(out.strip(), SECRET, algorithms=["HS256"], issuer="evsrc-booking")
    assert claims["admin"] is True and claims["exp"] - claims["iat"] == 60
    assert run("token", "", "--admin")[0] == 2


def test_progress_bar_on_a_tty():
    out = io.StringIO()
    bar = Progress(10, out, tty=True, width=10, tty_interval=0)
    bar.update(5, "half")
    bar.finish(10, "done")
    text = out.getvalue()
    assert text.startswith("\r[█████·····]  5/10  half")
    assert "\r[██████████] 10/10  done" in text and text.endswith("\x1b[K\n")


def test_separate_invocations_keep_their_bookings(durable_url):
    """Each command is its own process: what one writes, the next one reads."""
    s = ("--store", durable_url)
    p = cli("schedule", "yoga", "2", *s)
    assert (p.returncode, p.stdout) == (0, "yoga: scheduled with capacity 2\n"), p.stderr
    assert cli("book", "yoga", "ann", *s).stdout == "ann: booked seat 1 on yoga\n"
    # $EVSRC_STORE is the same store as --store
    p = cli("book", "yoga", "bob", env={"EVSRC_STORE": durable_url})
    assert p.stdout == "bob: booked seat 2 on yoga\n", p.stderr
    p = cli("book", "yoga", "cat", "--dsn", durable_url)  # the old option still works
    assert (p.returncode, p.stdout) == (3, "cat: full — yoga has 2 seats, all taken\n")
    p = cli("roster", "yoga", "--json", *s)
    assert json.loads(p.stdout) == {
        "occurrence": "yoga",
        "capacity": 2,
        "roster": ["ann", "bob"],
        "seats_left": 0,
        "waitlist": [],
    }


def test_the_default_store_is_a_sqlite_file_that_persists(tmp_path):
    assert cli("book", "yoga", "ann", "--capacity", "3").returncode == 0
    p = cli("roster", "yoga", "--capacity", "3")
    assert "1 booked of 3, 2 seats left" in p.stdout, p.stderr
    assert (tmp_path / "data" / "evsrc-booking" / "bookings.db").is_file()


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


def test_hold_confirm_and_react_across_invocations(tmp_path):
    import time

    store = f"sqlite:///{tmp_path / 'holds.db'}"
    notices = tmp_path / "notices.jsonl"
    assert run("schedule", "yoga", "1", "--store", store)[0] == 0
    code, text = run("hold", "yoga", "ann", "--minutes", "0.005", "--store", store)
    assert code == 0 and "ann: held seat 1 on yoga until" in text
    assert run("hold", "yoga", "bob", "--store", store)[0] == 3  # full
    assert run("book", "yoga", "bob", "--waitlist", "--store", store)[0] == 0
    code, text = run("roster", "yoga", "--store", store)
    assert "ann  (held until" in text
    assert run("confirm", "yoga", "cy", "--store", store)[0] == 4  # no hold
    time.sleep(0.5)  # ann's hold (0.3 s) runs out while nothing runs
    notify = ["--notify-file", str(notices)]
    code, text = run("react", "--once", "--json", *notify, "--store", store)
    assert code == 0
    assert json.loads(text) == {"expired": 1, "notified": 1}
    code, text = run("roster", "yoga", "--json", "--store", store)
    assert json.loads(text)["roster"] == ["bob"]
    (line,) = notices.read_text().splitlines()
    assert json.loads(line)["payload"] == {"occurrence": "yoga", "actor": "bob"}
    code, text = run("react", "--once", "--json", *notify, "--store", store)
    assert json.loads(text) == {"expired": 0, "notified": 0}  # nothing twice
    assert len(notices.read_text().splitlines()) == 1
    with pytest.raises(SystemExit) as exc:
        run("hold", "yoga", "dee", "--minutes", "0", "--store", store)
    assert exc.value.code == 2


def test_race_with_holds_expires_promotes_and_notifies():
    code, text = run("race", "--holds", "--bookers", "60", "--seats", "6", "--json")
    assert code == 0, text
    report = json.loads(text)
    assert report["problems"] == []
    counts = report["counts"]
    assert (counts["held"], counts["confirmed"], counts["expired"]) == (6, 3, 3)
    assert counts["promoted"] == report["notified"] == 3
    assert report["roster_size"] == 6
