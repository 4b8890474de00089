"""Reads on a real hot standby, and failover by promotion with nothing acknowledged lost.

Each test builds its own local clusters (tests/pgcluster.py) on loopback ports
5451-5459, in a temporary directory removed afterwards. Slow (a few seconds of
cluster setup each), run in CI.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import asyncpg
import pytest

from evsrc import (
    Committed,
    Conflict,
    NewEvent,
    OutcomeUnknownError,
    RecordedEvent,
    StoreUnavailableError,
)
from evsrc.postgres import PostgresEventStore, ReplicatedPostgresEventStore
from evsrc.postgres.projection import PostgresProjectionRunner
from examples.booking import BookingService
from tests.pgcluster import Cluster, ClusterSet
from tests.projections.readmodel import TABLE, AppliedInBatches, check_exactly_once, ticks

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

POOL = {"min_size": 1, "max_size": 8}


@pytest.fixture(scope="module")
def replicated() -> Iterator[tuple[Cluster, Cluster]]:
    """A primary and an asynchronous hot standby (so the standby really lags)."""
    clusters = ClusterSet()
    try:
        primary = clusters.new("primary", 5451).init().start()
        standby = clusters.new("standby1", 5452).basebackup_of(primary).start()
        yield primary, standby
    finally:
        clusters.close()


async def _fresh_schema(primary: Cluster) -> str:
    return "t_" + uuid.uuid4().hex[:12]


async def _wait_replayed(primary: Cluster, standby: Cluster, timeout: float = 30) -> None:
    """Wait until the standby has replayed everything the primary has written so far."""
    p = await asyncpg.connect(primary.dsn)
    s = await asyncpg.connect(standby.dsn)
    try:
        target = await p.fetchval("SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + timeout
        while True:
            replayed = await s.fetchval("SELECT pg_last_wal_replay_lsn()")
            if replayed is not None and replayed >= target:
                return
            assert time.monotonic() < deadline, "the standby did not catch up"
            await asyncio.sleep(0.02)
    finally:
        await p.close()
        await s.close()


async def test_subscriber_on_a_standby_never_skips_a_late_commit(
    replicated: tuple[Cluster, Cluster],
) -> None:
    primary, standby = replicated
    schema = await _fresh_schema(primary)
    writers, streams, appends = 12, 36, 25
    store = await PostgresEventStore.connect(
        primary.dsn, replicas=[standby.dsn], schema=schema, poll_interval=0.05, **POOL
    )
    assert isinstance(store, ReplicatedPostgresEventStore)
    seen: list[RecordedEvent] = []
    total = writers * appends + 3
    try:
        await store.setup()
        await _wait_replayed(primary, standby)

        async def subscriber() -> None:
            async for event in store.subscribe():
                seen.append(event)
                if len(seen) == total:
                    return

        async def writer(w: int) -> None:
            rng = random.Random(w)
            for k in range(appends):
                stream = f"s-{rng.randrange(streams)}"
                await store.append(stream, [NewEvent("e", {"w": w, "k": k})])
                await anyio.sleep(rng.random() * 0.004)

        async def late_committer() -> None:
            # A transaction that takes its id early and commits late, three times:
            # the case a reader ordering by id could skip.
            conn = await asyncpg.connect(primary.dsn)
            try:
                for i in range(3):
                    async with conn.transaction():
                        await conn.fetchval("SELECT pg_current_xact_id()")
                        await anyio.sleep(0.15)
                        await conn.execute(
                            f'SELECT * FROM "{schema}".evsrc_append($1, NULL, $2, $3, $4, $5, $6)',
                            f"late-{i}",
                            [uuid.uuid4()],
                            ["late"],
                            [1],
                            ['{"late": true}'],
                            ["{}"],
                        )
                    await anyio.sleep(0.05)
            finally:
                await conn.close()

        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                tg.start_soon(subscriber)
                tg.start_soon(late_committer)
                for w in range(writers):
                    tg.start_soon(writer, w)

        # The standby's order is the primary's order, complete and without duplicates.
        async with await PostgresEventStore.connect(primary.dsn, schema=schema, **POOL) as direct:
            log = [e async for e in direct.read_all()]
        assert len(log) == total
        assert [e.id for e in seen] == [e.id for e in log]
        assert [e.checkpoint for e in seen] == [e.checkpoint for e in log]
        assert sum(1 for e in seen if e.type == "late") == 3
    finally:
        await store.close()


async def test_reads_follow_the_primary_while_the_standby_is_paused(
    replicated: tuple[Cluster, Cluster],
) -> None:
    primary, standby = replicated
    schema = await _fresh_schema(primary)
    async with await PostgresEventStore.connect(
        primary.dsn, replicas=[standby.dsn], schema=schema, **POOL
    ) as store:
        await store.setup()
        await store.append("s", [NewEvent("e", {"n": 1})])
        await _wait_replayed(primary, standby)
        standby.psql("SELECT pg_wal_replay_pause()")
        try:
            r = await store.append_expect("s", 1, [NewEvent("e", {"n": 2})])
            assert isinstance(r, Committed)
            # The standby is paused at seq 1; the store knows the head is 2.
            assert [e.seq for e in await store.read("s")] == [1, 2]
            assert await store.last_seq("s") == 2
            # A global reader on the standby sees lag, not a gap: 1 event so far.
            assert [e.seq async for e in store.read_all()] == [1]
            # A writer that decided on the stale head gets a conflict from the primary.
            stale = await store.append_expect("s", 1, [NewEvent("e", {"n": 3})])
            assert isinstance(stale, Conflict)
            assert stale.actual == 2
        finally:
            standby.psql("SELECT pg_wal_replay_resume()")
        await _wait_replayed(primary, standby)
        assert [e.seq async for e in store.read_all()] == [1, 2]


async def test_booking_on_a_lagging_standby_never_overbooks(
    replicated: tuple[Cluster, Cluster],
) -> None:
    primary, standby = replicated
    schema = await _fresh_schema(primary)
    async with await PostgresEventStore.connect(
        primary.dsn, replicas=[standby.dsn], schema=schema, **POOL
    ) as store:
        await store.setup()
        seats, bookers = 15, 120
        results: list[Any] = []

        async def book(i: int) -> None:
            svc = BookingService(store, batching=i % 2 == 0)
            results.append(await svc.book("yoga", seats, f"actor-{i}"))

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for i in range(bookers):
                    tg.start_soon(book, i)
        async with await PostgresEventStore.connect(primary.dsn, schema=schema, **POOL) as direct:
            roster = [e.data["actor"] for e in await direct.read("booking:yoga")]
    statuses = Counter(str(r.status) for r in results)
    assert len(roster) == seats == len(set(roster))
    assert statuses["booked"] == seats, statuses
    assert statuses["full"] == bookers - seats, statuses


async def test_transactional_projection_reads_the_standby_and_writes_the_primary(
    replicated: tuple[Cluster, Cluster],
) -> None:
    primary, standby = replicated
    schema = await _fresh_schema(primary)
    async with await PostgresEventStore.connect(
        primary.dsn, replicas=[standby.dsn], schema=schema, **POOL
    ) as store:
        await store.setup()
        await store.pool.execute(TABLE)
        for k in range(20):
            await store.append(f"s{k % 4}", ticks(3, f"a{k}"))
        runner = PostgresProjectionRunner(store, AppliedInBatches("r"), batch_size=25)
        async with runner.running():
            with anyio.fail_after(60):
                await runner.wait_until_head()
            assert await check_exactly_once(store) == 60
            # With the standby's replay paused, new events reach the runner only once
            # it resumes: the runner reads from the standby, not the primary.
            standby.psql("SELECT pg_wal_replay_pause()")
            try:
                for k in range(10):
                    await store.append(f"s{k % 4}", ticks(2, f"b{k}"))
                await anyio.sleep(1.0)
                applied = await store.pool.fetchval("SELECT count(*) FROM applied")
                assert applied == 60
            finally:
                standby.psql("SELECT pg_wal_replay_resume()")
            with anyio.fail_after(60):
                await runner.wait_until_head()
            assert await check_exactly_once(store) == 80
        await store.pool.execute("DROP TABLE applied")


async def test_failover_loses_no_acknowledged_append() -> None:
    """Synchronous replication; kill -9 the primary under load; promote; nothing lost."""
    clusters = ClusterSet()
    try:
        primary = clusters.new("primary", 5453).init(
            synchronous_standby_names="'standby1'", synchronous_commit="on"
        )
        primary.start()
        # Once promoted, the standby is alone: it must not wait for a synchronous
        # standby of its own (docs/scaling.md, "Failover").
        standby = (
            clusters.new("standby1", 5454)
            .basebackup_of(primary, synchronous_standby_names="''")
            .start()
        )
        dsn = (
            f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}"
            "/postgres?target_session_attrs=read-write"
        )
        deadline = time.monotonic() + 30
        while primary.psql(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'"
        ) not in ("sync", "quorum"):
            assert time.monotonic() < deadline, "the standby never became synchronous"
            time.sleep(0.1)
        await _run_failover(clusters, primary, standby, dsn)
    except BaseException:
        print(clusters.logs())
        raise
    finally:
        clusters.close()


async def _run_failover(clusters: ClusterSet, primary: Cluster, standby: Cluster, dsn: str) -> None:
    writers = 8
    acked: dict[uuid.UUID, tuple[str, int]] = {}
    unknown = 0
    first_append_after_kill: float | None = None
    killed_at: float | None = None
    stop = anyio.Event()
    seen: list[RecordedEvent] = []

    async with await PostgresEventStore.connect(
        dsn, poll_interval=0.05, min_size=1, max_size=writers + 4, timeout=5
    ) as store:
        await store.setup()
        await store.pool.execute(TABLE)
        # A transactional projection rides through the failover (faults are retried).
        runner = PostgresProjectionRunner(
            store, AppliedInBatches("f"), retry_initial=0.01, retry_max=0.5, batch_size=50
        )

        async def writer(w: int) -> None:
            nonlocal unknown, first_append_after_kill
            stream = f"w-{w}"
            expected = 0
            while not stop.is_set():
                events = [NewEvent("tick", {"n": expected + 1 + i}, {"w": w}) for i in range(2)]
                while True:  # the same events (same ids) until their outcome is known
                    issued = time.monotonic()
                    try:
                        r = await store.append_expect(stream, expected, events)
                    except OutcomeUnknownError:
                        unknown += 1
                        await anyio.sleep(0.05)
                        continue
                    except StoreUnavailableError:
                        await anyio.sleep(0.05)
                        continue
                    break
                assert isinstance(r, Committed), r
                for i, e in enumerate(events):
                    acked[e.id] = (stream, r.first_seq + i)
                if killed_at is not None and issued > killed_at and first_append_after_kill is None:
                    first_append_after_kill = time.monotonic() - killed_at
                expected = r.last_seq

        async def subscriber() -> None:
            checkpoint = None
            while True:
                try:
                    async for event in store.subscribe(after=checkpoint):
                        seen.append(event)
                        checkpoint = event.checkpoint
                except StoreUnavailableError:
                    await anyio.sleep(0.1)

        async def chaos() -> None:
            nonlocal killed_at
            await anyio.sleep(1.5)
            await anyio.to_thread.run_sync(primary.kill9)
            killed_at = time.monotonic()
            await anyio.sleep(0.5)
            await anyio.to_thread.run_sync(standby.promote)
            await anyio.sleep(2.0)
            stop.set()

        with anyio.fail_after(120):
            async with runner.running(), anyio.create_task_group() as tg:
                tg.start_soon(subscriber)
                tg.start_soon(chaos)
                async with anyio.create_task_group() as writers_tg:
                    for w in range(writers):
                        writers_tg.start_soon(writer, w)
                # Let the subscriber reach the head of the new primary, then stop it.
                final = [e async for e in store.read_all()]
                while len(seen) < len(final):
                    await anyio.sleep(0.05)
                await runner.wait_until_head()
                assert await check_exactly_once(store) == len(final)
                tg.cancel_scope.cancel()

    assert first_append_after_kill is not None
    # Every acknowledged append is on the new primary, once, where it was acknowledged.
    by_id = {e.id: e for e in final}
    assert len(by_id) == len(final)
    for event_id, (stream, seq) in acked.items():
        got = by_id.get(event_id)
        assert got is not None, f"acknowledged event {event_id} lost"
        assert (got.stream, got.seq) == (stream, seq)
    # Streams are gapless; the subscriber saw the final log exactly, in order.
    per_stream: dict[str, list[int]] = {}
    for e in final:
        per_stream.setdefault(e.stream, []).append(e.seq)
    for seqs in per_stream.values():
        assert seqs == list(range(1, len(seqs) + 1))
    assert [e.id for e in seen] == [e.id for e in final]
    assert len(acked) > 50
    print(
        f"failover: {len(acked)} acknowledged events, {unknown} outcome-unknown retries, "
        f"first append {first_append_after_kill:.2f} s after the primary died"
    )
