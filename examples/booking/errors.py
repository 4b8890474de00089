"""The booking example's errors: all ``evsrc.EvsrcError``; nothing is written when one is raised."""

from __future__ import annotations

from evsrc.errors import EvsrcError, InvalidInputError

__all__ = [
    "AlreadyScheduledError",
    "BookingError",
    "CapacityMismatchError",
    "InvalidBookingError",
    "NotScheduledError",
]


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
