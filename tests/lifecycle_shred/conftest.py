"""Fixtures of the crypto-shredding and compression tests: a wrapped store on each backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import pytest

from evsrc.keys import InMemoryKeyStore, KeyStore, key_store_for
from evsrc.models import Event, EventRegistry
from evsrc.shredding import Personal, ShreddingStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from evsrc.store import EventStore


class Booked(Event, type="booked", version=1):
    actor: Annotated[str, Personal()]
    seat: int


class Noted(Event, type="noted", version=1):
    actor: Annotated[str, Personal()]
    note: Annotated[str, Personal(subject="actor")]
    nickname: Annotated[str, Personal(subject="actor")] | None = None
    public: str = ""


registry = EventRegistry(Booked, Noted)


@dataclass
class Shredded:
    """The raw store (what is at rest), its key store, and the shredding wrapper."""

    raw: EventStore
    keys: KeyStore
    store: ShreddingStore


@pytest.fixture
async def shredded(any_store: EventStore) -> AsyncIterator[Shredded]:
    keys = key_store_for(any_store)
    await keys.setup()
    async with keys:
        yield Shredded(any_store, keys, ShreddingStore(any_store, keys, registry, owns_inner=False))


def another_key_store(shredded: Shredded) -> KeyStore:
    """A second key store on the same keys with no cache (as another process would have)."""
    if isinstance(shredded.keys, InMemoryKeyStore):
        other = InMemoryKeyStore(cache_ttl=0)
        other.rows = shredded.keys.rows  # the in-memory "table" is the dict
        return other
    return key_store_for(shredded.raw, cache_ttl=0)
