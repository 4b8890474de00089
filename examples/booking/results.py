"""What the booking commands return: a status enum and a small frozen result each."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from evsrc.records import Checkpoint, Committed

__all__ = [
    "BookingResult",
    "BookingStatus",
    "CancelResult",
    "CancelStatus",
    "ConfirmResult",
    "ConfirmStatus",
    "ScheduleResult",
]


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
    HELD = "held"
    """Only from ``hold``: the actor holds a seat (``seat``) until ``expires_at``."""


@dataclass(frozen=True, slots=True, init=False)
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
    #: For held: when the hold runs out unless confirmed.
    expires_at: datetime | None = None

    def __init__(
        self,
        status: BookingStatus,
        actor: str,
        seat: int | None = None,
        capacity: int | None = None,
        actual: int | None = None,
        position: int | None = None,
        attempts: int = 1,
        last_seq: int | None = None,
        checkpoint: Checkpoint | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        # Built twice per booking (decided, then with the append's seq): the slots'
        # descriptors set the fields directly, without a frozen __setattr__ per field.
        _set_status(self, status)
        _set_actor(self, actor)
        _set_seat(self, seat)
        _set_capacity(self, capacity)
        _set_actual(self, actual)
        _set_position(self, position)
        _set_attempts(self, attempts)
        _set_last_seq(self, last_seq)
        _set_checkpoint(self, checkpoint)
        _set_expires_at(self, expires_at)

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON object (``None`` fields left out)."""
        out: dict[str, Any] = {"status": self.status.value, "actor": self.actor}
        for name in ("seat", "capacity", "actual", "position"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at.isoformat()
        return out


_set_status = BookingResult.__dict__["status"].__set__
_set_actor = BookingResult.__dict__["actor"].__set__
_set_seat = BookingResult.__dict__["seat"].__set__
_set_capacity = BookingResult.__dict__["capacity"].__set__
_set_actual = BookingResult.__dict__["actual"].__set__
_set_position = BookingResult.__dict__["position"].__set__
_set_attempts = BookingResult.__dict__["attempts"].__set__
_set_last_seq = BookingResult.__dict__["last_seq"].__set__
_set_checkpoint = BookingResult.__dict__["checkpoint"].__set__
_set_expires_at = BookingResult.__dict__["expires_at"].__set__


def completed(result: BookingResult, attempts: int, committed: Committed | None) -> BookingResult:
    """``result`` with the attempts it took and, if ``committed``, its seq and checkpoint.

    Set in place on ``result``: only for a result its decision has just built
    and nobody else has seen yet (the service's own, from the handler's
    outcome), where a copy would build the whole object again per booking.
    """
    _set_attempts(result, attempts)
    if committed is not None:
        _set_last_seq(result, committed.last_seq)
        _set_checkpoint(result, committed.checkpoint)
    return result


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


class ConfirmStatus(enum.StrEnum):
    """How confirming a hold ended."""

    CONFIRMED = "confirmed"
    """The hold became a booking."""
    ALREADY = "already"
    """The actor was booked already (confirmed before, or booked outright)."""
    ABSENT = "absent"
    """No seat to confirm: the hold expired, was cancelled, or never was."""


@dataclass(frozen=True, slots=True)
class ConfirmResult:
    """The outcome of confirming a hold; ``seat`` for confirmed / already."""

    status: ConfirmStatus
    actor: str
    seat: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON object (``None`` fields left out)."""
        out: dict[str, Any] = {"status": self.status.value, "actor": self.actor}
        if self.seat is not None:
            out["seat"] = self.seat
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
