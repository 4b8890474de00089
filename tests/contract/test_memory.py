"""The store contract on the in-memory backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from evsrc.memory import InMemoryEventStore
from evsrc.testing import EventStoreContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[InMemoryEventStore]:
        async with InMemoryEventStore() as store:
            yield store
