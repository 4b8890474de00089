"""The runner's lifecycle on every backend: one active runner, stop, running(), wait_until_head."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from evsrc import (
    Event,
    InMemoryCheckpointStore,
    InvalidInputError,
    NewEvent,
    ProjectionError,
    ProjectionRunner,
    Projector,
    handles,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evsrc import RecordedEvent
    from evsrc.store import EventStore


class Tick(Event, type="tick"):
    n: int


def ticks(k: int, start: int = 0) -> list[NewEvent]:
    return [NewEvent("tick", {"n": start + i}) for i in range(k)]


class Counted(Projector):
    """Appends each tick to a list shared by every runner of the projection."""

    name = "counted"

    def __init__(self, seen: list[tuple[str, int]], fail_on: int | None = None) -> None:
        self.seen = seen
        self.fail_on = fail_on
        self.batches: list[int] = []

    @handles(Tick)
    async def on_tick(self, e: Tick, r: RecordedEvent) -> None:
        if e.n == self.fail_on:
            raise RuntimeError("refused")
        self.seen.append((r.stream, r.seq))


class CountedInBatches(Counted):
    async def handle_batch(self, events: Sequence[RecordedEvent], *context: Any) -> None:
        self.batches.append(len(events))
        for r in events:
            await self.handle(r, *context)


async def test_one_runner_is_active_and_a_standby_takes_over(any_store: EventStore) -> None:
    await any_store.append("s", ticks(50))
    seen: list[tuple[str, int]] = []
    cps = InMemoryCheckpointStore()
    a = ProjectionRunner(any_store, Counted(seen), cps, batch_size=7)
    b = ProjectionRunner(any_store, Counted(seen), cps, batch_size=7)
    async with a.running(), b.running():
        with anyio.fail_after(10):
            await a.wait_until_head()
            await b.wait_until_head()  # a standby follows the active one's checkpoint
        assert {a.state, b.state} <= {"running", "standby", "catching up"}
        active, standby = (a, b) if a.state != "standby" else (b, a)
        assert standby.state == "standby"
        await active.stop()  # finishes its batch, saves, returns
        assert active.state == "stopped"
        await any_store.append("t", ticks(20))
        with anyio.fail_after(5):
            await standby.wait_until_head()
        assert standby.state in {"running", "catching up"}
    assert a.state == b.state == "stopped"
    assert sorted(seen) == [("s", i) for i in range(1, 51)] + [("t", i) for i in range(1, 21)]


async def test_stop_returns_and_run_resumes(any_store: EventStore) -> None:
    seen: list[tuple[str, int]] = []
    cps = InMemoryCheckpointStore()
    runner = ProjectionRunner(any_store, Counted(seen), cps)
    await runner.stop()  # not running: returns at once
    async with anyio.create_task_group() as tg:
        await tg.start(runner.run)
        r = await any_store.append("s", ticks(3))
        with anyio.fail_after(10):
            await runner.wait_until(r)
        await runner.stop()
        assert runner.state == "stopped"
        await any_store.append("s", ticks(2, 3))
        tg.start_soon(runner.run)
        with anyio.fail_after(10):
            await runner.wait_until_head()
        await runner.stop()
    assert seen == [("s", i) for i in range(1, 6)]
    assert await cps.load("counted") == runner.checkpoint


async def test_wait_until_head_returns_at_once_when_nothing_is_pending(
    any_store: EventStore,
) -> None:
    runner = ProjectionRunner(any_store, Counted([]))
    with anyio.fail_after(5):
        await runner.wait_until_head()  # an empty store
    await any_store.append("other", [NewEvent("unrelated")])
    with anyio.fail_after(5):
        await runner.wait_until_head()  # nothing it reads


async def test_catch_up_runs_in_batches_with_a_batch_handler(any_store: EventStore) -> None:
    await any_store.append("s", ticks(25))
    proj = CountedInBatches([])
    runner = ProjectionRunner(any_store, proj, batch_size=10)
    assert await runner.catch_up() == 25
    assert proj.batches == [10, 10, 5]
    assert len(proj.seen) == 25


async def test_a_failing_batch_handler_leaves_the_checkpoint_before_the_batch(
    any_store: EventStore,
) -> None:
    await any_store.append("s", ticks(25))
    cps = InMemoryCheckpointStore()
    proj = CountedInBatches([], fail_on=15)
    runner = ProjectionRunner(any_store, proj, cps, batch_size=10)
    with pytest.raises(ProjectionError) as info:
        await runner.catch_up()
    # A batch handler fails its batch as a whole: the error names its first event,
    # and the checkpoint stays just before it.
    first = info.value.event  # type: ignore[attr-defined]
    assert first.seq <= 16 and proj.batches[-1] > 16 - first.seq
    events = [e async for e in any_store.read_all()]
    assert await cps.load("counted") == events[first.seq - 2].checkpoint == runner.checkpoint


async def test_running_raises_the_projectors_error_on_exit(any_store: EventStore) -> None:
    runner = ProjectionRunner(any_store, Counted([], fail_on=2))
    with pytest.raises(ProjectionError):
        async with runner.running():
            await any_store.append("s", ticks(5))
            with anyio.fail_after(10), pytest.raises(ProjectionError):
                await runner.wait_until_head()
    assert runner.state == "stopped"
    with pytest.raises(ProjectionError):  # a failed runner does not start again
        async with runner.running():
            pass


async def test_an_error_in_the_body_of_running_is_raised_as_is(any_store: EventStore) -> None:
    runner = ProjectionRunner(any_store, Counted([]))
    with pytest.raises(KeyError):
        async with runner.running():
            raise KeyError("mine")
    assert runner.state == "stopped"


class _Flaky:
    """A checkpoint store that fails its first ``n`` saves with a transient error."""

    def __init__(self, n: int) -> None:
        self.inner = InMemoryCheckpointStore()
        self.n = n

    async def load(self, name: str) -> Any:
        return await self.inner.load(name)

    async def save(self, name: str, checkpoint: Any) -> None:
        await self.inner.save(name, checkpoint)

    async def compare_and_save(self, name: str, previous: Any, checkpoint: Any) -> bool:
        if self.n > 0:
            self.n -= 1
            from evsrc import StoreUnavailableError

            raise StoreUnavailableError("the checkpoint store is away")
        return await self.inner.compare_and_save(name, previous, checkpoint)


async def test_faults_are_retried_with_backoff_and_reported(any_store: EventStore) -> None:
    seen: list[tuple[str, int]] = []
    cps = _Flaky(3)
    runner = ProjectionRunner(any_store, Counted(seen), cps, retry_initial=0.01)  # type: ignore[arg-type]
    states: list[str] = []
    async with runner.running():
        await any_store.append("s", ticks(4))

        async def watch() -> None:
            while True:
                if not states or states[-1] != runner.state:
                    states.append(runner.state)
                await anyio.sleep(0.001)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            with anyio.fail_after(10):
                await runner.wait_until_head()
            tg.cancel_scope.cancel()
    assert any(s.startswith("retrying: StoreUnavailableError") for s in states)
    assert runner.failed is None and runner.failures == 0
    # A batch retried after a fault may be handled again (at least once, with a
    # separate checkpoint store); its checkpoint lands once, after the last try.
    assert set(seen) == {("s", i) for i in range(1, 5)}


async def test_runner_arguments_are_checked(any_store: EventStore) -> None:
    for bad in ({"batch_size": 0}, {"max_batch_latency": -1}, {"retry_max": "1"}):
        with pytest.raises(InvalidInputError):
            ProjectionRunner(any_store, Counted([]), **bad)

    class Nothing(Projector):
        name = "nothing"

    with pytest.raises(InvalidInputError, match="handles no event type"):
        ProjectionRunner(any_store, Nothing())
