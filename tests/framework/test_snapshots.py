"""Snapshots: optional, transparent, ignored when the state's schema changed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from evsrc import (
    CommandHandler,
    EventStreamSnapshotStore,
    InMemorySnapshotStore,
    Snapshot,
    SnapshotStore,
)
from evsrc.testing.stores import ProxyStore

from .domain import Inventory, Restocked

if TYPE_CHECKING:
    from evsrc.store import EventStore


def make_store(kind: str, store: EventStore) -> SnapshotStore:
    return InMemorySnapshotStore() if kind == "memory" else EventStreamSnapshotStore(store)


@pytest.fixture(params=["in-memory-snapshots", "event-stream-snapshots"])
def snapshot_kind(request: pytest.FixtureRequest) -> str:
    return "memory" if request.param.startswith("in-memory") else "stream"


async def restock(h: CommandHandler[Inventory], n: int) -> None:
    for i in range(n):
        await h.execute("w", lambda inv, i=i: [Restocked(sku=f"s{i % 3}", qty=1)])


async def test_a_snapshot_is_taken_every_n_events_and_used_on_load(
    any_store: EventStore, snapshot_kind: str
) -> None:
    snaps = make_store(snapshot_kind, any_store)
    h = CommandHandler(any_store, Inventory, snapshots=snaps, snapshot_every=10)
    await restock(h, 25)
    snap = await snaps.load("inventory:w")
    assert snap is not None and snap.seq == 20 and snap.schema == Inventory.snapshot_schema()
    # A new process: loads the snapshot, then reads only the 5 events after it.
    counting = ProxyStore(any_store)
    h2 = CommandHandler(counting, Inventory, snapshots=snaps, snapshot_every=10)
    state = await h2.load("w")
    assert counting.events_read == 5
    assert (state.seq, state.stock) == (25, {"s0": 9, "s1": 8, "s2": 8})
    assert state.stock == Inventory.replay(await any_store.read("inventory:w")).stock


async def test_a_snapshot_of_another_schema_is_ignored(
    any_store: EventStore, snapshot_kind: str
) -> None:
    snaps = make_store(snapshot_kind, any_store)
    await restock(CommandHandler(any_store, Inventory, snapshots=snaps, snapshot_every=5), 7)

    class InventoryV2(Inventory):
        snapshot_version: ClassVar[int] = 2

    counting = ProxyStore(any_store)
    state = await CommandHandler(counting, InventoryV2, snapshots=snaps).load("w")
    assert counting.events_read == 7 and state.seq == 7


async def test_a_snapshot_that_does_not_load_is_ignored(any_store: EventStore) -> None:
    snaps = InMemorySnapshotStore()
    await restock(CommandHandler(any_store, Inventory), 3)
    await snaps.save(Snapshot("inventory:w", 2, Inventory.snapshot_schema(), {"bogus": 1}))
    state = await CommandHandler(any_store, Inventory, snapshots=snaps).load("w")
    assert (state.seq, sum(state.stock.values())) == (3, 3)


async def test_a_failing_snapshot_store_does_not_fail_commands(any_store: EventStore) -> None:
    class Broken:
        async def load(self, stream: str) -> Snapshot | None:
            return None

        async def save(self, snapshot: Snapshot) -> None:
            raise OSError("disk full")

    h = CommandHandler(any_store, Inventory, snapshots=Broken(), snapshot_every=1)
    await restock(h, 3)
    assert (await h.load("w")).seq == 3


async def test_event_stream_snapshots_live_in_their_own_stream(any_store: EventStore) -> None:
    snaps = EventStreamSnapshotStore(any_store)
    await snaps.save(Snapshot("inventory:w", 4, "schema", {"stock": {"a": 1}, "orders": []}))
    await snaps.save(Snapshot("inventory:w", 9, "schema", {"stock": {"a": 2}, "orders": []}))
    stored = await any_store.read("snapshot:inventory:w")
    assert [e.type for e in stored] == ["evsrc.snapshot"] * 2
    assert await snaps.load("inventory:w") == Snapshot(
        "inventory:w", 9, "schema", {"stock": {"a": 2}, "orders": []}
    )
    long = "x" * 250
    assert snaps.stream_for(long).startswith("snapshot:sha256:")
    await snaps.save(Snapshot(long, 1, "s", {}))
    assert await snaps.load(long) == Snapshot(long, 1, "s", {})
    assert await snaps.load("missing") is None


async def test_default_snapshot_hooks_round_trip_plain_attributes() -> None:
    from .domain import Account

    acc = Account()
    acc.apply_new([])
    data: dict[str, Any] = acc.to_snapshot()
    assert data == {"owner": None, "balance": acc.balance}
    back = Account.from_snapshot(data)
    assert (back.owner, back.balance) == (None, acc.balance)
