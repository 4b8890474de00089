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
    # Appends serialise on the file's write lock, one worker-thread hop each, and
    # n racing tasks make about n*n/2 attempts: 250 tasks still race hard.
    race_tasks = 250

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
        async with await SqliteEventStore.connect(tmp_path / "events.db") as store:
            await store.setup()
            yield store
