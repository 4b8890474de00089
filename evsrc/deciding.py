"""Commands while they are decided: one caller's command, its decision, a batch's attempt.

The command handler's internals: :func:`decide_batch` runs queued commands'
decisions in order, each seeing the events of those before it (on a private
copy of the state), and gathers the events of one append.
"""

from __future__ import annotations

import copy
from asyncio import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias
from uuid import UUID, uuid5

from evsrc.aggregate import Aggregate, Decision, Rejection, normalize_decision
from evsrc.correlation import CAUSATION_ID, CORRELATION_ID, new_id
from evsrc.errors import AggregateError, RetriesExhaustedError
from evsrc.models import Event
from evsrc.outcome import Accepted, Outcome, Rejected
from evsrc.records import Committed

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import anyio

    from evsrc.models import EventRegistry
    from evsrc.records import NewEvent

_tuple_new = tuple.__new__
#: What a Decision's events usually are: a list, or the default empty tuple.
_PLAIN_SEQUENCES = frozenset((list, tuple))

__all__ = ["Attempt", "Command", "Decided", "Wake", "decide_batch", "decide_one", "wake_up"]

#: What a waiting caller waits on.
Wake: TypeAlias = "Future[None] | anyio.Event"


def wake_up(wake: Wake | None) -> None:
    """Wake the caller waiting on ``wake`` (if any, and not already woken or cancelled)."""
    if wake is None:
        return
    if isinstance(wake, Future):
        if not wake.done():
            wake.set_result(None)
    else:
        wake.set()


@dataclass(eq=False, slots=True)
class Command:
    """One caller's command while it is queued, decided and appended."""

    decide: Callable[[Any], Any]
    metadata: dict[str, Any] | None
    attempts: int = 0
    outcome: Outcome[Any, Any] | None = None
    error: BaseException | None = None
    abandoned: bool = False
    lead: bool = False
    #: Set by whoever gives this caller its outcome or the lead; created only
    #: when the caller has to wait (a caller that leads at once never does).
    #: Under asyncio a bare future (the cheapest wake-up), else an anyio Event.
    wake: Wake | None = None
    #: Events get ids ``uuid5(id_seed, "<index>")`` when set (deterministic ids).
    id_seed: UUID | None = None
    #: True once the command has its outcome or its error (set by :meth:`finish`;
    #: a plain attribute, read several times per command).
    done: bool = False
    #: The correlation id current when the command was issued, for a command
    #: stamped late (``metadata`` None until its first decision writes events).
    correlation: str | None = None
    #: Its place in the order commands were queued on the handler's lanes
    #: (:attr:`evsrc.lanes.Lanes.enqueued` once it was queued; 0 if never).
    ticket: int = 0

    def finish(self, outcome: Outcome[Any, Any] | None, error: BaseException | None = None) -> None:
        """Give the caller its outcome (or error) and wake it; the first answer wins."""
        if self.done:
            return
        self.outcome = outcome
        self.error = error
        self.done = outcome is not None or error is not None
        wake = self.wake
        if wake is not None:
            if type(wake) is Future:  # wake_up's usual case, inline: once per waiting caller
                if not wake.done():
                    wake.set_result(None)
            else:
                wake_up(wake)


@dataclass(eq=False, slots=True)
class Decided:
    """A command's decision within one attempt."""

    command: Command
    events: list[Event]
    new: list[NewEvent]
    result: Any
    rejection: Rejection[Any] | None


@dataclass(eq=False, slots=True)
class Attempt:
    """One decide+append round for a batch: the decisions, their events, the state seen."""

    expected: int
    decided: list[Decided]
    new: list[NewEvent]
    #: The private copy later decisions saw (None when no decision needed one).
    work: Aggregate | None
    base: Aggregate
    #: While the append is in flight and commands wait behind it: the
    #: :attr:`~evsrc.deciding.Command.ticket` of the last command queued before
    #: it was sent (0: none may ride). See :func:`evsrc.riding.ride`.
    mark: int = 0
    #: Commands decided, while the append was in flight, on the state it makes
    #: current, each writing nothing: answered with it (:func:`evsrc.riding.ride`).
    riders: list[Decided] | None = None

    def uncount(self) -> None:
        """Take back the attempt a provisional round counted for each of its commands."""
        for d in self.decided:
            d.command.attempts -= 1

    def deliver(self, stream: str, committed: Committed) -> list[Event]:
        """Give each command its outcome once the attempt committed; returns all its events."""
        decided = self.decided
        if len(decided) == 1:
            # The append was this command's alone: its Committed is the append's.
            d = decided[0]
            c = d.command
            c.finish(
                Accepted(stream, c.attempts, d.events, d.result, None, committed)
                if d.rejection is None
                else Rejected(stream, c.attempts, d.events, None, d.rejection, committed)
            )
            return d.events
        seq = self.expected
        position, checkpoint = committed.position, committed.checkpoint
        for d in decided:
            c = d.command
            mine: Committed | None = None
            n = len(d.new)
            if n:
                mine = _tuple_new(Committed, (stream, seq + 1, seq + n, position, checkpoint))
                seq += n
            rejection = d.rejection
            c.finish(
                Accepted(stream, c.attempts, d.events, d.result, None, mine)
                if rejection is None
                else Rejected(stream, c.attempts, d.events, None, rejection, mine)
            )
        return [e for d in decided for e in d.events]

    def finish_riders(self, stream: str) -> None:
        """Answer the riders once the append committed: each decided on the state it made."""
        riders = self.riders
        if riders is None:
            return
        self.riders = None
        for d in riders:
            c = d.command
            if not c.done:
                c.attempts += 1
                rejection = d.rejection
                c.finish(
                    Accepted(stream, c.attempts, d.events, d.result, None, None)
                    if rejection is None
                    else Rejected(stream, c.attempts, d.events, None, rejection, None)
                )

    def take_riders(self) -> list[Command]:
        """The riders' commands, to decide again (the append did not commit, or is unknown)."""
        riders = self.riders
        if riders is None:
            return []
        self.riders = None
        return [d.command for d in riders if not d.command.done and not d.command.abandoned]

    def after_conflict(self, stream: str, max_attempts: int) -> list[Command]:
        """Commands to decide again after a conflict; the others exhausted their attempts."""
        live: list[Command] = []
        for d in self.decided:
            c = d.command
            if c.done or c.abandoned:
                continue
            if c.attempts >= max_attempts:
                c.finish(None, RetriesExhaustedError(stream=stream, attempts=c.attempts))
            else:
                live.append(c)
        return live

    def finish_unwritten(self, stream: str) -> None:
        """Deliver the outcomes of decisions that append nothing."""
        for d in self.decided:
            c = d.command
            if not c.done:
                # (d.events is empty: nothing was appended, so nothing was decided.)
                rejection = d.rejection
                c.finish(
                    Accepted(stream, c.attempts, d.events, d.result, None, None)
                    if rejection is None
                    else Rejected(stream, c.attempts, d.events, None, rejection, None)
                )


def _decision(registry: EventRegistry, command: Command, state: Aggregate) -> Decided:
    """Run one decision and encode its events; raises what the decision raised."""
    value = command.decide(state)
    events: list[Event]
    if type(value) is Decision and type(value.events) in _PLAIN_SEQUENCES:
        # normalize_decision's usual case, inline (a call less per command).
        events = list(value.events)
        result = value.result
        rejection: Rejection[Any] | None = None
        for e in events:
            if not isinstance(e, Event):
                normalize_decision(value)  # raises, with its message
    else:
        events, result, rejection = normalize_decision(value)
    n = len(events)
    if not n:  # a decision that writes nothing (a no-op, a "full" answer)
        new: list[NewEvent] = []
    else:
        md = command.metadata
        if md is None:
            md = _stamp(command)
        seed = command.id_seed
        if seed is not None:
            new = [
                registry.encode(e, metadata=md, id=uuid5(seed, str(i)))
                for i, e in enumerate(events)
            ]
        elif n == 1:  # the usual decision: no comprehension frame
            new = [registry.encode(events[0], metadata=md)]
        else:
            new = [registry.encode(e, metadata=md) for e in events]
    return Decided(command, events, new, result, rejection)


def _stamp(command: Command) -> dict[str, Any]:
    """The metadata of a command stamped late, once: ``stamp(None, None, None)`` as issued.

    A new command id, its causation id and, unless the caller was inside
    :func:`~evsrc.correlation.correlated`, its correlation id too; built at its
    first decision that writes (a command that writes nothing never needs one).
    """
    command_id = new_id()
    current = command.correlation
    md = command.metadata = {
        CAUSATION_ID: command_id,
        CORRELATION_ID: command_id if current is None else current,
    }
    return md


def decide_one(registry: EventRegistry, command: Command, state: Aggregate) -> Decided | None:
    """Run one decision; on error, finish the command with it and return None."""
    try:
        return _decision(registry, command, state)
    except Exception as exc:
        command.finish(None, exc)
        return None


def decide_batch(
    registry: EventRegistry,
    commands: list[Command],
    state: Aggregate,
    *,
    provisional: bool = False,
) -> Attempt | None:
    """Decide each command in order, each seeing the events of those before it.

    ``provisional``: ``state`` may be stale (the cache, unread). Then a
    decision that raises finishes nobody: the attempt is abandoned (None)
    and the caller decides again on caught-up state.
    """
    expected = state.seq
    last = len(commands) - 1
    if not last:
        # A lone command (the uncontended case): the loop below without its
        # bookkeeping; its events are the attempt's, in the same list.
        command = commands[0]
        command.attempts += 1
        try:
            d = _decision(registry, command, state)
        except Exception as exc:
            if provisional:
                command.attempts -= 1
                return None
            command.finish(None, exc)
            return Attempt(expected, [], [], None, state)
        return Attempt(expected, [d], d.new, None, state)
    decided: list[Decided] = []
    new: list[NewEvent] = []
    work: Aggregate | None = None
    for i, command in enumerate(commands):
        command.attempts += 1
        target = work if work is not None else state
        try:
            d = _decision(registry, command, target)
        except Exception as exc:
            if provisional:
                for c in commands[: i + 1]:
                    c.attempts -= 1
                return None
            command.finish(None, exc)
            continue
        if d.events and i < last:
            # Later commands must see these events: apply them to a private copy.
            if work is None:
                work = state.clone()
            try:
                work.apply_new(d.events)
            except Exception as exc:
                if provisional:
                    for c in commands[: i + 1]:
                        c.attempts -= 1
                    return None
                err = AggregateError(
                    f"{type(state).__qualname__} failed to apply its own decided events: {exc}"
                )
                err.__cause__ = exc
                command.finish(None, err)
                # The copy may be half-changed: rebuild it from the accepted events.
                work = state.clone()
                for prev in decided:
                    work.apply_new(prev.events)
                continue
        decided.append(d)
        new.extend(d.new)
    return Attempt(expected, decided, new, work, state)


def finish_all(commands: Sequence[Command], error: BaseException) -> None:
    """Finish every command with ``error``; each caller raises its own copy of it.

    One instance raised in many tasks would pile up all their tracebacks.
    """
    for i, c in enumerate(commands):
        c.finish(None, error if i == 0 else _copy_error(error))


def _copy_error(error: BaseException) -> BaseException:
    """A copy of ``error`` with the same attributes, cause and traceback (or itself)."""
    try:
        dup = copy.copy(error)
    except Exception:
        return error
    if type(dup) is not type(error):  # pragma: no cover - an odd __reduce__
        return error
    dup.__cause__ = error.__cause__
    dup.__context__ = error.__context__
    dup.__suppress_context__ = error.__suppress_context__
    return dup.with_traceback(error.__traceback__)
