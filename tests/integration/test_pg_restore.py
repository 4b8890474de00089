"""A logical restore into a cluster whose transaction counter is behind: setup() repairs the order.

Three clusters of the test's own: the source, pushed ahead (``pg_resetwal -e``
gives its 64-bit transaction ids a higher epoch), and a fresh target it is
dumped into with ``pg_dump``/``pg_restore``. The target's transaction ids are
then far below every restored event's. Slow (clusters are created), never
skipped under CI=true.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import anyio
import asyncpg
import pytest

from evsrc import Checkpoint, InvalidCheckpointError, NewEvent, RecordedEvent
from evsrc.postgres import PostgresEventStore
from evsrc.postgres.projection import PostgresCheckpointStore
from evsrc.projection import ProjectionRunner, Projector
from tests.integration._clusters import (
    BIN,
    as_postgres,
    client,
    cluster,
    data_directory,
    start,
    stop,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SOURCE_PORT, TARGET_PORT = 5442, 5443
ROOT = Path(__file__).resolve().parents[2]


def database(dsn: str, name: str = "app") -> str:
    return dsn.rsplit("/", 1)[0] + "/" + name


async def create_database(dsn: str, name: str = "app") -> str:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database(dsn, name)


async def fill(store: PostgresEventStore, tag: str, streams: int, per_stream: int) -> None:
    """Concurrent appends to several streams, so commit order differs from position order."""

    async def writer(s: int) -> None:
        for k in range(per_stream):
            await store.append(f"{tag}-{s}", [NewEvent("e", {"tag": tag, "s": s, "k": k})])

    async with anyio.create_task_group() as tg:
        for s in range(streams):
            tg.start_soon(writer, s)


async def everything(
    store: PostgresEventStore, after: Checkpoint | None = None
) -> list[RecordedEvent]:
    # Unrepaired, read_all would wait for ever for the restored "transactions" to end.
    with anyio.fail_after(30):
        return [e async for e in store.read_all(after=after)]


def keys(events: list[RecordedEvent]) -> list[tuple[str, int]]:
    return [(e.stream, e.seq) for e in events]


async def subscribe_n(
    store: PostgresEventStore, after: Checkpoint | None, n: int
) -> list[RecordedEvent]:
    got: list[RecordedEvent] = []
    with anyio.fail_after(30):
        async for e in store.subscribe(after=after):
            got.append(e)
            if len(got) == n:
                break
    return got


async def test_restore_into_a_cluster_behind_keeps_the_global_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dump = tmp_path / "app.dump"
    with cluster("restore_src", SOURCE_PORT) as source_admin:
        # Push the source's transaction ids ahead of any fresh cluster's.
        stop("restore_src")
        as_postgres(f"{BIN}/pg_resetwal", "-e", "7", data_directory("restore_src"))
        start("restore_src", SOURCE_PORT)
        source = await create_database(source_admin)
        async with await PostgresEventStore.connect(source, min_size=1, max_size=8) as store:
            await store.setup()
            checkpoints = PostgresCheckpointStore(store)
            await checkpoints.setup()
            await fill(store, "a", streams=6, per_stream=10)
            before = await everything(store)
            assert before[0].checkpoint.commit > 7 * 2**32  # really ahead
            # Projections saved where they stood: the middle, the end, and nowhere yet.
            middle = before[len(before) // 2 - 1].checkpoint
            await checkpoints.save("halfway", middle)
            await checkpoints.save("caught-up", before[-1].checkpoint)
            outside = before[9].checkpoint  # kept by a reader outside the store
        client(f"{BIN}/pg_dump", "-p", str(SOURCE_PORT), "-h", "127.0.0.1", "-U", "postgres",
                    "-Fc", "-f", str(dump), "app")  # fmt: skip
    with cluster("restore_dst", TARGET_PORT) as target_admin:
        target = await create_database(target_admin)
        client(f"{BIN}/pg_restore", "-p", str(TARGET_PORT), "-h", "127.0.0.1",
                    "-U", "postgres", "-d", "app", "--no-owner", str(dump))  # fmt: skip
        conn = await asyncpg.connect(target)
        try:  # the situation the repair is for
            assert await conn.fetchval(
                "SELECT max(commit) > pg_current_xact_id() FROM evsrc_events"
            )
        finally:
            await conn.close()
        # The operator's way: the admin command's setup repairs, and says so.
        result = subprocess.run(
            [sys.executable, "-m", "evsrc", "--store", target, "--json", "setup"],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result
        assert "repaired the global order" in result.stderr
        assert "60 events" in result.stderr and "2 saved" in result.stderr
        async with await PostgresEventStore.connect(target, min_size=1, max_size=8) as store:
            with caplog.at_level(logging.WARNING, logger="evsrc.postgres"):
                await store.setup()  # nothing left to repair
            assert "repaired" not in caplog.text

            # Every old event, in the old relative order.
            after = await everything(store)
            assert keys(after) == keys(before)
            assert [e.id for e in after] == [e.id for e in before]

            # Saved checkpoints resume exactly; new appends come after every old event.
            checkpoints = PostgresCheckpointStore(store)
            halfway = await checkpoints.load("halfway")
            caught_up = await checkpoints.load("caught-up")
            assert halfway is not None and caught_up is not None
            assert keys(await everything(store, halfway)) == keys(before[len(before) // 2 :])
            assert await everything(store, caught_up) == []

            results: dict[str, list[RecordedEvent]] = {}

            async def follow(name: str, cp: Checkpoint, n: int) -> None:
                results[name] = await subscribe_n(store, cp, n)

            async with anyio.create_task_group() as tg:
                tg.start_soon(follow, "halfway", halfway, 30 + 20)
                tg.start_soon(follow, "caught-up", caught_up, 20)
                await fill(store, "b", streams=4, per_stream=5)
            new = [e for e in await everything(store) if e.stream.startswith("b-")]
            assert len(new) == 20
            assert keys(results["halfway"]) == keys(before[30:]) + keys(new)
            assert keys(results["caught-up"]) == keys(new)
            everything_now = await everything(store)
            assert keys(everything_now) == keys(before) + keys(new)
            assert [e.checkpoint for e in everything_now] == sorted(
                e.checkpoint for e in everything_now
            )

            # A checkpoint kept outside from before the repair is refused, not skipped past.
            with pytest.raises(InvalidCheckpointError):
                await everything(store, outside)
            with pytest.raises(InvalidCheckpointError):
                await subscribe_n(store, outside, 1)
            # Checkpoints of today's events work as ever.
            assert keys(await everything(store, new[9].checkpoint)) == keys(new[10:])

            # The projection saved halfway, run by the framework's runner, carries on exactly.
            projector = Recording()
            runner = ProjectionRunner(store, projector, checkpoints, name="halfway")
            assert await runner.catch_up() == 30 + 20
            assert keys(projector.seen) == keys(before[30:]) + keys(new)
            assert await runner.catch_up() == 0
            assert await checkpoints.load("halfway") == new[-1].checkpoint


class Recording(Projector):
    """Sees every raw event, in order."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[RecordedEvent] = []

    def wants(self, recorded: RecordedEvent) -> bool:
        return True

    async def handle(self, recorded: RecordedEvent, *context: object) -> None:
        self.seen.append(recorded)


def test_cluster_helper_drops_its_cluster() -> None:
    with cluster("restore_probe", 5444):
        pass
    listing = subprocess.run(["pg_lsclusters"], capture_output=True, text=True, check=True)
    assert "evsrc13_restore_probe" not in listing.stdout
