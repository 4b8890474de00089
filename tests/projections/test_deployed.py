"""Several runners of one projection on PostgreSQL: one active, exactly once, faults retried."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import anyio
import asyncpg
import pytest

from evsrc import OutcomeUnknownError, SchemaError, StoreUnavailableError
from evsrc.postgres.projection import PostgresProjectionRunner
from evsrc.projection import _LeaseLostError
from tests.pgfixtures import open_store

from .readmodel import TABLE, Applied, AppliedInBatches, check_exactly_once, ticks

if TYPE_CHECKING:
    from evsrc.postgres import PostgresEventStore

pytestmark = pytest.mark.postgres

TERMINATE_ALL = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND backend_type = 'client backend'"
)


async def write(store: PostgresEventStore, appends: int, pause: float = 0.0) -> None:
    """``appends`` appends of 1-5 ticks (and one other event) over 8 streams; retried on faults."""
    rnd = random.Random(appends)
    for k in range(appends):
        events = ticks(rnd.randint(1, 5), f"w{k}")
        while True:
            try:
                await store.append(f"s{k % 8}", events)
                break
            except (OutcomeUnknownError, StoreUnavailableError):
                await anyio.sleep(0.02)  # same ids: a retry cannot duplicate
        if pause:
            await anyio.sleep(pause)


@pytest.mark.parametrize("projector", [Applied, AppliedInBatches])
async def test_two_runners_in_one_process_apply_every_event_once(
    pg_store: PostgresEventStore, pg_dsn: str, projector: type[Applied]
) -> None:
    await pg_store.pool.execute(TABLE)
    await write(pg_store, 50)  # a history to catch up on
    a = PostgresProjectionRunner(pg_store, projector("a"), standby_interval=0.1, batch_size=20)
    b = PostgresProjectionRunner(pg_store, projector("b"), standby_interval=0.1, batch_size=20)
    admin = await asyncpg.connect(pg_dsn)
    takeovers = 0
    holders: set[str] = set()
    try:
        async with a.running(), b.running(), anyio.create_task_group() as restarts:
            async with anyio.create_task_group() as tg:
                tg.start_soon(write, pg_store, 150, 0.005)
                for k in range(4):
                    with anyio.fail_after(10):
                        while a.lease_pid is None and b.lease_pid is None:
                            await anyio.sleep(0.01)
                    active, other = (a, b) if a.lease_pid is not None else (b, a)
                    holders.add(active.projector.tag)  # type: ignore[attr-defined]
                    assert other.lease_pid is None  # never two at once
                    await anyio.sleep(0.1)
                    if k % 2:
                        # Its process is gone (here: its lock connection dropped):
                        # a runner, this one or the other, is active again within 5 s.
                        killed = active.lease_pid
                        await admin.execute("SELECT pg_terminate_backend($1)", killed)
                        with anyio.fail_after(5):
                            # Until the killed lock's runner has noticed too (a
                            # client's view of a dead connection lags the server's).
                            while killed in (a.lease_pid, b.lease_pid) or (
                                a.lease_pid is None and b.lease_pid is None
                            ):
                                await anyio.sleep(0.01)
                    else:
                        # Stopped: the other takes over.
                        await active.stop()
                        assert active.state == "stopped"
                        with anyio.fail_after(5):
                            while other.lease_pid is None:
                                await anyio.sleep(0.01)
                        restarts.start_soon(active.run)
                    takeovers += 1
            with anyio.fail_after(20):
                await a.wait_until_head()
                await b.wait_until_head()
            with anyio.fail_after(5):  # "running" once its feed has been idle a moment
                while {a.state, b.state} != {"running", "standby"}:
                    await anyio.sleep(0.01)
            await a.stop()
            await b.stop()
    finally:
        await admin.close()
    assert takeovers == 4
    assert a.failed is None and b.failed is None
    assert await check_exactly_once(pg_store) > 300
    assert holders == {"a", "b"}


async def test_a_stale_runner_cannot_save_over_a_newer_checkpoint(
    pg_store: PostgresEventStore,
) -> None:
    await pg_store.pool.execute(TABLE)
    await write(pg_store, 10)
    runner = PostgresProjectionRunner(pg_store, Applied("a"))
    await runner.catch_up()
    events = [e async for e in pg_store.read_all(types=["tick"])]
    cps = runner.pg_checkpoints
    assert await cps.load(runner.name) == events[-1].checkpoint
    # Another runner moved the checkpoint meanwhile (here: back, as a reset does).
    await cps.save(runner.name, events[3].checkpoint)
    assert not await cps.compare_and_save(runner.name, events[-1].checkpoint, events[4].checkpoint)
    await write(pg_store, 2)
    new = [e async for e in pg_store.read_all(after=runner.checkpoint, types=["tick"])]
    # This runner's next batch is refused before it writes anything.
    before = await pg_store.pool.fetchval("SELECT count(*) FROM applied")
    with pytest.raises(_LeaseLostError):
        await runner._process_batch(new)
    assert await pg_store.pool.fetchval("SELECT count(*) FROM applied") == before
    assert await cps.load(runner.name) == events[3].checkpoint


async def test_a_missing_checkpoint_table_is_a_schema_error_naming_setup(pg_dsn: str) -> None:
    async with open_store(pg_dsn, schema="fresh") as store:
        runner = PostgresProjectionRunner(store, Applied())
        with pytest.raises(SchemaError, match=r"setup\(\)"):
            await runner.catch_up()
        with pytest.raises(SchemaError, match=r"setup\(\)"):
            async with runner.running():
                pass
        await store.setup()  # creates it, with the events table
        assert await runner.load_checkpoint() is None
        await store.pool.execute(f"DROP TABLE {store.table('checkpoints')}")
        with pytest.raises(SchemaError, match=r"evsrc_checkpoints.*setup\(\)"):
            await runner.catch_up()


@pytest.mark.slow
async def test_a_runner_survives_connections_killed_every_200ms(pg_dsn: str) -> None:
    async with open_store(pg_dsn) as store, open_store(pg_dsn, max_size=4) as writer:
        await store.pool.execute(TABLE)
        runner = PostgresProjectionRunner(
            store, AppliedInBatches("r"), retry_initial=0.01, retry_max=0.5, batch_size=50
        )
        states: set[str] = set()
        admin = await asyncpg.connect(pg_dsn)
        killed = 0
        try:
            async with runner.running():

                async def watch() -> None:
                    while True:
                        states.add(runner.state.split(":")[0])
                        await anyio.sleep(0.01)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(watch)
                    async with anyio.create_task_group() as work:
                        work.start_soon(write, writer, 400, 0.02)
                        with anyio.move_on_after(12):
                            while True:
                                await anyio.sleep(0.2)
                                killed += await admin.fetchval(TERMINATE_ALL)
                        work.cancel_scope.cancel()
                    await write(writer, 20)  # after the storm
                    with anyio.fail_after(60):
                        await runner.wait_until_head()
                    with anyio.fail_after(5):  # "running" once its feed is idle a moment
                        while runner.state != "running":
                            await anyio.sleep(0.01)
                    tg.cancel_scope.cancel()
        finally:
            await admin.close()
        assert killed > 50
        assert states & {"retrying", "standby"}  # it noticed (lost lock or failed batch)
        assert runner.failed is None
        assert await check_exactly_once(store) > 100
