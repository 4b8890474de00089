"""Key creation under real PostgreSQL faults: a killed backend, a cancelled task.

A second connection locks the key table, so the append that needs a new
subject's key blocks inside its ``INSERT``; the test then kills that backend
(``pg_terminate_backend``) or cancels the task. Nothing is written, the caller
gets a typed error, and the retry with the same event ids lands with one key.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
import pytest

from evsrc.errors import StoreUnavailableError
from evsrc.keys import key_store_for
from evsrc.shredding import ShreddingStore
from tests.lifecycle_shred.conftest import Booked, registry
from tests.pgfixtures import cancel_requests_sent

if TYPE_CHECKING:
    from evsrc.postgres import PostgresEventStore

pytestmark = pytest.mark.postgres


async def _blocked_backend(other: asyncpg.Connection) -> int:
    for _ in range(500):
        pid = await other.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() LIMIT 1"
        )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.01)
    raise AssertionError("the append never blocked on the key table")


async def _locked(dsn: str, table: str) -> asyncpg.Connection:
    other = await asyncpg.connect(dsn)
    await other.execute("BEGIN")
    await other.execute(f"LOCK TABLE {table} IN SHARE MODE")
    return other


@pytest.mark.parametrize("fault", ["terminate", "cancel"])
async def test_a_fault_while_creating_a_key_writes_nothing_and_the_retry_lands(
    pg_dsn: str, pg_store: PostgresEventStore, fault: str
) -> None:
    keys = key_store_for(pg_store, cache_ttl=0)
    await keys.setup()
    store = ShreddingStore(pg_store, keys, registry, owns_inner=False)
    events = [registry.encode(Booked(actor="newcomer", seat=1))]
    table = pg_store.table("subject_keys")
    other = await _locked(pg_dsn, table)
    try:
        task = asyncio.ensure_future(store.append_expect("s-1", 0, events))
        pid = await _blocked_backend(other)
        if fault == "terminate":
            assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises(StoreUnavailableError):
                await task
        else:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await cancel_requests_sent()
        await other.execute("ROLLBACK")
        assert await other.fetchval(f"SELECT count(*) FROM {table}") == 0
    finally:
        await other.close()
    assert await pg_store.last_seq("s-1") == 0
    # The retry (same event ids) lands; the pool healed by itself.
    committed = await store.append_expect("s-1", 0, events)
    assert committed.last_seq == 1  # type: ignore[union-attr]
    assert [e.data["actor"] for e in await store.read("s-1")] == ["newcomer"]
    assert await pg_store.pool.fetchval(f"SELECT count(*) FROM {table}") == 1
    assert await store.forget("newcomer")


async def test_concurrent_setups_and_first_keys(pg_store: PostgresEventStore) -> None:
    stores = [key_store_for(pg_store, cache_ttl=0) for _ in range(6)]
    await asyncio.gather(*(k.setup() for k in stores))
    got = await asyncio.gather(*(k.key_for(f"p{i % 2}") for i, k in enumerate(stores * 5)))
    assert len({k.key_id for k in got}) == 2
