"""The stream lifecycle around the store's methods: the deletion event, checks, the sweeper.

``EventStore.delete_stream``, ``truncate_before``, ``set_stream_metadata``
and ``sweep`` are the operations (docs/lifecycle.md says what each
guarantees and costs). Here:

- :class:`StreamDeleted`, the model of the ``$stream-deleted`` event a
  deletion records in the global order: a projector that handles it
  (``@handles``) drops the read-model rows of ``recorded.stream``.
- :func:`check_truncate` and :func:`check_metadata`, the argument checks every
  backend shares.
- :class:`Sweeper`, a task that calls ``store.sweep()`` every ``interval``.
- :func:`compact_parked`, which truncates a projection's parked stream before
  its oldest parked event still waiting for a decision.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Final

import anyio

from evsrc.errors import InvalidInputError, StoreClosedError
from evsrc.models import Event
from evsrc.records import STREAM_DELETED, StreamMetadata
from evsrc.store import check_stream

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = [
    "MAX_RETENTION_AGE",
    "MAX_RETENTION_COUNT",
    "STREAM_DELETED",
    "StreamDeleted",
    "Sweeper",
    "check_metadata",
    "check_truncate",
    "compact_parked",
]

log = logging.getLogger("evsrc.lifecycle")

#: Largest ``max_count`` a stream's retention may name.
MAX_RETENTION_COUNT: Final = 2**31 - 1
#: Longest ``max_age`` a stream's retention may name (a hundred years).
MAX_RETENTION_AGE: Final = timedelta(days=36_500)


class StreamDeleted(Event, type=STREAM_DELETED):
    """A stream's events ``1 … last_seq`` were deleted (``hard``: and it is tombstoned).

    Recorded by ``delete_stream`` at the stream's head, so a global reader
    meets it in order, after every event it removed. The stream is
    ``recorded.stream``.
    """

    last_seq: int
    hard: bool


def check_truncate(stream: object, before: object) -> int:
    """Check ``truncate_before`` arguments; return ``before``."""
    check_stream(stream)
    if type(before) is not int or not 1 <= before <= 2**63 - 1:
        msg = f"seq must be an int from 1 to 2**63-1, got {before!r}"
        raise InvalidInputError(msg, argument="seq", value=before)
    return before


def check_metadata(max_count: object, max_age: object) -> StreamMetadata:
    """Check a stream's retention settings; ``InvalidInputError`` naming the bad one.

    ``max_count``: ``None`` or an int from 1 to ``MAX_RETENTION_COUNT``.
    ``max_age``: ``None`` or a ``timedelta`` above zero and at most ``MAX_RETENTION_AGE``.
    """
    if max_count is not None and (
        type(max_count) is not int or not 1 <= max_count <= MAX_RETENTION_COUNT
    ):
        msg = f"max_count must be None or an int from 1 to {MAX_RETENTION_COUNT}, got {max_count!r}"
        raise InvalidInputError(msg, argument="max_count", value=max_count)
    if max_age is not None and (
        type(max_age) is not timedelta or not timedelta(0) < max_age <= MAX_RETENTION_AGE
    ):
        msg = (
            f"max_age must be None or a timedelta above zero and at most {MAX_RETENTION_AGE}, "
            f"got {max_age!r}"
        )
        raise InvalidInputError(msg, argument="max_age", value=max_age)
    return StreamMetadata(max_count, max_age)


class Sweeper:
    """Calls ``store.sweep()`` every ``interval`` seconds until stopped or the store closes.

    Run :meth:`run` in a task group (cancel the group to stop it). A failed
    sweep is logged and retried at the next interval; it never ends the sweeper.
    """

    def __init__(self, store: EventStore, *, interval: float = 60.0) -> None:
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not (0 < interval <= 86_400)
        ):
            msg = f"interval must be seconds above 0 and at most 86400, got {interval!r}"
            raise InvalidInputError(msg, argument="interval", value=interval)
        self.store = store
        self.interval = float(interval)
        #: Events removed so far, and sweeps done.
        self.removed = 0
        self.sweeps = 0

    async def run(self) -> None:
        """Sweep now, then every ``interval``; returns when the store is closed."""
        while True:
            try:
                self.removed += await self.store.sweep()
                self.sweeps += 1
            except StoreClosedError:
                return
            except Exception:
                log.warning("sweep failed; retrying in %ss", self.interval, exc_info=True)
            await anyio.sleep(self.interval)


async def compact_parked(store: EventStore, projection: str) -> int:
    """Truncate ``$parked:<projection>`` before its oldest pending parked event; how many went.

    The parked stream is a log folded into each parked event's state (parked,
    replay requested, replayed, discarded). Everything before the oldest
    pending one concerns only events already decided, so it can go; with none
    pending, everything but the newest event goes.
    """
    from evsrc.parking import ParkedEvents

    parked = ParkedEvents(store, projection)
    pending = [p.number for p in await parked.all() if p.pending]
    head = await store.last_seq(parked.stream)
    if head == 0:
        return 0
    return await store.truncate_before(parked.stream, min(pending, default=head))
