"""Commands that write nothing ride the append in flight ahead of them.

While a batch's append is in flight, the commands queued behind it *before it
was sent* are decided on the state it will make current; those that write
nothing (a refusal, an answer) are answered by its commit, with no read of
their own. A command queued after it was sent does not ride (another writer
may have moved the stream by then); a conflict, an error or a cancelled leader
sends the riders back to be decided again, never answered from a state that
did not happen.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from evsrc import Aggregate, CommandHandler, Decision, Event, EventRegistry, applies
from evsrc.errors import AggregateError
from evsrc.testing.stores import ProxyStore

from .domain import Account
from .test_confirming_reads import held, queued

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evsrc.records import Committed, Conflict, NewEvent, RecordedEvent
    from evsrc.store import EventStore


class Held(ProxyStore):
    """Holds a read's answer, or an append before or after it reaches the store."""

    def __init__(self, inner: EventStore) -> None:
        super().__init__(inner)
        self.hold_read = False
        self.hold_append: str | None = None  # "before" | "after" | "raise"
        self._release = anyio.Event()
        self.held = anyio.Event()

    async def _hold(self) -> None:
        self.held.set()
        await self._release.wait()

    def release(self) -> None:
        """Let the held call go on; the next one is held afresh."""
        self._release.set()
        self._release = anyio.Event()
        self.held = anyio.Event()

    async def read(
        self, stream: str, *, after: int = 0, limit: int | None = None, backwards: bool = False
    ) -> list[RecordedEvent]:
        """Read now; hand the answer back once released (when holding)."""
        out = await super().read(stream, after=after, limit=limit, backwards=backwards)
        if self.hold_read:
            self.hold_read = False
            await self._hold()
        return out

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """Append, held back as ``hold_append`` says (once)."""
        how, self.hold_append = self.hold_append, None
        if how in ("before", "raise"):
            await self._hold()
            if how == "raise":
                raise RuntimeError("the append broke")
        out = await super().append_expect(stream, expected, events)
        if how == "after":
            await self._hold()
        return out


def balance(a: Account) -> Decision[Decimal]:
    """A command that writes nothing and answers with the balance it was decided on."""
    return Decision(result=a.balance)


async def cold(any_store: EventStore) -> tuple[CommandHandler[Account], Held, Any]:
    """An opened account (balance 0); a handler with a cold cache over a holding store."""
    opener = CommandHandler(any_store, Account)
    assert (await opener.execute("a", lambda a: a.open("owner"))).ok
    store = Held(any_store)
    return opener, store, CommandHandler(store, Account, max_batch=1)


async def behind_a_deposit(
    store: Held, h: CommandHandler[Account], decides: list[Any], hold_append: str
) -> list[asyncio.Task[Any]]:
    """A deposit of 5 leads; ``decides`` queue while its read is out; its append is held."""
    store.hold_read = True
    tasks = [asyncio.create_task(h.execute("a", lambda a: a.deposit(5)))]
    await held(store)  # the leader's read is out: the others queue behind it
    tasks += [asyncio.create_task(h.execute("a", d)) for d in decides]
    await queued(h, 1 + len(decides))
    store.hold_append = hold_append
    store.release()  # the deposit is decided alone (max_batch=1) and sent
    await held(store)
    return tasks


async def test_commands_queued_before_the_append_ride_it(any_store: EventStore) -> None:
    _, store, h = await cold(any_store)
    tasks = await behind_a_deposit(store, h, [balance] * 3, "after")
    # While the append is in flight the three were decided on the state it makes.
    assert not h._lanes._lanes["account:a"].queue
    assert not any(t.done() for t in tasks)
    store.release()
    deposit, *answers = await asyncio.gather(*tasks)
    assert deposit.ok and deposit.committed is not None
    assert [(o.ok, o.result, o.attempts, o.committed) for o in answers] == [
        (True, Decimal(5), 1, None)
    ] * 3
    # One read (the cold cache's) and one append: none to confirm the answers.
    assert store.reads == 1
    assert len(store.appends) == 1


async def test_a_command_queued_after_the_append_was_sent_does_not_ride(
    any_store: EventStore,
) -> None:
    opener, store, h = await cold(any_store)
    tasks = await behind_a_deposit(store, h, [balance], "after")
    # Committed, its answer held back. Another writer deposits 7, and only then
    # does a command arrive: answered from the first append it would miss that.
    assert (await opener.execute("a", lambda a: a.deposit(7))).ok
    late = asyncio.create_task(h.execute("a", balance))
    await queued(h, 3)
    store.release()
    deposit, rider = await asyncio.gather(*tasks)
    assert deposit.ok and rider.result == Decimal(5)  # queued before the commit
    assert (await late).result == Decimal(12)
    assert store.reads == 2


async def test_riders_of_an_append_that_conflicts_are_decided_again(
    any_store: EventStore,
) -> None:
    opener, store, h = await cold(any_store)
    tasks = await behind_a_deposit(store, h, [balance] * 2, "before")
    assert (await opener.execute("a", lambda a: a.deposit(7))).ok  # the stream moves
    store.release()
    deposit, *answers = await asyncio.gather(*tasks)
    assert (deposit.ok, deposit.result, deposit.attempts) == (True, Decimal(12), 2)
    # Decided again on what was read after the conflict, with the deposit
    # before them: never answered from the state the conflict refuted.
    assert [(o.result, o.attempts) for o in answers] == [(Decimal(12), 1)] * 2


async def test_riders_of_an_append_that_fails_are_decided_again(any_store: EventStore) -> None:
    _, store, h = await cold(any_store)
    tasks = await behind_a_deposit(store, h, [balance] * 2, "raise")
    store.release()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    # The deposit is not known to have happened: the riders are not told it did,
    # nor given its error. They are decided again on a confirmed state.
    assert [(o.ok, o.result) for o in results[1:]] == [(True, Decimal(0))] * 2  # type: ignore[union-attr]
    assert (await h.load("a")).balance == Decimal(0)


async def test_riders_learn_the_outcome_when_the_leader_is_cancelled(
    any_store: EventStore,
) -> None:
    _, store, h = await cold(any_store)
    tasks = await behind_a_deposit(store, h, [balance] * 2, "before")
    tasks[0].cancel()  # the leader, while its append waits to be sent
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    store.release()
    with anyio.fail_after(5):
        answers = await asyncio.gather(*tasks[1:])
    # A rider took the lead, re-sent the same append to learn its outcome (it
    # commits: the events were decided), and every rider got its answer.
    assert [(o.ok, o.result) for o in answers] == [(True, Decimal(5))] * 2
    assert (await h.load("a")).balance == Decimal(5)


async def test_riding_stops_at_a_command_that_writes(any_store: EventStore) -> None:
    _, store, h = await cold(any_store)
    tasks = await behind_a_deposit(store, h, [balance, lambda a: a.deposit(1), balance], "after")
    queue = h._lanes._lanes["account:a"].queue
    assert len(queue) == 2  # the deposit of 1 writes: it and the one behind it wait
    store.release()
    _, first, second_deposit, last = await asyncio.gather(*tasks)
    assert first.result == Decimal(5)
    assert second_deposit.committed is not None and second_deposit.result == Decimal(6)
    assert last.result == Decimal(6)
    assert store.reads == 1  # the last one rode the second deposit's append


async def test_a_decision_that_raises_does_not_ride(any_store: EventStore) -> None:
    _, store, h = await cold(any_store)

    def broken(a: Account) -> Decision[Decimal]:
        raise ValueError("no")

    tasks = await behind_a_deposit(store, h, [balance, broken, balance], "after")
    store.release()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[1].result == Decimal(5)  # type: ignore[union-attr]
    assert isinstance(results[2], ValueError)  # its own error, in its own batch
    assert results[3].result == Decimal(5)  # type: ignore[union-attr]


def test_ride_takes_only_commands_queued_before_the_append_was_sent() -> None:
    # A task that ran between the send and the ride callback may have queued a
    # command: it came after the send, so it must wait, whatever it decides.
    from collections import deque

    from evsrc.deciding import Attempt, Command, Decided
    from evsrc.riding import ride

    from .domain import Deposited, Opened

    base = Account()
    base.apply_new([Opened(owner="o")])
    deposit = Deposited(amount=Decimal(5))
    leader = Command(lambda a: a.deposit(5), None)
    new = [Account.registry.encode(deposit)]
    att = Attempt(1, [Decided(leader, [deposit], new, Decimal(5), None)], new, None, base)
    queue: deque[Command] = deque()
    for ticket in (2, 3, 4, 5):
        c = Command(balance, None)
        c.ticket = ticket
        queue.append(c)
    assert not ride(Account.registry, queue, att, 256)  # closed: att.mark is 0
    assert att.riders is None and len(queue) == 4
    att.mark = 4
    assert ride(Account.registry, queue, att, 1)  # one per pass: more may ride
    assert not ride(Account.registry, queue, att, 256)
    assert att.riders is not None
    assert [(d.command.ticket, d.result) for d in att.riders] == [(2, 5), (3, 5), (4, 5)]
    assert [c.ticket for c in queue] == [5]
    assert base.balance == 0  # decided on a copy: the state before the append is untouched


class Poked(Event, type="fragile.poked"):
    n: int


class Fragile(Aggregate):
    """Its fold breaks on a poke of 13: the state after such an append cannot be built."""

    stream_prefix = "fragile"
    registry = EventRegistry(Poked)

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    @applies(Poked)
    def _poked(self, e: Poked) -> None:
        if e.n == 13:
            raise ValueError("unlucky")
        self.total += e.n

    def poke(self, n: int) -> Decision[int]:
        return Decision([Poked(n=n)], result=self.total + n)


async def test_no_rider_is_answered_when_the_state_ahead_cannot_be_built(
    any_store: EventStore,
) -> None:
    store = Held(any_store)
    h = CommandHandler(store, Fragile, max_batch=1)
    assert (await h.execute("f", lambda f: f.poke(1))).ok
    store.hold_read = True
    h.cache.forget()  # cold: the next command reads, the others queue behind it
    tasks = [asyncio.create_task(h.execute("f", lambda f: f.poke(13)))]
    await held(store)
    tasks += [asyncio.create_task(h.execute("f", lambda f: Decision(result=f.total)))]
    await queued(h, 3)
    store.hold_append = "after"
    store.release()
    await held(store)
    # Folding the poke of 13 raises: nothing rode, the question still waits.
    assert len(h._lanes._lanes["fragile:f"].queue) == 1
    store.release()
    poke, question = await asyncio.gather(*tasks, return_exceptions=True)
    assert poke.committed is not None  # type: ignore[union-attr]
    # Asked after the broken event was appended, the question gets the fold's
    # error from a read of its own, as it would without riders.
    assert isinstance(question, AggregateError)
