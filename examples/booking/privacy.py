"""Forgetting a person: actors' names are personal, encrypted per actor, and forgettable.

Every ``actor`` field of the booking events is marked
``Personal()`` (:mod:`examples.booking.events`), and the app runs on a
:class:`~evsrc.shredding.ShreddingStore` (:func:`shredded`), so an actor's
name is stored only encrypted with that actor's key. :func:`forget_actor`
first frees everything the actor holds — a seat, a hold or a waitlist place,
in every occurrence, through the command handler as a cancellation would —
and then deletes the key: the name then reads as ``[forgotten:…]`` in every
event (the promotion notices' ``payload.actor`` included), and projections
rebuilt later never see it. See docs/lifecycle.md,
"Forgetting a person".
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from evsrc.keys import key_store_for
from evsrc.reactions import OutboxMessage
from evsrc.shredding import ShreddingStore
from examples.booking.domain import CancelStatus, check_actor
from examples.booking.events import STREAM_PREFIX, registry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from evsrc.store import EventStore
    from examples.booking.service import BookingService

__all__ = [
    "PERSONAL_PATHS",
    "ForgetResult",
    "Released",
    "forget_actor",
    "occurrences_of",
    "shredded",
]

#: Personal values no booking model marks: the promotion notice (an outbox message,
#: examples.booking.reactions) names whom it tells.
PERSONAL_PATHS: Final = {OutboxMessage.event_type: {"payload.actor": "payload.actor"}}
#: The event types that give an actor a seat, a hold or a waitlist place.
_TAKING = ("booking", "waitlisted", "hold", "promotion", "confirmation")
#: An actor holds at most one place per occurrence; a few more rounds cover races.
_MAX_ROUNDS = 4


@contextlib.asynccontextmanager
async def shredded(store: EventStore) -> AsyncIterator[ShreddingStore]:
    """``store`` with the booking's personal fields encrypted (its keys beside its events).

    A store that already is a ``ShreddingStore`` is yielded as is. The key
    store is set up on entry and closed on exit; ``store`` stays the caller's.
    """
    if isinstance(store, ShreddingStore):
        yield store
        return
    keys = key_store_for(store)
    await keys.setup()
    async with keys:
        yield ShreddingStore(store, keys, registry, paths=PERSONAL_PATHS, owns_inner=False)


@dataclass(frozen=True, slots=True)
class Released:
    """What forgetting freed in one occurrence."""

    occurrence: str
    status: CancelStatus
    promoted: str | None = None


@dataclass(frozen=True, slots=True)
class ForgetResult:
    """The outcome of :func:`forget_actor`: what was freed, and whether a key was deleted."""

    actor: str
    released: list[Released]
    forgotten: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the CLI prints and the API returns."""
        return {
            "actor": self.actor,
            "forgotten": self.forgotten,
            "released": [
                {"occurrence": r.occurrence, "status": r.status.value, "promoted": r.promoted}
                for r in self.released
            ],
        }


async def occurrences_of(store: EventStore, actor: str) -> list[str]:
    """The occurrences in whose streams ``actor`` ever took a place, in order of first use."""
    prefix = STREAM_PREFIX + ":"
    found: dict[str, None] = {}
    async for e in store.read_all(stream_prefix=prefix, types=_TAKING):
        if e.data.get("actor") == actor:
            found.setdefault(e.stream.removeprefix(prefix))
    return list(found)


async def forget_actor(service: BookingService, store: ShreddingStore, actor: str) -> ForgetResult:
    """Free ``actor``'s seats, holds and waitlist places everywhere, then delete their key.

    ``service`` must run on ``store`` (so that the cancellations are encrypted
    too). A freed seat promotes the waitlist's head, as a cancellation does.
    Raises ``InvalidBookingError`` for a malformed actor before anything is
    written. Idempotent: forgetting again frees nothing and returns
    ``forgotten=False``.
    """
    check_actor(actor)
    released: list[Released] = []
    for occurrence in await occurrences_of(store, actor):
        for _ in range(_MAX_ROUNDS):
            result = await service.cancel(occurrence, actor)
            if result.status is CancelStatus.ABSENT:
                break
            released.append(Released(occurrence, result.status, result.promoted))
    forgotten = await store.forget(actor)
    return ForgetResult(actor, released, forgotten)
