"""A read model for exactly-once tests: one row per applied event, no unique key.

A duplicate application shows as two rows of one (stream, seq): the tests
group by it. ``Applied`` handles events one by one; ``AppliedInBatches``
declares a batch handler (one ``executemany`` per batch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsrc import Event, NewEvent, Projector, handles

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evsrc import RecordedEvent
    from evsrc.postgres import PostgresEventStore

TABLE = (
    "CREATE TABLE IF NOT EXISTS applied (stream text NOT NULL, seq bigint NOT NULL, runner text)"
)
INSERT = "INSERT INTO applied (stream, seq, runner) VALUES ($1, $2, $3)"
DUPLICATES = "SELECT stream, seq, count(*) FROM applied GROUP BY 1, 2 HAVING count(*) > 1"


class Tick(Event, type="tick"):
    """The event the read model applies."""

    n: int


def ticks(k: int, tag: str) -> list[NewEvent]:
    """``k`` tick events (and one the projector does not read, to be skipped)."""
    return [NewEvent("tick", {"n": i}, {"tag": tag}) for i in range(k)] + [NewEvent("other")]


class Applied(Projector):
    """Inserts a row per tick, in the runner's transaction."""

    name = "applied"

    def __init__(self, tag: str = "") -> None:
        self.tag = tag

    @handles(Tick)
    async def on_tick(self, e: Tick, r: RecordedEvent, conn: Any) -> None:
        await conn.execute(INSERT, r.stream, r.seq, self.tag)


class AppliedInBatches(Applied):
    """The same, with a batch handler."""

    async def handle_batch(self, events: Sequence[RecordedEvent], *context: Any) -> None:
        (conn,) = context
        await conn.executemany(INSERT, [(r.stream, r.seq, self.tag) for r in events])


async def check_exactly_once(store: PostgresEventStore) -> int:
    """Assert that every tick was applied exactly once; return how many."""
    assert await store.pool.fetch(DUPLICATES) == []
    expected = {(e.stream, e.seq) async for e in store.read_all(types=["tick"])}
    applied = {(r[0], r[1]) for r in await store.pool.fetch("SELECT stream, seq FROM applied")}
    assert applied == expected
    return len(applied)
