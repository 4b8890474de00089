"""The handler's hot path (issue 16): event ids, batch formation under contention, outcomes."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from decimal import Decimal
from uuid import UUID

import pytest

from evsrc import CommandHandler, Decision, EventRegistry
from evsrc._ids import uuid4
from evsrc.memory import InMemoryEventStore
from evsrc.testing.stores import YieldingStore

from .domain import Account, Deposited, Opened


def test_ids_are_version_4_uuids_with_random_bits() -> None:
    ids = [uuid4() for _ in range(5000)]
    assert all(
        type(u) is UUID and u.version == 4 and u.variant == "specified in RFC 4122" for u in ids
    )
    assert len({u.int for u in ids}) == len(ids)
    # Equal to the UUID parsed from its text, hashing alike: a plain UUID in every way.
    assert all(UUID(str(u)) == u and hash(UUID(str(u))) == hash(u) for u in ids[:100])
    # Every one of the 122 random bits varies across ids.
    fixed = (0xF000 << 64) | (0xC000 << 48)
    ones = zeros = 0
    for u in ids:
        ones |= u.int
        zeros |= ~u.int
    assert (ones & zeros & ((1 << 128) - 1)) == ((1 << 128) - 1) & ~fixed


def test_ids_are_unique_across_threads() -> None:
    # Blocks of 256 run out many times over while eight threads draw at once.
    per_thread = 20_000
    out: list[list[int]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def draw(i: int) -> None:
        start.wait()
        out[i] = [uuid4().int for _ in range(per_thread)]

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=draw, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    every = [x for xs in out for x in xs]
    assert len(every) == 8 * per_thread
    assert len(set(every)) == len(every)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    uuid4()  # the parent holds a partly used block
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(w, b"".join(uuid4().bytes for _ in range(300)))
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    child = {data[i : i + 16] for i in range(0, len(data), 16)}
    parent = {uuid4().bytes for _ in range(300)}
    assert len(child) == 300
    assert not child & parent


async def test_encoded_events_get_fresh_ids_and_the_same_data_as_model_dump() -> None:
    registry = EventRegistry(Opened, Deposited)
    e = Deposited(amount=Decimal("1.50"), ref="r")
    a, b = registry.encode(e), registry.encode(e)
    assert a.id != b.id and a.id.version == 4
    assert a.data == e.model_dump(mode="json", by_alias=True) == {"amount": "1.50", "ref": "r"}


async def test_contended_callers_are_committed_in_full_batches() -> None:
    # 16 callers, each issuing its next command as soon as the last returns: the
    # stream's lane holds the lead one loop pass after a contended batch, so the
    # callers just answered all join the next batch instead of one going alone.
    store = YieldingStore(InMemoryEventStore())
    h = CommandHandler(store, Account)
    assert (await h.execute("a", lambda a: a.open("o"))).ok
    per = 30
    seen: dict[int, list[int]] = {}

    async def caller(i: int) -> None:
        for k in range(per):
            out = await h.execute("a", lambda a, r=f"{i}-{k}": a.deposit(1, r))
            assert out.ok and out.committed is not None
            assert out.committed.first_seq == out.committed.last_seq
            seen.setdefault(i, []).append(out.committed.last_seq)

    before = len(store.appends)
    await asyncio.gather(*(caller(i) for i in range(16)))
    appends = store.appends[before:]
    assert sum(n for _, _, n in appends) == 16 * per
    # The first caller starts alone while the other 15 queue; from then on each
    # batch carries all 16 callers (without the hold after a contended batch, the
    # first caller back would go alone every other time: batches of 1 and 15).
    sizes = [n for _, _, n in appends]
    assert sizes == [1] + [16] * (per - 1) + [15]
    # Each caller's commands landed in order, and no seq was given twice.
    assert all(s == sorted(s) for s in seen.values())
    seqs = [s for xs in seen.values() for s in xs]
    assert sorted(seqs) == list(range(2, 2 + 16 * per))
    assert (await h.load("a")).balance == 16 * per


async def test_commands_queued_during_a_cold_read_join_the_first_append() -> None:
    # A fresh handler reads the stream before its first decision; the 200 callers
    # arriving meanwhile are decided on that read and committed in one append.
    inner = InMemoryEventStore()
    setup = CommandHandler(inner, Account)
    assert (await setup.execute("a", lambda a: a.open("o"))).ok
    store = YieldingStore(inner)
    h = CommandHandler(store, Account)
    outs = await asyncio.gather(
        *(h.execute("a", lambda a, i=i: a.deposit(1, f"r{i}")) for i in range(200))
    )
    assert [n for _, _, n in store.appends] == [200]
    assert store.reads == 1
    firsts = sorted(o.committed.first_seq for o in outs if o.committed is not None)
    assert firsts == list(range(2, 202))
    # Each result is the balance after its own deposit, as decided in turn within the batch.
    assert sorted(o.result for o in outs) == [Decimal(i) for i in range(1, 201)]


async def test_cancelling_callers_during_contended_batches_leaves_no_stream_stuck() -> None:
    store = YieldingStore(InMemoryEventStore(), seed=3)
    h = CommandHandler(store, Account)
    assert (await h.execute("a", lambda a: a.open("o"))).ok
    done: list[str] = []

    async def caller(i: int) -> None:
        for k in range(20):
            ref = f"{i}-{k}"
            out = await h.execute("a", lambda a, r=ref: Decision([Deposited(amount=1, ref=r)]))
            if out.committed is not None:
                done.append(ref)

    tasks = [asyncio.create_task(caller(i)) for i in range(16)]
    for _ in range(40):
        await asyncio.sleep(0)
        for t in tasks[::5]:
            t.cancel()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks, return_exceptions=True)
    # The stream still takes commands, and every reported commit is stored once.
    assert (await h.execute("a", lambda a: a.deposit(1, "after"))).ok
    stored = [e.data["ref"] for e in await store.inner.read("account:a") if "ref" in e.data]
    assert len(stored) == len(set(stored))
    assert set(done) <= set(stored)
    assert not h._lanes
