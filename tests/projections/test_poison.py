"""Poison events: a failure policy (stop, retry, park) and replays, on every backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from evsrc import (
    Event,
    FailurePolicy,
    InMemoryCheckpointStore,
    InvalidInputError,
    NewEvent,
    ParkedEvents,
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


class Picky(Projector):
    """Records each tick; refuses those in ``poison`` (``flaky``: only the first N tries)."""

    name = "picky"

    def __init__(self, poison: set[int] | None = None, flaky: int = 0) -> None:
        self.poison = poison if poison is not None else set()
        self.flaky = flaky
        self.tries: dict[int, int] = {}
        self.seen: list[int] = []

    @handles(Tick)
    async def on_tick(self, e: Tick, r: RecordedEvent, *context: Any) -> None:
        self.tries[e.n] = self.tries.get(e.n, 0) + 1
        if e.n in self.poison and (not self.flaky or self.tries[e.n] <= self.flaky):
            msg = f"cannot take tick {e.n}"
            raise RuntimeError(msg)
        self.seen.append(e.n)


class PickyInBatches(Picky):
    """The same with a batch handler: a poison event fails the whole batch."""

    def __init__(self, poison: set[int] | None = None) -> None:
        super().__init__(poison)
        self.batches: list[int] = []

    async def handle_batch(self, events: Sequence[RecordedEvent], *context: Any) -> None:
        self.batches.append(len(events))
        for r in events:  # all or nothing, like a transaction
            if r.data["n"] in self.poison:
                msg = f"cannot take tick {r.data['n']}"
                raise RuntimeError(msg)
        self.seen.extend(r.data["n"] for r in events)


async def test_a_parking_runner_parks_the_poison_and_handles_the_rest_once(
    any_store: EventStore,
) -> None:
    await any_store.append("s", ticks(10))
    proj = Picky(poison={3, 7})
    cps = InMemoryCheckpointStore()
    runner = ProjectionRunner(any_store, proj, cps, batch_size=4, on_failure=FailurePolicy.park())
    assert await runner.catch_up() == 10
    assert proj.seen == [0, 1, 2, 4, 5, 6, 8, 9]
    assert runner.failed is None
    head = (await any_store.read("s"))[-1].checkpoint
    assert runner.checkpoint == head
    assert await cps.load("picky") == head
    parked = await ParkedEvents(any_store, "picky").pending()
    assert [(p.stream, p.seq, p.status, p.attempts) for p in parked] == [
        ("s", 4, "parked", 1),
        ("s", 8, "parked", 1),
    ]
    originals = await any_store.read("s")
    assert parked[0].checkpoint == originals[3].checkpoint
    assert parked[0].event_id == originals[3].id
    assert "RuntimeError: cannot take tick 3" in parked[0].error

    # A restarted runner resumes after the parked events: nothing handled twice.
    again = Picky()
    restarted = ProjectionRunner(any_store, again, cps, on_failure=FailurePolicy.park())
    await any_store.append("s", ticks(2, 10))
    assert await restarted.catch_up() == 2
    assert again.seen == [10, 11]


async def test_a_replay_after_the_fix_handles_the_parked_event_once(
    any_store: EventStore,
) -> None:
    await any_store.append("s", ticks(5))
    proj = Picky(poison={2})
    runner = ProjectionRunner(any_store, proj, on_failure=FailurePolicy.park(), parked_poll=0.05)
    parked = ParkedEvents(any_store, "picky")
    async with runner.running():
        with anyio.fail_after(10):
            await runner.wait_until_head()
            while not await parked.pending():
                await anyio.sleep(0.01)
        assert proj.seen == [0, 1, 3, 4]
        proj.poison.clear()  # the fix is deployed
        [p] = await parked.pending()
        assert await parked.request_replay() == [p.number]
        with anyio.fail_after(10):  # the active runner sees the request by itself
            while (await parked.get(p.number)).status != "replayed":
                await anyio.sleep(0.02)
        await any_store.append("s", ticks(1, 5))
        with anyio.fail_after(10):
            await runner.wait_until_head()
    assert proj.seen == [0, 1, 3, 4, 2, 5]
    assert await parked.pending() == []
    with pytest.raises(InvalidInputError):
        await parked.request_replay([p.number])  # replayed: nothing left to replay


async def test_a_replay_that_fails_again_leaves_the_event_parked(any_store: EventStore) -> None:
    await any_store.append("s", ticks(3))
    proj = Picky(poison={1})
    runner = ProjectionRunner(any_store, proj, on_failure=FailurePolicy.park())
    await runner.catch_up()
    parked = ParkedEvents(any_store, "picky")
    await parked.request_replay()
    assert await runner.replay_parked() == 0
    [p] = await parked.pending()
    assert (p.status, p.attempts) == ("parked", 2)
    assert await parked.discard([p.number]) == [p.number]
    assert await parked.pending() == []
    assert [q.status for q in await parked.all()] == ["discarded"]
    assert proj.seen == [0, 2]


async def test_retry_cures_a_flaky_event(any_store: EventStore) -> None:
    await any_store.append("s", ticks(6))
    proj = Picky(poison={2, 4}, flaky=2)
    runner = ProjectionRunner(any_store, proj, on_failure=FailurePolicy.retry(2, backoff=0.001))
    assert await runner.catch_up() == 6
    assert proj.seen == [0, 1, 2, 3, 4, 5]
    assert proj.tries[2] == proj.tries[4] == 3
    assert await ParkedEvents(any_store, "picky").all() == []


async def test_retries_exhausted_stop_before_the_event(any_store: EventStore) -> None:
    await any_store.append("s", ticks(6))
    proj = Picky(poison={3})
    cps = InMemoryCheckpointStore()
    runner = ProjectionRunner(
        any_store, proj, cps, on_failure=FailurePolicy.retry(2, backoff=0.001)
    )
    with pytest.raises(ProjectionError) as caught:
        await runner.catch_up()
    assert caught.value.event.seq == 4
    assert proj.tries[3] == 3
    assert proj.seen == [0, 1, 2]
    assert runner.checkpoint == (await any_store.read("s"))[2].checkpoint
    assert await ParkedEvents(any_store, "picky").all() == []


async def test_a_batch_handler_poison_is_isolated_and_parked(any_store: EventStore) -> None:
    await any_store.append("s", ticks(12))
    proj = PickyInBatches(poison={5})
    runner = ProjectionRunner(any_store, proj, batch_size=8, on_failure=FailurePolicy.park())
    assert await runner.catch_up() == 12
    assert proj.seen == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    assert [p.seq for p in await ParkedEvents(any_store, "picky").pending()] == [6]


async def test_a_raw_projector_never_reads_parked_streams(any_store: EventStore) -> None:
    class Raw(Projector):
        name = "raw"

        def __init__(self) -> None:
            self.streams: list[str] = []

        def wants(self, recorded: RecordedEvent) -> bool:
            return True

        async def handle(self, recorded: RecordedEvent, *context: Any) -> None:
            if recorded.data.get("n") == 1:
                raise RuntimeError("poison")
            self.streams.append(recorded.stream)

    await any_store.append("s", ticks(3))
    proj = Raw()
    runner = ProjectionRunner(any_store, proj, on_failure=FailurePolicy.park())
    await runner.catch_up()
    await any_store.append("s", ticks(1, 3))
    await runner.catch_up()  # the parked record committed meanwhile is not fed to it
    assert proj.streams == ["s", "s", "s"]
    assert len(await ParkedEvents(any_store, "raw").pending()) == 1


def test_bad_policies_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        FailurePolicy(then="ignore")
    with pytest.raises(InvalidInputError):
        FailurePolicy.retry(-1)
    with pytest.raises(InvalidInputError):
        FailurePolicy.park(backoff=float("nan"))
    with pytest.raises(InvalidInputError):
        ParkedEvents(None, "")  # type: ignore[arg-type]
