"""A process that appends through ``ShreddingStore`` on a SQLite file: ``python -m … PATH N``.

It waits for "go" on stdin, so that several processes start together, then
appends one event for each of the subjects ``p0 … p19``, ``N`` times.
"""

from __future__ import annotations

import sys

import anyio

from evsrc.keys import key_store_for
from evsrc.shredding import ShreddingStore
from evsrc.sqlite import SqliteEventStore
from tests.lifecycle_shred.conftest import Booked, registry


async def main(path: str, rounds: int) -> None:
    async with await SqliteEventStore.connect(path) as raw:
        await raw.setup()
        async with key_store_for(raw, cache_ttl=0) as keys:
            await keys.setup()
            store = ShreddingStore(raw, keys, registry, owns_inner=False)
            print("ready", flush=True)
            sys.stdin.readline()
            for r in range(rounds):
                for i in range(20):
                    await store.append(f"s-{i}", [registry.encode(Booked(actor=f"p{i}", seat=r))])


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]))
