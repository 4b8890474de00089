"""An event is declared once: folds take their type from the annotation, registries follow."""

from __future__ import annotations

from decimal import Decimal

import pytest

from evsrc import (
    Aggregate,
    AggregateError,
    CommandHandler,
    Event,
    EventRegistry,
    UnknownEventTypeError,
    applies,
)
from evsrc.memory import InMemoryEventStore

from .domain import Account, Inventory, Reserved, Restocked


class Credited(Event, type="ledger.credited"):
    amount: int


class Debited(Event, type="ledger.debited"):
    amount: int


class Ledger(Aggregate):
    stream_prefix = "ledger"

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.entries = 0

    @applies
    def _moved(self, e: Credited | Debited) -> None:
        self.total += e.amount if isinstance(e, Credited) else -e.amount

    @applies
    def _noted(self, e: Noted) -> None:  # a forward reference: Noted is defined below
        self.entries += 1


class Noted(Event, type="ledger.noted"):
    text: str


def test_registry_is_built_from_the_folds() -> None:
    assert set(Inventory.event_registry()) == {Restocked, Reserved}
    assert Inventory.registry is Inventory.event_registry()
    assert set(Ledger.event_registry()) == {Credited, Debited, Noted}
    led = Ledger()
    led.apply_new([Credited(amount=5), Debited(amount=2), Noted(text="x")])
    assert (led.total, led.entries, led.seq) == (3, 1, 3)


async def test_a_declared_once_aggregate_round_trips_through_a_store() -> None:
    store = InMemoryEventStore()
    h = CommandHandler(store, Ledger)
    out = await h.execute("a", lambda s: [Credited(amount=4), Noted(text="hi")])
    assert out.ok and out.committed is not None and out.committed.last_seq == 2
    stored = await store.read("ledger:a")
    assert [e.type for e in stored] == ["ledger.credited", "ledger.noted"]
    assert Ledger.replay(stored).total == 4
    # an event none of its folds take is refused on encode, before anything is written
    with pytest.raises(UnknownEventTypeError):
        await h.execute("a", lambda s: [Restocked(sku="x", qty=1)])
    assert await store.last_seq("ledger:a") == 2


def test_folds_read_names_local_to_a_function() -> None:
    class Pinged(Event, type="local.pinged"):
        n: int

    class Pings(Aggregate):
        stream_prefix = "pings"

        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        @applies
        def _pinged(self, e: Pinged) -> None:
            self.n += e.n

    p = Pings()
    p.apply_new([Pinged(n=2)])
    assert p.n == 2 and set(Pings.event_registry()) == {Pinged}


def test_an_explicit_registry_stays_possible_and_checked() -> None:
    assert set(Account.event_registry()) >= {Account.registry.model("account.opened")}

    class Elsewhere(Event, type="elsewhere.x"):
        pass

    with pytest.raises(AggregateError, match="not registered"):

        class Wrong(Aggregate):
            stream_prefix = "wrong"
            registry = EventRegistry()

            @applies
            def _x(self, e: Elsewhere) -> None:
                pass


def test_subclass_registry_follows_its_own_folds() -> None:
    class Tagged(Event, type="ledger.tagged"):
        tag: str

    class TaggedLedger(Ledger):
        @applies
        def _tagged(self, e: Tagged) -> None:
            pass

    assert set(TaggedLedger.event_registry()) == {Credited, Debited, Noted, Tagged}
    assert Tagged not in Ledger.event_registry()


def test_misannotated_folds_are_refused() -> None:
    with pytest.raises(AggregateError, match="no annotation"):

        class Bare(Aggregate):
            stream_prefix = "bare"

            @applies
            def _x(self, e) -> None:  # type: ignore[no-untyped-def]
                pass

    with pytest.raises(AggregateError, match="not an Event"):

        class NotEvent(Aggregate):
            stream_prefix = "notevent"

            @applies
            def _x(self, e: int) -> None:
                pass

    with pytest.raises(AggregateError, match=r"\(self, event\)"):

        class NoParam(Aggregate):
            stream_prefix = "noparam"

            @applies
            def _x(self) -> None:
                pass

    class Base(Event):
        """An abstract base of events (no type): a registry cannot be built from it."""

    with pytest.raises(AggregateError, match="explicit registry"):

        class Abstract(Aggregate):
            stream_prefix = "abstract"

            @applies
            def _x(self, e: Base) -> None:
                pass


def test_a_fold_naming_an_undefined_class_fails_on_first_use() -> None:
    class Dangling(Aggregate):
        stream_prefix = "dangling"

        @applies
        def _x(self, e: NeverDefined) -> None:  # type: ignore[name-defined]  # noqa: F821
            pass

    with pytest.raises(AggregateError, match="does not resolve"):
        Dangling.event_registry()


def test_key_of_inverts_stream_name() -> None:
    assert Account.key_of(Account.stream_name("a:b")) == "a:b"
    assert Inventory.key_of("inventory:w1") == "w1"
    for bad in ("account:x", "inventory:", "inventory", "", 5):
        with pytest.raises(AggregateError):
            Inventory.key_of(bad)  # type: ignore[arg-type]


def test_decimal_folds_keep_working_with_explicit_types() -> None:
    acc = Account()
    acc.apply_new([Account.registry.model("account.opened")(owner="o")])
    assert acc.owner == "o" and acc.balance == Decimal(0)


async def test_projectors_take_handled_types_from_annotations() -> None:
    from evsrc import (
        InMemoryCheckpointStore,
        InvalidInputError,
        ProjectionRunner,
        Projector,
        RecordedEvent,
        handles,
    )

    class Totals(Projector):
        name = "totals"

        def __init__(self) -> None:
            self.total = 0
            self.keys: list[str] = []

        @handles
        async def _moved(self, e: Credited | Debited, r: RecordedEvent) -> None:
            self.total += e.amount if isinstance(e, Credited) else -e.amount
            self.keys.append(Ledger.key_of(r.stream))

    assert set(Totals.registry) == {Credited, Debited}
    store = InMemoryEventStore()
    h = CommandHandler(store, Ledger)
    await h.execute("a", lambda s: [Credited(amount=5), Noted(text="skipped"), Debited(amount=1)])
    totals = Totals()
    # The runner reads only the handled types (the filter is pushed to the store).
    assert await ProjectionRunner(store, totals, InMemoryCheckpointStore()).catch_up() == 2
    assert (totals.total, totals.keys) == (4, ["a", "a"])

    with pytest.raises(InvalidInputError, match="not an Event"):

        class Bad(Projector):
            name = "bad"

            @handles
            async def _x(self, e: int, r: RecordedEvent) -> None:
                pass
