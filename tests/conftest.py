"""Fixtures shared by every test directory.

``any_store`` runs a test once per backend (SQLite: a fresh file per test). The
PostgreSQL parameter is added by ``tests/pgfixtures.py`` (fresh database per
test, cloned from a template).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import pytest

from evsrc.memory import InMemoryEventStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from evsrc.store import EventStore

pytest_plugins = ["tests.pgfixtures"]

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(autouse=True)
def _cancel_requests_finish(request: pytest.FixtureRequest) -> None:
    """Every async test ends only once asyncpg's cancel requests have finished.

    A PostgreSQL query cancelled anywhere in a test (a timeout, a cancelled task,
    a closing pool) leaves a ``Connection._cancel`` task sending the cancel request
    on a connection of its own. If the test's event loop closes first, the garbage
    collector reports that task and its socket in whichever test runs next.
    """
    if inspect.iscoroutinefunction(getattr(request.node, "function", None)):
        request.getfixturevalue("_cancel_requests_drained")


@pytest.fixture
async def _cancel_requests_drained() -> AsyncIterator[None]:
    from tests.pgfixtures import cancel_requests_sent

    yield
    await cancel_requests_sent()


@pytest.fixture(params=BACKENDS)
async def any_store(request: pytest.FixtureRequest) -> AsyncIterator[EventStore]:
    """A fresh, empty store of each backend in turn."""
    if request.param == "memory":
        async with InMemoryEventStore() as store:
            yield store
    elif request.param == "sqlite":
        from evsrc.sqlite import SqliteEventStore

        tmp_path = request.getfixturevalue("tmp_path")
        async with await SqliteEventStore.connect(tmp_path / "any.db") as store:
            await store.setup()
            yield store
    elif request.param == "postgres":
        from tests.pgfixtures import postgres_any_store

        async for store in postgres_any_store(request):
            yield store
    else:  # pragma: no cover
        raise AssertionError(request.param)
