"""The stream lifecycle contract on PostgreSQL: a fresh database per test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from evsrc.testing import StreamLifecycleContract
from tests.pgfixtures import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from evsrc.postgres import PostgresEventStore

pytestmark = pytest.mark.postgres


class TestPostgresLifecycle(StreamLifecycleContract):
    @pytest.fixture
    async def store(self, pg_dsn: str) -> AsyncIterator[PostgresEventStore]:
        async with open_store(pg_dsn) as store:
            yield store
