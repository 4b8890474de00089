"""Readers see deletions in order, live and under racing writers and removals."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import TYPE_CHECKING, ClassVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest

from evsrc.errors import StreamDeletedError
from evsrc.records import STREAM_DELETED, Committed, RecordedEvent
from evsrc.testing.contract.helpers import batch, ev, everything, everything_filtered

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["LifecycleRacesContract"]

pytestmark = [pytest.mark.asyncio]


class LifecycleRacesContract:
    """A part of :class:`StreamLifecycleContract`; the tests take its ``store`` fixture."""

    lifecycle_writers: ClassVar[int] = 12
    lifecycle_rounds: ClassVar[int] = 15

    # -- readers see deletions, in order, and never stall -------------------------

    async def test_filtered_readers_see_deletions_they_ask_for(self, store: EventStore) -> None:
        await store.append("booking:1", [ev(), ev()])
        await store.append("other:1", [ev()])
        await store.delete_stream("booking:1")
        await store.delete_stream("other:1", hard=True)
        by_prefix = await everything_filtered(store, stream_prefix="booking:")
        assert [(e.stream, e.type) for e in by_prefix] == [("booking:1", STREAM_DELETED)]
        by_type = await everything_filtered(store, types=[STREAM_DELETED])
        assert [e.stream for e in by_type] == ["booking:1", "other:1"]
        assert await everything_filtered(store, types=["thing"]) == []

    async def test_subscriber_sees_a_deletion_live(self, store: EventStore) -> None:
        await store.append("s", [ev(), ev()])
        seen: list[RecordedEvent] = []
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:

                async def follow() -> None:
                    async for e in store.subscribe(types=[STREAM_DELETED]):
                        seen.append(e)
                        tg.cancel_scope.cancel()

                tg.start_soon(follow)
                await anyio.sleep(0.05)
                d = await store.delete_stream("s")
        assert [(e.stream, e.checkpoint) for e in seen] == [("s", d.checkpoint)]

    async def test_concurrent_writes_and_removals_keep_the_global_order(
        self, store: EventStore
    ) -> None:
        """Writers, deleters and truncaters race; a live reader misses nothing still stored."""
        rnd = random.Random(18)
        seen: list[RecordedEvent] = []
        tombstoned: set[str] = set()
        streams = [f"life-{i}" for i in range(6)]

        async def writer(k: int) -> None:
            for _ in range(self.lifecycle_rounds):
                stream = streams[(k + rnd.randrange(3)) % len(streams)]
                try:
                    await store.append(stream, batch(rnd.randint(1, 4)))
                except StreamDeletedError:
                    assert stream in tombstoned
                await anyio.lowlevel.checkpoint()

        async def remover() -> None:
            for i in range(self.lifecycle_rounds):
                stream = streams[i % len(streams)]
                try:
                    if i % 3 == 0:
                        await store.delete_stream(stream)
                    elif i == self.lifecycle_rounds - 1:
                        tombstoned.add(stream)
                        await store.delete_stream(stream, hard=True)
                    else:
                        await store.truncate_before(stream, rnd.randint(1, 40))
                except StreamDeletedError:
                    assert stream in tombstoned
                await anyio.sleep(0.001)

        async def reader(done: anyio.Event) -> None:
            async for e in store.subscribe():
                seen.append(e)
                if done.is_set() and e.stream == "end":
                    return

        with anyio.fail_after(120):
            done = anyio.Event()
            async with anyio.create_task_group() as outer:
                outer.start_soon(reader, done)
                async with anyio.create_task_group() as tg:
                    for k in range(self.lifecycle_writers):
                        tg.start_soon(writer, k)
                    tg.start_soon(remover)
                done.set()
                await store.append("end", [ev()])
        checkpoints = [e.checkpoint for e in seen]
        assert checkpoints == sorted(checkpoints)
        assert len(set(checkpoints)) == len(checkpoints)
        # Everything still stored was seen, in the same order.
        stored = await everything(store)
        seen_ids = {e.id for e in seen}
        assert all(e.id in seen_ids for e in stored)
        order = {e.id: i for i, e in enumerate(seen)}
        assert [order[e.id] for e in stored] == sorted(order[e.id] for e in stored)
        # Per stream, seqs only grow, and each marker follows what it removed.
        last: dict[str, int] = defaultdict(int)
        for e in seen:
            assert e.seq > last[e.stream]
            if e.type == STREAM_DELETED:
                assert e.data["last_seq"] == e.seq - 1
            last[e.stream] = e.seq
        for stream in streams:
            if stream in tombstoned:
                with pytest.raises(StreamDeletedError):
                    await store.read(stream)
                continue
            kept = [e.seq for e in await store.read(stream)]
            assert kept == list(range(kept[0], kept[-1] + 1)) if kept else True
            assert await store.last_seq(stream) in (0, *kept[-1:])

    async def test_hard_delete_racing_appends_loses_nothing_it_acknowledged(
        self, store: EventStore
    ) -> None:
        """Appends that committed before the tombstone are deleted by it; none land after."""
        committed: list[Committed] = []
        refused = 0

        async def appender() -> None:
            nonlocal refused
            for _ in range(20):
                try:
                    committed.append(await store.append("hot", [ev()]))
                except StreamDeletedError:
                    refused += 1
                    return
                await anyio.lowlevel.checkpoint()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(appender)
                for _ in range(5):
                    await anyio.lowlevel.checkpoint()
                d = await store.delete_stream("hot", hard=True)
        assert refused > 0 or len(committed) == 8 * 20
        assert d.checkpoint is not None
        assert all(c.checkpoint < d.checkpoint for c in committed)
        assert d.last_seq == max((c.last_seq for c in committed), default=0)
        assert [e.type for e in await everything(store)] == [STREAM_DELETED]
