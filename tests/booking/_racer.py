"""One racing process for ``test_processes.py``.

``python -m tests.booking._racer DSN OCCURRENCE CAPACITY ACTOR...``: connects its own
PostgreSQL store, schedules the occurrence (idempotent), prints ``ready``, waits for
a line on stdin (the start signal, so that all processes race at once), books every
actor concurrently, and prints the results as one JSON line. ``RACER_MAX_BATCH`` (an
environment variable) sets the booking service's ``max_batch``.
"""

from __future__ import annotations

import json
import os
import sys

import anyio

from evsrc.postgres import PostgresEventStore
from examples.booking import BookingService


async def main(dsn: str, occurrence: str, capacity: int, actors: list[str]) -> None:
    async with await PostgresEventStore.connect(dsn, min_size=1, max_size=4) as store:
        max_batch = int(os.environ.get("RACER_MAX_BATCH", "256"))
        svc = BookingService(store, max_attempts=1000, max_batch=max_batch)
        await svc.schedule(occurrence, capacity)
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        results: list[dict[str, object]] = []

        async def book(actor: str) -> None:
            r = await svc.book(occurrence, actor=actor)
            results.append({**r.to_dict(), "attempts": r.attempts})

        async with anyio.create_task_group() as tg:
            for actor in actors:
                tg.start_soon(book, actor)
        print(json.dumps(results), flush=True)


if __name__ == "__main__":
    dsn, occurrence, capacity, *actors = sys.argv[1:]
    anyio.run(main, dsn, occurrence, int(capacity), actors)
