"""Bearer tokens over HTTP: 401 without a valid one, 403 when acting for someone else."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from evsrc.errors import ConfigurationError
from examples.booking.api import create_app
from examples.booking.auth import SecretError, mint_token, read_token
from tests.booking.conftest import SECRET, board_of, serving, token

ANN, BOB, ADMIN = token("ann"), token("bob"), token("root", admin=True)


@pytest.fixture
async def client(app_store):
    async with serving(create_app(app_store, secret=SECRET)) as c:
        yield c


def _unsigned(claims: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return part({"alg": "none", "typ": "JWT"}) + "." + part(claims) + "."


async def test_missing_forged_and_expired_tokens_get_401(client, app_store):
    await client.post("/schedule", json={"occurrence": "yoga", "capacity": 3}, headers=ADMIN)
    before = [e async for e in app_store.read_all()]
    forged = mint_token("another-secret-that-is-long-enough-0123456789", "ann")
    expired = mint_token(SECRET, "ann", ttl=60, now=1_000_000)
    wrong_issuer = jwt.encode(
        {"sub": "ann", "iss": "someone-else", "iat": 1, "exp": 4_000_000_000}, SECRET, "HS256"
    )
    no_expiry = jwt.encode({"sub": "ann", "iss": "evsrc-booking", "iat": 1}, SECRET, "HS256")
    attempts = {
        "none": {},
        "empty": {"Authorization": ""},
        "basic": {"Authorization": "Basic YW5uOnB3"},
        "garbage": {"Authorization": "Bearer not.a.token"},
        "forged": {"Authorization": f"Bearer {forged}"},
        "expired": {"Authorization": f"Bearer {expired}"},
        "alg none": {
            "Authorization": "Bearer "
            + _unsigned({"sub": "ann", "iss": "evsrc-booking", "iat": 1, "exp": 4_000_000_000})
        },
        "wrong issuer": {"Authorization": f"Bearer {wrong_issuer}"},
        "no expiry": {"Authorization": f"Bearer {no_expiry}"},
    }
    for name, headers in attempts.items():
        for method, path, body in [
            ("POST", "/book", {"occurrence": "yoga"}),
            ("POST", "/cancel", {"occurrence": "yoga"}),
            ("POST", "/schedule", {"occurrence": "x", "capacity": 2}),
            ("GET", "/roster?occurrence=yoga", None),
            ("GET", "/occurrences", None),
            ("GET", "/events", None),
        ]:
            r = await client.request(method, path, json=body, headers=headers)
            assert r.status_code == 401, (name, path, r.text)
            assert r.json()["error"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
    r = await client.post("/book", json={"occurrence": "yoga"}, headers=attempts["expired"])
    assert r.json()["message"] == "the token has expired"
    assert [e async for e in app_store.read_all()] == before


async def test_the_actor_is_the_caller(client, app_store):
    await client.post("/schedule", json={"occurrence": "yoga", "capacity": 3}, headers=ADMIN)
    r = await client.post("/book", json={"occurrence": "yoga"}, headers=ANN)
    assert (r.status_code, r.json()["actor"], r.json()["seat"]) == (201, "ann", 1)
    r = await client.post("/book", json={"occurrence": "yoga", "actor": "ann"}, headers=ANN)
    assert (r.status_code, r.json()["status"]) == (200, "already")
    before = [e async for e in app_store.read_all()]

    r = await client.post("/book", json={"occurrence": "yoga", "actor": "bob"}, headers=ANN)
    assert (r.status_code, r.json()["error"]) == (403, "forbidden")
    r = await client.post("/cancel", json={"occurrence": "yoga", "actor": "ann"}, headers=BOB)
    assert r.status_code == 403
    r = await client.post("/schedule", json={"occurrence": "new", "capacity": 5}, headers=ANN)
    assert r.status_code == 403
    r = await client.post("/book", json={"occurrence": "new", "capacity": 9}, headers=ANN)
    assert r.status_code == 403  # a capacity for an unscheduled occurrence: admins only
    assert [e async for e in app_store.read_all()] == before

    # A capacity that agrees with the scheduled one is fine for anyone.
    r = await client.post("/book", json={"occurrence": "yoga", "capacity": 3}, headers=BOB)
    assert (r.status_code, r.json()["actor"]) == (201, "bob")
    r = await client.post("/cancel", json={"occurrence": "yoga"}, headers=BOB)
    assert (r.status_code, r.json()["status"]) == (200, "cancelled")
    # Admins act for others.
    r = await client.post("/book", json={"occurrence": "yoga", "actor": "cat"}, headers=ADMIN)
    assert (r.status_code, r.json()["actor"]) == (201, "cat")
    r = await client.post("/cancel", json={"occurrence": "yoga", "actor": "ann"}, headers=ADMIN)
    assert (r.status_code, r.json()["actor"]) == (200, "ann")
    r = await client.get("/roster", params={"occurrence": "yoga"}, headers=BOB)
    assert r.json()["roster"] == ["cat"]


async def test_the_board_shows_the_callers_own_place(client):
    await client.post("/schedule", json={"occurrence": "yoga", "capacity": 1}, headers=ADMIN)
    await client.post("/book", json={"occurrence": "yoga"}, headers=ANN)
    await client.post("/book", json={"occurrence": "yoga", "waitlist": True}, headers=BOB)
    body = await board_of(client, BOB, lambda b: [o["waitlist"] for o in b["occurrences"]] == [1])
    assert body["you"] == {"actor": "bob", "admin": False}
    [yoga] = body["occurrences"]
    assert yoga["your_waitlist_position"] == 1 and yoga["your_seat"] is None
    assert (yoga["capacity"], yoga["seats_left"], yoga["waitlist"]) == (1, 0, 1)
    [yoga] = (await client.get("/occurrences", headers=ANN)).json()["occurrences"]
    assert (yoga["your_seat"], yoga["your_waitlist_position"]) == (1, None)


async def test_public_endpoints_need_no_token(client):
    for path in ("/health", "/ready", "/metrics", "/openapi.json", "/", "/static/app.js"):
        assert (await client.get(path)).status_code == 200, path


def test_a_secret_is_required():
    with pytest.raises(ConfigurationError, match="insecure_no_auth"):
        create_app()
    with pytest.raises(SecretError, match="at least 32"):
        create_app(secret="short")
    with pytest.raises(SecretError):
        mint_token("", "ann")
    create_app(insecure_no_auth=True)


def test_tokens_round_trip():
    t = mint_token(SECRET, "ann", admin=True)
    caller = read_token(SECRET, f"Bearer {t}")
    assert (caller.actor, caller.admin) == ("ann", True)
    assert read_token(SECRET, f"bearer {t}").actor == "ann"
