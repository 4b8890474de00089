"""evsrc.testing: given/when/then for decisions, and the store doubles."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from evsrc import Aggregate, CommandHandler, Decision, Event, Rejection, StoreClosedError, applies
from evsrc.memory import InMemoryEventStore
from evsrc.testing import DecisionSpec, LatencyStore, ProxyStore, RacingStore, YieldingStore

from .domain import Account, Deposited, Opened, Withdrawn

spec = DecisionSpec(Account)


def test_then_checks_events_results_and_rejections() -> None:
    opened = spec.given(Opened(owner="ann"), Deposited(amount=Decimal(5)))
    opened.when(lambda a: a.withdraw(3)).then(Withdrawn(amount=Decimal(3))).then_result(2)
    opened.when(lambda a: a.withdraw(9)).then_rejected("insufficient funds", detail=Decimal(5))
    spec.given().when(lambda a: a.deposit(1)).then_rejected("not open", detail=None)
    spec.given().when(lambda a: a.open("bob")).then(Opened(owner="bob")).then_result(None)
    spec.given(Opened(owner="a")).when(lambda a: Decision([])).then_nothing()
    spec.given().when(lambda a: 1 / 0).then_raises(ZeroDivisionError, match="division")


@pytest.mark.parametrize(
    "check",
    [
        lambda t: t.then(Withdrawn(amount=Decimal(4))),
        lambda t: t.then(),
        lambda t: t.then_result(3),
        lambda t: t.then_rejected(),
        lambda t: t.then_raises(ValueError),
    ],
)
def test_then_fails_when_the_decision_differs(check: object) -> None:
    t = spec.given(Opened(owner="a"), Deposited(amount=Decimal(5))).when(lambda a: a.withdraw(3))
    with pytest.raises(AssertionError):
        check(t)  # type: ignore[operator]


def test_rejection_mismatches_fail() -> None:
    t = spec.given().when(lambda a: a.withdraw(1))
    with pytest.raises(AssertionError, match="not open"):
        t.then_rejected("insufficient funds")
    with pytest.raises(AssertionError, match="detail"):
        t.then_rejected("not open", detail=3)
    with pytest.raises(AssertionError, match="raised"):
        spec.given().when(lambda a: 1 / 0).then()
    with pytest.raises(AssertionError, match="does not match"):
        spec.given().when(lambda a: 1 / 0).then_raises(ZeroDivisionError, match="nope")


class Bumped(Event, type="kit.bumped"):
    pass


class Stray(Event, type="kit.stray"):
    pass


class Counter(Aggregate):
    stream_prefix = "counter"

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    @applies
    def _bumped(self, e: Bumped) -> None:
        self.n += 1

    def bump_in_place(self) -> list[Event]:
        self.n += 1  # wrong: a decision must not mutate
        return [Bumped()]

    def stray(self) -> list[Event]:
        return [Stray()]  # wrong: not an event this aggregate folds

    def bump(self) -> list[Event] | Rejection[int]:
        return [Bumped()] if self.n < 2 else Rejection("full", self.n)


def test_when_enforces_the_rules_the_handler_relies_on() -> None:
    counters = DecisionSpec(Counter)
    with pytest.raises(AssertionError, match="changed the state"):
        counters.given().when(lambda c: c.bump_in_place())
    with pytest.raises(Exception, match="not registered"):
        counters.given().when(lambda c: c.stray())
    counters.given(Bumped()).when(lambda c: c.bump()).then(Bumped())
    counters.given(Bumped(), Bumped()).when(lambda c: c.bump()).then_rejected("full", detail=2)


async def test_a_proxy_counts_appends_conflicts_and_reads() -> None:
    inner = InMemoryEventStore()
    racing = RacingStore(inner, races=2, foreign=lambda: Counter.registry.encode(Bumped()))
    h = CommandHandler(racing, Counter, batching=False, backoff=0)
    out = await h.execute("c", lambda c: [Bumped()])
    assert out.attempts == 3
    assert [(s, e) for s, e, _ in racing.appends] == [
        ("counter:c", 0),
        ("counter:c", 1),
        ("counter:c", 2),
    ]
    assert racing.conflicts == 2 and racing.reads >= 2 and racing.events_read >= 2
    assert [e.seq async for e in racing.read_all()] == [1, 2, 3]


async def test_latency_makes_concurrent_writers_really_race() -> None:
    slow = LatencyStore(InMemoryEventStore(), 0.002, seed=1, owns_inner=True)
    h = CommandHandler(slow, Counter, batching=False, max_attempts=100, backoff=0)
    outs = await asyncio.gather(*(h.execute(f"k{i % 2}", lambda c: [Bumped()]) for i in range(8)))
    assert slow.conflicts > 0 and max(o.attempts for o in outs) > 1
    assert [await slow.last_seq(f"counter:k{i}") for i in (0, 1)] == [4, 4]
    await slow.close()
    with pytest.raises(StoreClosedError):
        await slow.inner.read("counter:k0")


async def test_a_seeded_yielding_store_is_reproducible() -> None:
    async def trace(seed: int) -> list[int]:
        store = YieldingStore(InMemoryEventStore(), seed=seed)
        order: list[int] = []

        async def writer(i: int) -> None:
            await store.append_expect(f"s{i}", 0, [Counter.registry.encode(Bumped())])
            order.append(i)

        await asyncio.gather(*(writer(i) for i in range(6)))
        return order

    assert await trace(3) == await trace(3)
    assert len({tuple(await trace(s)) for s in range(6)}) > 1


async def test_proxy_leaves_an_unowned_store_open() -> None:
    inner = InMemoryEventStore()
    async with ProxyStore(inner):
        pass
    assert await inner.last_seq("x") == 0
