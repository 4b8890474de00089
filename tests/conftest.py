"""Fixtures shared by every test directory.

``any_store`` runs a test once per backend (SQLite: a fresh file per test). The
PostgreSQL parameter is added by ``tests/pgfixtures.py`` (fresh database per
test, cloned from a template).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from evsrc.memory import InMemoryEventStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from evsrc.store import EventStore

pytest_plugins = ["tests.pgfixtures"]

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


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
