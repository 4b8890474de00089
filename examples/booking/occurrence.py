"""The occurrence aggregate: its fold (capacity, roster, waitlist) and its decisions.

Decisions are pure: they read the folded state and return the events to
append plus the caller's result, or a :class:`~evsrc.aggregate.Rejection`
whose reason is a :class:`Reason`.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from evsrc.aggregate import Aggregate, Decision, Rejection, applies
from examples.booking.checks import seat_of
from examples.booking.events import (
    STREAM_PREFIX,
    Booked,
    Cancelled,
    Confirmed,
    Expired,
    Held,
    Promoted,
    Scheduled,
    Waitlisted,
    registry,
)
from examples.booking.results import (
    BookingResult,
    BookingStatus,
    CancelResult,
    CancelStatus,
    ConfirmResult,
    ConfirmStatus,
    ScheduleResult,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Occurrence", "Reason"]


#: The statuses a booking decision answers with. An enum member read through its
#: class (``BookingStatus.FULL``) costs a lookup through the enum's metaclass, about
#: ten times a module global's; ``book`` reads one per call.
_BOOKED: Final = BookingStatus.BOOKED
_ALREADY: Final = BookingStatus.ALREADY
_FULL: Final = BookingStatus.FULL
_WAITLISTED: Final = BookingStatus.WAITLISTED


class Reason(enum.StrEnum):
    """Why a decision said no (a ``Rejection``'s ``reason``)."""

    CAPACITY_MISMATCH = "capacity_mismatch"
    """A capacity was given that disagrees with the scheduled one (detail: both)."""
    NOT_SCHEDULED = "not_scheduled"
    """No capacity given and none scheduled."""
    WAITLIST_NOT_SCHEDULED = "waitlist_not_scheduled"
    """A waitlist needs a scheduled capacity."""
    ALREADY_SCHEDULED = "already_scheduled"
    """Scheduled with another capacity (detail: that capacity)."""
    ROSTER_EXCEEDS_CAPACITY = "roster_exceeds_capacity"
    """More bookings than the capacity asked for (detail: how many)."""


class Occurrence(Aggregate):
    """The state of one occurrence: its capacity (if scheduled), roster and waitlist.

    Invariants the decisions keep (and the tests check on every prefix of
    every stream): ``len(roster) <= capacity``; nobody appears twice across
    roster and waitlist; the waitlist is non-empty only while the roster is full.
    """

    stream_prefix = STREAM_PREFIX
    registry = registry

    def __init__(self) -> None:
        super().__init__()
        self.capacity: int | None = None
        self.roster: list[str] = []
        self.waitlist: list[str] = []
        self._members: set[str] = set()
        #: Actors whose seat is a hold, and when it runs out.
        self.holds: dict[str, datetime] = {}

    @classmethod
    def observed(cls, roster: Sequence[str], seq: int, capacity: int | None) -> Occurrence:
        """A state rebuilt from what a booker observed: ``roster`` at ``seq``."""
        occ = cls()
        occ.capacity = capacity
        occ.roster = list(roster)
        occ._members = set(occ.roster)
        occ.seq = seq
        return occ

    def clone(self) -> Occurrence:
        """A copy to decide a batch against (cheaper than the default deepcopy).

        Once per batch, with the roster's size: each list, set and dict is copied once.
        """
        occ = Occurrence()
        occ.seq = self.seq
        occ.capacity = self.capacity
        occ.roster = self.roster.copy()
        occ.waitlist = self.waitlist.copy()
        occ._members = self._members.copy()
        occ.holds = self.holds.copy()
        return occ

    def to_snapshot(self) -> dict[str, Any]:
        """The state as JSON values: capacity, roster and waitlist."""
        out: dict[str, Any] = {
            "capacity": self.capacity,
            "roster": self.roster,
            "waitlist": self.waitlist,
        }
        if self.holds:
            out["holds"] = {a: t.isoformat() for a, t in self.holds.items()}
        return out

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Occurrence:
        """Rebuild the state from :meth:`to_snapshot` output."""
        occ = cls()
        occ.capacity = data["capacity"]
        occ.roster = list(data["roster"])
        occ.waitlist = list(data["waitlist"])
        occ._members = set(occ.roster) | set(occ.waitlist)
        holds = data.get("holds") or {}
        occ.holds = {a: datetime.fromisoformat(t) for a, t in holds.items()}
        return occ

    # -- fold -----------------------------------------------------------------

    @applies(Scheduled)
    def _scheduled(self, e: Scheduled) -> None:
        self.capacity = e.capacity

    @applies(Booked)
    def _booked(self, e: Booked) -> None:
        self.roster.append(e.actor)
        self._members.add(e.actor)

    @applies(Waitlisted)
    def _waitlisted(self, e: Waitlisted) -> None:
        self.waitlist.append(e.actor)
        self._members.add(e.actor)

    @applies(Cancelled)
    def _cancelled(self, e: Cancelled) -> None:
        self.holds.pop(e.actor, None)
        if e.actor in self.roster:
            self.roster.remove(e.actor)
        elif e.actor in self.waitlist:
            self.waitlist.remove(e.actor)
        self._members.discard(e.actor)

    @applies(Promoted)
    def _promoted(self, e: Promoted) -> None:
        self.waitlist.remove(e.actor)
        self.roster.append(e.actor)

    @applies(Held)
    def _held(self, e: Held) -> None:
        self.roster.append(e.actor)
        self._members.add(e.actor)
        self.holds[e.actor] = e.expires_at

    @applies(Confirmed)
    def _confirmed(self, e: Confirmed) -> None:
        self.holds.pop(e.actor, None)

    @applies(Expired)
    def _expired(self, e: Expired) -> None:
        self.roster.remove(e.actor)
        self._members.discard(e.actor)
        self.holds.pop(e.actor, None)

    # -- queries --------------------------------------------------------------

    def seat_of(self, actor: str) -> int:
        """The actor's 1-based seat; 0 when not booked."""
        return seat_of(self.roster, actor) if actor in self._members else 0

    def effective_capacity(self, given: int | None) -> int | Rejection:
        """The capacity a decision works with: the scheduled one, else ``given``."""
        if self.capacity is not None:
            if given is not None and given != self.capacity:
                return Rejection(Reason.CAPACITY_MISMATCH, (self.capacity, given))
            return self.capacity
        if given is None:
            return Rejection(Reason.NOT_SCHEDULED)
        return given

    # -- decisions ------------------------------------------------------------

    def book(
        self, actor: str, capacity: int | None, *, waitlist: bool = False
    ) -> Decision[BookingResult] | Rejection:
        """Book ``actor``: a seat if one is free, else full (or the waitlist, if asked)."""
        # effective_capacity, inline (a call less per booking).
        cap = self.capacity
        if cap is None:
            if capacity is None:
                return Rejection(Reason.NOT_SCHEDULED)
            cap = capacity
        elif capacity is not None and capacity != cap:
            return Rejection(Reason.CAPACITY_MISMATCH, (cap, capacity))
        if actor in self._members:
            if actor in self.waitlist:
                position = self.waitlist.index(actor) + 1
                return Decision(result=BookingResult(_WAITLISTED, actor, position=position))
            return Decision(result=BookingResult(_ALREADY, actor, seat=self.seat_of(actor)))
        # A non-empty waitlist means the roster is full: waiting people go first.
        if len(self.roster) < cap and not self.waitlist:
            seat = len(self.roster) + 1
            return Decision(
                events=[Booked(actor=actor)],
                result=BookingResult(_BOOKED, actor, seat=seat, capacity=cap),
            )
        if waitlist:
            if self.capacity is None:
                return Rejection(Reason.WAITLIST_NOT_SCHEDULED)
            position = len(self.waitlist) + 1
            return Decision(
                events=[Waitlisted(actor=actor)],
                result=BookingResult(_WAITLISTED, actor, position=position),
            )
        return Decision(result=BookingResult(_FULL, actor, capacity=cap))

    def cancel(self, actor: str) -> Decision[CancelResult]:
        """Cancel ``actor``'s seat (promoting the waitlist's head into it) or waitlist place."""
        if actor in self.waitlist:
            return Decision(
                events=[Cancelled(actor=actor)],
                result=CancelResult(CancelStatus.LEFT_WAITLIST, actor),
            )
        if actor not in self._members:
            return Decision(result=CancelResult(CancelStatus.ABSENT, actor))
        if not self.waitlist:
            return Decision(
                events=[Cancelled(actor=actor)], result=CancelResult(CancelStatus.CANCELLED, actor)
            )
        head = self.waitlist[0]
        # One append: the seat is freed and taken together, so no booker can slip in between.
        return Decision(
            events=[Cancelled(actor=actor), Promoted(actor=head)],
            result=CancelResult(
                CancelStatus.CANCELLED, actor, promoted=head, promoted_seat=len(self.roster)
            ),
        )

    def hold(
        self, actor: str, capacity: int | None, expires_at: datetime
    ) -> Decision[BookingResult] | Rejection:
        """Hold the next free seat for ``actor`` until ``expires_at``, unless confirmed.

        Like :meth:`book` (``already``, ``waitlisted`` or ``full`` when it
        would be), but the seat is ``held``: :meth:`expire` frees it later.
        """
        decided = self.book(actor, capacity)
        if not isinstance(decided, Decision) or not decided.events:
            return decided
        result = decided.result
        assert result is not None
        return Decision(
            events=[Held(actor=actor, expires_at=expires_at)],
            result=BookingResult(
                BookingStatus.HELD,
                actor,
                seat=result.seat,
                capacity=result.capacity,
                expires_at=expires_at,
            ),
        )

    def confirm(self, actor: str) -> Decision[ConfirmResult]:
        """Turn ``actor``'s hold into a booking (``already`` if booked; ``absent`` if none)."""
        if actor in self.holds:
            return Decision(
                events=[Confirmed(actor=actor)],
                result=ConfirmResult(ConfirmStatus.CONFIRMED, actor, self.seat_of(actor)),
            )
        if actor in self._members and actor not in self.waitlist:
            return Decision(result=ConfirmResult(ConfirmStatus.ALREADY, actor, self.seat_of(actor)))
        return Decision(result=ConfirmResult(ConfirmStatus.ABSENT, actor))

    def expire(self, actor: str, expires_at: datetime) -> Decision[CancelResult]:
        """Free ``actor``'s seat if it is still the hold that runs out at ``expires_at``.

        The waitlist's head takes the seat in the same append. A confirmed,
        cancelled or newer hold is left alone (``absent``; nothing written):
        expiring twice is a no-op.
        """
        if self.holds.get(actor) != expires_at:
            return Decision(result=CancelResult(CancelStatus.ABSENT, actor))
        if not self.waitlist:
            return Decision(
                events=[Expired(actor=actor)], result=CancelResult(CancelStatus.CANCELLED, actor)
            )
        head = self.waitlist[0]
        return Decision(
            events=[Expired(actor=actor), Promoted(actor=head)],
            result=CancelResult(
                CancelStatus.CANCELLED, actor, promoted=head, promoted_seat=len(self.roster)
            ),
        )

    def schedule(self, occurrence: str, capacity: int) -> Decision[ScheduleResult] | Rejection:
        """Record the capacity; scheduling again with the same capacity changes nothing."""
        if self.capacity == capacity:
            return Decision(result=ScheduleResult(occurrence, capacity, created=False))
        if self.capacity is not None:
            return Rejection(Reason.ALREADY_SCHEDULED, self.capacity)
        if len(self.roster) > capacity:
            return Rejection(Reason.ROSTER_EXCEEDS_CAPACITY, len(self.roster))
        return Decision(
            events=[Scheduled(capacity=capacity)],
            result=ScheduleResult(occurrence, capacity, created=True),
        )
