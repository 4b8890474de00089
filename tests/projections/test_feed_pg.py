"""One live feed per PostgreSQL store: idle subscribers cost writers (almost) nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import asyncpg
import pytest

from evsrc import NewEvent, StoreUnavailableError
from tests.pgfixtures import admin_dsn, open_store

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
            fetch = store._global.fetch

            async def counting(query: str, *args: Any) -> Any:
                nonlocal reads
                reads += 1
                return await fetch(query, *args)

            store._global.fetch = counting
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


@pytest.mark.parametrize("flt", [{}, {"types": ["t"]}, {"stream_prefix": "s:"}])
async def test_a_subscriber_left_behind_by_the_feed_reads_by_itself(
    pg_dsn: str, flt: dict[str, Any]
) -> None:
    async with open_store(pg_dsn) as store:
        await store.append("s:0", [NewEvent("t", {"i": -1})])
        got: list[RecordedEvent] = []
        release = anyio.Event()
        total = 1 + 3000 + (30 if not flt else 0)  # unfiltered: the "other" events too

        async def slow() -> None:
            async for e in store.subscribe(**flt):
                got.append(e)
                if len(got) == 1:
                    await release.wait()  # the feed moves on by thousands meanwhile
                if len(got) == total:
                    return

        async def fast(out: list[RecordedEvent]) -> None:
            async for e in store.subscribe(**flt):
                out.append(e)
                if len(out) == total:
                    return

        quick: list[RecordedEvent] = []
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(slow)
                tg.start_soon(fast, quick)
                while not got:
                    await anyio.sleep(0.01)
                for k in range(30):
                    await store.append(
                        f"s:{k % 3}", [NewEvent("t", {"i": k * 100 + i}) for i in range(100)]
                    )
                    await store.append("other", [NewEvent("u")])
                while len(quick) < total:
                    await anyio.sleep(0.01)
                feed = store._feed
                assert feed is not None and feed.floor > got[0].checkpoint
                release.set()
        want = [-1, *range(3000)]
        assert [e.data["i"] for e in quick if e.type == "t"] == want
        assert [e.id for e in got] == [e.id for e in quick]


@pytest.mark.slow
async def test_subscribe_outlives_a_long_outage(pg_dsn: str) -> None:
    database = pg_dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(admin_dsn())
    allow = f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'
    try:
        async with open_store(pg_dsn, poll_interval=0.05) as store:
            got: list[RecordedEvent] = []

            async def follow() -> None:
                async for e in store.subscribe():
                    got.append(e)

            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                await store.append("s", [NewEvent("t")])
                with anyio.fail_after(10):
                    while not got:
                        await anyio.sleep(0.01)
                # 15 s without the database: longer than subscribe() used to last.
                await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    database,
                )
                await anyio.sleep(15)
                await admin.execute(allow)
                with anyio.fail_after(30):
                    while True:
                        try:
                            await store.append("s", [NewEvent("t", {"after": True})])
                            break
                        except StoreUnavailableError:
                            await anyio.sleep(0.1)
                    while len(got) < 2:
                        await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
            assert got[-1].data == {"after": True}
    finally:
        await admin.execute(allow)
        await admin.close()
