"""Two small domains built only from evsrc's public API: a bank account and an inventory."""

from __future__ import annotations

from decimal import Decimal

from evsrc import Aggregate, Decision, Event, EventRegistry, Rejection, applies


class Opened(Event, type="account.opened"):
    owner: str


class Deposited(Event, type="account.deposited"):
    amount: Decimal
    ref: str = ""


class Withdrawn(Event, type="account.withdrawn"):
    amount: Decimal
    ref: str = ""


class Account(Aggregate):
    """A bank account that may never be overdrawn."""

    stream_prefix = "account"
    registry = EventRegistry(Opened, Deposited, Withdrawn)

    def __init__(self) -> None:
        super().__init__()
        self.owner: str | None = None
        self.balance = Decimal(0)

    @applies(Opened)
    def _opened(self, e: Opened) -> None:
        self.owner = e.owner

    @applies(Deposited)
    def _deposited(self, e: Deposited) -> None:
        self.balance += e.amount

    @applies(Withdrawn)
    def _withdrawn(self, e: Withdrawn) -> None:
        self.balance -= e.amount

    # decisions
    def open(self, owner: str) -> list[Event] | Rejection:
        if self.owner is not None:
            return Rejection("already open", self.owner)
        return [Opened(owner=owner)]

    def deposit(self, amount: Decimal | int, ref: str = "") -> Decision[Decimal] | Rejection:
        if self.owner is None:
            return Rejection("not open")
        amount = Decimal(amount)
        return Decision([Deposited(amount=amount, ref=ref)], result=self.balance + amount)

    def withdraw(self, amount: Decimal | int, ref: str = "") -> Decision[Decimal] | Rejection:
        amount = Decimal(amount)
        if self.owner is None:
            return Rejection("not open")
        if amount > self.balance:
            return Rejection("insufficient funds", self.balance)
        return Decision([Withdrawn(amount=amount, ref=ref)], result=self.balance - amount)


class Restocked(Event, type="inventory.restocked"):
    sku: str
    qty: int


class Reserved(Event, type="inventory.reserved"):
    sku: str
    qty: int
    order: str


class Inventory(Aggregate):
    """Stock per SKU in one warehouse; stock may never go negative."""

    stream_prefix = "inventory"  # no registry: built from the folds below

    def __init__(self) -> None:
        super().__init__()
        self.stock: dict[str, int] = {}
        self.orders: set[str] = set()

    @applies
    def _restocked(self, e: Restocked) -> None:
        self.stock[e.sku] = self.stock.get(e.sku, 0) + e.qty

    @applies()
    def _reserved(self, e: Reserved) -> None:
        self.stock[e.sku] -= e.qty
        self.orders.add(e.order)

    def clone(self) -> Inventory:
        copy = Inventory()
        copy.seq = self.seq
        copy.stock = dict(self.stock)
        copy.orders = set(self.orders)
        return copy

    def to_snapshot(self) -> dict[str, object]:
        return {"stock": self.stock, "orders": sorted(self.orders)}

    @classmethod
    def from_snapshot(cls, data: dict[str, object]) -> Inventory:
        inv = cls()
        inv.stock = dict(data["stock"])  # type: ignore[call-overload]
        inv.orders = set(data["orders"])  # type: ignore[call-overload]
        return inv

    def reserve(self, sku: str, qty: int, order: str) -> Decision[int] | Rejection:
        if order in self.orders:
            return Decision([], result=self.stock.get(sku, 0))  # idempotent: already reserved
        have = self.stock.get(sku, 0)
        if qty > have:
            return Rejection("out of stock", have)
        return Decision([Reserved(sku=sku, qty=qty, order=order)], result=have - qty)
