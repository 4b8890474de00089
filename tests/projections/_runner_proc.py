"""One runner process of test_processes.py: ``python -m tests.projections._runner_proc``.

Arguments: DSN TAG. Runs the ``applied`` projection (``AppliedInBatches``)
until killed; its connections carry ``application_name=runner-TAG`` so that
the test can tell which process holds the lock. Prints "ready" once running.
"""

from __future__ import annotations

import asyncio
import sys

from evsrc.postgres import PostgresEventStore
from evsrc.postgres.projection import PostgresProjectionRunner
from tests.projections.readmodel import AppliedInBatches


async def main(dsn: str, tag: str) -> None:
    store = await PostgresEventStore.connect(
        dsn, min_size=1, max_size=3, server_settings={"application_name": f"runner-{tag}"}
    )
    async with store:
        runner = PostgresProjectionRunner(
            store, AppliedInBatches(tag), standby_interval=0.2, batch_size=50
        )
        async with runner.running():
            print("ready", flush=True)
            await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
