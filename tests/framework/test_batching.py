"""Hot streams: concurrent commands on one stream decided together, committed in one append."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from evsrc import CommandHandler, Decision, Outcome, Rejection, RetriesExhaustedError
from evsrc.testing.stores import GateStore, LostReplyStore, RacingStore, YieldingStore

from .domain import Account, Deposited, Inventory, Reserved, Restocked

if TYPE_CHECKING:
    from collections.abc import Callable

    from evsrc.models import Event
    from evsrc.store import EventStore


async def open_account(handler: CommandHandler[Account], key: str, balance: int = 0) -> None:
    assert (await handler.execute(key, lambda a: a.open("owner"))).ok
    if balance:
        assert (await handler.execute(key, lambda a: a.deposit(balance))).ok


async def wait_for(cond: Callable[[], bool]) -> None:
    for _ in range(10_000):
        if cond():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


def deposit(ref: str, amount: int = 1) -> Callable[[Account], Decision[Decimal]]:
    return lambda a: Decision([Deposited(amount=Decimal(amount), ref=ref)], result=a.balance)


async def stored_refs(store: EventStore, stream: str = "account:a") -> list[str]:
    return [e.data["ref"] for e in await store.read(stream) if "ref" in e.data]


# -- hundreds of tasks: invariant, exactly one outcome each, same outcomes batched or not ----------


@pytest.mark.parametrize("batching", [True, False])
async def test_never_overdrawn_under_hundreds_of_concurrent_withdrawals(
    any_store: EventStore, batching: bool
) -> None:
    store = YieldingStore(any_store)
    h = CommandHandler(store, Account, batching=batching, max_attempts=1000, backoff=0)
    await open_account(h, "a", 100)
    rng = random.Random(7)
    amounts = [rng.randint(1, 5) for _ in range(200)]
    outcomes = await asyncio.gather(
        *(h.execute("a", lambda a, n=n: a.withdraw(n)) for n in amounts)
    )
    assert len(outcomes) == len(amounts) and all(isinstance(o, Outcome) for o in outcomes)
    paid = sum(n for n, o in zip(amounts, outcomes, strict=True) if o.ok)
    final = await h.load("a")
    assert final.balance == 100 - paid >= 0
    assert all(o.rejection.detail < n for n, o in zip(amounts, outcomes, strict=True) if not o.ok)
    # Replaying the stream never goes below zero at any point.
    balance = Decimal(0)
    for e in (await any_store.read("account:a"))[1:]:
        balance += Decimal(e.data["amount"]) * (1 if e.type == "account.deposited" else -1)
        assert balance >= 0
    # Every committed outcome's seqs hold exactly its events.
    seqs = [
        s
        for o in outcomes
        if o.committed
        for s in range(o.committed.first_seq, o.committed.last_seq + 1)
    ]
    assert sorted(seqs) == list(range(3, await any_store.last_seq("account:a") + 1))
    appends = len(store.appends) - 2
    if batching:
        assert appends < len(amounts) // 4  # many commands per append
    else:
        assert appends >= sum(o.ok for o in outcomes)


async def test_batched_and_unbatched_give_the_same_outcomes(any_store: EventStore) -> None:
    results: dict[bool, Counter[Any]] = {}
    for batching in (True, False):
        store = YieldingStore(any_store)
        h = CommandHandler(store, Account, batching=batching, max_attempts=1000, backoff=0)
        key = f"b{batching}"
        await open_account(h, key, 60)
        outcomes = await asyncio.gather(
            *(h.execute(key, lambda a: a.withdraw(1)) for _ in range(150))
        )
        results[batching] = Counter((o.ok, o.result, o.rejection, len(o.events)) for o in outcomes)
    assert results[True] == results[False]
    assert sum(n for (ok, *_), n in results[True].items() if ok) == 60


async def test_batched_outcomes_are_those_of_running_in_issue_order(any_store: EventStore) -> None:
    store = YieldingStore(any_store)
    h = CommandHandler(store, Inventory, max_batch=16)
    assert (await h.execute("w", lambda i: [Restocked(sku="x", qty=40)])).ok
    wants = [(i % 4) + 1 for i in range(120)]
    outcomes = await asyncio.gather(
        *(
            h.execute("w", lambda inv, i=i, q=q: inv.reserve("x", q, f"o{i}"))
            for i, q in enumerate(wants)
        )
    )
    stock, expected = 40, []
    for q in wants:  # the same commands, one at a time, in the order they were issued
        if q <= stock:
            stock -= q
            expected.append((True, stock))
        else:
            expected.append((False, stock))
    got = [(o.ok, o.result if o.ok else o.rejection.detail) for o in outcomes]  # type: ignore[union-attr]
    assert got == expected
    assert max(n for _, _, n in store.appends) > 1


# -- one batch, seen closely -------------------------------------------------------------------


async def start_batch(
    h: CommandHandler[Account], gate: GateStore, decides: list[Callable[[Account], Any]]
) -> tuple[asyncio.Task[Any], list[asyncio.Task[Any]]]:
    """A first command held at the gate, then ``decides`` queued behind it."""
    first = asyncio.create_task(h.execute("a", deposit("first")))
    await wait_for(lambda: gate.waiting == 1)
    queued = [asyncio.create_task(h.execute("a", d)) for d in decides]
    await asyncio.sleep(0)
    return first, queued


async def test_queued_commands_go_out_in_one_append_each_with_its_outcome(
    any_store: EventStore,
) -> None:
    gate = GateStore(any_store)
    gate.open.set()
    h = CommandHandler(gate, Account)
    await open_account(h, "a")
    gate.open = asyncio.Event()  # type: ignore[assignment]
    gate.appends.clear()
    first, queued = await start_batch(h, gate, [deposit(f"q{i}", i + 1) for i in range(5)])
    gate.open.set()
    await first
    outs = [await t for t in queued]
    assert [n for _, _, n in gate.appends] == [1, 5]
    # Each decision saw the events of the ones before it in the batch.
    assert [o.result for o in outs] == [1, 2, 4, 7, 11]
    for i, o in enumerate(outs):
        assert o.committed is not None and o.committed.first_seq == o.committed.last_seq == 3 + i
        assert o.attempts == 1 and o.events == [Deposited(amount=Decimal(i + 1), ref=f"q{i}")]
    assert len({o.committed.checkpoint for o in outs if o.committed}) == 1
    assert await stored_refs(any_store) == ["first", "q0", "q1", "q2", "q3", "q4"]
    assert (await h.load("a")).balance == 16
    assert not h._lanes


async def test_a_decision_that_raises_fails_only_its_caller(any_store: EventStore) -> None:
    gate = GateStore(any_store)
    h = CommandHandler(gate, Account)

    def boom(a: Account) -> list[Event]:
        raise ZeroDivisionError

    first, queued = await start_batch(
        h,
        gate,
        [deposit("q0"), boom, lambda a: 42, deposit("q3"), lambda a: Rejection("no")],  # type: ignore[list-item]
    )
    gate.open.set()
    await first
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert isinstance(results[0], Outcome) and results[0].ok
    assert isinstance(results[1], ZeroDivisionError)
    assert type(results[2]).__name__ == "AggregateError"
    assert isinstance(results[3], Outcome) and results[3].result == 2
    assert isinstance(results[4], Outcome) and results[4].rejection == Rejection("no")
    assert await stored_refs(any_store) == ["first", "q0", "q3"]
    assert [n for _, _, n in gate.appends] == [1, 2]


async def test_max_batch_bounds_an_append(any_store: EventStore) -> None:
    gate = GateStore(any_store)
    h = CommandHandler(gate, Account, max_batch=3)
    first, queued = await start_batch(h, gate, [deposit(f"q{i}") for i in range(10)])
    gate.open.set()
    await asyncio.gather(first, *queued)
    assert [n for _, _, n in gate.appends] == [1, 3, 3, 3, 1]
    assert await stored_refs(any_store) == ["first"] + [f"q{i}" for i in range(10)]


async def test_batching_off_appends_once_per_command(any_store: EventStore) -> None:
    gate = GateStore(any_store)
    h = CommandHandler(gate, Account, batching=False)
    first, queued = await start_batch(h, gate, [deposit(f"q{i}") for i in range(4)])
    gate.open.set()
    outs = await asyncio.gather(first, *queued)
    assert all(n == 1 for _, _, n in gate.appends)
    assert sorted(await stored_refs(any_store)) == sorted(["first"] + [f"q{i}" for i in range(4)])
    assert {o.committed.last_seq for o in outs} == set(range(1, 6))


async def test_a_conflicting_batch_is_decided_again_as_a_whole(any_store: EventStore) -> None:
    gate = GateStore(any_store)
    racing = RacingStore(
        gate,
        races=0,
        foreign=lambda: Account.registry.encode(Deposited(amount=Decimal(100), ref="other")),
    )
    h = CommandHandler(racing, Account)
    first, queued = await start_batch(h, gate, [deposit(f"q{i}") for i in range(3)])
    racing.races = 1  # another process writes just before the batch's append
    gate.open.set()
    await first
    outs = [await t for t in queued]
    assert [o.attempts for o in outs] == [2, 2, 2]
    assert [o.result for o in outs] == [101, 102, 103]  # decided again on the other write
    assert await stored_refs(any_store) == ["first", "other", "q0", "q1", "q2"]


async def test_retries_are_bounded_per_command_in_a_batch(any_store: EventStore) -> None:
    gate = GateStore(any_store)
    racing = RacingStore(
        gate,
        races=0,
        foreign=lambda: Account.registry.encode(Deposited(amount=Decimal(1), ref="other")),
    )
    h = CommandHandler(racing, Account, max_attempts=2, backoff=0)
    first, queued = await start_batch(h, gate, [deposit(f"q{i}") for i in range(3)])
    racing.races = 1000
    gate.open.set()
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert (await first).ok  # it had passed the other writer before it started racing
    assert all(isinstance(r, RetriesExhaustedError) and r.attempts == 2 for r in results)  # type: ignore[attr-defined]
    assert set(await stored_refs(any_store)) == {"first", "other"}
    assert not h._lanes


@pytest.mark.parametrize("commit_first", [True, False])
async def test_a_batch_with_an_unknown_outcome_is_re_sent_whole(
    any_store: EventStore, commit_first: bool
) -> None:
    gate = GateStore(any_store)
    lossy = LostReplyStore(gate, losses=0, commit_first=commit_first)
    h = CommandHandler(lossy, Account, backoff=0)
    first, queued = await start_batch(h, gate, [deposit(f"q{i}") for i in range(4)])
    lossy.losses = 1
    gate.open.set()
    outs = await asyncio.gather(first, *queued)
    assert [o.committed.first_seq for o in outs] == [1, 2, 3, 4, 5]
    assert await stored_refs(any_store) == ["first"] + [f"q{i}" for i in range(4)]
    batch_sends = [s for s in lossy.sent if len(s) == 4]
    assert len(batch_sends) == 2 and [e.id for e in batch_sends[0]] == [
        e.id for e in batch_sends[1]
    ]


# -- cancellation ---------------------------------------------------------------------------


async def test_callers_cancelled_while_queued_leave_cleanly(any_store: EventStore) -> None:
    gate = GateStore(any_store)
    h = CommandHandler(gate, Account)
    first, queued = await start_batch(h, gate, [deposit(f"q{i}") for i in range(6)])
    queued[1].cancel()
    queued[4].cancel()
    await asyncio.sleep(0)
    gate.open.set()
    results = await asyncio.gather(first, *queued, return_exceptions=True)
    assert isinstance(results[2], asyncio.CancelledError)
    assert isinstance(results[5], asyncio.CancelledError)
    assert await stored_refs(any_store) == ["first", "q0", "q2", "q3", "q5"]
    assert [n for _, _, n in gate.appends] == [1, 4]
    assert not h._lanes
    assert (await h.execute("a", deposit("after"))).committed.last_seq == 6  # type: ignore[union-attr]


async def test_cancelling_the_first_caller_at_the_gate_hands_over(any_store: EventStore) -> None:
    gate = GateStore(any_store)
    h = CommandHandler(gate, Account)
    first, queued = await start_batch(h, gate, [deposit(f"q{i}") for i in range(3)])
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    gate.open.set()
    outs = await asyncio.gather(*queued)
    refs = await stored_refs(any_store)
    # The first append never reached the store, or was re-sent by the next driver: once either way.
    assert refs.count("first") <= 1 and [r for r in refs if r != "first"] == ["q0", "q1", "q2"]
    assert all(o.ok and o.committed for o in outs)
    assert not h._lanes


@pytest.mark.parametrize("after", [False, True], ids=["before-store", "after-store"])
async def test_cancelling_the_driver_mid_append_leaves_others_with_real_outcomes(
    any_store: EventStore, after: bool
) -> None:
    gate = GateStore(any_store, after=after)
    h = CommandHandler(gate, Account)
    first, queued = await start_batch(h, gate, [deposit(f"q{i}") for i in range(4)])
    # Let the first append through; the batch of four, driven by q0, stops at the next gate.
    gate.open.set()
    gate.open = asyncio.Event()  # type: ignore[assignment]
    await first
    await wait_for(lambda: gate.waiting == 1)
    queued[0].cancel()  # the driver of the batch in flight
    with pytest.raises(asyncio.CancelledError):
        await queued[0]
    gate.open.set()
    outs = await asyncio.gather(*queued[1:])
    # The batch was settled by re-sending the same events: whole, exactly once.
    assert await stored_refs(any_store) == ["first", "q0", "q1", "q2", "q3"]
    assert [o.committed.first_seq for o in outs] == [3, 4, 5]  # type: ignore[union-attr]
    assert [o.result for o in outs] == [2, 3, 4]
    assert not h._lanes


async def test_random_cancellations_never_leave_a_stream_stuck(any_store: EventStore) -> None:
    store = YieldingStore(any_store)
    h = CommandHandler(store, Inventory, max_batch=8)
    assert (await h.execute("w", lambda i: [Restocked(sku="x", qty=300)])).ok
    rng = random.Random(11)
    tasks = [
        asyncio.create_task(h.execute("w", lambda inv, i=i: inv.reserve("x", 1, f"o{i}")))
        for i in range(200)
    ]
    for _ in range(60):
        await asyncio.sleep(0)
        rng.choice(tasks).cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        assert isinstance(r, (Outcome, asyncio.CancelledError)), r
    oks = [r for r in results if isinstance(r, Outcome) and r.ok]
    assert oks and any(isinstance(r, asyncio.CancelledError) for r in results)
    stored = [e for e in await any_store.read("inventory:w") if e.type == Reserved.event_type]
    orders = [e.data["order"] for e in stored]
    assert len(orders) == len(set(orders)) <= 200
    # Every caller told "reserved" really is in the stream; the cancelled may or may not be.
    assert {o.events[0].order for o in oks} <= set(orders)  # type: ignore[attr-defined]
    assert not h._lanes
    final = await h.execute("w", lambda inv: inv.reserve("x", 1, "final"))
    assert final.ok and (await h.load("w")).stock["x"] == 300 - len(orders) - 1
