"""Racing writers, cancellation, and a model-based test at scale."""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, ClassVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest

from evsrc.records import Committed, Conflict
from evsrc.testing.contract.helpers import batch, ev

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["RacesContract"]

pytestmark = [pytest.mark.asyncio]


class RacesContract:
    """A part of :class:`EventStoreContract`; the tests take its ``store`` fixture."""

    race_tasks: ClassVar[int] = 1000
    stateful_examples: ClassVar[int] = 30

    # -- concurrency -----------------------------------------------------------

    async def test_two_writers_one_expected_exactly_one_wins(self, store: EventStore) -> None:
        await store.append_expect("seat", 0, [ev()])
        results: list[Committed | Conflict] = []

        async def attempt(name: str) -> None:
            results.append(await store.append_expect("seat", 1, [ev(actor=name)]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(attempt, "ann")
            tg.start_soon(attempt, "bob")
        assert sorted(type(r).__name__ for r in results) == ["Committed", "Conflict"]
        conflict = next(r for r in results if isinstance(r, Conflict))
        assert (conflict.expected, conflict.actual) == (1, 2)
        assert await store.last_seq("seat") == 2

    async def test_racing_writers_leave_a_gapless_stream(self, store: EventStore) -> None:
        n = self.race_tasks
        attempts = 0

        async def writer(i: int) -> None:
            nonlocal attempts
            seq = await store.last_seq("hot")
            while True:
                attempts += 1
                await anyio.lowlevel.checkpoint()  # the gap between observing and appending
                r = await store.append_expect("hot", seq, [ev(writer=i)])
                if isinstance(r, Committed):
                    return
                assert r.actual > seq
                seq = r.actual

        with anyio.fail_after(300):
            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(writer, i)
        events = await store.read("hot")
        assert [e.seq for e in events] == list(range(1, n + 1))
        assert sorted(e.data["writer"] for e in events) == list(range(n))
        assert attempts > n  # they really raced
        assert await store.last_seq("hot") == n

    async def test_cancelled_appends_are_all_or_nothing(self, store: EventStore) -> None:
        rnd = random.Random(7)

        async def appender(k: int) -> None:
            stream = f"cancel-{k % 4}"
            for _ in range(5):
                await store.append(stream, batch(rnd.randint(1, 20)))

        async with anyio.create_task_group() as tg:
            for k in range(24):
                tg.start_soon(appender, k)
            for _ in range(rnd.randint(1, 5)):
                await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
        for k in range(4):
            events = await store.read(f"cancel-{k}")
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            sizes: Counter[str] = Counter(e.metadata["append"] for e in events)
            for e in events:
                assert sizes[e.metadata["append"]] == e.metadata["size"]
        r = await store.append("cancel-0", [ev()])
        assert isinstance(r, Committed)

    # -- a model-based test ----------------------------------------------------

    async def test_matches_a_plain_model_under_random_operations(self, store: EventStore) -> None:
        """Hypothesis drives the store with random operations and checks it against a model."""
        from evsrc.testing._stateful import run_model_test

        await anyio.to_thread.run_sync(run_model_test, store, self.stateful_examples)
