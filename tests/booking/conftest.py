"""Fixtures of the booking tests: the app with its lifespan, tokens, durable store URLs."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx
import pytest

from evsrc.memory import InMemoryEventStore
from evsrc.urls import open_store
from examples.booking.auth import mint_token

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.applications import Starlette

    from evsrc.store import EventStore

#: A test signing secret (32+ bytes).
SECRET = "test-secret-of-the-booking-app-0123456789"


#: Store kinds that keep their data across processes.
DURABLE = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
]


#: Every store the app runs on, for the in-process HTTP tests.
APP_STORES = [
    "memory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=APP_STORES)
async def app_store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[EventStore]:
    """A fresh, empty store of each kind the app runs on: memory, SQLite, PostgreSQL."""
    if request.param == "memory":
        async with InMemoryEventStore() as store:
            yield store
    elif request.param == "sqlite":
        async with await open_store(f"sqlite:///{tmp_path / 'app.db'}") as sqlite:
            yield sqlite
    else:
        from tests.pgfixtures import postgres_any_store

        async for pg in postgres_any_store(request):
            yield pg


@pytest.fixture(params=DURABLE)
def durable_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A URL of an empty durable store: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bookings.db'}"
    return request.getfixturevalue("pg_dsn")


def token(actor: str, *, admin: bool = False, **kw) -> dict[str, str]:
    """An ``Authorization`` header for ``actor``, signed with :data:`SECRET`."""
    return {"Authorization": "Bearer " + mint_token(SECRET, actor, admin=admin, **kw)}


@asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[None]:
    """Run ``app``'s lifespan in a task of its own (a fixture's setup and teardown may differ)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        async with app.router.lifespan_context(app):
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # raises what stopped the startup
    try:
        yield
    finally:
        stop.set()
        await task


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and give an in-process client to it."""
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://booking.test") as c:
            yield c


async def board_of(client: httpx.AsyncClient, headers: dict[str, str], check) -> dict:
    """``GET /occurrences`` once ``check(body)`` holds (the board is a projection: it lags)."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        body = (await client.get("/occurrences", headers=headers)).json()
        if check(body) or asyncio.get_running_loop().time() > deadline:
            return body
        await asyncio.sleep(0.02)
