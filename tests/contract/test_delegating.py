"""The store contract through ``DelegatingStore``: a wrapper changes only what it overrides."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import pytest

from evsrc.memory import InMemoryEventStore
from evsrc.store import DelegatingStore
from evsrc.testing import EventStoreContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class TestDelegatingStore(EventStoreContract):
    race_tasks: ClassVar[int] = 200

    @pytest.fixture
    async def store(self) -> AsyncIterator[DelegatingStore]:
        async with DelegatingStore(InMemoryEventStore()) as store:
            yield store
