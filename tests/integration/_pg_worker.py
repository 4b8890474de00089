"""A writer process for the multi-process race: ``python -m tests.integration._pg_worker``.

Arguments: DSN STREAM WORKER_NAME TASKS APPENDS. Each of TASKS tasks appends
APPENDS events to STREAM with observe-and-retry (``append_expect`` against the
last seq it saw, re-observing on ``Conflict``). Prints the number of conflicts.
"""

from __future__ import annotations

import asyncio
import sys

from evsrc import Committed, NewEvent
from evsrc.postgres import PostgresEventStore


async def main(dsn: str, stream: str, name: str, tasks: int, appends: int) -> int:
    conflicts = 0
    async with await PostgresEventStore.connect(dsn, min_size=tasks, max_size=tasks) as store:

        async def task(t: int) -> None:
            nonlocal conflicts
            seq = await store.last_seq(stream)
            for k in range(appends):
                event = NewEvent("race", {"who": f"{name}/{t}/{k}"})
                while True:
                    r = await store.append_expect(stream, seq, [event])
                    if isinstance(r, Committed):
                        seq = r.last_seq
                        break
                    conflicts += 1
                    seq = r.actual

        await asyncio.gather(*(task(t) for t in range(tasks)))
    return conflicts


if __name__ == "__main__":
    dsn, stream, name, tasks, appends = sys.argv[1:6]
    print(asyncio.run(main(dsn, stream, name, int(tasks), int(appends))))
