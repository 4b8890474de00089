"""The booking domain: its events, the occurrence aggregate, results and errors.

One stream per bookable occurrence, ``booking:<occurrence>``. The stream holds
these events, oldest first:

``scheduled``     ``{"capacity": n}`` — the occurrence's capacity, recorded once
``booking``       ``{"actor": a}``    — ``a`` takes the next seat
``waitlisted``    ``{"actor": a}``    — ``a`` joins the end of the waitlist (only when full)
``cancellation``  ``{"actor": a}``    — ``a`` leaves the roster or the waitlist
``promotion``     ``{"actor": a}``    — the waitlist's head ``a`` takes the seat a
                                        cancellation freed, in the same append

The roster is the stream replayed. Decisions are pure: they read the folded
state and return the events to append plus the caller's result (or a
rejection); the framework's command handler commits them with
``append_expect`` and re-decides on conflict, so the capacity check and the
append are atomic — no lock, no overbooking.

Seat numbers are positions: an actor's seat is their 1-based place on the
current roster (``seat_of``). When someone cancels, everyone booked after
them moves up one seat. See ``docs/booking.md`` for why.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from evsrc.aggregate import Aggregate, Decision, Rejection, applies
from evsrc.codec import Event, EventRegistry
from evsrc.errors import EvsrcError, InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evsrc.events import Checkpoint

__all__ = [
    "MAX_ACTOR_LENGTH",
    "MAX_CAPACITY",
    "MAX_OCCURRENCE_LENGTH",
    "STREAM_PREFIX",
    "AlreadyScheduledError",
    "Booked",
    "BookingError",
    "BookingResult",
    "BookingStatus",
    "CancelResult",
    "CancelStatus",
    "Cancelled",
    "CapacityMismatchError",
    "InvalidBookingError",
    "NotScheduledError",
    "Occurrence",
    "Promoted",
    "ScheduleResult",
    "Scheduled",
    "Waitlisted",
    "check_actor",
    "check_capacity",
    "check_occurrence",
    "seat_of",
]

STREAM_PREFIX: Final = "booking"
#: Longest occurrence name: the store's 255-character stream limit minus ``"booking:"``.
MAX_OCCURRENCE_LENGTH: Final = 255 - len(STREAM_PREFIX) - 1
#: Longest actor name, in characters.
MAX_ACTOR_LENGTH: Final = 200
#: Largest capacity an occurrence may have.
MAX_CAPACITY: Final = 1_000_000


# -- errors -------------------------------------------------------------------


class BookingError(EvsrcError):
    """A booking command was refused; nothing was written."""


class InvalidBookingError(BookingError, InvalidInputError):
    """Invalid booking input (occurrence, actor or capacity); nothing was written."""


class CapacityMismatchError(InvalidBookingError):
    """The capacity given disagrees with the occurrence's scheduled capacity."""

    occurrence: str
    scheduled: int
    given: int

    def __init__(self, *, occurrence: str, scheduled: int, given: int) -> None:
        msg = (
            f"occurrence {occurrence!r} is scheduled with capacity {scheduled}, "
            f"not {given}; omit capacity or pass {scheduled}"
        )
        super().__init__(msg, argument="capacity", value=given)
        self.occurrence = occurrence
        self.scheduled = scheduled
        self.given = given


class NotScheduledError(BookingError):
    """The occurrence has no scheduled capacity and none was given."""

    occurrence: str

    def __init__(self, message: str | None = None, *, occurrence: str) -> None:
        if message is None:
            message = f"occurrence {occurrence!r} is not scheduled; schedule it or pass a capacity"
        super().__init__(message, occurrence=occurrence)


class AlreadyScheduledError(BookingError):
    """The occurrence is already scheduled with another capacity, or holds too many bookings."""

    occurrence: str
    capacity: int | None
    requested: int

    def __init__(self, message: str, *, occurrence: str, capacity: int | None, requested: int):
        super().__init__(message, occurrence=occurrence, capacity=capacity, requested=requested)


# -- input checks ---------------------------------------------------------------


def _check_name(value: object, argument: str, limit: int) -> str:
    if type(value) is not str:
        msg = f"{argument} must be a str, got {type(value).__name__}"
        raise InvalidBookingError(msg, argument=argument, value=value)
    if not value.strip():
        msg = f"{argument} must not be empty or blank"
        raise InvalidBookingError(msg, argument=argument, value=value)
    if len(value) > limit:
        msg = f"{argument} is {len(value)} characters; the limit is {limit}"
        raise InvalidBookingError(msg, argument=argument, value=value)
    if "\x00" in value:
        msg = f"{argument} must not contain NUL characters"
        raise InvalidBookingError(msg, argument=argument, value=value)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            msg = f"{argument} must be valid Unicode text (it holds a lone surrogate)"
            raise InvalidBookingError(msg, argument=argument, value=value) from None
    return value


def check_occurrence(occurrence: object) -> str:
    """Return ``occurrence`` if it is a valid occurrence name, else raise."""
    return _check_name(occurrence, "occurrence", MAX_OCCURRENCE_LENGTH)


def check_actor(actor: object) -> str:
    """Return ``actor`` if it is a valid actor name, else raise ``InvalidBookingError``."""
    return _check_name(actor, "actor", MAX_ACTOR_LENGTH)


def check_capacity(capacity: object) -> int:
    """Return ``capacity`` if it is an int in ``1 … MAX_CAPACITY``, else raise."""
    if type(capacity) is not int or not 1 <= capacity <= MAX_CAPACITY:
        msg = f"capacity must be an int from 1 to {MAX_CAPACITY}, got {capacity!r}"
        raise InvalidBookingError(msg, argument="capacity", value=capacity)
    return capacity


def seat_of(roster: Sequence[str], actor: str) -> int:
    """The actor's 1-based seat on ``roster`` (their position); 0 when absent."""
    try:
        return roster.index(actor) + 1
    except ValueError:
        return 0


# -- events -------------------------------------------------------------------


class Scheduled(Event, type="scheduled", version=1):
    """The occurrence was scheduled with this capacity."""

    capacity: int


class Booked(Event, type="booking", version=1):
    """``actor`` took the next seat."""

    actor: str


class Waitlisted(Event, type="waitlisted", version=1):
    """``actor`` joined the end of the waitlist of a full occurrence."""

    actor: str


class Cancelled(Event, type="cancellation", version=1):
    """``actor`` left the roster (freeing a seat) or the waitlist."""

    actor: str


class Promoted(Event, type="promotion", version=1):
    """The waitlist's head ``actor`` took the seat that a cancellation freed."""

    actor: str


registry = EventRegistry(Scheduled, Booked, Waitlisted, Cancelled, Promoted)


# -- results ------------------------------------------------------------------


class BookingStatus(enum.StrEnum):
    """How a booking attempt ended."""

    BOOKED = "booked"
    """The actor took a seat (``seat``)."""
    ALREADY = "already"
    """The actor already held a seat (``seat``); nothing was written."""
    FULL = "full"
    """No seat left (``capacity``); nothing was written."""
    CONFLICT = "conflict"
    """Only from ``book_with_observed``: the stream moved (``actual``); nothing was written."""
    WAITLISTED = "waitlisted"
    """The occurrence is full; the actor is on the waitlist (``position``)."""


@dataclass(frozen=True, slots=True)
class BookingResult:
    """The outcome of a booking.

    ``seat`` is set for booked / already, ``capacity`` for full (and booked),
    ``actual`` (the stream's last seq) for conflict, ``position`` (1-based
    place on the waitlist) for waitlisted. ``attempts`` is how many
    decide-and-append attempts it took. When the booking was written,
    ``last_seq`` is the seq of its event and ``checkpoint`` that of the append
    that carried it (concurrent bookings batched into one append share it).
    """

    status: BookingStatus
    actor: str
    seat: int | None = None
    capacity: int | None = None
    actual: int | None = None
    position: int | None = None
    attempts: int = 1
    last_seq: int | None = None
    checkpoint: Checkpoint | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON object (``None`` fields left out)."""
        out: dict[str, Any] = {"status": self.status.value, "actor": self.actor}
        for name in ("seat", "capacity", "actual", "position"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


class CancelStatus(enum.StrEnum):
    """How a cancellation ended."""

    CANCELLED = "cancelled"
    """The actor left the roster; if someone was waiting, ``promoted`` took the seat."""
    LEFT_WAITLIST = "left_waitlist"
    """The actor left the waitlist."""
    ABSENT = "absent"
    """The actor was neither booked nor waitlisted; nothing was written."""


@dataclass(frozen=True, slots=True)
class CancelResult:
    """The outcome of a cancellation; ``promoted`` is the waitlisted actor who got the seat."""

    status: CancelStatus
    actor: str
    promoted: str | None = None
    promoted_seat: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON object (``None`` fields left out)."""
        out: dict[str, Any] = {"status": self.status.value, "actor": self.actor}
        if self.promoted is not None:
            out["promoted"] = self.promoted
            out["promoted_seat"] = self.promoted_seat
        return out


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    """The outcome of scheduling: ``created`` is False when it was already scheduled so."""

    occurrence: str
    capacity: int
    created: bool

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON object."""
        return {"occurrence": self.occurrence, "capacity": self.capacity, "created": self.created}


# -- the aggregate ------------------------------------------------------------


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
        """A copy to decide a batch against (cheaper than the default deepcopy)."""
        occ = Occurrence.observed(self.roster, self.seq, self.capacity)
        occ.waitlist = list(self.waitlist)
        occ._members = set(self._members)
        return occ

    def to_snapshot(self) -> dict[str, Any]:
        """The state as JSON values: capacity, roster and waitlist."""
        return {"capacity": self.capacity, "roster": self.roster, "waitlist": self.waitlist}

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Occurrence:
        """Rebuild the state from :meth:`to_snapshot` output."""
        occ = cls()
        occ.capacity = data["capacity"]
        occ.roster = list(data["roster"])
        occ.waitlist = list(data["waitlist"])
        occ._members = set(occ.roster) | set(occ.waitlist)
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
        if e.actor in self.roster:
            self.roster.remove(e.actor)
        elif e.actor in self.waitlist:
            self.waitlist.remove(e.actor)
        self._members.discard(e.actor)

    @applies(Promoted)
    def _promoted(self, e: Promoted) -> None:
        self.waitlist.remove(e.actor)
        self.roster.append(e.actor)

    # -- queries --------------------------------------------------------------

    def seat_of(self, actor: str) -> int:
        """The actor's 1-based seat; 0 when not booked."""
        return seat_of(self.roster, actor) if actor in self._members else 0

    def effective_capacity(self, given: int | None) -> int | Rejection:
        """The capacity a decision works with: the scheduled one, else ``given``."""
        if self.capacity is not None:
            if given is not None and given != self.capacity:
                return Rejection("capacity_mismatch", (self.capacity, given))
            return self.capacity
        if given is None:
            return Rejection("not_scheduled")
        return given

    # -- decisions ------------------------------------------------------------

    def book(
        self, actor: str, capacity: int | None, *, waitlist: bool = False
    ) -> Decision[BookingResult] | Rejection:
        """Book ``actor``: a seat if one is free, else full (or the waitlist, if asked)."""
        cap = self.effective_capacity(capacity)
        if isinstance(cap, Rejection):
            return cap
        if actor in self._members:
            if actor in self.waitlist:
                position = self.waitlist.index(actor) + 1
                return Decision(
                    result=BookingResult(BookingStatus.WAITLISTED, actor, position=position)
                )
            return Decision(
                result=BookingResult(BookingStatus.ALREADY, actor, seat=self.seat_of(actor))
            )
        # A non-empty waitlist means the roster is full: waiting people go first.
        if len(self.roster) < cap and not self.waitlist:
            seat = len(self.roster) + 1
            return Decision(
                events=[Booked(actor=actor)],
                result=BookingResult(BookingStatus.BOOKED, actor, seat=seat, capacity=cap),
            )
        if waitlist:
            if self.capacity is None:
                return Rejection("waitlist_not_scheduled")
            position = len(self.waitlist) + 1
            return Decision(
                events=[Waitlisted(actor=actor)],
                result=BookingResult(BookingStatus.WAITLISTED, actor, position=position),
            )
        return Decision(result=BookingResult(BookingStatus.FULL, actor, capacity=cap))

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

    def schedule(self, occurrence: str, capacity: int) -> Decision[ScheduleResult] | Rejection:
        """Record the capacity; scheduling again with the same capacity changes nothing."""
        if self.capacity == capacity:
            return Decision(result=ScheduleResult(occurrence, capacity, created=False))
        if self.capacity is not None:
            return Rejection("already_scheduled", self.capacity)
        if len(self.roster) > capacity:
            return Rejection("roster_exceeds_capacity", len(self.roster))
        return Decision(
            events=[Scheduled(capacity=capacity)],
            result=ScheduleResult(occurrence, capacity, created=True),
        )
