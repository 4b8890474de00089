"""Input checks of the booking commands, their limits, and ``seat_of``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from examples.booking.errors import InvalidBookingError
from examples.booking.events import STREAM_PREFIX

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "MAX_ACTOR_LENGTH",
    "MAX_CAPACITY",
    "MAX_OCCURRENCE_LENGTH",
    "check_actor",
    "check_booking",
    "check_capacity",
    "check_occurrence",
    "seat_of",
]

#: Longest occurrence name: the store's 255-character stream limit minus ``"booking:"``.
MAX_OCCURRENCE_LENGTH: Final = 255 - len(STREAM_PREFIX) - 1
#: Longest actor name, in characters.
MAX_ACTOR_LENGTH: Final = 200
#: Largest capacity an occurrence may have.
MAX_CAPACITY: Final = 1_000_000


def _check_name(value: object, argument: str, limit: int) -> str:
    if type(value) is not str:
        msg = f"{argument} must be a str, got {type(value).__name__}"
        raise InvalidBookingError(msg, argument=argument, value=value)
    if not value or value.isspace():  # (as ``not value.strip()``, without a copy)
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


def check_booking(occurrence: object, actor: object, capacity: object) -> None:
    """``check_occurrence``, ``check_actor`` and, unless ``None``, ``check_capacity``.

    A booking's input in one call (once per booking): the usual input — two
    non-empty, not blank, short enough ASCII strs without NUL (ASCII is valid
    Unicode) and a capacity in range or ``None`` — passes at once; anything else
    goes through the three checks in that order, which raise with the message
    that fits.
    """
    if (
        type(occurrence) is str
        and type(actor) is str
        and 0 < len(occurrence) <= MAX_OCCURRENCE_LENGTH
        and 0 < len(actor) <= MAX_ACTOR_LENGTH
        and occurrence.isascii()
        and actor.isascii()
        and "\x00" not in occurrence
        and "\x00" not in actor
        and not occurrence.isspace()
        and not actor.isspace()
        and (capacity is None or (type(capacity) is int and 1 <= capacity <= MAX_CAPACITY))
    ):
        return
    check_occurrence(occurrence)
    check_actor(actor)
    if capacity is not None:
        check_capacity(capacity)


def seat_of(roster: Sequence[str], actor: str) -> int:
    """The actor's 1-based seat on ``roster`` (their position); 0 when absent."""
    try:
        return roster.index(actor) + 1
    except ValueError:
        return 0
