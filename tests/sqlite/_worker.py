"""Child processes for the SQLite multi-process tests: ``python -m tests.sqlite._worker MODE …``.

Every mode opens its own store on the file, prints ``ready``, waits for a line on
stdin (so that all processes start together), works, and prints its result.

* ``race PATH NAME TASKS APPENDS STREAMS [inline]``: TASKS tasks each make
  APPENDS multi-event appends with observe-and-retry (``append_expect`` on the
  last seq seen, re-observing on ``Conflict``) to streams chosen among STREAMS
  shared ones; ``inline``: with ``inline_appends=True``. Prints
  ``{"conflicts": n, "attempts": n, "thread_batches": n}`` (appends tried,
  writer-thread transactions).
* ``book PATH OCCURRENCE CAPACITY ACTOR…``: books every actor concurrently
  through ``examples.booking.BookingService``. Prints the results as JSON.
* ``setup PATH``: opens the (maybe new) file, runs ``setup()``, appends one
  event and prints the schema version.
* ``appender PATH SYNCHRONOUS``: appends batches of 1..40 events to four streams
  until killed, printing ``TAG SIZE`` after each acknowledged append.
"""

from __future__ import annotations

import json
import random
import sys

import anyio
import anyio.to_thread

from evsrc import Committed, NewEvent
from evsrc.sqlite import SqliteEventStore, _writer
from examples.booking import BookingService


async def _ready() -> None:
    print("ready", flush=True)
    await anyio.to_thread.run_sync(sys.stdin.readline)


async def race(
    path: str, name: str, tasks: int, appends: int, streams: int, inline: bool = False
) -> None:
    conflicts = 0
    attempts = 0
    thread_batches = 0
    batch = _writer.append_batch

    def counting(*args: object) -> None:
        nonlocal thread_batches
        thread_batches += 1
        batch(*args)  # type: ignore[arg-type]

    _writer.append_batch = counting  # type: ignore[assignment]
    async with await SqliteEventStore.connect(path, inline_appends=inline) as store:
        await _ready()

        async def task(t: int) -> None:
            nonlocal conflicts, attempts
            rnd = random.Random(f"{name}/{t}")
            for k in range(appends):
                stream = f"hot-{rnd.randrange(streams)}"
                size = rnd.randint(1, 3)
                tag = f"{name}/{t}/{k}"
                events = [NewEvent("race", {"who": tag, "i": i, "size": size}) for i in range(size)]
                seq = await store.last_seq(stream)
                while True:
                    attempts += 1
                    r = await store.append_expect(stream, seq, events)
                    if isinstance(r, Committed):
                        break
                    conflicts += 1
                    seq = r.actual

        async with anyio.create_task_group() as tg:
            for t in range(tasks):
                tg.start_soon(task, t)
    out = {"conflicts": conflicts, "attempts": attempts, "thread_batches": thread_batches}
    print(json.dumps(out), flush=True)


async def book(path: str, occurrence: str, capacity: int, actors: list[str]) -> None:
    async with await SqliteEventStore.connect(path) as store:
        svc = BookingService(store, max_attempts=1000)
        await svc.schedule(occurrence, capacity)
        await _ready()
        results: list[dict[str, object]] = []

        async def one(actor: str) -> None:
            r = await svc.book(occurrence, actor=actor)
            results.append({**r.to_dict(), "attempts": r.attempts})

        async with anyio.create_task_group() as tg:
            for actor in actors:
                tg.start_soon(one, actor)
    print(json.dumps(results), flush=True)


async def setup(path: str) -> None:
    await _ready()
    async with await SqliteEventStore.connect(path) as store:
        await store.setup()
        await store.append("setup", [NewEvent("done")])
        print(await store.schema_version(), flush=True)


async def appender(path: str, synchronous: str) -> None:
    async with await SqliteEventStore.connect(path, synchronous=synchronous) as store:
        await _ready()
        rnd = random.Random()
        k = 0
        while True:
            k += 1
            size = rnd.randint(1, 40)
            tag = f"a{k}"
            events = [
                NewEvent(
                    "part", {"i": i, "size": size, "pad": "x" * rnd.randint(0, 2000)}, {"tag": tag}
                )
                for i in range(size)
            ]
            await store.append(f"kill-{k % 4}", events)
            print(tag, size, flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "race":
        inline = args[5:] == ["inline"]
        anyio.run(race, args[0], args[1], int(args[2]), int(args[3]), int(args[4]), inline)
    elif mode == "book":
        anyio.run(book, args[0], args[1], int(args[2]), args[3:])
    elif mode == "setup":
        anyio.run(setup, args[0])
    elif mode == "appender":
        anyio.run(appender, args[0], args[1])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
