"""The in-memory store runs under every anyio backend, not only asyncio."""

from __future__ import annotations

from contextlib import aclosing

import anyio
import pytest

from evsrc import Committed, Conflict, NewEvent
from evsrc.memory import InMemoryEventStore


async def scenario() -> tuple[list[int], list[str]]:
    store = InMemoryEventStore()
    seen: list[int] = []
    outcomes: list[str] = []

    async def consume() -> None:
        # Under trio an abandoned async generator is an error: close it explicitly.
        async with aclosing(store.subscribe()) as events:
            async for e in events:
                seen.append(e.seq)
                if len(seen) == 20:
                    return

    async def writer(i: int) -> None:
        seq = await store.last_seq("s")
        while True:
            await anyio.sleep(0)
            r = await store.append_expect("s", seq, [NewEvent("t", {"i": i})])
            if isinstance(r, Committed):
                outcomes.append("committed")
                return
            assert isinstance(r, Conflict)
            outcomes.append("conflict")
            seq = r.actual

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            async with anyio.create_task_group() as writers:
                for i in range(20):
                    writers.start_soon(writer, i)
    await store.close()
    return seen, outcomes


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_store_under_backend(backend: str) -> None:
    seen, outcomes = anyio.run(scenario, backend=backend)
    assert seen == list(range(1, 21))
    assert outcomes.count("committed") == 20
    assert "conflict" in outcomes
