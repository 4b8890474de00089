"""``BookingService``: capacity-safe booking over any ``EventStore``.

It owns one ``evsrc.CommandHandler`` for the ``Occurrence`` aggregate. Each
command is observe → decide → ``append_expect`` → on conflict re-observe,
done by the handler, which also decides concurrent commands on the same
occurrence together and commits them in one append. The service only checks
input, states the decision, and turns the handler's outcome into a result.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, overload

from evsrc.handler import CommandHandler
from evsrc.records import Conflict
from examples.booking.checks import check_booking
from examples.booking.domain import (
    AlreadyScheduledError,
    BookingResult,
    BookingStatus,
    CancelResult,
    CapacityMismatchError,
    ConfirmResult,
    InvalidBookingError,
    NotScheduledError,
    Occurrence,
    Reason,
    ScheduleResult,
    check_actor,
    check_capacity,
    check_occurrence,
)
from examples.booking.results import completed

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from evsrc.aggregate import Rejection
    from evsrc.handler import Outcome
    from evsrc.store import EventStore

__all__ = ["BookingService"]

#: Default bound on decide-and-append attempts per command. Without
#: cancellations each conflict means one more seat was taken, so ``capacity+1``
#: attempts always suffice; the handler's bound is per service, so it is set
#: generously and ``RetriesExhaustedError`` surfaces only under pathological churn.
DEFAULT_MAX_ATTEMPTS = 64
#: How long a hold lasts unless confirmed, by default.
DEFAULT_HOLD_TTL = timedelta(minutes=15)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _raise_rejection(rejection: Rejection, occurrence: str, capacity: int | None) -> None:
    reason = rejection.reason
    if reason == Reason.CAPACITY_MISMATCH:
        scheduled, given = rejection.detail
        raise CapacityMismatchError(occurrence=occurrence, scheduled=scheduled, given=given)
    if reason == Reason.NOT_SCHEDULED:
        raise NotScheduledError(occurrence=occurrence)
    if reason == Reason.WAITLIST_NOT_SCHEDULED:
        msg = f"occurrence {occurrence!r} is not scheduled; the waitlist needs a scheduled capacity"
        raise NotScheduledError(msg, occurrence=occurrence)
    if reason == Reason.ALREADY_SCHEDULED:
        msg = f"occurrence {occurrence!r} is already scheduled with capacity {rejection.detail}"
        raise AlreadyScheduledError(
            msg, occurrence=occurrence, capacity=rejection.detail, requested=capacity or 0
        )
    if reason == Reason.ROSTER_EXCEEDS_CAPACITY:
        msg = (
            f"occurrence {occurrence!r} already has {rejection.detail} bookings, "
            f"more than capacity {capacity}"
        )
        raise AlreadyScheduledError(
            msg, occurrence=occurrence, capacity=None, requested=capacity or 0
        )
    msg = f"booking refused: {reason}"  # pragma: no cover - every reason is mapped above
    raise AssertionError(msg)  # pragma: no cover


class BookingService:
    """Book, cancel and list seats of capacity-limited occurrences.

    ``store`` is any ``EventStore``. Every method checks its input first and
    raises ``InvalidBookingError`` (an ``evsrc.InvalidInputError``) before
    anything is written. ``max_attempts`` bounds the handler's retries on
    conflict; ``batching`` lets it decide concurrent commands on one
    occurrence together and commit them in one append (the default), at most
    ``max_batch`` commands' events per append.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        batching: bool = True,
        max_batch: int = 256,
        hold_ttl: timedelta = DEFAULT_HOLD_TTL,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not isinstance(hold_ttl, timedelta) or hold_ttl <= timedelta(0):
            msg = f"hold_ttl must be a positive timedelta, got {hold_ttl!r}"
            raise InvalidBookingError(msg, argument="hold_ttl", value=hold_ttl)
        self.hold_ttl = hold_ttl
        self.clock = clock
        self.store = store
        self.handler: CommandHandler[Occurrence] = CommandHandler(
            store, Occurrence, max_attempts=max_attempts, batching=batching, max_batch=max_batch
        )

    # -- commands -------------------------------------------------------------

    @overload
    async def book(
        self, occurrence: str, capacity: int | None, actor: str, *, waitlist: bool = False
    ) -> BookingResult: ...

    @overload
    async def book(
        self,
        occurrence: str,
        capacity: int | None = None,
        *,
        actor: str,
        waitlist: bool = False,
    ) -> BookingResult: ...

    async def book(
        self,
        occurrence: str,
        capacity: int | None = None,
        actor: str | None = None,
        *,
        waitlist: bool = False,
    ) -> BookingResult:
        """Book a seat for ``actor``, retrying on conflict; never returns ``conflict``.

        Returns ``booked`` (with ``seat``), ``already`` (the actor's existing
        seat — booking is idempotent per actor), ``full`` (with ``capacity``)
        or, with ``waitlist=True`` on a full scheduled occurrence,
        ``waitlisted`` (with ``position``). ``capacity`` may be omitted for a
        scheduled occurrence; if given it must match the scheduled one
        (``CapacityMismatchError``). Unscheduled and no capacity:
        ``NotScheduledError``.
        """
        if actor is None:
            check_occurrence(occurrence)
            msg = "actor is required"
            raise InvalidBookingError(msg, argument="actor", value=None)
        check_booking(occurrence, actor, capacity)
        outcome: Outcome[BookingResult] = await self.handler.execute(
            occurrence, lambda occ: occ.book(actor, capacity, waitlist=waitlist)
        )
        result = outcome.result
        if (
            outcome.committed is None
            and outcome.rejection is None
            and result is not None
            and outcome.attempts == result.attempts
        ):
            return result  # _booking_result's first case, inline: full or already, first try
        return self._booking_result(outcome, occurrence, capacity)

    async def join_waitlist(
        self, occurrence: str, actor: str, capacity: int | None = None
    ) -> BookingResult:
        """``book(..., waitlist=True)``: a seat if one is free, else a place on the waitlist."""
        return await self.book(occurrence, capacity, actor, waitlist=True)

    async def book_with_observed(
        self,
        occurrence: str,
        capacity: int,
        actor: str,
        observed_roster: Sequence[str],
        expected: int,
    ) -> BookingResult:
        """ONE booking attempt decided against an observed snapshot; no retry.

        ``observed_roster`` and ``expected`` (the last seq observed) are what
        the booker saw. The append lands only if the stream is still at
        ``expected``; otherwise the result is ``conflict`` with ``actual``,
        the last seq that won, and nothing was written. The occurrence's
        scheduled capacity (a fact that never changes once recorded) is
        honoured even though the roster comes from the snapshot.
        """
        check_occurrence(occurrence)
        check_actor(actor)
        check_capacity(capacity)
        if type(expected) is not int or expected < 0:
            msg = f"expected must be an int >= 0, got {expected!r}"
            raise InvalidBookingError(msg, argument="expected", value=expected)
        roster = [check_actor(a) for a in observed_roster]
        current = await self.handler.load(occurrence)
        snapshot = Occurrence.observed(roster, expected, current.capacity)
        outcome = await self.handler.attempt(
            occurrence, lambda occ: occ.book(actor, capacity), snapshot, expected
        )
        if isinstance(outcome, Conflict):
            return BookingResult(BookingStatus.CONFLICT, actor, actual=outcome.actual)
        return self._booking_result(outcome, occurrence, capacity)

    async def cancel(self, occurrence: str, actor: str) -> CancelResult:
        """Cancel ``actor``'s seat or waitlist place.

        A freed seat goes to the waitlist's head in the same atomic append.
        Status ``cancelled`` (with ``promoted``), ``left_waitlist`` or
        ``absent`` (nothing to cancel; nothing written).
        """
        check_occurrence(occurrence)
        check_actor(actor)
        outcome: Outcome[CancelResult] = await self.handler.execute(
            occurrence, lambda occ: occ.cancel(actor)
        )
        assert outcome.result is not None
        return outcome.result

    async def hold(self, occurrence: str, actor: str, capacity: int | None = None) -> BookingResult:
        """Hold the next free seat for ``actor`` for ``hold_ttl``, unless confirmed.

        Status ``held`` (with ``seat`` and ``expires_at``), else as :meth:`book`
        would answer (``already``, ``waitlisted``, ``full``). The expiry is a
        deadline that :class:`~examples.booking.reactions.BookingReactions`
        fires: it frees the seat and promotes the waitlist.
        """
        check_booking(occurrence, actor, capacity)
        expires_at = self.clock() + self.hold_ttl
        outcome: Outcome[BookingResult] = await self.handler.execute(
            occurrence, lambda occ: occ.hold(actor, capacity, expires_at)
        )
        return self._booking_result(outcome, occurrence, capacity)

    async def confirm(self, occurrence: str, actor: str) -> ConfirmResult:
        """Turn ``actor``'s hold into a booking: ``confirmed``, ``already`` or ``absent``."""
        check_occurrence(occurrence)
        check_actor(actor)
        outcome: Outcome[ConfirmResult] = await self.handler.execute(
            occurrence, lambda occ: occ.confirm(actor)
        )
        assert outcome.result is not None
        return outcome.result

    async def schedule(self, occurrence: str, capacity: int) -> ScheduleResult:
        """Record the occurrence's capacity, so bookers need not pass it.

        Idempotent for the same capacity (``created=False``); another capacity
        raises ``AlreadyScheduledError``, as does a capacity below the number
        of bookings already made.
        """
        check_occurrence(occurrence)
        check_capacity(capacity)
        outcome: Outcome[ScheduleResult] = await self.handler.execute(
            occurrence, lambda occ: occ.schedule(occurrence, capacity)
        )
        if outcome.rejection is not None:
            _raise_rejection(outcome.rejection, occurrence, capacity)
        assert outcome.result is not None
        return outcome.result

    # -- queries --------------------------------------------------------------

    async def state(self, occurrence: str) -> Occurrence:
        """The occurrence's current state (capacity, roster, waitlist, seq)."""
        check_occurrence(occurrence)
        return await self.handler.load(occurrence)

    async def roster(self, occurrence: str) -> list[str]:
        """The booked actors, oldest first (a copy)."""
        return list((await self.state(occurrence)).roster)

    async def waitlist(self, occurrence: str) -> list[str]:
        """The waitlisted actors, first in line first (a copy)."""
        return list((await self.state(occurrence)).waitlist)

    async def capacity(self, occurrence: str) -> int | None:
        """The scheduled capacity, or ``None`` when the occurrence is not scheduled."""
        return (await self.state(occurrence)).capacity

    async def seats_left(self, occurrence: str, capacity: int | None = None) -> int:
        """Free seats, never below 0; ``capacity`` may be omitted once scheduled."""
        if capacity is not None:
            check_capacity(capacity)
        occ = await self.state(occurrence)
        cap = occ.effective_capacity(capacity)
        if not isinstance(cap, int):
            _raise_rejection(cap, occurrence, capacity)
            raise AssertionError  # pragma: no cover - _raise_rejection always raises
        return max(0, cap - len(occ.roster))

    # -- helpers --------------------------------------------------------------

    @staticmethod
    def _booking_result(
        outcome: Outcome[BookingResult], occurrence: str, capacity: int | None
    ) -> BookingResult:
        if outcome.rejection is not None:
            _raise_rejection(outcome.rejection, occurrence, capacity)
        result = outcome.result
        assert result is not None
        committed = outcome.committed
        if committed is None and outcome.attempts == result.attempts:
            return result  # nothing written, first try (full, already): it is the answer as is
        # The decision built this result for this booking alone: completed in place
        # (a copy built the whole result again, once per booking).
        return completed(result, outcome.attempts, committed)
