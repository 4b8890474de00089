"""The command handler: observe → decide → append_expect → retry, on every backend."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from evsrc import (
    AggregateError,
    CommandHandler,
    Conflict,
    Decision,
    InvalidInputError,
    NewEvent,
    Outcome,
    OutcomeUnknownError,
    Rejection,
    RetriesExhaustedError,
    RetryPolicy,
    StoreUnavailableError,
    UnknownEventTypeError,
)
from evsrc.memory import InMemoryEventStore
from evsrc.testing.stores import LostReplyStore, ProxyStore, RacingStore

from .domain import Account, Deposited, Opened, Restocked

if TYPE_CHECKING:
    from evsrc.models import Event
    from evsrc.records import RecordedEvent
    from evsrc.store import EventStore


def foreign_deposit() -> NewEvent:
    return Account.registry.encode(Deposited(amount=Decimal(1), ref="foreign"))


async def open_account(handler: CommandHandler[Account], key: str, balance: int = 0) -> None:
    assert (await handler.execute(key, lambda a: a.open("owner"))).ok
    if balance:
        assert (await handler.execute(key, lambda a: a.deposit(balance))).ok


async def test_execute_commits_and_reports(any_store: EventStore) -> None:
    h = CommandHandler(any_store, Account)
    out = await h.execute("a", lambda a: a.open("ann"), metadata={"by": "test"})
    assert isinstance(out, Outcome) and out.ok
    assert (out.stream, out.attempts, out.events, out.result) == (
        "account:a",
        1,
        [Opened(owner="ann")],
        None,
    )
    assert out.committed is not None
    assert (out.committed.first_seq, out.committed.last_seq) == (1, 1)
    out2 = await h.execute("a", lambda a: a.deposit(10))
    assert out2.result == 10 and out2.committed is not None and out2.committed.first_seq == 2
    assert out2.committed.checkpoint > out.committed.checkpoint
    stored = await any_store.read("account:a")
    assert [e.type for e in stored] == ["account.opened", "account.deposited"]
    # The handler adds the correlation and causation ids (tests/reactions/test_correlation.py).
    assert stored[0].metadata["by"] == "test"
    assert stored[1].data == {"amount": "10", "ref": ""}
    state = await h.load("a")
    assert (state.owner, state.balance, state.seq) == ("ann", 10, 2)


async def test_a_rejection_is_an_outcome_and_writes_nothing(any_store: EventStore) -> None:
    h = CommandHandler(any_store, Account)
    await open_account(h, "a", 5)
    out = await h.execute("a", lambda a: a.withdraw(6))
    assert not out.ok and out.rejection == Rejection("insufficient funds", Decimal(5))
    assert (out.events, out.committed, out.attempts) == ([], None, 1)
    assert await any_store.last_seq("account:a") == 2


async def test_an_empty_decision_is_a_no_op(any_store: EventStore) -> None:
    h = CommandHandler(any_store, Account)
    out = await h.execute("a", lambda a: Decision([], result="nothing to do"))
    assert out.ok and out.result == "nothing to do" and out.committed is None
    assert await any_store.last_seq("account:a") == 0


async def test_multi_event_decisions_commit_together(any_store: EventStore) -> None:
    h = CommandHandler(any_store, Account)
    out = await h.execute(
        "a", lambda a: [Opened(owner="x"), Deposited(amount=Decimal(3)), Deposited(amount=2)]
    )
    assert out.committed is not None
    assert (out.committed.first_seq, out.committed.last_seq) == (1, 3)
    assert (await h.load("a")).balance == 5


@pytest.mark.parametrize("cache", [True, False])
async def test_a_conflict_re_observes_and_decides_again(any_store: EventStore, cache: bool) -> None:
    racing = RacingStore(any_store, races=0, foreign=foreign_deposit)
    h = CommandHandler(racing, Account, cache=cache)
    await open_account(h, "a", 10)
    racing.races = 3
    seen: list[Decimal] = []

    def withdraw_all(a: Account) -> Decision[Decimal] | Rejection:
        seen.append(a.balance)
        return a.withdraw(a.balance)

    out = await h.execute("a", withdraw_all)
    assert out.attempts == 4
    assert seen == [10, 11, 12, 13]  # each attempt saw the other writer's deposit
    assert out.result == 0 and (await h.load("a")).balance == 0
    assert await any_store.last_seq("account:a") == 6


async def test_retries_are_bounded(any_store: EventStore) -> None:
    racing = RacingStore(any_store, races=0, foreign=foreign_deposit)
    h = CommandHandler(racing, Account, max_attempts=3, backoff=0)
    await open_account(h, "a")
    racing.races = 100
    with pytest.raises(RetriesExhaustedError) as info:
        await h.execute("a", lambda a: a.deposit(1))
    assert (info.value.stream, info.value.attempts) == ("account:a", 3)  # type: ignore[attr-defined]
    # Only the other writer's events landed.
    stored = await any_store.read("account:a", after=1)
    assert [e.data["ref"] for e in stored] == ["foreign"] * 3


async def test_a_retry_policy_bounds_attempts(any_store: EventStore) -> None:
    racing = RacingStore(any_store, races=0, foreign=foreign_deposit)
    h = CommandHandler(racing, Account, retry=RetryPolicy(max_attempts=2, backoff=0))
    assert h.retry == RetryPolicy(max_attempts=2, backoff=0)
    await open_account(h, "a")
    racing.races = 100
    with pytest.raises(RetriesExhaustedError) as info:
        await h.execute("a", lambda a: a.deposit(1))
    assert info.value.attempts == 2  # type: ignore[attr-defined]


def test_retry_policy_checks_its_fields_and_keywords_override_it() -> None:
    from evsrc.memory import InMemoryEventStore

    for kwargs in (
        {"max_attempts": 0},
        {"max_attempts": True},
        {"backoff": -1},
        {"max_backoff": float("nan")},
        {"unknown_retries": -1},
    ):
        with pytest.raises(InvalidInputError):
            RetryPolicy(**kwargs)  # type: ignore[arg-type]
    base = RetryPolicy(max_attempts=5, backoff=0.5)
    h = CommandHandler(InMemoryEventStore(), Account, retry=base, unknown_retries=7)
    assert h.retry == RetryPolicy(max_attempts=5, backoff=0.5, unknown_retries=7)
    assert CommandHandler(InMemoryEventStore(), Account).retry == RetryPolicy()
    with pytest.raises(InvalidInputError):
        CommandHandler(InMemoryEventStore(), Account, retry={"max_attempts": 3})  # type: ignore[arg-type]
    pauses = [RetryPolicy(backoff=0.01, max_backoff=0.02).pause(n) for n in range(1, 50)]
    assert all(0 <= p <= 0.02 for p in pauses) and max(pauses) > 0.01


@pytest.mark.parametrize("commit_first", [True, False])
async def test_an_unknown_outcome_re_sends_the_same_events(
    any_store: EventStore, commit_first: bool
) -> None:
    lossy = LostReplyStore(any_store, losses=0, commit_first=commit_first)
    h = CommandHandler(lossy, Account, backoff=0)
    await open_account(h, "a")
    lossy.losses = 2
    lossy.sent.clear()
    out = await h.execute("a", lambda a: a.deposit(7))
    assert out.attempts == 1 and out.result == 7
    assert len(lossy.sent) == 3
    assert len({tuple(e.id for e in sent) for sent in lossy.sent}) == 1  # the same ids each time
    stored = await any_store.read("account:a")
    assert len(stored) == 2 and stored[1].id == lossy.sent[0][0].id  # exactly once


async def test_an_unknown_outcome_is_raised_past_its_bound(any_store: EventStore) -> None:
    lossy = LostReplyStore(any_store, losses=100, commit_first=False)
    h = CommandHandler(lossy, Account, backoff=0, unknown_retries=2)
    with pytest.raises(OutcomeUnknownError):
        await h.execute("a", lambda a: a.open("x"))
    assert len(lossy.sent) == 3
    assert await any_store.last_seq("account:a") == 0


class _UnreadableStore(ProxyStore):
    """Its first ``failures`` reads raise ``StoreUnavailableError``."""

    def __init__(self, inner: EventStore, failures: int) -> None:
        super().__init__(inner)
        self.failures = failures

    async def read(
        self, stream: str, *, after: int = 0, limit: int | None = None, backwards: bool = False
    ) -> list[RecordedEvent]:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailableError("down for a moment")
        return await super().read(stream, after=after, limit=limit, backwards=backwards)


@pytest.mark.parametrize("failures", [1, 2, 3])
async def test_an_unavailable_read_is_retried_up_to_its_bound(failures: int) -> None:
    store = _UnreadableStore(InMemoryEventStore(), 0)
    h = CommandHandler(store, Account, backoff=0, unknown_retries=2)
    await open_account(h, "a")
    h.forget()
    store.failures = failures
    if failures > 2:
        with pytest.raises(StoreUnavailableError, match="down for a moment"):
            await h.load("a")
        assert store.failures == 0  # the first try and two retries
    else:
        assert (await h.load("a")).seq == 1
        assert store.failures == 0


async def test_decide_errors_reach_the_caller(any_store: EventStore) -> None:
    h = CommandHandler(any_store, Account)

    def boom(a: Account) -> list[Event]:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await h.execute("a", boom)
    with pytest.raises(AggregateError, match="must return"):
        await h.execute("a", lambda a: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(UnknownEventTypeError):
        await h.execute("a", lambda a: [Restocked(sku="x", qty=1)])  # not an Account event
    assert await any_store.last_seq("account:a") == 0


async def test_attempt_is_one_try_against_an_observed_state(any_store: EventStore) -> None:
    h = CommandHandler(any_store, Account)
    await open_account(h, "a", 10)
    seen = await h.load("a")
    first = await h.attempt("a", lambda a: a.withdraw(10), seen, seen.seq)
    assert isinstance(first, Outcome) and first.attempts == 1 and first.result == 0
    second = await h.attempt("a", lambda a: a.withdraw(10), seen, seen.seq)
    assert second == Conflict("account:a", 2, 3)
    assert (await h.load("a")).balance == 0
    rejected = await h.attempt("a", lambda a: a.withdraw(1), await h.load("a"), 3)
    assert isinstance(rejected, Outcome) and rejected.rejection is not None
    with pytest.raises(InvalidInputError):
        await h.attempt("a", lambda a: [], seen, -1)


@pytest.mark.parametrize("optimistic", [False, True])
async def test_warm_cache_reads_only_new_events(any_store: EventStore, optimistic: bool) -> None:
    counting = ProxyStore(any_store)
    h = CommandHandler(counting, Account, optimistic=optimistic)
    await open_account(h, "a")
    for _ in range(20):
        await h.execute("a", lambda a: a.deposit(1))
    counting.events_read = 0
    counting.reads = 0
    out = await h.execute("a", lambda a: a.deposit(1))
    # Own appends were folded directly: a catch-up read finds nothing new, and an
    # optimistic handler does not even read — append_expect confirms the state.
    assert (counting.reads, counting.events_read) == (0 if optimistic else 1, 0)
    assert out.attempts == 1
    await any_store.append("account:a", [foreign_deposit(), foreign_deposit()])
    counting.events_read = 0
    out = await h.execute("a", lambda a: a.deposit(1))
    assert counting.events_read == 2 and out.result == 24
    # Optimistic: the stale first try conflicted, the second (caught up) landed.
    assert out.attempts == (2 if optimistic else 1)


async def test_optimistic_rejection_is_confirmed_by_a_read(any_store: EventStore) -> None:
    """A "no" decided on unread cached state is never returned without catching up."""
    h = CommandHandler(any_store, Account)
    await open_account(h, "a", 5)
    assert (await h.execute("a", lambda a: a.withdraw(5))).ok
    # Another process deposits; this handler's cache still says the balance is 0.
    await any_store.append("account:a", [foreign_deposit()])
    out = await h.execute("a", lambda a: a.withdraw(1))
    assert out.ok and out.rejection is None and out.attempts == 1


async def test_optimistic_rejection_on_current_state_is_decided_once(any_store: EventStore) -> None:
    """When the confirming read finds nothing new, the "no" stands without a second decision."""
    counting = ProxyStore(any_store)
    h = CommandHandler(counting, Account)
    await open_account(h, "a", 2)
    calls: list[int] = []

    def too_much(a: Account) -> Decision[Decimal] | Rejection:
        calls.append(a.seq)
        return a.withdraw(5)

    counting.reads = 0
    out = await h.execute("a", too_much)
    assert out.rejection is not None and out.attempts == 1
    assert calls == [2]  # decided once
    assert counting.reads == 1  # and confirmed by one read


async def test_optimistic_decision_error_is_decided_again(any_store: EventStore) -> None:
    h = CommandHandler(any_store, Account)
    await open_account(h, "a", 1)
    await any_store.append("account:a", [foreign_deposit()])
    calls: list[int] = []

    def picky(a: Account) -> Decision[Decimal] | Rejection:
        calls.append(a.seq)
        if a.seq < 3:  # only valid on the caught-up state
            msg = "stale"
            raise RuntimeError(msg)
        return a.deposit(1)

    out = await h.execute("a", picky)
    assert out.ok and out.attempts == 1
    assert calls == [2, 3]


async def test_load_returns_a_copy(any_store: EventStore) -> None:
    h = CommandHandler(any_store, Account)
    await open_account(h, "a", 3)
    got = await h.load("a")
    got.balance = Decimal(1000)
    assert (await h.load("a")).balance == 3


async def test_cache_is_bounded_and_forgettable(any_store: EventStore) -> None:
    counting = ProxyStore(any_store)
    h = CommandHandler(counting, Account, cache_size=2)
    for key in "abc":
        await open_account(h, key, 1)
    counting.events_read = 0
    await h.load("a")  # evicted: replayed from the start
    assert counting.events_read == 2
    counting.events_read = 0
    await h.load("a")
    assert counting.events_read == 0
    h.forget("a")
    await h.load("a")
    assert counting.events_read == 2
    h.forget()
    assert (await h.load("b")).balance == 1


async def test_a_fold_that_fails_is_an_aggregate_error_and_is_not_cached(
    any_store: EventStore,
) -> None:
    class Fragile(Account):
        def _deposited(self, e: Deposited) -> None:  # not re-marked: the parent's mark applies
            if e.ref == "poison":
                raise ValueError("cannot fold")
            super()._deposited(e)

    h = CommandHandler(any_store, Fragile)
    await open_account(h, "a", 1)  # type: ignore[arg-type]
    await any_store.append(
        "account:a", [Account.registry.encode(Deposited(amount=Decimal(1), ref="poison"))]
    )
    for _ in range(2):
        with pytest.raises(AggregateError, match="failed to apply"):
            await h.execute("a", lambda a: a.deposit(1))


def test_constructor_checks_its_arguments() -> None:
    from evsrc.memory import InMemoryEventStore

    store = InMemoryEventStore()
    for kwargs in (
        {"max_attempts": 0},
        {"max_batch": 0},
        {"backoff": -1},
        {"cache_size": 0},
        {"unknown_retries": -1},
        {"max_attempts": True},
    ):
        with pytest.raises(InvalidInputError):
            CommandHandler(store, Account, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        CommandHandler(store, dict)  # type: ignore[type-var]


async def test_metadata_must_be_a_dict(any_store: EventStore) -> None:
    h = CommandHandler(any_store, Account)
    bad: Any = ["x"]
    with pytest.raises(InvalidInputError):
        await h.execute("a", lambda a: a.open("x"), metadata=bad)


async def test_concurrent_catch_ups_never_apply_an_event_twice(any_store: EventStore) -> None:
    from evsrc.testing.stores import YieldingStore

    store = YieldingStore(any_store)
    h = CommandHandler(store, Account, batching=False)
    await open_account(h, "a")
    await h.load("a")  # warm
    for _ in range(5):
        await any_store.append("account:a", [foreign_deposit()])
    # Many tasks read the same five events and fold them into the one cached instance.
    states = await asyncio.gather(*(h.load("a") for _ in range(20)))
    assert {(s.seq, s.balance) for s in states} == {(6, 5)}
    outs = await asyncio.gather(*(h.execute("a", lambda a: a.deposit(1)) for _ in range(20)))
    assert sorted(o.result for o in outs) == list(range(6, 26))
    assert (await h.load("a")).balance == 25
