"""Riders under real concurrency: never a stale answer, never a lost command.

Many tasks on one handler deposit and ask for the balance of one account while
another handler (another process, as far as the first one's cache and lanes
know) deposits too, and some callers are cancelled mid-flight. The balance only
grows, so an answer is stale exactly when it is below a balance some deposit
had been acknowledged with before the question was asked. Riding answers
questions from the state an append in flight makes: done wrong (a question
queued after the append was sent, or an append that did not commit), it gives
stale or invented answers, which this catches.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio

import evsrc.handler_loop
from evsrc import CommandHandler, Decision

from .domain import Account

if TYPE_CHECKING:
    import pytest

    from evsrc.store import EventStore


def balance(a: Account) -> Decision[Decimal]:
    return Decision(result=a.balance)


async def test_no_stale_or_lost_answer_with_riders(
    any_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rode = 0
    real_ride = evsrc.handler_loop.ride

    def counting_ride(*args: Any) -> bool:
        nonlocal rode
        queue = args[1]
        before = len(queue)
        more = real_ride(*args)
        rode += before - len(queue)
        return more

    monkeypatch.setattr(evsrc.handler_loop, "ride", counting_ride)

    # A small max_batch: more commands wait behind each append than it takes.
    h = CommandHandler(any_store, Account, max_attempts=1000, max_batch=8)
    other = CommandHandler(any_store, Account, max_attempts=1000)
    assert (await h.execute("a", lambda a: a.open("owner"))).ok
    rng = random.Random(7)
    acked = Decimal(0)  # the highest balance a deposit was acknowledged with
    answers: list[tuple[Decimal, Decimal]] = []  # (acked when asked, answer)
    deposits_acked = 0

    async def deposit(handler: CommandHandler[Account]) -> None:
        nonlocal acked, deposits_acked
        out = await handler.execute("a", lambda a: a.deposit(1))
        assert out.ok
        deposits_acked += 1
        acked = max(acked, out.result)

    async def ask() -> None:
        floor = acked
        out = await h.execute("a", balance)
        answers.append((floor, out.result))

    async def worker(i: int) -> None:
        for _ in range(12):
            if rng.random() < 0.3:
                await deposit(h)
            else:
                await ask()

    async def outsider() -> None:
        for _ in range(40):
            await deposit(other)
            await asyncio.sleep(0)

    async def canceller(tasks: list[asyncio.Task[None]]) -> int:
        cancelled = 0
        for _ in range(10):
            await asyncio.sleep(0.001)
            t = rng.choice(tasks)
            if not t.done():
                t.cancel()
                cancelled += 1
        return cancelled

    with anyio.fail_after(60):
        workers = [asyncio.create_task(worker(i)) for i in range(60)]
        side = asyncio.create_task(outsider())
        await canceller(workers)
        results = await asyncio.gather(*workers, side, return_exceptions=True)
    for r in results:
        assert r is None or isinstance(r, asyncio.CancelledError), r

    final = (await CommandHandler(any_store, Account).load("a")).balance
    assert answers, "no question was answered"
    for floor, answer in answers:
        assert floor <= answer <= final, (floor, answer, final)
    # Every acknowledged deposit is in the stream; cancelled ones may be too.
    assert deposits_acked <= final
    events = await any_store.read("account:a")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert final == len(events) - 1  # each event after the opening deposits 1
    if any_store.__class__.__name__ != "InMemoryEventStore":
        # (In memory an append never waits, so nothing ever rides.)
        assert rode > 0, "nothing rode: the test did not exercise riding"
