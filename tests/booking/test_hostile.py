"""Hostile input over HTTP: always a JSON 4xx, never a 5xx, never a write, no internal names."""

from __future__ import annotations

import json
import random
from urllib.parse import quote, unquote

import asyncpg
import pytest

from examples.booking.api import create_app
from examples.booking.bodies import MAX_BODY_BYTES, MAX_DEPTH
from tests.booking.conftest import SECRET, serving, token
from tests.booking.history import checked_history
from tests.pgfixtures import admin_dsn

ANN, MALLORY, ADMIN = token("ann"), token("mallory"), token("root", admin=True)
JSON = {"content-type": "application/json"}
#: What an error body must never contain: stream names, driver and Python internals.
LEAKS = ("booking:", "asyncpg", "postgres", "Traceback", "Error", "evsrc_", "sqlite", "\\ud")


@pytest.fixture
async def client(app_store):
    async with serving(create_app(app_store, secret=SECRET)) as c:
        await c.post("/schedule", json={"occurrence": "yoga", "capacity": 2}, headers=ADMIN)
        await c.post("/book", json={"occurrence": "yoga"}, headers=ANN)
        yield c


async def _events(store):
    return [(e.stream, e.seq, e.type, e.data) async for e in store.read_all()]


def _assert_clean_error(r, status: int | None = None) -> dict:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    if status is not None:
        assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert isinstance(body["error"], str) and isinstance(body["message"], str)
    for leak in LEAKS:
        assert leak not in r.text, (leak, r.text)
    return body


async def test_deeply_nested_json_is_400(client, app_store):
    before = await _events(app_store)
    for depth in (MAX_DEPTH + 1, 1000, 8000):
        content = "[" * depth + "]" * depth
        r = await client.post("/book", content=content, headers={**JSON, **ANN})
        assert _assert_clean_error(r, 400)["error"] == "too_deep"
        content = '{"occurrence": "yoga", "x": ' + "[" * depth + "]" * depth + "}"
        r = await client.post("/book", content=content, headers={**JSON, **ANN})
        assert _assert_clean_error(r)["error"] in ("too_deep", "too_large")
    content = "[" * 100_000 + "]" * 100_000  # the 500: now refused unread, by size
    _assert_clean_error(await client.post("/book", content=content, headers={**JSON, **ANN}), 413)
    # Brackets inside strings are not nesting.
    r = await client.post("/book", json={"occurrence": "[" * 500}, headers=ANN)
    assert _assert_clean_error(r, 422)["field"] == "occurrence"
    assert await _events(app_store) == before


async def test_bodies_over_the_limit_are_413(client, app_store):
    before = await _events(app_store)
    big = json.dumps({"occurrence": "yoga", "actor": "ann", "pad": " " * MAX_BODY_BYTES})
    r = await client.post("/book", content=big, headers={**JSON, **ANN})
    assert _assert_clean_error(r, 413)["error"] == "too_large"
    # Whitespace is still body: a 10 MB blank body books nothing.
    body = '{"occurrence": "yoga"}' + " " * (10 * 1024 * 1024)
    r = await client.post("/book", content=body, headers={**JSON, **MALLORY})
    _assert_clean_error(r, 413)

    async def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(64):
            yield b" " * 1024

    r = await client.post("/book", content=chunks(), headers={**JSON, **MALLORY})
    _assert_clean_error(r, 413)
    r = await client.post(
        "/book", content=b"{}", headers={**JSON, **MALLORY, "content-length": "abc"}
    )
    assert r.status_code in (400, 413)
    assert await _events(app_store) == before


async def test_writes_need_application_json(client, app_store):
    before = await _events(app_store)
    body = json.dumps({"occurrence": "yoga"})
    for ctype in (
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "application/json; charset=latin-1",
        "multipart/form-data; boundary=x",
    ):
        headers = {**MALLORY} if ctype is None else {**MALLORY, "content-type": ctype}
        r = await client.post("/book", content=body, headers=headers)
        assert _assert_clean_error(r, 415)["error"] == "unsupported_media_type", ctype
    for ctype in (
        "application/json; charset=utf-8",
        "Application/JSON",
        'application/json;charset="UTF-8"',
    ):
        r = await client.post("/book", content=body, headers={**ANN, "content-type": ctype})
        assert r.status_code == 200, (ctype, r.text)  # ann already holds seat 1
    assert await _events(app_store) == before


async def test_invalid_utf8_and_lone_surrogates_are_refused_before_any_write(client, app_store):
    before = await _events(app_store)
    r = await client.post("/book", content=b'{"occurrence": "yo\xffga"}', headers={**JSON, **ANN})
    assert _assert_clean_error(r, 400)["error"] == "bad_encoding"
    r = await client.post(
        "/book", content=b'{"occurrence": "\xed\xa0\x80"}', headers={**JSON, **ANN}
    )
    assert _assert_clean_error(r, 400)["error"] == "bad_encoding"  # a surrogate, UTF-8 encoded
    # As JSON escapes: valid UTF-8, but not valid Unicode text.
    for raw in (
        '{"occurrence": "yoga", "actor": "\\ud800"}',
        '{"occurrence": "\\udfff"}',
        '{"occurrence": "yoga", "\\ud83d": 1}',
        '{"occurrence": "yoga", "x": ["\\udc00"]}',
    ):
        r = await client.post("/book", content=raw, headers={**JSON, **ADMIN})
        assert _assert_clean_error(r, 422)["error"] == "invalid_input", raw
    r = await client.post(
        "/cancel", content='{"occurrence": "yoga", "actor": "a\\udc80"}', headers={**JSON, **ADMIN}
    )
    _assert_clean_error(r, 422)
    # A proper pair is fine (and the body-less check agrees with the domain's).
    r = await client.post(
        "/book",
        content='{"occurrence": "yoga", "actor": "\\ud83d\\ude00"}',
        headers={**JSON, **ADMIN},
    )
    assert r.status_code == 201
    r = await client.get("/roster", params={"occurrence": "yoga"}, headers=ANN)
    assert r.status_code == 200 and r.json()["roster"] == ["ann", "😀"]
    assert len(await _events(app_store)) == len(before) + 1


async def test_not_json_nan_and_non_objects_are_400(client, app_store):
    before = await _events(app_store)
    for raw in (
        "",
        "{",
        "nul",
        "[]",
        "3",
        '"yoga"',
        "null",
        '{"occurrence": NaN}',
        '{"occurrence": "yoga", "capacity": Infinity}',
        '{"a": 1}{"b": 2}',
        "\ufeff{}",
    ):
        r = await client.post("/book", content=raw.encode(), headers={**JSON, **ADMIN})
        assert _assert_clean_error(r, 400)["error"] == "bad_json", raw
    assert await _events(app_store) == before


async def test_errors_name_no_internals(client):
    r = await client.post("/book", json={"occurrence": "y" * 300}, headers=ANN)
    body = _assert_clean_error(r, 422)
    assert body["field"] == "occurrence"
    r = await client.get("/roster", params={"occurrence": "nowhere"}, headers=ANN)
    assert _assert_clean_error(r, 404)["error"] == "unknown_occurrence"
    for path in ("/nope", "/static/../api.py", "/static/%2e%2e/api.py", "/book/x"):
        r = await client.get(path)
        assert _assert_clean_error(r, 404)["error"] == "not_found", path
    r = await client.put("/book", json={})
    assert _assert_clean_error(r, 405)["error"] == "method_not_allowed"


@pytest.mark.postgres
async def test_a_lost_database_is_a_503_that_names_nothing(pg_dsn):
    database = pg_dsn.rsplit("/", 1)[1]
    async with serving(create_app(store_url=pg_dsn, secret=SECRET)) as client:
        r = await client.post(
            "/schedule", json={"occurrence": "yoga", "capacity": 2}, headers=ADMIN
        )
        assert r.status_code == 201
        conn = await asyncpg.connect(admin_dsn())
        try:
            await conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        finally:
            await conn.close()
        for method, path, body in [
            ("POST", "/book", {"occurrence": "yoga"}),
            ("POST", "/cancel", {"occurrence": "yoga"}),
            ("GET", "/roster?occurrence=yoga", None),
        ]:
            r = await client.request(method, path, json=body, headers=ANN)
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "store_unavailable"
            assert database not in r.text and "asyncpg" not in r.text
        r = await client.get("/ready")
        assert (r.status_code, r.json()["checks"]["store"]) == (503, "unreachable")


# -- the fuzz ---------------------------------------------------------------------------------

_PATHS = [
    "/book",
    "/cancel",
    "/schedule",
    "/roster",
    "/occurrences",
    "/events",
    "/health",
    "/x",
    "/book/",
    "//book",
    "/static/",
    "/openapi.json",
]
_METHODS = ["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS"]
_CTYPES = [
    "application/json",
    "application/json",
    "application/json",
    None,
    "text/plain",
    "application/json; charset=utf-16",
    "application/json; charset=utf-8",
]
_WEIRD = [
    "",
    " ",
    "\x00",
    "\\u0000",
    "\\ud800",
    "\u202e",
    "😀",
    "y" * 300,
    "a" * 5000,
    "booking:yoga",
    "../../etc",
    "%00",
    "<script>",
    "'; DROP TABLE x; --",
]


def _value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(10 if depth < 3 else 7)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 1, 2, 10**6, 10**6 + 1, 2**31, 2**63, -(2**70), 10**400])
    if kind == 2:
        return rng.choice([0.5, -0.0, 1e308, 2.0])
    if kind in (3, 4, 5, 6):
        return rng.choice([*_WEIRD, "yoga", "ann", "mallory"])
    if kind in (7, 8):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        rng.choice(["occurrence", "actor", "capacity", "waitlist", "x"]): _value(rng, depth + 1)
    }


def _body(rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    if kind == 1:  # truncated or mangled JSON
        text = json.dumps({"occurrence": "yoga", "actor": "mallory"})
        cut = rng.randrange(len(text))
        return (text[:cut] + rng.choice(["", "}", "]", ",", "\\", '"'])).encode()
    if kind == 2:  # deep
        d = rng.choice([15, 17, 64, 5000])
        return ("[" * d + "]" * d).encode()
    if kind == 3:  # escapes that decode to odd things
        field = rng.choice(["occurrence", "actor"])
        esc = rng.choice(["\\ud800", "\\udfff", "\\u0000", "\\ud83d\\ude00", "\\u202e", "\\"])
        return ('{"occurrence": "yoga", "' + field + '": "x' + esc + '"}').encode()
    if kind == 4:  # big
        return b'{"occurrence": "' + b"y" * rng.choice([1000, 17000, 70000]) + b'"}'
    if kind == 5:  # invalid UTF-8 in a string
        return b'{"occurrence": "yo' + bytes([rng.choice([0x80, 0xC0, 0xED, 0xFF])]) + b'ga"}'
    # a JSON object of random fields and values
    obj = {}
    for name in rng.sample(
        ["occurrence", "actor", "capacity", "waitlist", "seats", ""], rng.randrange(5)
    ):
        obj[name] = _value(rng)
    return json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")


def _query(rng: random.Random) -> str:
    params = []
    for name in rng.sample(["occurrence", "capacity", "x"], rng.randrange(4)):
        value = rng.choice([*_WEIRD, "yoga", "2", "-1", "0", "99999999999", "1e3", "２"])
        params.append(f"{name}={quote(value, safe='')}")
    return "&".join(params)


async def test_fuzz_never_5xx_and_the_roster_stays_intact(client, app_store):
    rng = random.Random(20261129)
    tokens = [MALLORY] * 8 + [{}, {"Authorization": "Bearer " + "x" * 40}]
    statuses = []
    for _ in range(400):
        method = rng.choice(_METHODS)
        path = rng.choice(_PATHS)
        headers = dict(rng.choice(tokens))
        ctype = rng.choice(_CTYPES)
        if ctype is not None:
            headers["content-type"] = ctype
        if rng.random() < 0.3:
            headers["x-request-id"] = rng.choice(["ok-id", "x" * 500, "bad id\x7f", ""])
        url = path + ("?" + _query(rng) if method == "GET" and rng.random() < 0.8 else "")
        if path == "/events" and method == "GET":
            url = "/occurrences"  # a stream never ends: its auth and errors are tested elsewhere
        content = _body(rng)
        r = await client.request(method, url, content=content, headers=headers)
        statuses.append(r.status_code)
        assert r.status_code < 500, (method, url, r.status_code, r.text)
        assert r.headers["x-request-id"]
        if r.status_code >= 400 and r.headers.get("content-type") == "application/json":
            body = r.json()
            assert "error" in body or "status" in body, r.text
            if "error" in body:
                for leak in ("booking:", "asyncpg", "Traceback"):
                    echoed = leak.encode() in content or leak in unquote(url)  # the client's words
                    assert echoed or leak not in r.text, r.text
    # The run exercised every kind of refusal.
    assert {400, 401, 404, 405, 413, 415, 422} <= set(statuses), sorted(set(statuses))
    state = await checked_history(app_store, "yoga")
    # Mallory may hold the free seat or wait; nobody else appears, nothing else was written.
    assert state.roster[0] == "ann" and set(state.roster) <= {"ann", "mallory"}
    assert set(state.waitlist) <= {"mallory"}
    assert {e.stream async for e in app_store.read_all()} == {"booking:yoga"}
    r = await client.get("/roster", params={"occurrence": "yoga"}, headers=ANN)
    assert r.status_code == 200 and r.json()["roster"][0] == "ann"
