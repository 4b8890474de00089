"""The store contract on SQLite, unchanged: a fresh file per test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from evsrc.sqlite import SqliteEventStore
from evsrc.testing import EventStoreContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


class TestSqliteEventStore(EventStoreContract):
    # n racing tasks make about n*n/2 attempts, and on SQLite every one is decided
    # under the file's write lock (a batch per worker-thread call): 1,000 take
    # about 25 s here, 500 a quarter of that and still race hard.
    race_tasks = 500

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
        async with await SqliteEventStore.connect(tmp_path / "events.db") as store:
            await store.setup()
            yield store


class TestSqliteInlineAppends(TestSqliteEventStore):
    """The same contract with appends written on the event loop when they are alone."""

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
        path = tmp_path / "events.db"
        async with await SqliteEventStore.connect(path, inline_appends=True) as store:
            await store.setup()
            yield store
