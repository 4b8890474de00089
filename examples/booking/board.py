"""The seats board: a projection of every occurrence's capacity, roster and waitlist.

A :class:`SeatsBoard` folds the booking events of every ``booking:`` stream,
in global order, into one :class:`~examples.booking.domain.Occurrence` per
occurrence (the same fold the decisions use). The app runs it with an
``evsrc`` ``ProjectionRunner``; the page's live updates (server-sent events)
wait on :meth:`SeatsBoard.changed`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from evsrc.projection import Projector, handles
from examples.booking.domain import (
    STREAM_PREFIX,
    Booked,
    Cancelled,
    Occurrence,
    Promoted,
    Scheduled,
    Waitlisted,
)
from examples.booking.events import Confirmed, Expired, Held

if TYPE_CHECKING:
    from evsrc.models import Event
    from evsrc.records import RecordedEvent

__all__ = ["SeatsBoard"]

_PREFIX = STREAM_PREFIX + ":"


class SeatsBoard(Projector):
    """Every occurrence's state, kept current from the store's events."""

    name: ClassVar[str] = "booking-seats-board"

    def __init__(self) -> None:
        self.occurrences: dict[str, Occurrence] = {}
        #: Bumped on every change; the live feed sends when it moves.
        self.version = 0
        #: Set by :meth:`close`.
        self.closed = False
        self._changed = anyio.Event()

    def wants(self, recorded: RecordedEvent) -> bool:
        """Only the booking streams' events."""
        return recorded.stream.startswith(_PREFIX) and super().wants(recorded)

    @handles(Scheduled, Booked, Waitlisted, Cancelled, Promoted, Held, Confirmed, Expired)
    async def _fold(self, event: Event, recorded: RecordedEvent) -> None:
        key = recorded.stream[len(_PREFIX) :]
        occ = self.occurrences.get(key)
        if occ is None:
            occ = self.occurrences[key] = Occurrence()
        occ.apply(event)
        occ.seq = recorded.seq
        self.version += 1
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def changed(self, since: int) -> int:
        """Wait until the board has moved past version ``since`` (or closed); the new version."""
        while self.version <= since and not self.closed:
            await self._changed.wait()
        return self.version

    def close(self) -> None:
        """Wake every waiter for good: the app is stopping."""
        self.closed = True
        self._changed.set()

    def summary(self, actor: str | None) -> list[dict[str, Any]]:
        """Every occurrence, sorted by name, as seen by ``actor`` (their seat, their place)."""
        out: list[dict[str, Any]] = []
        for key in sorted(self.occurrences):
            occ = self.occurrences[key]
            cap = occ.capacity
            booked = len(occ.roster)
            seat = occ.seat_of(actor) if actor is not None else 0
            place = occ.waitlist.index(actor) + 1 if actor in occ.waitlist else None
            out.append(
                {
                    "occurrence": key,
                    "capacity": cap,
                    "booked": booked,
                    "seats_left": None if cap is None else max(0, cap - booked),
                    "waitlist": len(occ.waitlist),
                    "your_seat": seat or None,
                    "your_waitlist_position": place,
                }
            )
        return out
