"""The booking's reactions: holds expire, and whoever the waitlist promotes is told.

- :class:`HoldExpiry` (a process manager) schedules a deadline for every
  ``hold`` event; when it comes due, the occurrence's ``expire`` decision
  frees the seat — unless the hold was confirmed or cancelled meanwhile — and
  promotes the waitlist's head in the same append.
- :class:`PromotionNotifier` (a process manager) reacts to every
  ``promotion`` (after a cancellation or an expiry) by recording a notice in
  the ``notice:<occurrence>`` stream: an outbox message, which the outbox
  dispatcher delivers to the ``notify`` sink at least once.

:class:`BookingReactions` runs all of it beside a :class:`BookingService`:
``async with BookingReactions(service).running(): ...``.
"""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from evsrc import (
    Aggregate,
    CommandHandler,
    Deadline,
    Deadlines,
    OutboxDispatcher,
    OutboxMessage,
    ProcessManager,
    ProjectionRunner,
    RecordedEvent,
    Send,
    StreamCheckpointStore,
    applies,
    handles,
)
from evsrc.reactions import LogSink, Sink
from examples.booking.events import STREAM_PREFIX, Held, Promoted

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    from evsrc import Event
    from examples.booking.service import BookingService

__all__ = ["EXPIRE_HOLD", "BookingReactions", "HoldExpiry", "Notices", "PromotionNotifier"]

#: The deadline kind of a hold's expiry.
EXPIRE_HOLD = "booking.expire-hold"
_PREFIX = STREAM_PREFIX + ":"


class HoldExpiry(ProcessManager):
    """Schedules each hold's expiry (the deadline's id is the hold event's: once)."""

    name: ClassVar[str] = "booking-hold-expiry"
    stream_prefix = _PREFIX

    def __init__(self, deadlines: Deadlines) -> None:
        self.deadlines = deadlines

    @handles(Held)
    async def on_held(self, e: Held, r: RecordedEvent) -> None:
        """Schedule the expiry of the hold."""
        # The deadline names the hold by its seq, not the actor: deadline data is
        # not a personal field, and an actor's name must live only where it is
        # encrypted (examples.booking.privacy).
        await self.deadlines.schedule(
            e.expires_at,
            EXPIRE_HOLD,
            r.stream.removeprefix(_PREFIX),
            {"hold_seq": r.seq, "expires_at": e.expires_at.isoformat()},
            id=r.id,
        )


class Notices(Aggregate):
    """The notices sent about one occurrence: outbox messages, nothing more."""

    stream_prefix = "notice"

    @applies(OutboxMessage)
    def _sent(self, e: OutboxMessage) -> None:
        pass  # a notice changes no state

    def promoted(self, occurrence: str, actor: str) -> list[Event]:
        """Tell ``actor`` they have a seat now."""
        payload = {"occurrence": occurrence, "actor": actor}
        return [OutboxMessage(sink="notify", topic="waitlist.promoted", payload=payload)]


class PromotionNotifier(ProcessManager):
    """Records a notice (an outbox message) for everyone the waitlist promotes."""

    name: ClassVar[str] = "booking-promotion-notifier"
    stream_prefix = _PREFIX

    def __init__(self, notices: CommandHandler[Notices]) -> None:
        self.notices = notices

    @handles(Promoted)
    async def on_promoted(self, e: Promoted, r: RecordedEvent) -> Send:
        """Send the notice command."""
        occurrence = r.stream.removeprefix(_PREFIX)
        return Send(self.notices, occurrence, lambda n: n.promoted(occurrence, e.actor))


class BookingReactions:
    """The booking's process managers, deadlines and outbox dispatcher, run together.

    ``sinks`` deliver the outbox (default: ``{"notify": LogSink()}``);
    ``clock`` and ``tick`` go to the :class:`~evsrc.Deadlines` (inject a
    clock to test). Positions are kept in the store
    (:class:`~evsrc.StreamCheckpointStore`), so a restart resumes.
    """

    def __init__(
        self,
        service: BookingService,
        *,
        sinks: Mapping[str, Sink] | None = None,
        clock: Callable[[], datetime] | None = None,
        tick: float = 0.5,
        outbox_backoff: float = 0.5,
    ) -> None:
        store = service.store
        self.service = service
        self.deadlines = Deadlines(
            store, {EXPIRE_HOLD: self._expire}, clock=clock or service.clock, tick=tick
        )
        checkpoints = StreamCheckpointStore(store)
        self.expiry = ProjectionRunner(store, HoldExpiry(self.deadlines), checkpoints)
        self.notices: CommandHandler[Notices] = CommandHandler(store, Notices)
        self.notifier = ProjectionRunner(store, PromotionNotifier(self.notices), checkpoints)
        self.dispatcher = OutboxDispatcher(
            store, sinks if sinks is not None else {"notify": LogSink()}, backoff=outbox_backoff
        )
        self.outbox = ProjectionRunner(store, self.dispatcher, checkpoints)

    async def _expire(self, d: Deadline) -> Send | None:
        at = datetime.fromisoformat(str(d.data["expires_at"]))
        actor = d.data.get("actor")  # deadlines scheduled before they named the hold's seq
        if actor is None:
            seq = int(d.data["hold_seq"])
            stream = _PREFIX + d.key
            held = await self.service.store.read(stream, after=seq - 1, limit=1)
            if not held or held[0].type != Held.event_type:
                return None  # pragma: no cover - a hold's seq always holds the hold
            actor = held[0].data["actor"]
        name = str(actor)
        return Send(self.service.handler, d.key, lambda occ: occ.expire(name, at))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[BookingReactions]:
        """Run every part in the background; stop them all on exit."""
        async with AsyncExitStack() as stack:
            for part in (self.expiry, self.notifier, self.outbox):
                await stack.enter_async_context(part.running())
            await stack.enter_async_context(self.deadlines.running())
            yield self

    async def settle(self) -> None:
        """Wait until the process managers and the outbox have handled what is committed now."""
        for runner in (self.expiry, self.notifier, self.outbox):
            await runner.wait_until_head()
