"""Projectors: fold events into a read model, checkpoint, resume, fail loudly, report lag."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING

import anyio
import pytest

from evsrc import (
    Checkpoint,
    CommandHandler,
    EvsrcError,
    InMemoryCheckpointStore,
    InvalidInputError,
    NewEvent,
    ProjectionError,
    ProjectionRunner,
    Projector,
    RecordedEvent,
    handles,
)

from .domain import Account, Deposited, Inventory, Opened, Restocked, Withdrawn

if TYPE_CHECKING:
    from evsrc.store import EventStore


class Balances(Projector):
    """Read model: balance per account stream."""

    name = "balances"

    def __init__(self, fail_on: str | None = None) -> None:
        self.balances: dict[str, Decimal] = {}
        self.owners: dict[str, str] = {}
        self.handled: list[tuple[str, int]] = []
        self.fail_on = fail_on

    @handles(Opened)
    async def _opened(self, e: Opened, r: RecordedEvent) -> None:
        self.owners[r.stream] = e.owner
        self.balances[r.stream] = Decimal(0)
        self.handled.append((r.stream, r.seq))

    @handles(Deposited, Withdrawn)
    async def _moved(self, e: Deposited | Withdrawn, r: RecordedEvent) -> None:
        if e.ref == self.fail_on:
            raise RuntimeError(f"cannot project {e.ref}")
        sign = 1 if isinstance(e, Deposited) else -1
        self.balances[r.stream] += sign * e.amount
        self.handled.append((r.stream, r.seq))


async def fill(store: EventStore) -> CommandHandler[Account]:
    h = CommandHandler(store, Account)
    for key in ("a", "b"):
        await h.execute(key, lambda a, key=key: a.open(key))
        await h.execute(key, lambda a: a.deposit(10, ref="d1"))
    await h.execute("a", lambda a: a.withdraw(3, ref="w1"))
    # Events the projector does not handle: skipped, but the checkpoint moves past them.
    await CommandHandler(store, Inventory).execute("w", lambda i: [Restocked(sku="x", qty=1)])
    return h


async def test_catch_up_folds_every_stream_in_order(any_store: EventStore) -> None:
    await fill(any_store)
    proj = Balances()
    runner = ProjectionRunner(any_store, proj)
    # The runner reads only the types its handlers take: the restock is never read.
    assert await runner.catch_up() == 5
    assert proj.balances == {"account:a": Decimal(7), "account:b": Decimal(10)}
    assert proj.owners == {"account:a": "a", "account:b": "b"}
    last = [
        e
        async for e in any_store.read_all(
            types=["account.opened", "account.deposited", "account.withdrawn"]
        )
    ][-1]
    assert runner.checkpoint == last.checkpoint
    assert await runner.checkpoints.load("balances") == last.checkpoint
    assert await runner.catch_up() == 0


async def test_a_restart_resumes_exactly_where_it_stopped(any_store: EventStore) -> None:
    h = await fill(any_store)
    checkpoints = InMemoryCheckpointStore()
    first = Balances()
    await ProjectionRunner(any_store, first, checkpoints).catch_up()
    await h.execute("b", lambda a: a.deposit(5, ref="d2"))
    await h.execute("a", lambda a: a.deposit(1, ref="d3"))
    second = Balances()
    second.balances = dict(first.balances)  # the read model survived the restart
    runner = ProjectionRunner(any_store, second, checkpoints)
    assert await runner.load_checkpoint() == await checkpoints.load("balances")
    assert await runner.catch_up() == 2
    assert second.handled == [("account:b", 3), ("account:a", 4)]
    assert second.balances == {"account:a": Decimal(8), "account:b": Decimal(15)}


async def test_run_follows_live_commits_and_wait_until_reads_your_writes(
    any_store: EventStore,
) -> None:
    h = await fill(any_store)
    proj = Balances()
    runner = ProjectionRunner(any_store, proj)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        for i in range(20):
            out = await h.execute("b", lambda a, i=i: a.deposit(1, ref=f"live{i}"))
            assert out.committed is not None
            with anyio.fail_after(10):
                await runner.wait_until(out.committed)
            assert proj.balances["account:b"] == 11 + i
        # The checkpoint of an event it does not read is reached too: nothing
        # it reads lies before it.
        skipped = await any_store.append("other:x", [NewEvent(type="unrelated")])
        with anyio.fail_after(10):
            await runner.wait_until(skipped.checkpoint)
        with pytest.raises(EvsrcError, match="already running"):
            await runner.catch_up()
        tg.cancel_scope.cancel()
    assert not runner.reached(skipped)  # its own checkpoint stays at its last event


async def test_a_failing_handler_stops_the_runner_before_the_event(any_store: EventStore) -> None:
    await fill(any_store)
    checkpoints = InMemoryCheckpointStore()
    proj = Balances(fail_on="w1")
    runner = ProjectionRunner(any_store, proj, checkpoints)
    events = [e async for e in any_store.read_all()]
    failed = next(e for e in events if e.data.get("ref") == "w1")
    before = events[events.index(failed) - 1]
    with pytest.raises(ProjectionError) as info:
        await runner.catch_up()
    err = info.value
    assert err.projection == "balances" and err.event == failed  # type: ignore[attr-defined]
    assert isinstance(err.cause, RuntimeError) and err.__cause__ is err.cause  # type: ignore[attr-defined]
    assert runner.checkpoint == before.checkpoint
    assert await checkpoints.load("balances") == before.checkpoint
    with pytest.raises(ProjectionError):
        await runner.wait_until(failed.checkpoint)
    with pytest.raises(ProjectionError):
        await runner.run()
    # Fixed and restarted: resumes at the failed event, each event handled exactly once.
    fixed = Balances()
    fixed.balances, fixed.owners = dict(proj.balances), dict(proj.owners)
    assert await ProjectionRunner(any_store, fixed, checkpoints).catch_up() == 1
    assert fixed.balances == {"account:a": Decimal(7), "account:b": Decimal(10)}
    assert fixed.handled[0] == (failed.stream, failed.seq)


async def test_a_waiter_is_woken_by_a_failure(any_store: EventStore) -> None:
    h = await fill(any_store)
    runner = ProjectionRunner(any_store, Balances(fail_on="boom"))
    out = await h.execute("a", lambda a: a.deposit(1, ref="boom"))
    assert out.committed is not None

    async def run_quietly() -> None:
        with pytest.raises(ProjectionError):
            await runner.run()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_quietly)
        with anyio.fail_after(10), pytest.raises(ProjectionError):
            await runner.wait_until(out.committed.checkpoint)


class EveryEvent(Balances):
    """Overrides ``wants``: a raw projector, fed every event, skipping the unhandled ones."""

    def wants(self, recorded: RecordedEvent) -> bool:
        return super().wants(recorded)


async def test_skipped_events_are_saved_every_n(any_store: EventStore) -> None:
    await any_store.append("other:x", [NewEvent(type="unrelated") for _ in range(10)])
    checkpoints = InMemoryCheckpointStore()
    runner = ProjectionRunner(
        any_store, EveryEvent(), checkpoints, save_skipped_every=4, batch_size=1
    )
    saved: list[Checkpoint] = []
    save = checkpoints.compare_and_save

    async def spy(name: str, previous: Checkpoint | None, cp: Checkpoint) -> bool:
        saved.append(cp)
        return await save(name, previous, cp)

    checkpoints.compare_and_save = spy  # type: ignore[method-assign]
    assert await runner.catch_up() == 10
    events = [e async for e in any_store.read_all()]
    # Every 4th skipped event, then the last one when catch_up ends.
    assert saved == [events[3].checkpoint, events[7].checkpoint, events[9].checkpoint]
    # In batches, once per batch that reaches the count.
    saved.clear()
    await checkpoints.reset("balances")
    runner = ProjectionRunner(any_store, EveryEvent(), checkpoints, save_skipped_every=4)
    assert await runner.catch_up() == 10
    assert saved == [events[9].checkpoint]


async def test_a_projector_reads_only_its_types_and_prefix(any_store: EventStore) -> None:
    await fill(any_store)
    await any_store.append("account:zz", [NewEvent(type="unrelated")])

    class OnlyA(Balances):
        stream_prefix = "account:a"

    proj = OnlyA()
    runner = ProjectionRunner(any_store, proj)
    assert runner.feed_filter() == {
        "types": ["account.deposited", "account.opened", "account.withdrawn"],
        "stream_prefix": "account:a",
    }
    assert await runner.catch_up() == 3
    assert proj.handled == [("account:a", 1), ("account:a", 2), ("account:a", 3)]
    assert (await runner.lag()).events == 0
    # A raw projector reads everything.
    assert ProjectionRunner(any_store, EveryEvent()).feed_filter() == {}


async def test_lag_counts_events_and_age(any_store: EventStore) -> None:
    await fill(any_store)
    runner = ProjectionRunner(any_store, Balances())
    lag = await runner.lag()
    assert lag.events == 5 and lag.seconds >= 0 and lag.exact  # the events it reads
    assert (await runner.lag(limit=2)).exact is False
    await runner.catch_up()
    assert await runner.lag() == type(lag)(0, 0.0, True)


async def test_a_projection_needs_a_name_and_async_handlers(any_store: EventStore) -> None:
    class Nameless(Projector):
        pass

    with pytest.raises(InvalidInputError):
        ProjectionRunner(any_store, Nameless())
    with pytest.raises(InvalidInputError):
        ProjectionRunner(any_store, Balances(), save_skipped_every=0)
    with pytest.raises(InvalidInputError):
        handles(Opened)(lambda self, e, r: None)
    with pytest.raises(InvalidInputError):
        handles()
    with pytest.raises(InvalidInputError):
        await ProjectionRunner(any_store, Balances()).wait_until("1:1")  # type: ignore[arg-type]


async def test_a_raw_projector_sees_every_event(any_store: EventStore) -> None:
    class Counter(Projector):
        name = "count"

        def __init__(self) -> None:
            self.types: list[str] = []

        def wants(self, recorded: RecordedEvent) -> bool:
            return True

        async def handle(self, recorded: RecordedEvent, *context: object) -> None:
            self.types.append(recorded.type)

    await fill(any_store)
    c = Counter()
    await ProjectionRunner(any_store, c).catch_up()
    assert len(c.types) == 6 and c.types[-1] == "inventory.restocked"


async def test_wait_until_from_many_waiters(any_store: EventStore) -> None:
    h = await fill(any_store)
    runner = ProjectionRunner(any_store, Balances())
    outs = [await h.execute("a", lambda a: a.deposit(1)) for _ in range(5)]
    done: list[int] = []

    async def waiter(i: int) -> None:
        await runner.wait_until(outs[i].committed)  # type: ignore[arg-type]
        done.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(waiter, i)
        await asyncio.sleep(0)
        assert done == []
        await runner.catch_up()
    assert sorted(done) == [0, 1, 2, 3, 4]
