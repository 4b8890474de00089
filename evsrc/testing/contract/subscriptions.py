"""Subscriptions: catch up, go live, resume, and ``close``."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, ClassVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest

from evsrc.errors import StoreClosedError
from evsrc.records import Committed, RecordedEvent
from evsrc.testing.contract.helpers import batch, ev

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["SubscriptionsContract"]

pytestmark = [pytest.mark.asyncio]


class SubscriptionsContract:
    """A part of :class:`EventStoreContract`; the tests take its ``store`` fixture."""

    subscriber_writers: ClassVar[int] = 16
    subscriber_streams: ClassVar[int] = 48
    subscriber_appends_per_writer: ClassVar[int] = 30

    # -- subscriptions -------------------------------------------------------------

    async def test_subscribe_catches_up_then_goes_live(self, store: EventStore) -> None:
        await store.append_expect("s", 0, [ev(n=1), ev(n=2)])
        seen: list[int] = []
        caught_up = anyio.Event()

        async def consume() -> None:
            async for e in store.subscribe():
                seen.append(e.data["n"])
                if len(seen) == 2:
                    caught_up.set()
                if len(seen) == 5:
                    return

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await caught_up.wait()
                await store.append_expect("s", 2, [ev(n=3)])
                await store.append("t", [ev(n=4), ev(n=5)])
        assert seen == [1, 2, 3, 4, 5]

    async def test_subscribe_resumes_from_checkpoint(self, store: EventStore) -> None:
        r = await store.append_expect("s", 0, [ev(n=1), ev(n=2)])
        assert isinstance(r, Committed)
        await store.append_expect("s", 2, [ev(n=3)])
        got: list[int] = []
        with anyio.fail_after(30):
            async for e in store.subscribe(after=r.checkpoint):
                got.append(e.data["n"])
                break
        assert got == [3]

    async def test_waiting_subscriber_wakes_on_append(self, store: EventStore) -> None:
        got: list[RecordedEvent] = []
        started = anyio.Event()

        async def consume() -> None:
            started.set()
            async for e in store.subscribe():
                got.append(e)
                return

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await started.wait()
                await anyio.sleep(0.05)  # let it find nothing and start waiting
                r = await store.append_expect("s", 0, [ev()])
        assert isinstance(r, Committed)
        assert [e.id for e in got] == [(await store.read("s"))[0].id]

    async def test_live_subscriber_sees_every_event_exactly_once(self, store: EventStore) -> None:
        writers = self.subscriber_writers
        n_streams = self.subscriber_streams
        per_writer = self.subscriber_appends_per_writer
        streams = [f"live-{i}" for i in range(n_streams)]
        committed: list[tuple[str, int]] = []
        seen: list[RecordedEvent] = []

        async def writer(w: int) -> None:
            rnd = random.Random(w)
            for _ in range(per_writer):
                stream = rnd.choice(streams)
                while True:
                    seq = await store.last_seq(stream)
                    await anyio.lowlevel.checkpoint()
                    size = rnd.randint(1, 3)
                    r = await store.append_expect(stream, seq, batch(size))
                    if isinstance(r, Committed):
                        committed.extend((stream, s) for s in range(r.first_seq, r.last_seq + 1))
                        break

        async def subscriber() -> None:
            async for e in store.subscribe():
                seen.append(e)
                if e.stream == "live-end":
                    return

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(subscriber)
                async with anyio.create_task_group() as wg:
                    for w in range(writers):
                        wg.start_soon(writer, w)
                # Committed after every writer finished, so it is last in global order.
                await store.append("live-end", [ev()])
                committed.append(("live-end", 1))
        keys = [(e.stream, e.seq) for e in seen]
        assert Counter(keys) == Counter(committed)  # every event, exactly once
        last: dict[str, int] = defaultdict(int)
        for stream, seq in keys:
            assert seq == last[stream] + 1, f"{stream} went {last[stream]} -> {seq}"
            last[stream] = seq
        assert [e.checkpoint for e in seen] == sorted(e.checkpoint for e in seen)

    async def test_close_ends_use(self, store: EventStore) -> None:
        await store.append("s", [ev()])
        errors: list[BaseException] = []
        waiting = anyio.Event()

        async def consume() -> None:
            try:
                async for _ in store.subscribe():
                    waiting.set()
            except StoreClosedError as exc:
                errors.append(exc)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await waiting.wait()
                await anyio.sleep(0.05)
                await store.close()
        assert len(errors) == 1
        with pytest.raises(StoreClosedError):
            await store.append("s", [ev()])
        with pytest.raises(StoreClosedError):
            await store.append_expect("s", 1, [ev()])
        await store.close()  # idempotent
