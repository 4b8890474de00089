"""The HTTP API's request and response bodies, as pydantic models (and so in ``/openapi.json``).

Request bodies are validated in strict mode (no ``"12"`` for 12) and refuse
unknown fields. Response models describe what the endpoints send; the tests
validate real responses against them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BookBody",
    "BookingOut",
    "CancelBody",
    "CancelOut",
    "ConfirmBody",
    "ConfirmOut",
    "ErrorDetail",
    "ErrorOut",
    "ForgetBody",
    "ForgetOut",
    "HealthOut",
    "HoldBody",
    "HoldOut",
    "OccurrenceOut",
    "OccurrencesOut",
    "ReadyOut",
    "RosterOut",
    "ScheduleBody",
    "ScheduleOut",
    "WhoAmIOut",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ScheduleBody(_Body):
    """``POST /schedule`` (admins only): record an occurrence's capacity."""

    occurrence: str = Field(description="the occurrence's name")
    capacity: int = Field(description="seats, 1 … 1,000,000")


class BookBody(_Body):
    """``POST /book``: book a seat for the caller (or, for admins, for ``actor``)."""

    occurrence: str
    actor: str | None = Field(
        default=None, description="whom to book; default the caller; others' only for admins"
    )
    capacity: int | None = Field(
        default=None,
        description="for an unscheduled occurrence (admins only); must match a scheduled one",
    )
    waitlist: bool = Field(default=False, description="join the waitlist when full")


class HoldBody(_Body):
    """``POST /hold``: hold a seat for the caller (admins: for ``actor``) until confirmed."""

    occurrence: str
    actor: str | None = Field(
        default=None, description="for whom; default the caller; others' only for admins"
    )
    capacity: int | None = Field(
        default=None,
        description="for an unscheduled occurrence (admins only); must match a scheduled one",
    )


class ConfirmBody(_Body):
    """``POST /confirm``: turn the caller's hold (admins: ``actor``'s) into a booking."""

    occurrence: str
    actor: str | None = Field(default=None, description="whose hold; default the caller")


class CancelBody(_Body):
    """``POST /cancel``: cancel the caller's seat or waitlist place (admins: ``actor``'s)."""

    occurrence: str
    actor: str | None = Field(default=None, description="whom to cancel; default the caller")


class ForgetBody(_Body):
    """``POST /admin/forget``: free everything ``actor`` holds, then forget their name."""

    actor: str


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReleasedOut(_Out):
    """One occurrence where forgetting freed the actor's place."""

    occurrence: str
    status: Literal["cancelled", "left_waitlist"]
    promoted: str | None = Field(default=None, description="who took the freed seat")


class ForgetOut(_Out):
    """The outcome of ``POST /admin/forget``."""

    actor: str
    forgotten: bool = Field(description="whether a key was deleted (false: already forgotten)")
    released: list[ReleasedOut]


class ScheduleOut(_Out):
    """The outcome of ``POST /schedule``."""

    occurrence: str
    capacity: int
    created: bool = Field(description="false when it was already scheduled with this capacity")


class BookingOut(_Out):
    """The outcome of ``POST /book``."""

    status: Literal["booked", "already", "full", "waitlisted"]
    actor: str
    seat: int | None = Field(default=None, description="booked / already: the 1-based seat")
    capacity: int | None = Field(default=None, description="booked / full: the capacity")
    position: int | None = Field(default=None, description="waitlisted: the place in line")


class HoldOut(_Out):
    """The outcome of ``POST /hold``."""

    status: Literal["held", "already", "full", "waitlisted"]
    actor: str
    seat: int | None = Field(default=None, description="held / already: the 1-based seat")
    capacity: int | None = Field(default=None, description="held / full: the capacity")
    position: int | None = Field(default=None, description="waitlisted: the place in line")
    expires_at: str | None = Field(
        default=None, description="held: when the hold runs out unless confirmed (ISO 8601)"
    )


class ConfirmOut(_Out):
    """The outcome of ``POST /confirm``."""

    status: Literal["confirmed", "already", "absent"]
    actor: str
    seat: int | None = Field(default=None, description="confirmed / already: the seat")


class CancelOut(_Out):
    """The outcome of ``POST /cancel``."""

    status: Literal["cancelled", "left_waitlist", "absent"]
    actor: str
    promoted: str | None = Field(default=None, description="who took the freed seat")
    promoted_seat: int | None = None


class RosterOut(_Out):
    """``GET /roster``: one occurrence's roster and waitlist."""

    occurrence: str
    capacity: int | None
    scheduled: bool
    roster: list[str]
    booked: int
    seats_left: int | None
    waitlist: list[str]
    last_seq: int


class OccurrenceOut(_Out):
    """One occurrence on the board, as the caller sees it."""

    occurrence: str
    capacity: int | None
    booked: int
    seats_left: int | None
    waitlist: int = Field(description="how many are waiting")
    your_seat: int | None
    your_waitlist_position: int | None


class WhoAmIOut(_Out):
    """The authenticated caller."""

    actor: str
    admin: bool


class OccurrencesOut(_Out):
    """``GET /occurrences`` (and each server-sent event of ``GET /events``)."""

    you: WhoAmIOut
    occurrences: list[OccurrenceOut]


class ErrorDetail(_Out):
    """One validation error."""

    field: str
    message: str


class ErrorOut(_Out):
    """Every error response."""

    error: str = Field(description="a stable code: invalid_input, unauthorized, not_found, …")
    message: str
    field: str | None = None
    errors: list[ErrorDetail] | None = None


class HealthOut(_Out):
    """``GET /health``."""

    status: Literal["ok"]


class ReadyOut(_Out):
    """``GET /ready``: 200 when ready, 503 when not, with each check's verdict."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, str]
