"""The HTTP API through an in-process ASGI client, on every backend (no-auth mode: admin)."""

from __future__ import annotations

import anyio
import httpx
import pytest

from examples.booking.api import create_app
from examples.booking.schemas import BookingOut, CancelOut, ErrorOut, RosterOut, ScheduleOut
from tests.booking.conftest import serving
from tests.booking.history import checked_history


@pytest.fixture
async def client(app_store):
    async with serving(create_app(app_store, insecure_no_auth=True)) as c:
        yield c


async def test_schedule_book_roster_cancel(client, app_store):
    r = await client.post("/schedule", json={"occurrence": "yoga", "capacity": 2})
    assert r.status_code == 201
    assert r.json() == {"occurrence": "yoga", "capacity": 2, "created": True}
    r = await client.post("/schedule", json={"occurrence": "yoga", "capacity": 2})
    assert (r.status_code, r.json()["created"]) == (200, False)

    r = await client.post("/book", json={"occurrence": "yoga", "actor": "ann"})
    assert r.status_code == 201
    assert r.json() == {"status": "booked", "actor": "ann", "seat": 1, "capacity": 2}
    r = await client.post("/book", json={"occurrence": "yoga", "actor": "ann"})
    assert (r.status_code, r.json()["status"], r.json()["seat"]) == (200, "already", 1)
    r = await client.post("/book", json={"occurrence": "yoga", "actor": "bob", "capacity": 2})
    assert r.status_code == 201
    r = await client.post("/book", json={"occurrence": "yoga", "actor": "cat"})
    assert r.status_code == 409
    assert r.json() == {"status": "full", "actor": "cat", "capacity": 2}
    r = await client.post("/book", json={"occurrence": "yoga", "actor": "cat", "waitlist": True})
    assert r.status_code == 200
    assert r.json() == {"status": "waitlisted", "actor": "cat", "position": 1}

    r = await client.get("/roster", params={"occurrence": "yoga"})
    assert r.status_code == 200
    body = r.json()
    assert body["roster"] == ["ann", "bob"]
    assert (body["capacity"], body["seats_left"], body["waitlist"]) == (2, 0, ["cat"])

    r = await client.post("/cancel", json={"occurrence": "yoga", "actor": "ann"})
    assert r.status_code == 200
    assert r.json() == {
        "status": "cancelled",
        "actor": "ann",
        "promoted": "cat",
        "promoted_seat": 2,
    }
    r = await client.post("/cancel", json={"occurrence": "yoga", "actor": "ann"})
    assert (r.status_code, r.json()["status"]) == (404, "absent")
    r = await client.get("/roster", params={"occurrence": "yoga"})
    assert r.json()["roster"] == ["bob", "cat"]
    await checked_history(app_store, "yoga")


async def test_unscheduled_occurrences(client):
    r = await client.post("/book", json={"occurrence": "adhoc", "actor": "ann"})
    assert r.status_code == 404
    assert r.json()["error"] == "not_scheduled"
    r = await client.get("/roster", params={"occurrence": "adhoc"})
    assert r.status_code == 404
    assert r.json()["error"] == "unknown_occurrence"
    r = await client.post("/book", json={"occurrence": "adhoc", "actor": "ann", "capacity": 3})
    assert r.status_code == 201
    r = await client.get("/roster", params={"occurrence": "adhoc"})
    assert r.status_code == 200
    assert (r.json()["capacity"], r.json()["seats_left"]) == (None, None)
    r = await client.get("/roster", params={"occurrence": "adhoc", "capacity": "3"})
    assert (r.json()["capacity"], r.json()["seats_left"], r.json()["roster"]) == (3, 2, ["ann"])


async def test_schedule_conflicts(client):
    await client.post("/schedule", json={"occurrence": "yoga", "capacity": 2})
    r = await client.post("/schedule", json={"occurrence": "yoga", "capacity": 3})
    assert (r.status_code, r.json()["error"]) == (409, "already_scheduled")
    r = await client.post("/book", json={"occurrence": "yoga", "actor": "ann", "capacity": 5})
    assert r.status_code == 422
    assert r.json()["field"] == "capacity"
    assert "scheduled with capacity 2" in r.json()["message"]
    r = await client.get("/roster", params={"occurrence": "yoga", "capacity": "5"})
    assert (r.status_code, r.json()["field"]) == (422, "capacity")


BAD_BODIES = [
    ({"actor": "ann"}, "occurrence"),
    ({"occurrence": "yoga"}, "actor"),
    ({"occurrence": "", "actor": "ann", "capacity": 2}, "occurrence"),
    ({"occurrence": "yoga", "actor": "  ", "capacity": 2}, "actor"),
    ({"occurrence": "yoga", "actor": "a\x00b", "capacity": 2}, "actor"),
    ({"occurrence": "y" * 1000, "actor": "ann", "capacity": 2}, "occurrence"),
    ({"occurrence": "yoga", "actor": "ann", "capacity": 0}, "capacity"),
    ({"occurrence": "yoga", "actor": "ann", "capacity": "12"}, "capacity"),
    ({"occurrence": "yoga", "actor": 7, "capacity": 2}, "actor"),
    ({"occurrence": "yoga", "actor": "ann", "capacity": 2, "seats": 1}, "seats"),
    ({"occurrence": "yoga", "actor": "ann", "waitlist": "yes"}, "waitlist"),
]


async def test_bad_bodies_name_the_field(client, app_store):
    for body, field in BAD_BODIES:
        r = await client.post("/book", json=body)
        assert r.status_code == 422, r.text
        payload = r.json()
        assert payload["error"] == "invalid_input"
        assert payload["field"] == field, body
        assert field in payload["message"]
    assert [e async for e in app_store.read_all()] == []


async def test_bad_schedule_and_cancel_bodies(client):
    r = await client.post("/schedule", json={"occurrence": "yoga", "capacity": -3})
    assert (r.status_code, r.json()["field"]) == (422, "capacity")
    r = await client.post("/cancel", json={"occurrence": "yoga"})
    assert (r.status_code, r.json()["field"]) == (422, "actor")
    r = await client.get("/roster")
    assert (r.status_code, r.json()["field"]) == (422, "occurrence")
    r = await client.get("/roster", params={"occurrence": "yoga", "capacity": "many"})
    assert (r.status_code, r.json()["field"]) == (422, "capacity")


async def test_malformed_json(client):
    r = await client.post(
        "/book", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert (r.status_code, r.json()["error"]) == (400, "bad_json")
    assert r.json()["message"] == "the request body is not valid JSON"
    r = await client.post("/book", json=[1, 2])
    assert r.status_code == 400
    assert r.json()["message"] == "the request body must be a JSON object"


async def test_health_and_unknown_routes(client):
    assert (await client.get("/health")).json() == {"status": "ok"}
    r = await client.get("/nope")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    r = await client.get("/book")
    assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")
    assert r.headers["allow"] == "POST"
    r = await client.delete("/roster")
    assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")
    r = await client.get("/static/nothing.js")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")


async def test_responses_match_their_models(client):
    r = await client.post("/schedule", json={"occurrence": "m", "capacity": 1})
    ScheduleOut.model_validate(r.json())
    for actor in ("ann", "bob"):
        r = await client.post("/book", json={"occurrence": "m", "actor": actor, "waitlist": True})
        BookingOut.model_validate(r.json())
    r = await client.post("/book", json={"occurrence": "m", "actor": "cat"})
    assert BookingOut.model_validate(r.json()).status == "full"
    RosterOut.model_validate((await client.get("/roster", params={"occurrence": "m"})).json())
    r = await client.post("/cancel", json={"occurrence": "m", "actor": "ann"})
    assert CancelOut.model_validate(r.json()).promoted == "bob"
    r = await client.post("/book", json={"occurrence": "m"})
    assert ErrorOut.model_validate(r.json()).field == "actor"


async def test_concurrent_requests_never_overbook(client, app_store):
    await client.post("/schedule", json={"occurrence": "hot", "capacity": 5})
    codes: list[int] = []

    async def book(i: int) -> None:
        r = await client.post("/book", json={"occurrence": "hot", "actor": f"u{i}"})
        codes.append(r.status_code)

    async with anyio.create_task_group() as tg:
        for i in range(60):
            tg.start_soon(book, i)
    assert sorted(codes) == [201] * 5 + [409] * 55
    state = await checked_history(app_store, "hot")
    assert len(state.roster) == 5


async def test_app_without_a_store_owns_an_in_memory_one():
    async with serving(create_app(insecure_no_auth=True)) as c:
        r = await c.post("/book", json={"occurrence": "x", "actor": "a", "capacity": 1})
        assert r.status_code == 201
        r = await c.get("/roster", params={"occurrence": "x", "capacity": "1"})
        assert r.json()["roster"] == ["a"]


async def test_app_before_start_answers_503_json():
    app = create_app(insecure_no_auth=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.post("/book", json={"occurrence": "x", "actor": "a", "capacity": 1})
        assert (r.status_code, r.json()["error"]) == (503, "starting")
        r = await c.get("/ready")
        assert (r.status_code, r.json()["status"]) == (503, "not_ready")


async def test_request_id_is_the_correlation_id_of_the_events(client, app_store):
    from evsrc import CAUSATION_ID, CORRELATION_ID

    headers = {"X-Request-Id": "req-corr-1"}
    r = await client.post("/schedule", json={"occurrence": "yoga", "capacity": 2}, headers=headers)
    assert r.status_code == 201
    r = await client.post("/book", json={"occurrence": "yoga", "actor": "ann"})
    assert r.status_code == 201
    first, second = await app_store.read("booking:yoga")
    assert first.metadata[CORRELATION_ID] == "req-corr-1"
    generated = r.headers["x-request-id"]
    assert second.metadata[CORRELATION_ID] == generated
    assert first.metadata[CAUSATION_ID] != second.metadata[CAUSATION_ID]


async def test_hold_and_confirm_over_http(client, app_store):
    r = await client.post("/schedule", json={"occurrence": "yoga", "capacity": 1})
    assert r.status_code == 201
    r = await client.post("/hold", json={"occurrence": "yoga", "actor": "ann"})
    assert r.status_code == 201
    body = r.json()
    assert (body["status"], body["seat"]) == ("held", 1) and "expires_at" in body
    r = await client.post("/hold", json={"occurrence": "yoga", "actor": "bob"})
    assert (r.status_code, r.json()["status"]) == (409, "full")
    r = await client.post("/confirm", json={"occurrence": "yoga", "actor": "ann"})
    assert (r.status_code, r.json()) == (200, {"status": "confirmed", "actor": "ann", "seat": 1})
    r = await client.post("/confirm", json={"occurrence": "yoga", "actor": "bob"})
    assert (r.status_code, r.json()["status"]) == (404, "absent")
    r = await client.post("/confirm", json={"occurrence": "yoga", "actor": "ann", "x": 1})
    assert r.status_code == 422
