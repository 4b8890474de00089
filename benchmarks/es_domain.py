"""The booking rule on ``eventsourcing`` (imported only when the ``bench`` extra is installed).

Module-level classes: ``eventsourcing`` registers each aggregate class under its
topic (module path) once per process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

if TYPE_CHECKING:
    from uuid import UUID

__all__ = ["Bookings", "Occurrence"]


class Occurrence(Aggregate):
    """An occurrence with a capacity and a roster."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.roster: list[str] = []

    @event("Booked")
    def book(self, actor: str) -> None:
        """``actor`` takes the next seat."""
        self.roster.append(actor)


class Bookings(Application):  # type: ignore[type-arg]
    """Book with the library's own optimistic concurrency: retry on ``IntegrityError``."""

    def open(self, capacity: int) -> UUID:
        """A new occurrence."""
        occ = Occurrence(capacity)
        self.save(occ)
        oid: UUID = occ.id
        return oid

    def book(self, occ_id: UUID, actor: str) -> tuple[str, int, int]:
        """(status, attempts, appends issued)."""
        attempts = 0
        while True:
            attempts += 1
            occ: Any = self.repository.get(occ_id)
            if actor in occ.roster:
                return "already", attempts, attempts - 1
            if len(occ.roster) >= occ.capacity:
                return "full", attempts, attempts - 1
            occ.book(actor)
            try:
                self.save(occ)
            except IntegrityError:
                continue
            return "booked", attempts, attempts

    def roster(self, occ_id: UUID) -> list[str]:
        """The booked actors."""
        occ: Any = self.repository.get(occ_id)
        return list(occ.roster)
