"""Capacity-safe booking, built on evsrc: the worked example and its app.

>>> svc = BookingService(store)
>>> r = await svc.book("yoga-0900", capacity=12, actor="ann")
>>> r.status, r.seat
(<BookingStatus.BOOKED: 'booked'>, 1)

Run ``python -m examples.booking --help`` for the command line (a race demo,
book / cancel / roster / schedule, and ``serve`` for the HTTP API).
"""

from examples.booking.domain import (
    MAX_ACTOR_LENGTH as MAX_ACTOR_LENGTH,
)
from examples.booking.domain import (
    MAX_CAPACITY as MAX_CAPACITY,
)
from examples.booking.domain import (
    MAX_OCCURRENCE_LENGTH as MAX_OCCURRENCE_LENGTH,
)
from examples.booking.domain import AlreadyScheduledError as AlreadyScheduledError
from examples.booking.domain import Booked as Booked
from examples.booking.domain import BookingError as BookingError
from examples.booking.domain import BookingResult as BookingResult
from examples.booking.domain import BookingStatus as BookingStatus
from examples.booking.domain import Cancelled as Cancelled
from examples.booking.domain import CancelResult as CancelResult
from examples.booking.domain import CancelStatus as CancelStatus
from examples.booking.domain import CapacityMismatchError as CapacityMismatchError
from examples.booking.domain import InvalidBookingError as InvalidBookingError
from examples.booking.domain import NotScheduledError as NotScheduledError
from examples.booking.domain import Occurrence as Occurrence
from examples.booking.domain import Promoted as Promoted
from examples.booking.domain import Scheduled as Scheduled
from examples.booking.domain import ScheduleResult as ScheduleResult
from examples.booking.domain import Waitlisted as Waitlisted
from examples.booking.domain import seat_of as seat_of
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
