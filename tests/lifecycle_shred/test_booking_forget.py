"""The booking app forgets an actor: seats freed, name unreadable, on the CLI and over HTTP."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from evsrc.memory import InMemoryEventStore
from examples.booking.api import create_app
from examples.booking.cli import main
from examples.booking.privacy import shredded
from examples.booking.service import BookingService
from tests.booking.conftest import serving, token

ROOT = Path(__file__).resolve().parents[2]
ANNA = "annabelle-forget-me"  # long enough never to show up by chance in base64


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def rows_text(path: Path) -> bytes:
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        out = bytearray()
        for name in names:
            for row in conn.execute(f'SELECT * FROM "{name}"'):
                out += repr(row).encode() + b"\n"
        return bytes(out)
    finally:
        conn.close()


def test_cli_forget_frees_seats_everywhere_and_leaves_no_plaintext(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    assert run("schedule", "yoga", "1", "--store", url)[0] == 0
    assert run("schedule", "pilates", "2", "--store", url)[0] == 0
    assert run("book", "yoga", ANNA, "--store", url)[0] == 0
    assert run("book", "yoga", "bob", "--waitlist", "--store", url)[0] == 0
    assert run("book", "pilates", "carol", "--store", url)[0] == 0
    assert run("hold", "pilates", ANNA, "--store", url)[0] == 0
    assert ANNA.encode() in rows_text(tmp_path / "b.db")  # in the key table, as the subject

    code, text = run("forget", ANNA, "--json", "--store", url)
    assert code == 0, text
    result = json.loads(text)
    assert result["forgotten"] is True
    assert sorted((r["occurrence"], r["status"]) for r in result["released"]) == [
        ("pilates", "cancelled"),
        ("yoga", "cancelled"),
    ]
    assert [r["promoted"] for r in result["released"] if r["occurrence"] == "yoga"] == ["bob"]
    # Their seats are free: bob took the yoga seat, pilates has a seat again.
    code, text = run("roster", "yoga", "--json", "--store", url)
    assert json.loads(text)["roster"] == ["bob"]
    code, text = run("roster", "pilates", "--json", "--store", url)
    assert json.loads(text)["roster"] == ["carol"]
    assert run("book", "pilates", "dave", "--store", url)[0] == 0
    # No row of any table holds the name any more.
    assert ANNA.encode() not in rows_text(tmp_path / "b.db")
    # Forgetting again: nothing known (exit 4); a bad actor: a usage error (exit 2).
    assert run("forget", ANNA, "--store", url)[0] == 4
    assert run("forget", "", "--store", url)[0] == 2
    assert run("forget", "x" * 1000, "--store", url)[0] == 2


def test_forget_as_its_own_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    assert run("schedule", "swim", "3", "--store", url)[0] == 0
    assert run("book", "swim", ANNA, "--store", url)[0] == 0
    proc = subprocess.run(
        [sys.executable, "-m", "examples.booking", "forget", ANNA, "--store", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "forgotten" in proc.stdout
    assert ANNA.encode() not in rows_text(tmp_path / "p.db")


SECRET_HEADERS = {"admin": token("root", admin=True), "anna": token(ANNA)}


async def test_http_forget_is_admin_only_and_refuses_hostile_input(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    app = create_app(store_url=f"sqlite:///{path}", secret=_secret())
    admin, anna = SECRET_HEADERS["admin"], SECRET_HEADERS["anna"]
    async with serving(app) as c:
        r = await c.post("/schedule", json={"occurrence": "yoga", "capacity": 1}, headers=admin)
        assert r.status_code == 201
        assert (await c.post("/book", json={"occurrence": "yoga"}, headers=anna)).status_code == 201
        # Not an admin (not even for oneself): 403, nothing changes.
        r = await c.post("/admin/forget", json={"actor": ANNA}, headers=anna)
        assert r.status_code == 403
        assert (await c.post("/admin/forget", json={"actor": ANNA})).status_code == 401
        for bad in (
            {"actor": 7},
            {"actor": ""},
            {},
            {"actor": ANNA, "x": 1},
            {"actor": "a" * 5000},
        ):
            r = await c.post("/admin/forget", json=bad, headers=admin)
            assert r.status_code in (413, 422), (bad, r.status_code)
        r = await c.post(
            "/admin/forget",
            content=b"{not json",
            headers={**admin, "content-type": "application/json"},
        )
        assert r.status_code == 400
        r = await c.get("/roster", params={"occurrence": "yoga"}, headers=admin)
        assert r.json()["roster"] == [ANNA]

        r = await c.post("/admin/forget", json={"actor": ANNA}, headers=admin)
        assert r.status_code == 200
        body = r.json()
        assert body["forgotten"] is True
        assert body["released"] == [{"occurrence": "yoga", "status": "cancelled", "promoted": None}]
        r = await c.get("/roster", params={"occurrence": "yoga"}, headers=admin)
        assert r.json()["roster"] == []
        r = await c.post("/admin/forget", json={"actor": ANNA}, headers=admin)
        assert r.json() == {"actor": ANNA, "forgotten": False, "released": []}
        doc = (await c.get("/openapi.json")).json()
        assert "/admin/forget" in doc["paths"]
    assert ANNA.encode() not in rows_text(path)


async def test_http_forget_on_a_store_that_does_not_encrypt_is_501() -> None:
    async with InMemoryEventStore() as store:
        app = create_app(store, secret=_secret())
        async with serving(app) as c:
            r = await c.post("/admin/forget", json={"actor": ANNA}, headers=SECRET_HEADERS["admin"])
            assert r.status_code == 501
        # A store the caller wraps can forget; its events hold no name once forgotten.
        async with shredded(store) as s:
            app = create_app(s, secret=_secret())
            async with serving(app) as c:
                admin = SECRET_HEADERS["admin"]
                await c.post(
                    "/book", json={"occurrence": "o", "capacity": 2, "actor": ANNA}, headers=admin
                )
                r = await c.post("/admin/forget", json={"actor": ANNA}, headers=admin)
                assert r.status_code == 200 and r.json()["forgotten"] is True
            roster = await BookingService(s).roster("o")
            assert roster == []
            stored = [e async for e in store.read_all()]
            assert ANNA not in json.dumps([e.data for e in stored])
            names = [e.data["actor"] async for e in s.read_all()]
            assert len(names) == 2 and names[0] == names[1] and names[0].startswith("[forgotten:")


def _secret() -> str:
    from tests.booking.conftest import SECRET

    return SECRET


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("EVSRC_DSN", "EVSRC_STORE", "EVSRC_BOOKING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def test_holds_expire_and_notices_are_sealed_then_forgotten(tmp_path: Path) -> None:
    import time

    db = tmp_path / "holds.db"
    store = f"sqlite:///{db}"
    notices = tmp_path / "notices.jsonl"
    bella = "bella-promoted-person"
    assert run("schedule", "yoga", "1", "--store", store)[0] == 0
    assert run("hold", "yoga", ANNA, "--minutes", "0.005", "--store", store)[0] == 0
    assert run("book", "yoga", bella, "--waitlist", "--store", store)[0] == 0
    time.sleep(0.5)  # the hold runs out while nothing runs
    notify = ["--notify-file", str(notices)]
    code, text = run("react", "--once", "--json", *notify, "--store", store)
    assert code == 0
    # The deadline found the hold by its seq (it names no actor) and expired it.
    assert json.loads(text) == {"expired": 1, "notified": 1}
    code, text = run("roster", "yoga", "--json", "--store", store)
    assert json.loads(text)["roster"] == [bella]
    # The sink was told the name; at rest the notice holds it only sealed.
    (line,) = notices.read_text().splitlines()
    assert json.loads(line)["payload"] == {"occurrence": "yoga", "actor": bella}
    rows = rows_text(db)
    assert rows.count(bella.encode()) == 1  # the key table's subject row, nothing else
    assert rows.count(ANNA.encode()) == 1
    assert run("forget", bella, "--store", store)[0] == 0
    assert run("forget", ANNA, "--store", store)[0] == 0
    rows = rows_text(db)
    assert bella.encode() not in rows
    assert ANNA.encode() not in rows
