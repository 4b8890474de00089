"""A read model in the SQLite file, for the projection tests (and their child process).

``python -m tests.sqlite._projector PATH``: runs ``SqliteProjectionRunner`` with
:class:`Tally` on PATH until killed, printing ``handled STREAM SEQ`` after each
event's transaction commits.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import anyio

from evsrc import Projector
from evsrc.sqlite import SqliteEventStore, SqliteProjectionRunner

if TYPE_CHECKING:
    import sqlite3

    from evsrc import RecordedEvent

TABLE = (
    "CREATE TABLE IF NOT EXISTS tally ("
    " event_id TEXT PRIMARY KEY, stream TEXT NOT NULL, seq INTEGER NOT NULL,"
    " times INTEGER NOT NULL)"
)


class Tally(Projector):
    """Counts, per event, how many times its change was applied (exactly once: 1)."""

    name = "tally"

    def __init__(self, fail_at: int | None = None, delay: float = 0.0) -> None:
        self.fail_at = fail_at
        self.delay = delay

    def wants(self, recorded: RecordedEvent) -> bool:
        return recorded.type != "ignored"

    async def handle(self, recorded: RecordedEvent, *context: Any) -> None:
        (conn,) = context
        conn: sqlite3.Connection
        conn.execute(
            "INSERT INTO tally (event_id, stream, seq, times) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (event_id) DO UPDATE SET times = times + 1",
            (str(recorded.id), recorded.stream, recorded.seq),
        )
        if self.delay:
            await anyio.sleep(self.delay)  # inside the transaction: a kill lands here
        if recorded.data.get("n") == self.fail_at:
            raise RuntimeError("the read model refused this one")


async def make_table(store: SqliteEventStore) -> None:
    async with store.transaction() as conn:
        conn.execute(TABLE)


async def main(path: str) -> None:
    async with await SqliteEventStore.connect(path) as store:
        runner = SqliteProjectionRunner(store, Tally(delay=0.002), batch_size=1)
        await runner.setup()
        await make_table(store)
        print("ready", flush=True)
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner.run)
            last = None
            while True:
                await anyio.sleep(0.001)
                if runner.checkpoint != last:
                    last = runner.checkpoint
                    print("handled", last, flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
