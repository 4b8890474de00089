"""The booking domain in one import: events, the occurrence aggregate, results and errors.

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

from examples.booking.checks import (
    MAX_ACTOR_LENGTH as MAX_ACTOR_LENGTH,
    MAX_CAPACITY as MAX_CAPACITY,
    MAX_OCCURRENCE_LENGTH as MAX_OCCURRENCE_LENGTH,
    check_actor as check_actor,
    check_capacity as check_capacity,
    check_occurrence as check_occurrence,
    seat_of as seat_of,
)
from examples.booking.errors import (
    AlreadyScheduledError as AlreadyScheduledError,
    BookingError as BookingError,
    CapacityMismatchError as CapacityMismatchError,
    InvalidBookingError as InvalidBookingError,
    NotScheduledError as NotScheduledError,
)
from examples.booking.events import (
    STREAM_PREFIX as STREAM_PREFIX,
    Booked as Booked,
    Cancelled as Cancelled,
    Confirmed as Confirmed,
    Expired as Expired,
    Held as Held,
    Promoted as Promoted,
    Scheduled as Scheduled,
    Waitlisted as Waitlisted,
    registry as registry,
)
from examples.booking.occurrence import Occurrence as Occurrence, Reason as Reason
from examples.booking.results import (
    BookingResult as BookingResult,
    BookingStatus as BookingStatus,
    CancelResult as CancelResult,
    CancelStatus as CancelStatus,
    ConfirmResult as ConfirmResult,
    ConfirmStatus as ConfirmStatus,
    ScheduleResult as ScheduleResult,
)

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
    "ConfirmResult",
    "ConfirmStatus",
    "Confirmed",
    "Expired",
    "Held",
    "InvalidBookingError",
    "NotScheduledError",
    "Occurrence",
    "Promoted",
    "Reason",
    "ScheduleResult",
    "Scheduled",
    "Waitlisted",
    "check_actor",
    "check_capacity",
    "check_occurrence",
    "registry",
    "seat_of",
]
