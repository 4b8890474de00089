"""Deadlines: commands scheduled for later, stored as events, fired once after their time.

Each deadline is a stream of its own, ``deadline:<id>``: ``scheduled`` (when,
what), then either ``cancelled`` or ``fired`` and ``done``. Firing and
cancelling both append at seq 2 with ``append_expect(expected=1)``, so of a
cancel and a fire racing — in one process or in two — exactly one wins.
The fired deadline's commands are executed with deterministic event ids
(as a process manager's), then ``done`` is appended; a crash in between
re-runs them on the next start, and the store refuses their ids a second
time. Every backend has this for free: it is only events.

A :class:`Deadlines` keeps the pending ones in memory, from a projection of
the deadline events (replayed from the start whenever it becomes active),
and fires those due by its ``clock`` every ``tick`` seconds. Of several
``Deadlines`` of one ``name`` on one store object, one is active; replicas
in other processes may all try, and the stream decides who fires.
"""

from __future__ import annotations

import inspect
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID, uuid4, uuid5

import anyio
from pydantic import Field

from evsrc.correlation import current_correlation_id
from evsrc.errors import DuplicateEventIdError, EvsrcError, InvalidInputError
from evsrc.models import Event, EventRegistry
from evsrc.projection import InMemoryCheckpointStore, ProjectionRunner, Projector, handles
from evsrc.reactions.process import Send
from evsrc.records import Committed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    from anyio.abc import TaskStatus

    from evsrc.records import RecordedEvent
    from evsrc.store import EventStore

__all__ = [
    "Deadline",
    "DeadlineCancelled",
    "DeadlineDone",
    "DeadlineFired",
    "DeadlineScheduled",
    "Deadlines",
]

#: The prefix of deadline streams.
DEADLINE_PREFIX: Final = "deadline:"


class DeadlineScheduled(Event, type="evsrc.deadline.scheduled"):
    """A command scheduled for ``at``: target ``kind`` with ``key`` and ``data``."""

    at: datetime
    kind: str
    key: str
    data: dict[str, Any] = Field(default_factory=dict)
    correlation_id: str | None = None


class DeadlineCancelled(Event, type="evsrc.deadline.cancelled"):
    """The deadline will not fire."""


class DeadlineFired(Event, type="evsrc.deadline.fired"):
    """The deadline came due and its commands are being sent."""


class DeadlineDone(Event, type="evsrc.deadline.done"):
    """The deadline's commands were sent."""


_REGISTRY = EventRegistry(DeadlineScheduled, DeadlineCancelled, DeadlineFired, DeadlineDone)


@dataclass(slots=True)
class Deadline:
    """A scheduled deadline as the scheduler sees it."""

    id: UUID
    at: datetime
    kind: str
    key: str
    data: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    #: True once ``fired`` is recorded (its commands may still be unsent).
    fired: bool = False

    @property
    def stream(self) -> str:
        """The deadline's stream."""
        return f"{DEADLINE_PREFIX}{self.id}"


class _Index(Projector):
    """The pending deadlines, folded from the deadline events."""

    name = "evsrc.deadlines"
    stream_prefix = DEADLINE_PREFIX

    def __init__(self) -> None:
        self.pending: dict[UUID, Deadline] = {}

    @handles(DeadlineScheduled)
    async def _scheduled(self, e: DeadlineScheduled, r: RecordedEvent) -> None:
        did = _id_of(r.stream)
        if did is not None:
            self.pending[did] = Deadline(did, e.at, e.kind, e.key, dict(e.data), e.correlation_id)

    @handles(DeadlineFired)
    async def _fired(self, e: DeadlineFired, r: RecordedEvent) -> None:
        d = self.pending.get(_id_of(r.stream) or UUID(int=0))
        if d is not None:
            d.fired = True

    @handles(DeadlineCancelled, DeadlineDone)
    async def _ended(self, e: Event, r: RecordedEvent) -> None:
        did = _id_of(r.stream)
        if did is not None:
            self.pending.pop(did, None)


def _id_of(stream: str) -> UUID | None:
    try:
        return UUID(stream.removeprefix(DEADLINE_PREFIX))
    except ValueError:
        return None


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _aware(at: object) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None:
        msg = f"at must be a timezone-aware datetime, got {at!r}"
        raise InvalidInputError(msg, argument="at", value=at)
    return at


class Deadlines:
    """Schedule commands for later and fire them once when due.

    ``targets`` maps a deadline's ``kind`` to a function of the
    :class:`Deadline` that returns the commands to send (:class:`Send`, a
    list, ``None``; it may be async). ``clock`` returns the current time
    (timezone-aware): inject one to test in milliseconds. ``tick``: seconds
    between looks at the clock.
    """

    def __init__(
        self,
        store: EventStore,
        targets: Mapping[str, Callable[[Deadline], Any]] | None = None,
        *,
        name: str = "evsrc.deadlines",
        clock: Callable[[], datetime] = _utc_now,
        tick: float = 0.5,
    ) -> None:
        if isinstance(tick, bool) or not isinstance(tick, (int, float)) or not 0 < tick <= 3600:
            msg = f"tick must be a number of seconds in (0, 3600], got {tick!r}"
            raise InvalidInputError(msg, argument="tick", value=tick)
        self.store = store
        self.targets: dict[str, Callable[[Deadline], Any]] = dict(targets or {})
        self.name = name
        self.clock = clock
        self.tick = float(tick)
        self._index = _Index()
        self.runner = ProjectionRunner(store, self._index, InMemoryCheckpointStore(), name=name)
        #: How many deadlines this scheduler fired (sent their commands).
        self.fired = 0
        #: Failed rounds of firing in a row (``run`` backs off), and the last error.
        self.failures = 0
        self.error: Exception | None = None

    @property
    def pending(self) -> dict[UUID, Deadline]:
        """The deadlines not yet done or cancelled, as far as the active scheduler knows."""
        return self._index.pending

    # -- scheduling -----------------------------------------------------------------

    async def schedule(
        self,
        at: datetime,
        kind: str,
        key: str,
        data: Mapping[str, Any] | None = None,
        *,
        id: UUID | None = None,
        correlation_id: str | None = None,
    ) -> UUID:
        """Record a deadline: at ``at``, send the commands of target ``kind`` for ``key``.

        Returns its id. ``id`` (say, derived from the event that asked for
        it) makes scheduling idempotent: scheduling the same id again is a
        no-op. The correlation id defaults to the current one
        (:func:`~evsrc.correlation.correlated`).
        """
        at = _aware(at)
        if not isinstance(kind, str) or not kind:
            msg = f"kind must be a non-empty str, got {kind!r}"
            raise InvalidInputError(msg, argument="kind", value=kind)
        if not isinstance(key, str) or not key:
            msg = f"key must be a non-empty str, got {key!r}"
            raise InvalidInputError(msg, argument="key", value=key)
        did = id if id is not None else uuid4()
        if not isinstance(did, UUID):
            msg = f"id must be a UUID, got {id!r}"
            raise InvalidInputError(msg, argument="id", value=id)
        event = DeadlineScheduled(
            at=at,
            kind=kind,
            key=key,
            data=dict(data or {}),
            correlation_id=correlation_id or current_correlation_id(),
        )
        new = _REGISTRY.encode(event, id=uuid5(did, "scheduled"))
        try:
            await self.store.append_expect(f"{DEADLINE_PREFIX}{did}", 0, [new])
        except DuplicateEventIdError:
            pass  # scheduled before, with other data: the first one stands
        return did

    async def cancel(self, id: UUID) -> bool:
        """Cancel a pending deadline; ``False`` if it fired, was cancelled or never existed."""
        if not isinstance(id, UUID):
            msg = f"id must be a UUID, got {id!r}"
            raise InvalidInputError(msg, argument="id", value=id)
        stream = f"{DEADLINE_PREFIX}{id}"
        new = _REGISTRY.encode(DeadlineCancelled(), id=uuid5(id, "cancelled"))
        r = await self.store.append_expect(stream, 1, [new])
        return isinstance(r, Committed)

    # -- firing -------------------------------------------------------------------

    async def fire_due(self) -> int:
        """Fire every pending deadline due by the clock now; how many this call fired."""
        now = self.clock()
        due = sorted(
            (d for d in self._index.pending.values() if d.fired or d.at <= now),
            key=lambda d: d.at,
        )
        n = 0
        for d in due:
            if await self._fire(d):
                n += 1
        return n

    async def _fire(self, d: Deadline) -> bool:
        if not d.fired:
            fired = _REGISTRY.encode(DeadlineFired(), id=uuid5(d.id, "fired"))
            r = await self.store.append_expect(d.stream, 1, [fired])
            if not isinstance(r, Committed):
                return False  # cancelled, or another replica fired it
            d.fired = True
        target = self.targets.get(d.kind)
        if target is None:
            msg = f"deadline {d.id}: no target for kind {d.kind!r}"
            raise EvsrcError(msg)
        value = target(d)
        if inspect.isawaitable(value):
            value = await value
        sends = [value] if isinstance(value, Send) else list(value or [])
        for i, send in enumerate(sends):
            try:
                await send.handler.execute(
                    send.key,
                    send.decide,
                    correlation_id=d.correlation_id or str(d.id),
                    causation_id=d.id,
                    event_ids=uuid5(d.id, f"send:{i}"),
                )
            except DuplicateEventIdError:
                pass  # sent before a crash: already committed
        done = _REGISTRY.encode(DeadlineDone(), id=uuid5(d.id, "done"))
        r = await self.store.append_expect(d.stream, 2, [done])
        self._index.pending.pop(d.id, None)
        self.fired += 1
        return isinstance(r, Committed)

    # -- running --------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the deadline events and fire the due ones, until cancelled or :meth:`stop`.

        A round that fails (a fault, a target's error) is tried again at the
        next tick, backing off; ``failures`` and ``error`` say so.
        """
        async with anyio.create_task_group() as tg:
            await tg.start(self.runner.run)
            task_status.started()
            self._scope = tg.cancel_scope
            while True:
                if self.runner.state == "running":
                    try:
                        await self.fire_due()
                    except Exception as exc:  # a fault, or a target's error: next tick again
                        self.failures += 1
                        self.error = exc
                    else:
                        self.failures = 0
                await anyio.sleep(min(self.tick * 2.0 ** min(self.failures, 6), 30.0))

    async def stop(self) -> None:
        """Stop :meth:`run`."""
        scope = getattr(self, "_scope", None)
        if scope is not None:
            scope.cancel()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Deadlines]:
        """``async with deadlines.running():`` — run in the background; stop on exit."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.run)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()
