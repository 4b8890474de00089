"""Aggregates: folding, declarations, decisions, clones."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from evsrc import (
    Aggregate,
    AggregateError,
    Decision,
    Event,
    EventRegistry,
    NewEvent,
    Rejection,
    UnknownEventTypeError,
    applies,
)
from evsrc.aggregate import normalize_decision

from .domain import Account, Deposited, Inventory, Opened, Restocked, Withdrawn

if TYPE_CHECKING:
    from evsrc.store import EventStore


async def test_replay_folds_the_stream(any_store: EventStore) -> None:
    reg = Account.registry
    await any_store.append(
        "account:a",
        [
            reg.encode(Opened(owner="ann")),
            reg.encode(Deposited(amount=Decimal("10.50"))),
            reg.encode(Withdrawn(amount=Decimal(3))),
        ],
    )
    acc = Account.replay(await any_store.read("account:a"))
    assert (acc.owner, acc.balance, acc.seq) == ("ann", Decimal("7.50"), 3)


async def test_fold_skips_what_is_folded_and_refuses_a_gap(any_store: EventStore) -> None:
    reg = Account.registry
    await any_store.append("account:a", [reg.encode(Opened(owner="a"))])
    await any_store.append("account:a", [reg.encode(Deposited(amount=Decimal(1)))])
    await any_store.append("account:a", [reg.encode(Deposited(amount=Decimal(2)))])
    events = await any_store.read("account:a")
    acc = Account()
    assert acc.fold_all(events[:2]) == 2
    assert acc.fold_all(events) == 1  # the first two are skipped, not applied twice
    assert acc.balance == 3
    fresh = Account()
    with pytest.raises(AggregateError, match="missing"):
        fresh.fold(events[1])
    assert fresh.seq == 0 and fresh.owner is None


async def test_an_unregistered_stored_type_is_an_unknown_type(any_store: EventStore) -> None:
    await any_store.append("account:a", [NewEvent(type="account.closed")])
    with pytest.raises(UnknownEventTypeError):
        Account.replay(await any_store.read("account:a"))


def test_an_event_without_a_fold_is_an_error() -> None:
    class Noted(Event, type="noted"):
        text: str

    class Quiet(Aggregate):
        stream_prefix = "quiet"
        registry = EventRegistry(Noted)

    with pytest.raises(AggregateError, match="no @applies"):
        Quiet().apply(Noted(text="x"))


def test_folds_are_inherited_and_overridable() -> None:
    class Audited(Account):
        def __init__(self) -> None:
            super().__init__()
            self.log: list[str] = []

        @applies(Deposited)
        def _deposited(self, e: Deposited) -> None:
            super()._deposited(e)
            self.log.append(f"+{e.amount}")

    a = Audited()
    a.apply_new([Opened(owner="x"), Deposited(amount=Decimal(2))])
    assert (a.seq, a.balance, a.log, a.owner) == (2, 2, ["+2"], "x")


def test_misdeclared_aggregates_are_refused() -> None:
    class Elsewhere(Event, type="elsewhere"):
        pass

    with pytest.raises(AggregateError, match="not registered"):

        class Wrong(Aggregate):
            stream_prefix = "w"
            registry = EventRegistry()

            @applies(Elsewhere)
            def _x(self, e: Elsewhere) -> None:
                pass

    with pytest.raises(AggregateError, match="stream_prefix"):

        class Colon(Aggregate):
            stream_prefix = "a:b"
            registry = EventRegistry()

    with pytest.raises(AggregateError):
        applies(dict)  # type: ignore[arg-type]

    class Nameless(Aggregate):
        pass

    with pytest.raises(AggregateError, match="stream_prefix"):
        Nameless.stream_name("k")
    with pytest.raises(AggregateError, match="registry"):
        Nameless.event_registry()
    with pytest.raises(AggregateError):
        Account.stream_name("")


def test_decisions_do_not_mutate_and_normalize() -> None:
    acc = Account()
    acc.apply_new([Opened(owner="a"), Deposited(amount=Decimal(5))])
    d = acc.withdraw(3)
    assert isinstance(d, Decision) and d.result == 2 and acc.balance == 5
    assert acc.withdraw(6) == Rejection("insufficient funds", Decimal(5))
    assert normalize_decision([Opened(owner="x")]) == ([Opened(owner="x")], None, None)
    assert normalize_decision(d) == (list(d.events), Decimal(2), None)
    assert normalize_decision(Rejection("no")) == ([], None, Rejection("no"))
    for bad in (None, Opened(owner="x"), "events", [1], 5):
        with pytest.raises(AggregateError):
            normalize_decision(bad)


def test_clone_is_independent() -> None:
    inv = Inventory()
    inv.apply_new([Restocked(sku="a", qty=3)])
    copy = inv.clone()
    copy.apply_new([Restocked(sku="a", qty=1)])
    assert (inv.stock, inv.seq) == ({"a": 3}, 1)
    assert (copy.stock, copy.seq) == ({"a": 4}, 2)
    acc = Account()
    acc2 = acc.clone()  # default deepcopy
    acc2.apply_new([Opened(owner="z")])
    assert acc.owner is None
