"""Poison events on the transactional runners: a parked event's change rolls back, the rest
commits once, and a replay commits once even when recording it is interrupted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from evsrc import FailurePolicy, NewEvent, ParkedEvents, RecordedEvent, StoreUnavailableError
from evsrc.sqlite import SqliteEventStore, SqliteProjectionRunner
from tests.projections.readmodel import DUPLICATES, INSERT, TABLE, Applied, AppliedInBatches
from tests.sqlite._projector import Tally, make_table

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from evsrc.postgres import PostgresEventStore


class PoisonedApplied(Applied):
    """Inserts its row, then refuses the ticks in ``poison``: the insert must roll back."""

    name = "poisoned"

    def __init__(self, poison: set[int]) -> None:
        super().__init__("p")
        self.poison = poison

    async def on_tick(self, e: Any, r: RecordedEvent, conn: Any) -> None:
        await conn.execute(INSERT, r.stream, r.seq, self.tag)
        if r.data["n"] in self.poison:
            msg = f"refused {r.data['n']}"
            raise RuntimeError(msg)


class PoisonedInBatches(AppliedInBatches):
    name = "poisoned"

    def __init__(self, poison: set[int]) -> None:
        super().__init__("p")
        self.poison = poison

    async def handle_batch(self, events: Sequence[RecordedEvent], *context: Any) -> None:
        await super().handle_batch(events, *context)
        if any(r.data["n"] in self.poison for r in events):
            raise RuntimeError("refused")


async def interrupted_once(parked: ParkedEvents) -> None:
    """Make the next ``replayed`` record fail as a lost connection would (after the commit)."""
    real = parked.replayed

    async def lost(p: Any) -> None:
        parked.replayed = real  # type: ignore[method-assign]
        msg = "connection lost"
        raise StoreUnavailableError(msg)

    parked.replayed = lost  # type: ignore[method-assign]


@pytest.mark.postgres
@pytest.mark.parametrize("projector", [PoisonedApplied, PoisonedInBatches])
async def test_postgres_parks_in_order_and_replays_once(
    pg_store: PostgresEventStore, projector: Any
) -> None:
    from evsrc.postgres.projection import PostgresProjectionRunner

    await pg_store.pool.execute(TABLE)
    await pg_store.append("s", [NewEvent("tick", {"n": i}) for i in range(20)])
    proj = projector({4, 11})
    runner = PostgresProjectionRunner(pg_store, proj, batch_size=8, on_failure=FailurePolicy.park())
    assert await runner.catch_up() == 20
    rows = {tuple(r) for r in await pg_store.pool.fetch("SELECT stream, seq FROM applied")}
    assert rows == {("s", i + 1) for i in range(20) if i not in {4, 11}}
    assert await pg_store.pool.fetch(DUPLICATES) == []
    parked = runner.parked
    assert [p.seq for p in await parked.pending()] == [5, 12]

    proj.poison.clear()
    await parked.request_replay()
    await interrupted_once(parked)
    with pytest.raises(StoreUnavailableError):
        await runner.replay_parked()  # the first replay committed; recording it did not
    assert await runner.replay_parked() == 2
    assert await pg_store.pool.fetch(DUPLICATES) == []
    rows = {tuple(r) for r in await pg_store.pool.fetch("SELECT stream, seq FROM applied")}
    assert rows == {("s", i + 1) for i in range(20)}
    assert [p.status for p in await parked.all()] == ["replayed", "replayed"]


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
    async with await SqliteEventStore.connect(tmp_path / "p.db") as store:
        await store.setup()
        await make_table(store)
        yield store


async def tally(store: SqliteEventStore) -> dict[tuple[str, int], int]:
    def rows(conn: Any) -> list[Any]:
        return list(conn.execute("SELECT stream, seq, times FROM tally").fetchall())

    return {(s, q): t for s, q, t in await store._read(rows)}


async def test_sqlite_parks_in_order_and_replays_once(sqlite_store: SqliteEventStore) -> None:
    store = sqlite_store
    await store.append("s", [NewEvent("counted", {"n": i}) for i in range(10)])
    proj = Tally(fail_at=6)
    runner = SqliteProjectionRunner(store, proj, on_failure=FailurePolicy.park())
    await runner.catch_up()
    assert await tally(store) == {("s", i + 1): 1 for i in range(10) if i != 6}
    # A raw projector (it reads every stream) never sees the parked stream.
    await store.append("s", [NewEvent("counted", {"n": 10})])
    await runner.catch_up()
    assert ("$parked:tally", 1) not in await tally(store)
    [p] = await runner.parked.pending()
    assert (p.stream, p.seq) == ("s", 7)

    proj.fail_at = None
    await runner.parked.request_replay()
    await interrupted_once(runner.parked)
    with pytest.raises(StoreUnavailableError):
        await runner.replay_parked()
    assert await runner.replay_parked() == 1
    assert await tally(store) == {("s", i + 1): 1 for i in range(11)}
