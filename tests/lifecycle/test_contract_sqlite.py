"""The stream lifecycle contract on SQLite: a fresh file per test, appends inline or not."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from evsrc.sqlite import SqliteEventStore
from evsrc.testing import StreamLifecycleContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


class TestSqliteLifecycle(StreamLifecycleContract):
    @pytest.fixture(params=[False, True], ids=["thread", "inline"])
    async def store(
        self, tmp_path: Path, request: pytest.FixtureRequest
    ) -> AsyncIterator[SqliteEventStore]:
        inline: bool = request.param
        async with await SqliteEventStore.connect(
            tmp_path / "events.db", inline_appends=inline
        ) as store:
            await store.setup()
            yield store
