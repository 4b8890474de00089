"""The booking events: one stream per occurrence, ``booking:<occurrence>``.

``scheduled``     ``{"capacity": n}`` — the occurrence's capacity, recorded once
``booking``       ``{"actor": a}``    — ``a`` takes the next seat
``waitlisted``    ``{"actor": a}``    — ``a`` joins the end of the waitlist (only when full)
``cancellation``  ``{"actor": a}``    — ``a`` leaves the roster or the waitlist
``promotion``     ``{"actor": a}``    — the waitlist's head ``a`` takes the seat a
                                        cancellation freed, in the same append
``hold``          ``{"actor": a, "expires_at": t}`` — ``a`` takes the next seat until
                                        ``t`` unless confirmed (docs/booking.md, "Holds")
``confirmation``  ``{"actor": a}``    — ``a``'s hold becomes a booking
``expiry``        ``{"actor": a}``    — ``a``'s hold ran out: the seat is freed (and the
                                        waitlist's head promoted into it, same append)

Every ``actor`` is personal (:data:`Actor`): on a store wrapped by
``examples.booking.privacy.shredded`` it is stored encrypted per actor.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - pydantic needs it at runtime
from typing import Annotated, Final

from evsrc.models import Event, EventRegistry
from evsrc.shredding import Personal

__all__ = [
    "STREAM_PREFIX",
    "Actor",
    "Booked",
    "Cancelled",
    "Confirmed",
    "Expired",
    "Held",
    "Promoted",
    "Scheduled",
    "Waitlisted",
    "registry",
]

#: Occurrence streams are named ``booking:<occurrence>``.
STREAM_PREFIX: Final = "booking"

#: An actor's name: personal, stored encrypted with the actor's own key
#: (``examples.booking.privacy``), so that forgetting the key forgets the name.
Actor = Annotated[str, Personal()]


class Scheduled(Event, type="scheduled", version=1):
    """The occurrence was scheduled with this capacity."""

    capacity: int


class Booked(Event, type="booking", version=1):
    """``actor`` took the next seat."""

    actor: Actor


class Waitlisted(Event, type="waitlisted", version=1):
    """``actor`` joined the end of the waitlist of a full occurrence."""

    actor: Actor


class Cancelled(Event, type="cancellation", version=1):
    """``actor`` left the roster (freeing a seat) or the waitlist."""

    actor: Actor


class Promoted(Event, type="promotion", version=1):
    """The waitlist's head ``actor`` took the seat that a cancellation freed."""

    actor: Actor


class Held(Event, type="hold", version=1):
    """``actor`` took the next seat, held until ``expires_at`` unless confirmed."""

    actor: Actor
    expires_at: datetime


class Confirmed(Event, type="confirmation", version=1):
    """``actor``'s hold became a booking."""

    actor: Actor


class Expired(Event, type="expiry", version=1):
    """``actor``'s hold ran out; the seat is free again."""

    actor: Actor


registry = EventRegistry(
    Scheduled, Booked, Waitlisted, Cancelled, Promoted, Held, Confirmed, Expired
)
