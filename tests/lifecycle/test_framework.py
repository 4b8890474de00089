"""The framework over deleted, truncated and retained streams, on every backend."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import anyio
import pytest

from evsrc import (
    Aggregate,
    AggregateError,
    Checkpoint,
    CommandHandler,
    Event,
    EventStreamSnapshotStore,
    InMemoryCheckpointStore,
    NewEvent,
    ProjectionRunner,
    Projector,
    RecordedEvent,
    StreamCheckpointStore,
    StreamDeleted,
    StreamDeletedError,
    Sweeper,
    applies,
    handles,
)
from evsrc.lifecycle import compact_parked
from evsrc.parking import ParkedEvents
from evsrc.records import STREAM_DELETED
from tests.framework.domain import Account, Deposited, Opened

if TYPE_CHECKING:
    from evsrc.store import EventStore


async def test_a_cached_handler_starts_a_soft_deleted_stream_afresh(
    any_store: EventStore,
) -> None:
    handler = CommandHandler(any_store, Account)
    assert (await handler.execute("a", lambda a: a.open("ann"))).ok
    assert (await handler.execute("a", lambda a: a.deposit(50))).ok
    await any_store.delete_stream("account:a")
    # The cached state is of deleted events; catching up folds the deletion: a reset.
    out = await handler.execute("a", lambda a: a.deposit(5))
    assert not out.ok and out.rejection is not None
    assert out.rejection.reason == "not open"
    assert (await handler.execute("a", lambda a: a.open("bob"))).ok
    for fresh in (handler, CommandHandler(any_store, Account, cache=False)):
        account = await fresh.load("a")
        assert (account.owner, account.balance, account.seq) == ("bob", Decimal(0), 4)
    types = [e.type for e in await any_store.read("account:a")]
    assert types == [STREAM_DELETED, "account.opened"]


async def test_an_optimistic_handler_rejecting_on_stale_state_rereads(
    any_store: EventStore,
) -> None:
    handler = CommandHandler(any_store, Account)
    assert (await handler.execute("a", lambda a: a.open("ann"))).ok
    await any_store.delete_stream("account:a")
    # A rejection appends nothing; the handler confirms it by reading, and meets the deletion.
    assert (await handler.execute("a", lambda a: a.open("bob"))).ok


async def test_a_handler_on_a_tombstone_reports_the_deletion(any_store: EventStore) -> None:
    handler = CommandHandler(any_store, Account)
    assert (await handler.execute("a", lambda a: a.open("ann"))).ok
    await any_store.delete_stream("account:a", hard=True)
    with pytest.raises(StreamDeletedError):
        await CommandHandler(any_store, Account).execute("a", lambda a: a.deposit(5))


class Added(Event, type="tally.added"):
    n: int


class Tally(Aggregate):
    """A running total (JSON state, so snapshots need no override)."""

    stream_prefix = "tally"

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    @applies
    def _added(self, e: Added) -> None:
        self.total += e.n

    def add(self, n: int) -> list[Event]:
        return [Added(n=n)]


async def test_snapshots_carry_state_past_truncation(any_store: EventStore) -> None:
    snapshots = EventStreamSnapshotStore(any_store)
    handler = CommandHandler(any_store, Tally, snapshots=snapshots, snapshot_every=5)
    for _ in range(12):
        assert (await handler.execute("t", lambda a: a.add(10))).ok
    assert await any_store.last_seq("tally:t") == 12
    snap = await snapshots.load("tally:t")
    assert snap is not None and snap.seq == 10
    assert await any_store.truncate_before("tally:t", snap.seq + 1) == 10
    await any_store.set_stream_metadata(snapshots.stream_for("tally:t"), max_count=1)
    assert await any_store.sweep() == 1
    fresh = CommandHandler(any_store, Tally, snapshots=snapshots, cache=False)
    tally = await fresh.load("t")
    assert (tally.total, tally.seq) == (120, 12)
    assert (await fresh.execute("t", lambda a: a.add(1))).ok
    # Without the snapshot, the truncated history is refused, never folded in part.
    with pytest.raises(AggregateError):
        await CommandHandler(any_store, Tally, cache=False).load("t")


class Balances(Projector):
    name = "balances"

    def __init__(self) -> None:
        self.rows: dict[str, Decimal] = {}

    @handles
    async def on_opened(self, e: Opened, r: RecordedEvent) -> None:
        self.rows[r.stream] = Decimal(0)

    @handles
    async def on_deposited(self, e: Deposited, r: RecordedEvent) -> None:
        self.rows[r.stream] += e.amount

    @handles
    async def on_deleted(self, e: StreamDeleted, r: RecordedEvent) -> None:
        self.rows.pop(r.stream, None)


class Deposits(Projector):
    """Handles no deletion: it must not stall on one."""

    name = "deposits"

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    @handles
    async def on_deposited(self, e: Deposited, r: RecordedEvent) -> None:
        self.seen.append((r.stream, r.seq))


async def test_projections_act_on_deletions_and_never_stall(any_store: EventStore) -> None:
    handler = CommandHandler(any_store, Account)
    for key in ("a", "b", "c"):
        assert (await handler.execute(key, lambda a, k=key: a.open(k))).ok
        assert (await handler.execute(key, lambda a: a.deposit(7))).ok
    balances, deposits = Balances(), Deposits()
    runners = [
        ProjectionRunner(any_store, balances, InMemoryCheckpointStore()),
        ProjectionRunner(any_store, deposits, InMemoryCheckpointStore()),
    ]
    with anyio.fail_after(60):
        async with runners[0].running(), runners[1].running():
            await runners[0].wait_until_head()
            assert set(balances.rows) == {"account:a", "account:b", "account:c"}
            deleted = await any_store.delete_stream("account:b", hard=True)
            await any_store.delete_stream("account:a")
            assert deleted.checkpoint is not None
            await runners[0].wait_until(deleted.checkpoint)
            await runners[0].wait_until_head()
            assert set(balances.rows) == {"account:c"}
            assert (await handler.execute("c", lambda a: a.deposit(1))).ok
            await runners[1].wait_until_head()
            assert deposits.seen[-1] == ("account:c", 3)
            await runners[0].wait_until_head()
            assert balances.rows == {"account:c": Decimal(8)}


async def test_checkpoint_streams_keep_only_the_newest(any_store: EventStore) -> None:
    checkpoints = StreamCheckpointStore(any_store)
    for i in range(1, 11):
        await checkpoints.save("p", Checkpoint(i, i))
    stream = checkpoints.stream("p")
    await any_store.set_stream_metadata(stream, max_count=1)
    assert await any_store.sweep() == 9
    assert await checkpoints.load("p") == Checkpoint(10, 10)
    assert await checkpoints.compare_and_save("p", Checkpoint(10, 10), Checkpoint(11, 11))
    assert not await checkpoints.compare_and_save("p", Checkpoint(10, 10), Checkpoint(12, 12))
    assert await checkpoints.load("p") == Checkpoint(11, 11)


async def test_compact_parked_keeps_every_pending_parked_event(any_store: EventStore) -> None:
    await any_store.append("src", [NewEvent("t", {"i": i}) for i in range(6)])
    originals = await any_store.read("src")
    parked = ParkedEvents(any_store, "proj")
    for r in originals:
        await parked.park(r, RuntimeError(f"bad {r.seq}"), 3)
    await parked.discard([1, 2])
    await parked.request_replay([4])
    await parked.discard([3])
    before = {p.number: p.status for p in await parked.all()}
    assert await compact_parked(any_store, "proj") == 3  # parked 1, 2, 3 went
    after = {p.number: p.status for p in await parked.all()}
    assert after == {n: s for n, s in before.items() if n >= 4}
    assert [p.number for p in await parked.pending()] == [4, 5, 6]
    await parked.discard()
    assert await compact_parked(any_store, "proj") > 0
    assert await parked.pending() == []
    assert await any_store.read(parked.stream) != []  # the newest event stays
    assert await compact_parked(any_store, "nothing-parked") == 0


async def test_the_sweeper_reclaims_in_the_background(any_store: EventStore) -> None:
    await any_store.append("s", [NewEvent("t") for _ in range(5)])
    await any_store.set_stream_metadata("s", max_age=timedelta(milliseconds=1))
    await anyio.sleep(0.01)
    sweeper = Sweeper(any_store, interval=0.01)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sweeper.run)
            while sweeper.removed < 4:
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert [e.seq async for e in any_store.read_all()] == [5]


@pytest.mark.parametrize("interval", [0, -1, "1", True, 86_401])
def test_sweeper_refuses_a_bad_interval(interval: object) -> None:
    from evsrc.errors import InvalidInputError
    from evsrc.memory import InMemoryEventStore

    with pytest.raises(InvalidInputError):
        Sweeper(InMemoryEventStore(), interval=interval)  # type: ignore[arg-type]
