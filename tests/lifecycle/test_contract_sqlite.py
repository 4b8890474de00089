"""The stream lifecycle contract on SQLite: a fresh file per test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from evsrc.sqlite import SqliteEventStore
from evsrc.testing import StreamLifecycleContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


class TestSqliteLifecycle(StreamLifecycleContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
        async with await SqliteEventStore.connect(tmp_path / "events.db") as store:
            await store.setup()
            yield store
