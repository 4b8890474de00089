"""The store contract through the shredding and compressing wrappers: they change nothing else.

Every event of the contract suite goes through both wrappers; ``data`` fields
named in the registry are sealed, and every type is compressed at any size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar

import pytest

from evsrc.compression import CompressingStore
from evsrc.keys import InMemoryKeyStore
from evsrc.memory import InMemoryEventStore
from evsrc.models import Event, EventRegistry
from evsrc.shredding import Personal, ShreddingStore
from evsrc.testing import EventStoreContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from evsrc.store import EventStore


class Thing(Event, type="thing"):
    """The contract suite's default event type: the str fields it sends are personal."""

    actor: Annotated[str, Personal()] | None = None
    x: Annotated[str, Personal()] | None = None
    n: int = 0


class TestShreddingStoreContract(EventStoreContract):
    race_tasks: ClassVar[int] = 100

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        async with ShreddingStore(
            InMemoryEventStore(), InMemoryKeyStore(), EventRegistry(Thing)
        ) as store:
            yield store


class TestCompressingStoreContract(EventStoreContract):
    race_tasks: ClassVar[int] = 100

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        # Not "t": the suite checks that an oversized "t" event is refused, and
        # compressed it would fit.
        types = ["thing", "placed", "note", "part"]
        async with CompressingStore(InMemoryEventStore(), types, threshold=0) as store:
            yield store
