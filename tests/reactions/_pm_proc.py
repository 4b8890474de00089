"""A process that runs the ping-pong manager over a store URL, slowly (killed by the test)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from evsrc import (
    CommandHandler,
    ProjectionRunner,
    RecordedEvent,
    Send,
    StreamCheckpointStore,
    open_store,
)
from tests.reactions.domain import PingPong, Ponger


class Slow(PingPong):
    async def reacted(self, recorded: RecordedEvent, send: Send, outcome: Any) -> None:
        await asyncio.sleep(0.02)  # widen the window between a command and the checkpoint


async def main(url: str) -> None:
    async with await open_store(url) as store:
        pm = Slow(CommandHandler(store, Ponger))
        await ProjectionRunner(store, pm, StreamCheckpointStore(store)).catch_up()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
