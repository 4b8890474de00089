"""Process managers on every backend: one reaction per event, through crashes and replicas."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

from evsrc import (
    CAUSATION_ID,
    CORRELATION_ID,
    CommandHandler,
    InvalidInputError,
    ProjectionError,
    ProjectionRunner,
    StreamCheckpointStore,
    correlated,
)
from tests.reactions.domain import Pinged, Pinger, PingPong, Ponged, Ponger

if TYPE_CHECKING:
    from evsrc.store import EventStore


async def ping(store: EventStore, n: int, **kw: object) -> None:
    h = CommandHandler(store, Pinger)
    await h.execute(str(n), lambda s: [Pinged(n=n)], **kw)  # type: ignore[arg-type]


async def pongs(store: EventStore, key: str) -> list[int]:
    return [e.data["n"] for e in await store.read(f"ponger:{key}")]


async def test_handler_stamps_correlation_and_causation(any_store: EventStore) -> None:
    h = CommandHandler(any_store, Pinger)
    await h.execute("1", lambda s: [Pinged(n=1)])
    await h.execute("2", lambda s: [Pinged(n=2)], correlation_id="req-7", causation_id="cmd-7")
    with correlated("req-8"):
        await h.execute("3", lambda s: [Pinged(n=3), Pinged(n=4)])
    one = (await any_store.read("pinger:1"))[0].metadata
    assert one[CORRELATION_ID] == one[CAUSATION_ID]  # a new conversation starts here
    assert len(one[CORRELATION_ID]) > 24
    await h.execute("5", lambda s: [Pinged(n=5)])
    other = (await any_store.read("pinger:5"))[0].metadata
    assert other[CAUSATION_ID] != one[CAUSATION_ID]  # each command its own id
    two = (await any_store.read("pinger:2"))[0].metadata
    assert (two[CORRELATION_ID], two[CAUSATION_ID]) == ("req-7", "cmd-7")
    three = await any_store.read("pinger:3")
    assert {e.metadata[CORRELATION_ID] for e in three} == {"req-8"}
    assert len({e.metadata[CAUSATION_ID] for e in three}) == 1  # one command, one cause
    with pytest.raises(InvalidInputError):
        await h.execute("4", lambda s: [Pinged(n=4)], correlation_id="")
    with pytest.raises(InvalidInputError):
        await h.execute("4", lambda s: [Pinged(n=4)], event_ids="nope")  # type: ignore[arg-type]
    assert await any_store.last_seq("pinger:4") == 0


async def test_reaction_carries_correlation_and_deterministic_ids(any_store: EventStore) -> None:
    await ping(any_store, 1, correlation_id="req-1")
    pm = PingPong(CommandHandler(any_store, Ponger))
    runner = ProjectionRunner(any_store, pm, StreamCheckpointStore(any_store))
    assert await runner.catch_up() == 1
    cause = (await any_store.read("pinger:1"))[0]
    (pong,) = await any_store.read("ponger:all")
    assert pong.metadata[CORRELATION_ID] == "req-1"
    assert pong.metadata[CAUSATION_ID] == str(cause.id)
    from evsrc.reactions import reaction_id

    assert pong.id == uuid.uuid5(reaction_id("ping-pong", cause.id, 0), "0")


async def test_crash_after_command_before_checkpoint_is_not_doubled(any_store: EventStore) -> None:
    for n in range(1, 7):
        await ping(any_store, n)
    checkpoints = StreamCheckpointStore(any_store)
    pm = PingPong(CommandHandler(any_store, Ponger), crash_after=4)
    with pytest.raises(ProjectionError):
        await ProjectionRunner(any_store, pm, checkpoints).catch_up()
    # Ping 4's first command committed, then the manager "crashed" before its checkpoint.
    assert await pongs(any_store, "all") == [1, 2, 3, 4]
    again = PingPong(CommandHandler(any_store, Ponger))
    assert await ProjectionRunner(any_store, again, checkpoints).catch_up() == 3
    assert await pongs(any_store, "all") == [1, 2, 3, 4, 5, 6]
    assert sorted(await pongs(any_store, "1")) == [1, 4]
    assert [r.data["n"] for r in again.seen] == [4, 5, 6]


async def test_two_replicas_each_reaction_once(any_store: EventStore) -> None:
    # Two replicas that do not share a lease (two processes on one file): both
    # handle every ping, concurrently; the ids make each reaction land once.
    async def replica() -> None:
        pm = PingPong(CommandHandler(any_store, Ponger))
        # separate checkpoint names: as if each believed it were the only one
        runner = ProjectionRunner(
            any_store, pm, StreamCheckpointStore(any_store), name=f"pp-{uuid.uuid4()}"
        )
        pm.name = "ping-pong"  # the reaction ids stay those of one manager
        await runner.catch_up()

    for n in range(1, 21):
        await ping(any_store, n)
    async with anyio.create_task_group() as tg:
        tg.start_soon(replica)
        tg.start_soon(replica)
    assert sorted(await pongs(any_store, "all")) == list(range(1, 21))
    total = sum([len(await pongs(any_store, k)) for k in ("0", "1", "2")])
    assert total == 20


async def test_running_manager_reacts_live_and_standby_takes_over(any_store: EventStore) -> None:
    checkpoints = StreamCheckpointStore(any_store)
    a = ProjectionRunner(any_store, PingPong(CommandHandler(any_store, Ponger)), checkpoints)
    b = ProjectionRunner(
        any_store, PingPong(CommandHandler(any_store, Ponger)), checkpoints, standby_interval=0.05
    )
    async with a.running(), b.running():
        await ping(any_store, 1)
        with anyio.fail_after(10):
            while len(await pongs(any_store, "all")) < 1:
                await anyio.sleep(0.01)
        await a.stop()
        await ping(any_store, 2)
        with anyio.fail_after(10):
            while len(await pongs(any_store, "all")) < 2:
                await anyio.sleep(0.01)
    assert await pongs(any_store, "all") == [1, 2]


async def test_bad_reaction_value_stops_with_projection_error(any_store: EventStore) -> None:
    class Bad(PingPong):
        name = "bad"

        async def on_ping(self, e: Pinged, r: object) -> list[object]:  # type: ignore[override]
            return ["not a Send"]

    await ping(any_store, 1)
    with pytest.raises(ProjectionError):
        await ProjectionRunner(any_store, Bad(CommandHandler(any_store, Ponger))).catch_up()


def test_new_command_ids_differ_in_a_forked_child() -> None:
    import os

    from evsrc.correlation import new_id

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 200).decode()
    os.close(read)
    assert child != new_id()
    assert child.split("-")[0] != new_id().split("-")[0]


async def test_saga_state_lives_in_its_own_stream(any_store: EventStore) -> None:
    """Per-key state: an aggregate of the manager's own, updated once per event."""
    from evsrc import Aggregate, Event, ProcessManager, RecordedEvent, Send, applies, handles

    class Counted(Event, type="test.saga-counted"):
        n: int

    class Tally(Aggregate):
        stream_prefix = "tally"

        def __init__(self) -> None:
            super().__init__()
            self.seen: list[int] = []

        @applies(Counted)
        def _counted(self, e: Counted) -> None:
            self.seen.append(e.n)

    class EveryThird(ProcessManager):
        """Counts pings per key; every third ping of a key makes a pong."""

        name = "every-third"
        stream_prefix = "pinger:"

        def __init__(self, tallies: CommandHandler[Tally], pongs: CommandHandler[Ponger]) -> None:
            self.tallies = tallies
            self.pongs = pongs

        @handles(Pinged)
        async def on_ping(self, e: Pinged, r: RecordedEvent) -> list[Send]:
            key = "odd" if e.n % 2 else "even"
            seen = (await self.tallies.load(key)).seen
            sends = [Send(self.tallies, key, lambda t: [] if e.n in t.seen else [Counted(n=e.n)])]
            if e.n not in seen and len(seen) % 3 == 2:
                sends.append(Send(self.pongs, key, lambda s: [Ponged(n=e.n)]))
            return sends

    for n in range(1, 13):
        await ping(any_store, n)
    tallies, pongs_h = CommandHandler(any_store, Tally), CommandHandler(any_store, Ponger)
    checkpoints = StreamCheckpointStore(any_store)
    await ProjectionRunner(any_store, EveryThird(tallies, pongs_h), checkpoints).catch_up()
    assert (await tallies.load("odd")).seen == [1, 3, 5, 7, 9, 11]
    assert await pongs(any_store, "odd") == [5, 11]
    assert await pongs(any_store, "even") == [6, 12]
    # Replayed from the start (a lost checkpoint): the saga knows, nothing is doubled.
    await checkpoints.reset("every-third")
    again = EveryThird(CommandHandler(any_store, Tally), CommandHandler(any_store, Ponger))
    await ProjectionRunner(any_store, again, checkpoints).catch_up()
    assert (await tallies.load("even")).seen == [2, 4, 6, 8, 10, 12]
    assert await pongs(any_store, "odd") == [5, 11]
