"""The stream lifecycle contract on the in-memory store, and through ``DelegatingStore``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from evsrc.memory import InMemoryEventStore
from evsrc.store import DelegatingStore
from evsrc.testing import StreamLifecycleContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from evsrc.store import EventStore


class TestInMemoryLifecycle(StreamLifecycleContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        async with InMemoryEventStore() as store:
            yield store


class TestDelegatingLifecycle(StreamLifecycleContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        async with DelegatingStore(InMemoryEventStore()) as store:
            yield store
