"""Deadlines on every backend: fired once after their time, cancellable, across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import uuid4, uuid5

import anyio
import pytest

from evsrc import CommandHandler, Deadline, Deadlines, InvalidInputError, NewEvent, Send
from tests.reactions.domain import Ponged, Ponger

if TYPE_CHECKING:
    from evsrc.store import EventStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def scheduler(store: EventStore, clock: Clock) -> Deadlines:
    pongs = CommandHandler(store, Ponger)

    def expire(d: Deadline) -> Send:
        return Send(pongs, d.key, lambda s: [Ponged(n=int(d.data["n"]))])

    return Deadlines(store, {"expire": expire}, clock=clock, tick=0.01)


async def pongs(store: EventStore, key: str) -> list[int]:
    return [e.data["n"] for e in await store.read(f"ponger:{key}")]


async def wait_for(store: EventStore, key: str, n: int) -> None:
    with anyio.fail_after(10):
        while len(await pongs(store, key)) < n:
            await anyio.sleep(0.01)


async def test_fires_once_after_its_time_and_cancel_wins_before(any_store: EventStore) -> None:
    clock = Clock()
    d = scheduler(any_store, clock)
    first = await d.schedule(T0 + timedelta(minutes=15), "expire", "k", {"n": 1})
    second = await d.schedule(T0 + timedelta(minutes=15), "expire", "k", {"n": 2})
    assert await d.schedule(T0, "expire", "k", {"n": 9}, id=first) == first  # idempotent
    async with d.running():
        await anyio.sleep(0.1)
        assert await pongs(any_store, "k") == []  # not due yet
        assert await d.cancel(second)
        clock.now = T0 + timedelta(minutes=15)
        await wait_for(any_store, "k", 1)
        await anyio.sleep(0.1)
    assert await pongs(any_store, "k") == [1]
    assert not await d.cancel(first)  # fired: too late to cancel
    assert not await d.cancel(uuid4())  # never scheduled


async def test_due_while_nothing_runs_fires_once_at_next_start(any_store: EventStore) -> None:
    clock = Clock()
    did = await scheduler(any_store, clock).schedule(
        T0 + timedelta(seconds=5), "expire", "k", {"n": 3}
    )
    clock.now = T0 + timedelta(hours=1)  # the deadline passed with no process running
    a, b = scheduler(any_store, clock), scheduler(any_store, clock)
    async with a.running(), b.running():  # two replicas start
        await wait_for(any_store, "k", 1)
        await anyio.sleep(0.1)
    assert await pongs(any_store, "k") == [3]
    assert did not in a.pending and did not in b.pending


async def test_a_restarted_scheduler_does_not_fire_again(any_store: EventStore) -> None:
    clock = Clock()
    d = scheduler(any_store, clock)
    await d.schedule(T0, "expire", "k", {"n": 5})
    await d.runner.catch_up()
    assert await d.fire_due() == 1
    fresh = scheduler(any_store, clock)
    await fresh.runner.catch_up()
    assert fresh.pending == {}
    assert await fresh.fire_due() == 0
    assert await pongs(any_store, "k") == [5]


async def test_fired_but_not_done_is_resent_without_doubling(any_store: EventStore) -> None:
    clock = Clock()
    d = scheduler(any_store, clock)
    did = await d.schedule(T0, "expire", "k", {"n": 6})
    await d.runner.catch_up()
    # The first process fired and sent, then died before "done".
    await any_store.append_expect(f"deadline:{did}", 1, [NewEvent("evsrc.deadline.fired")])
    await CommandHandler(any_store, Ponger).execute(
        "k",
        lambda s: [Ponged(n=6)],
        event_ids=uuid5(did, "send:0"),
    )
    fresh = scheduler(any_store, clock)
    await fresh.runner.catch_up()
    assert did in fresh.pending and fresh.pending[did].fired
    await fresh.fire_due()
    assert await pongs(any_store, "k") == [6]
    assert did not in fresh.pending


async def test_bad_input_is_refused(any_store: EventStore) -> None:
    d = scheduler(any_store, Clock())
    with pytest.raises(InvalidInputError):
        await d.schedule(datetime(2026, 1, 1), "expire", "k")  # naive
    with pytest.raises(InvalidInputError):
        await d.schedule(T0, "", "k")
    with pytest.raises(InvalidInputError):
        Deadlines(any_store, tick=0)


async def test_two_schedulers_firing_at_once_fire_each_deadline_once(any_store: EventStore) -> None:
    # As two processes would (each its own active scheduler): both see the
    # same due deadlines and fire them concurrently; the streams decide.
    clock = Clock()
    a, b = scheduler(any_store, clock), scheduler(any_store, clock)
    for n in range(10):
        await a.schedule(T0, "expire", "k", {"n": n})
    await a.runner.catch_up()
    await b.runner.catch_up()
    assert len(a.pending) == len(b.pending) == 10
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.fire_due)
        tg.start_soon(b.fire_due)
    assert sorted(await pongs(any_store, "k")) == list(range(10))
