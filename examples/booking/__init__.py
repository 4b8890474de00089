"""Capacity-safe booking, built on evsrc: the worked example and its app.

>>> svc = BookingService(store)
>>> r = await svc.book("yoga-0900", capacity=12, actor="ann")
>>> r.status, r.seat
(<BookingStatus.BOOKED: 'booked'>, 1)

Run ``python -m examples.booking --help`` for the command line (a race demo,
book / cancel / roster / schedule, ``forget`` to forget a person,
``serve`` for the HTTP API and its page, ``token`` for bearer tokens). See
``docs/booking.md``, and ``docs/lifecycle.md`` for forgetting.
"""

from examples.booking.domain import (
    MAX_ACTOR_LENGTH as MAX_ACTOR_LENGTH,
    MAX_CAPACITY as MAX_CAPACITY,
    MAX_OCCURRENCE_LENGTH as MAX_OCCURRENCE_LENGTH,
    AlreadyScheduledError as AlreadyScheduledError,
    Booked as Booked,
    BookingError as BookingError,
    BookingResult as BookingResult,
    BookingStatus as BookingStatus,
    Cancelled as Cancelled,
    CancelResult as CancelResult,
    CancelStatus as CancelStatus,
    CapacityMismatchError as CapacityMismatchError,
    InvalidBookingError as InvalidBookingError,
    NotScheduledError as NotScheduledError,
    Occurrence as Occurrence,
    Promoted as Promoted,
    Scheduled as Scheduled,
    ScheduleResult as ScheduleResult,
    Waitlisted as Waitlisted,
    seat_of as seat_of,
)
from examples.booking.service import BookingService as BookingService

__all__ = [
    "MAX_ACTOR_LENGTH",
    "MAX_CAPACITY",
    "MAX_OCCURRENCE_LENGTH",
    "AlreadyScheduledError",
    "Booked",
    "BookingError",
    "BookingResult",
    "BookingService",
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
    "seat_of",
]
