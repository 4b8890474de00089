"""One live feed per PostgreSQL store: idle subscribers cost writers (almost) nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from evsrc import NewEvent
from tests.pgfixtures import open_store

if TYPE_CHECKING:
    from evsrc import RecordedEvent

pytestmark = pytest.mark.postgres


async def test_fifty_idle_subscribers_share_one_feed(pg_dsn: str) -> None:
    async with open_store(pg_dsn, max_size=2) as store:
        await store.append("live:0", [NewEvent("t")])  # history to catch up on
        idle_got: list[RecordedEvent] = []
        live_got: list[RecordedEvent] = []

        async def follow(prefix: str, out: list[RecordedEvent]) -> None:
            async for e in store.subscribe(stream_prefix=prefix):
                out.append(e)

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(follow, "idle:", idle_got)
            tg.start_soon(follow, "live:", live_got)
            with anyio.fail_after(10):
                while len(live_got) < 1:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.2)  # all caught up, waiting on the feed
            feed = store._feed
            assert feed is not None and feed.subscribers == 51
            reads = 0
            fetch = store._fetch

            async def counting(query: str, *args: Any) -> Any:
                nonlocal reads
                reads += 1
                return await fetch(query, *args)

            store._fetch = counting  # type: ignore[method-assign]
            with anyio.fail_after(20):
                for i in range(100):  # nobody reads these: no read at all, but polls
                    await store.append(f"other:{i % 5}", [NewEvent("t")])
                for i in range(5):  # each wakes the one feed: one read, not 51
                    await store.append("live:1", [NewEvent("t", {"i": i})])
                    while len(live_got) < 2 + i:
                        await anyio.sleep(0.001)
            # The five live ones and a poll every 0.5 s; a few more when another
            # session's open transaction holds the order back (the feed then polls,
            # backing off). One read per subscriber per commit would be 5,000+.
            assert reads <= 60
            tg.cancel_scope.cancel()
        assert idle_got == []
        assert [e.data.get("i") for e in live_got[1:]] == [0, 1, 2, 3, 4]
        assert store._feed is None  # the last subscriber gone, the feed ends
