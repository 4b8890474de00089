"""A read that confirms cached state answers every command queued before it was sent.

A batch decided on the cached state that writes nothing (a rejection, a
no-op) is confirmed by a read. That read found the state current at a moment
after every command queued before it was sent; such a command, decided later
on that very state and writing nothing, is answered without a read of its
own. A command queued after the read was sent is not: another writer may have
moved the stream before it arrived.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from evsrc import CommandHandler
from evsrc.testing.stores import ProxyStore

from .domain import Account

if TYPE_CHECKING:
    from evsrc.records import RecordedEvent
    from evsrc.store import EventStore


class HeldReads(ProxyStore):
    """Reads are done at once, their answer held back while ``hold`` is set (until ``release``)."""

    def __init__(self, inner: EventStore) -> None:
        super().__init__(inner)
        self.hold = False
        self.release = anyio.Event()
        self.held = anyio.Event()

    async def read(
        self, stream: str, *, after: int = 0, limit: int | None = None, backwards: bool = False
    ) -> list[RecordedEvent]:
        """Read now; hand the answer back once released (when holding)."""
        out = await super().read(stream, after=after, limit=limit, backwards=backwards)
        if self.hold:
            self.held.set()
            await self.release.wait()
        return out


class Holding(Protocol):
    """A store that says when it holds a call back."""

    held: anyio.Event


async def held(store: Holding) -> None:
    """Wait until a call is held back."""
    with anyio.fail_after(5):
        await store.held.wait()


async def queued(h: CommandHandler[Any], n: int) -> None:
    """Wait until ``n`` commands are queued on the handler's lanes."""
    for _ in range(1000):
        if h._lanes.enqueued >= n:
            return
        await asyncio.sleep(0)
    raise AssertionError("commands never queued")


async def opened_empty(
    any_store: EventStore, max_batch: int
) -> tuple[HeldReads, CommandHandler[Account]]:
    store = HeldReads(any_store)
    h = CommandHandler(store, Account, max_batch=max_batch)
    assert (await h.execute("a", lambda a: a.open("owner"))).ok
    # Cached at balance 0, last changed by an append (no read has confirmed it since).
    assert (await h.execute("a", lambda a: a.deposit(0))).ok
    return store, h


async def opened_cold(
    any_store: EventStore,
) -> tuple[CommandHandler[Account], HeldReads, CommandHandler[Account]]:
    """An account opened by a first handler; a second handler, its cache cold, holding reads."""
    opener = CommandHandler(any_store, Account)
    assert (await opener.execute("a", lambda a: a.open("owner"))).ok
    store = HeldReads(any_store)
    h = CommandHandler(store, Account)  # nothing cached: its first command reads
    store.hold = True
    return opener, store, h


async def test_commands_queued_before_a_confirming_read_share_it(any_store: EventStore) -> None:
    store, h = await opened_empty(any_store, max_batch=1)
    reads = store.reads
    store.hold = True
    tasks = [asyncio.create_task(h.execute("a", lambda a: a.withdraw(1)))]
    await held(store)  # the first command's confirming read is out
    # Four more arrive after that read was sent: it cannot answer them.
    tasks += [asyncio.create_task(h.execute("a", lambda a: a.withdraw(1))) for _ in range(4)]
    await queued(h, 7)
    store.hold = False
    store.release.set()
    outcomes = await asyncio.gather(*tasks)
    assert [(o.ok, o.rejection.reason, o.attempts) for o in outcomes] == [  # type: ignore[union-attr]
        (False, "insufficient funds", 1)
    ] * 5
    # Five batches (max_batch=1), two reads: the first command's, then the
    # second's, sent once the other three were queued, which confirms them too.
    assert store.reads - reads == 2
    assert len(store.appends) == 2  # the opening and the deposit


async def test_a_command_queued_after_the_read_was_sent_is_not_answered_from_it(
    any_store: EventStore,
) -> None:
    store, h = await opened_empty(any_store, max_batch=256)
    store.hold = True
    first = asyncio.create_task(h.execute("a", lambda a: a.withdraw(1)))
    await held(store)  # its confirming read found the balance at 0, held back
    # Another writer deposits, and only then a second command arrives (queued:
    # the lane is busy). The read out was sent before it arrived.
    other = CommandHandler(any_store, Account)
    assert (await other.execute("a", lambda a: a.deposit(5))).ok
    second = asyncio.create_task(h.execute("a", lambda a: a.withdraw(1)))
    await queued(h, 4)
    reads = store.reads
    store.hold = False
    store.release.set()
    out1 = await first
    assert not out1.ok and out1.rejection.detail == 0  # type: ignore[union-attr]
    out2 = await second
    # Decided on the cached state (balance 0) it would be refused; the handler
    # reads again, finds the deposit and withdraws.
    assert out2.ok and out2.result == Decimal(4)
    assert store.reads - reads >= 1
    assert (await h.load("a")).balance == Decimal(4)


async def test_a_writing_batch_is_not_answered_from_a_confirming_read(
    any_store: EventStore,
) -> None:
    store, h = await opened_empty(any_store, max_batch=1)
    store.hold = True
    refused = asyncio.create_task(h.execute("a", lambda a: a.withdraw(1)))
    await held(store)
    deposit = asyncio.create_task(h.execute("a", lambda a: a.deposit(3)))
    withdraw = asyncio.create_task(h.execute("a", lambda a: a.withdraw(2)))
    await queued(h, 5)
    store.hold = False
    store.release.set()
    assert not (await refused).ok
    assert (await deposit).result == Decimal(3)
    out = await withdraw
    assert out.ok and out.result == Decimal(1) and out.committed is not None


async def test_a_command_absorbed_after_a_read_is_not_answered_from_it(
    any_store: EventStore,
) -> None:
    # A handler whose cache is cold decides on what a read returns, and decides
    # the commands queued while that read was out on it too. A command that then
    # writes nothing cannot be answered from that read: it was sent before the
    # command arrived, and another writer may have moved the stream in between.
    opener, store, h = await opened_cold(any_store)
    first = asyncio.create_task(h.execute("a", lambda a: a.withdraw(1)))
    await held(store)  # the read found the balance at 0, held back
    assert (await opener.execute("a", lambda a: a.deposit(5))).ok  # another writer
    second = asyncio.create_task(h.execute("a", lambda a: a.withdraw(2)))
    await queued(h, 2)
    reads = store.reads
    store.hold = False
    store.release.set()
    out1, out2 = await first, await second
    # Both were decided on the balance read (0) and refused; the second was
    # queued after the read was sent, so the handler read again, found the
    # deposit and decided both again: each withdraws.
    assert out1.ok and out1.result == Decimal(4)
    assert out2.ok and out2.result == Decimal(2)
    assert store.reads - reads == 1
    assert (await h.load("a")).balance == Decimal(2)


async def test_commands_absorbed_after_a_read_are_answered_by_the_next_if_nothing_moved(
    any_store: EventStore,
) -> None:
    _, store, h = await opened_cold(any_store)
    tasks = [asyncio.create_task(h.execute("a", lambda a: a.withdraw(1)))]
    await held(store)
    tasks += [asyncio.create_task(h.execute("a", lambda a: a.withdraw(1))) for _ in range(3)]
    await queued(h, 4)
    reads = store.reads
    store.hold = False
    store.release.set()
    outcomes = await asyncio.gather(*tasks)
    assert [(o.ok, o.rejection.reason, o.attempts) for o in outcomes] == [  # type: ignore[union-attr]
        (False, "insufficient funds", 1)
    ] * 4
    assert store.reads - reads == 1  # one more read answers all four
    assert len(store.appends) == 0
