"""The command handler: observe → decide → ``append_expect`` → on conflict, again.

``CommandHandler.execute(key, decide)`` loads the aggregate's state (from a
cache that catches up with ``read(after=seq)``), calls ``decide(state)``,
and appends the resulting events expecting the seq it observed. When another
writer moved the stream in between, the store returns ``Conflict``; the
handler re-observes and decides again, a bounded number of times, with
jittered exponential backoff. When an append's outcome is unknown (a dropped
connection), it re-sends the *same* events — appends are idempotent by event
id — a bounded number of times.

On a hot stream, commands arriving while an append for that stream is in
flight queue up; when it completes, the queue is decided in order, each
decision seeing the events of those before it, and committed in one append.
Each caller still gets its own :class:`Outcome`.

Cancellation: a caller cancelled while queued leaves the queue. A caller
cancelled while its command is being appended gets the cancellation, and its
command may or may not have been committed — exactly as with a plain append.
When the cancelled caller was the one driving its stream's batch, the next
waiting caller takes over; if the append's outcome was left unknown, it first
re-sends the same events to learn it, so that every other caller still gets
its real outcome.
"""

from __future__ import annotations

import copy
import logging
import random
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from evsrc.aggregate import Aggregate, Decision, Rejection, normalize_decision
from evsrc.errors import (
    AggregateError,
    EvsrcError,
    InvalidInputError,
    OutcomeUnknownError,
    RetriesExhaustedError,
    StoreUnavailableError,
)
from evsrc.events import Committed, Conflict

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from evsrc.codec import Event
    from evsrc.events import NewEvent, RecordedEvent
    from evsrc.snapshot import SnapshotStore
    from evsrc.store import EventStore

__all__ = ["CommandHandler", "Outcome"]

log = logging.getLogger("evsrc.handler")

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[R]):
    """What became of a command.

    ``events`` are the events this command committed (empty for a rejection or
    a no-op); ``committed`` covers exactly those events' seqs (``first_seq …
    last_seq``) and carries the checkpoint of the append that wrote them —
    wait for it with ``ProjectionRunner.wait_until`` to read your own writes.
    ``attempts`` counts decide+append rounds (>= 1).
    """

    stream: str
    attempts: int
    events: Sequence[Event]
    result: R | None
    rejection: Rejection | None
    committed: Committed | None

    @property
    def ok(self) -> bool:
        """True unless the decision was a rejection."""
        return self.rejection is None


@dataclass(eq=False)
class _Command:
    """One caller's command while it is queued, decided and appended."""

    decide: Callable[[Any], Any]
    metadata: dict[str, Any] | None
    attempts: int = 0
    outcome: Outcome[Any] | None = None
    error: BaseException | None = None
    abandoned: bool = False
    lead: bool = False
    #: Set by whoever gives this caller its outcome or the lead; created only
    #: when the caller has to wait (a caller that leads at once never does).
    wake: anyio.Event | None = None

    @property
    def done(self) -> bool:
        return self.outcome is not None or self.error is not None

    def finish(self, outcome: Outcome[Any] | None, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.outcome = outcome
        self.error = error
        if self.wake is not None:
            self.wake.set()


@dataclass(eq=False)
class _Decided:
    """A command's decision within one attempt."""

    command: _Command
    events: list[Event]
    new: list[NewEvent]
    result: Any
    rejection: Rejection | None


@dataclass(eq=False)
class _Attempt:
    """One decide+append round for a batch; ``inflight`` while its append is unanswered."""

    expected: int
    decided: list[_Decided]
    new: list[NewEvent]
    work: Aggregate | None
    base: Aggregate


def _uncount(att: _Attempt) -> None:
    """Take back the attempt a provisional round counted for each of its commands."""
    for d in att.decided:
        d.command.attempts -= 1


@dataclass(eq=False)
class _Lane:
    """A stream's queue of commands waiting for the append in flight."""

    queue: deque[_Command] = field(default_factory=deque)
    busy: bool = False
    #: An append whose outcome a cancelled driver left unknown.
    inflight: _Attempt | None = None


class CommandHandler(Generic[A]):
    """Executes commands against aggregates of one type in ``store``.

    ``max_attempts`` bounds decide+append rounds per command (conflicts past
    it raise ``RetriesExhaustedError``); ``backoff`` is the base of the
    jittered exponential pause between rounds, capped at ``max_backoff``;
    ``unknown_retries`` bounds re-sends of an append whose outcome is unknown.
    ``cache`` keeps folded state per stream (at most ``cache_size`` streams,
    least recently used evicted). ``batching`` decides concurrent commands on
    one stream together and commits them in one append of at most
    ``max_batch`` commands. ``snapshots`` (optional) is a
    :class:`~evsrc.snapshot.SnapshotStore`, written every ``snapshot_every``
    events. ``optimistic`` (with the cache) decides a command's first attempt
    on the cached state without reading first: ``append_expect`` confirms the
    state was current, so the usual case costs one round trip, not two. A
    conflict then catches up and decides again; a first attempt that would
    append nothing (a rejection, a no-op) or whose decision raises is not
    trusted and is decided again on caught-up state.
    """

    def __init__(
        self,
        store: EventStore,
        aggregate: type[A],
        *,
        max_attempts: int = 16,
        backoff: float = 0.001,
        max_backoff: float = 0.1,
        cache: bool = True,
        cache_size: int = 10_000,
        batching: bool = True,
        max_batch: int = 256,
        unknown_retries: int = 3,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int = 1000,
        optimistic: bool = True,
    ) -> None:
        if not (isinstance(aggregate, type) and issubclass(aggregate, Aggregate)):
            msg = f"aggregate must be an Aggregate subclass, got {aggregate!r}"
            raise InvalidInputError(msg, argument="aggregate", value=aggregate)
        aggregate.event_registry()  # fail early on a misdeclared aggregate
        for name, value, low in (
            ("max_attempts", max_attempts, 1),
            ("max_batch", max_batch, 1),
            ("cache_size", cache_size, 1),
            ("unknown_retries", unknown_retries, 0),
            ("snapshot_every", snapshot_every, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                msg = f"{name} must be an int >= {low}, got {value!r}"
                raise InvalidInputError(msg, argument=name, value=value)
        for name, fvalue in (("backoff", backoff), ("max_backoff", max_backoff)):
            if not isinstance(fvalue, (int, float)) or fvalue < 0:
                msg = f"{name} must be a number >= 0, got {fvalue!r}"
                raise InvalidInputError(msg, argument=name, value=fvalue)
        self.store = store
        self.aggregate = aggregate
        self.registry = aggregate.event_registry()
        self.max_attempts = max_attempts
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.cache_enabled = cache
        self.cache_size = cache_size
        self.batching = batching
        self.max_batch = max_batch
        self.unknown_retries = unknown_retries
        self.snapshots = snapshots
        self.snapshot_every = snapshot_every
        self.optimistic = bool(optimistic)
        self._cache: OrderedDict[str, A] = OrderedDict()
        self._lanes: dict[str, _Lane] = {}
        self._snapshot_seq: dict[str, int] = {}

    # -- public API --------------------------------------------------------------

    async def execute(
        self,
        key: str,
        decide: Callable[[A], Sequence[Event] | Decision[R] | Rejection],
        *,
        metadata: dict[str, Any] | None = None,
    ) -> Outcome[R]:
        """Decide against the current state of ``key`` and commit; retry on conflict.

        Returns the :class:`Outcome` (a rejection is an outcome, not an
        error). Raises ``RetriesExhaustedError`` past ``max_attempts``,
        ``OutcomeUnknownError`` when re-sending an interrupted append did not
        settle it, and whatever ``decide`` raised.
        """
        stream = self.aggregate.stream_name(key)
        if metadata is not None and not isinstance(metadata, dict):
            msg = f"metadata must be a dict or None, got {type(metadata).__name__}"
            raise InvalidInputError(msg, argument="metadata", value=metadata)
        command = _Command(decide, metadata)
        if self.batching:
            await self._execute_batched(stream, command)
        else:
            await self._run(stream, [command], None)
        if command.error is not None:
            raise command.error
        assert command.outcome is not None
        outcome: Outcome[R] = command.outcome
        return outcome

    async def load(self, key: str) -> A:
        """The current state of ``key``, caught up; a copy, safe to keep or mutate."""
        stream = self.aggregate.stream_name(key)
        state = await self._observe(stream)
        return state.clone() if self.cache_enabled else state

    async def attempt(
        self,
        key: str,
        decide: Callable[[A], Sequence[Event] | Decision[R] | Rejection],
        state: A,
        expected: int,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> Outcome[R] | Conflict:
        """ONE decide+append against a given observed ``state`` and ``expected`` seq.

        Returns the ``Conflict`` the store returned when the stream had moved
        (nothing written), else the :class:`Outcome` (``attempts == 1``).
        An interrupted append is re-sent as in :meth:`execute`.
        """
        stream = self.aggregate.stream_name(key)
        if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
            msg = f"expected must be an int >= 0, got {expected!r}"
            raise InvalidInputError(msg, argument="expected", value=expected)
        command = _Command(decide, metadata)
        command.attempts = 1
        decided = self._decide_one(command, state)
        if decided is None:
            assert command.error is not None
            raise command.error
        if decided.rejection is not None or not decided.new:
            return Outcome(stream, 1, [], decided.result, decided.rejection, None)
        att = _Attempt(expected, [decided], decided.new, None, state)
        r = await self._append(stream, expected, att.new)
        if isinstance(r, Conflict):
            return r
        self._committed(stream, att, r)
        assert command.outcome is not None
        outcome: Outcome[R] = command.outcome
        return outcome

    def forget(self, key: str | None = None) -> None:
        """Drop cached state (of one key, or all); the next command reloads it."""
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(self.aggregate.stream_name(key), None)

    # -- observing -------------------------------------------------------------------

    async def _observe(self, stream: str) -> A:
        """State of ``stream`` caught up with the store (the cached instance when caching)."""
        if not self.cache_enabled:
            return await self._load_fresh(stream)
        cache = self._cache
        state = cache.get(stream)
        if state is None:
            fresh = await self._load_fresh(stream)
            state = cache.get(stream)
            if state is None or state.seq < fresh.seq:
                state = cache[stream] = fresh
                if len(cache) > self.cache_size:
                    cache.popitem(last=False)
            return state
        cache.move_to_end(stream)
        events = await self._read(stream, state.seq)
        # No await from here on: events are folded and seq advanced in one step, and
        # fold() skips what another task's catch-up already folded meanwhile.
        if events:
            try:
                state.fold_all(events)
            except AggregateError:
                cache.pop(stream, None)
                raise
            except EvsrcError:
                raise
            except Exception as exc:
                cache.pop(stream, None)
                msg = f"{type(state).__qualname__} failed to apply an event of {stream!r}: {exc}"
                raise AggregateError(msg, stream=stream) from exc
            await self._maybe_snapshot(stream, state)
        return state

    async def _load_fresh(self, stream: str) -> A:
        agg = self.aggregate
        state: A | None = None
        if self.snapshots is not None:
            snap = await self.snapshots.load(stream)
            if snap is not None and snap.schema == agg.snapshot_schema():
                try:
                    state = agg.from_snapshot(snap.state)
                    state.seq = snap.seq
                    self._snapshot_seq[stream] = snap.seq
                except Exception:
                    log.warning(
                        "ignoring a snapshot of %r that does not load", stream, exc_info=True
                    )
                    state = None
        if state is None:
            state = agg()
        events = await self._read(stream, state.seq)
        try:
            state.fold_all(events)
        except EvsrcError:
            raise
        except Exception as exc:
            msg = f"{agg.__qualname__} failed to apply an event of {stream!r}: {exc}"
            raise AggregateError(msg, stream=stream) from exc
        await self._maybe_snapshot(stream, state)
        return state

    async def _maybe_snapshot(self, stream: str, state: A) -> None:
        if self.snapshots is None:
            return
        last = self._snapshot_seq.get(stream, 0)
        if state.seq - last < self.snapshot_every:
            return
        self._snapshot_seq[stream] = state.seq
        from evsrc.snapshot import Snapshot

        try:
            snap = Snapshot(stream, state.seq, state.snapshot_schema(), state.to_snapshot())
            await self.snapshots.save(snap)
        except Exception:
            # A snapshot is an optimisation: failing to take one must not fail a command.
            log.warning("could not save a snapshot of %r", stream, exc_info=True)

    # -- deciding --------------------------------------------------------------------

    def _decision(self, command: _Command, state: Aggregate) -> _Decided:
        """Run one decision and encode its events; raises what the decision raised."""
        value = command.decide(state)
        events, result, rejection = normalize_decision(value)
        new = [self.registry.encode(e, metadata=command.metadata) for e in events]
        return _Decided(command, events, new, result, rejection)

    def _decide_one(self, command: _Command, state: Aggregate) -> _Decided | None:
        """Run one decision; on error, finish the command with it and return None."""
        try:
            return self._decision(command, state)
        except Exception as exc:
            command.finish(None, exc)
            return None

    def _decide_batch(
        self, commands: list[_Command], state: A, *, provisional: bool = False
    ) -> _Attempt | None:
        """Decide each command in order, each seeing the events of those before it.

        ``provisional``: ``state`` may be stale (the cache, unread). Then a
        decision that raises finishes nobody: the attempt is abandoned (None)
        and the caller decides again on caught-up state.
        """
        expected = state.seq
        decided: list[_Decided] = []
        new: list[NewEvent] = []
        work: Aggregate | None = None
        last = len(commands) - 1
        for i, command in enumerate(commands):
            command.attempts += 1
            target = work if work is not None else state
            if provisional:
                try:
                    d: _Decided | None = self._decision(command, target)
                except Exception:
                    for c in commands[: i + 1]:
                        c.attempts -= 1
                    return None
            else:
                d = self._decide_one(command, target)
            if d is None:
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
        return _Attempt(expected, decided, new, work, state)

    # -- appending -------------------------------------------------------------------

    async def _append(
        self, stream: str, expected: int, new: list[NewEvent]
    ) -> Committed | Conflict:
        """``append_expect``, re-sending the same events when the store is unavailable.

        Re-sending is safe whether or not an earlier try committed: the event
        ids make it idempotent. If any try's outcome was unknown, giving up
        raises ``OutcomeUnknownError`` even when the last try failed cleanly.
        """
        tries = 0
        unknown: OutcomeUnknownError | None = None
        while True:
            try:
                return await self.store.append_expect(stream, expected, new)
            except StoreUnavailableError as exc:
                if isinstance(exc, OutcomeUnknownError):
                    unknown = exc
                tries += 1
                if tries > self.unknown_retries:
                    if unknown is not None and unknown is not exc:
                        msg = (
                            f"an append to {stream!r} was interrupted and re-sending it "
                            f"failed {tries - 1} times; it may have committed ({exc})"
                        )
                        raise OutcomeUnknownError(
                            msg,
                            stream=stream,
                        ) from exc
                    raise
                log.info("append to %r failed (%s); re-sending (%d)", stream, exc, tries)
                await anyio.sleep(self._pause(tries))

    async def _read(self, stream: str, after: int) -> list[RecordedEvent]:
        """``read``, retried a bounded number of times while the store is unavailable."""
        tries = 0
        while True:
            try:
                return await self.store.read(stream, after=after)
            except StoreUnavailableError as exc:
                tries += 1
                if tries > self.unknown_retries:
                    raise
                log.info("read of %r failed (%s); retrying (%d)", stream, exc, tries)
                await anyio.sleep(self._pause(tries))

    def _pause(self, attempt: int) -> float:
        """Full-jitter exponential backoff."""
        ceiling = min(self.max_backoff, self.backoff * (2 ** min(attempt - 1, 30)))
        return random.uniform(0, ceiling)

    def _committed(self, stream: str, att: _Attempt, committed: Committed) -> None:
        """Deliver outcomes of a committed attempt and fold its events into the cache."""
        seq = att.expected
        for d in att.decided:
            c = d.command
            mine: Committed | None = None
            if d.new:
                mine = Committed(
                    stream, seq + 1, seq + len(d.new), committed.position, committed.checkpoint
                )
                seq += len(d.new)
            c.finish(Outcome(stream, c.attempts, d.events, d.result, d.rejection, mine))
        if not self.cache_enabled:
            return
        cached = self._cache.get(stream)
        if cached is None or cached.seq != att.expected:
            # Another task's catch-up got there first, or the entry changed: the next read fixes it.
            return
        try:
            work = att.work
            if work is not None and work.seq >= att.expected:
                # The batch copy already holds every event but the last command's.
                done = work.seq - att.expected
                rest = [e for d in att.decided for e in d.events][done:]
                work.apply_new(rest)
                if work.seq == committed.last_seq:
                    self._cache[stream] = work  # type: ignore[assignment]
                    return
                self._cache.pop(stream, None)
                return
            cached.apply_new([e for d in att.decided for e in d.events])
            if cached.seq != committed.last_seq:
                self._cache.pop(stream, None)
        except Exception:
            log.warning("failed to apply committed events to cached %r", stream, exc_info=True)
            self._cache.pop(stream, None)

    def _finish_all(self, commands: Sequence[_Command], error: BaseException) -> None:
        # Each caller raises its own copy: one instance raised in many tasks would
        # pile up all their tracebacks.
        for i, c in enumerate(commands):
            c.finish(None, error if i == 0 else _copy_error(error))

    # -- the retry loop ----------------------------------------------------------------

    async def _run(self, stream: str, commands: list[_Command], lane: _Lane | None) -> None:
        """Decide and append ``commands`` together until each has an outcome or an error.

        With a ``lane`` (batching), a cancellation hands the unfinished
        commands back to the lane: to its queue, or as its ``inflight``
        attempt when the append was left unanswered.
        """
        live = [c for c in commands if not c.done]
        att: _Attempt | None = None
        appending = False
        # The first round may decide on the cached state unread; append_expect checks it.
        trust_cache = self.optimistic and self.cache_enabled
        # A provisional round that appends nothing, waiting for the read that confirms it.
        unconfirmed: _Attempt | None = None
        try:
            while live:
                cached = self._cache.get(stream) if trust_cache else None
                provisional = cached is not None
                trust_cache = False
                if cached is not None:
                    self._cache.move_to_end(stream)
                    state = cached
                else:
                    try:
                        state = await self._observe(stream)
                    except Exception as exc:
                        self._finish_all(live, exc)
                        return
                    if unconfirmed is not None:
                        if state is unconfirmed.base and state.seq == unconfirmed.expected:
                            # The read found nothing new: the decisions taken on the
                            # cached state stand as they are (no second decision).
                            self._finish_unwritten(stream, unconfirmed)
                            return
                        # The stream moved: that round does not count as an attempt.
                        _uncount(unconfirmed)
                        unconfirmed = None
                att = self._decide_batch(live, state, provisional=provisional)
                if att is None or (provisional and not att.new):
                    # Nothing to append means nothing confirms the cached state:
                    # read; if the stream moved, decide again on caught-up state.
                    unconfirmed = att
                    att = None
                    continue
                if not att.new:
                    self._finish_unwritten(stream, att)
                    return
                appending = True
                try:
                    r = await self._append(stream, att.expected, att.new)
                except Exception as exc:
                    self._finish_all([d.command for d in att.decided], exc)
                    return
                appending = False
                if isinstance(r, Committed):
                    self._committed(stream, att, r)
                    await self._after_commit(stream)
                    return
                live = self._after_conflict(stream, att)
                att = None
                if live and not provisional:
                    # (After a stale cache, the conflict is news already read: no pause.)
                    await anyio.sleep(self._pause(max(c.attempts for c in live)))
        except BaseException:
            if unconfirmed is not None:
                # Interrupted while confirming: that round does not count either.
                _uncount(unconfirmed)
            if lane is not None:
                if appending and att is not None:
                    lane.inflight = att
                else:
                    rest = [c for c in live if not c.done and not c.abandoned]
                    lane.queue.extendleft(reversed(rest))
            raise

    @staticmethod
    def _finish_unwritten(stream: str, att: _Attempt) -> None:
        """Deliver the outcomes of an attempt whose decisions append nothing."""
        for d in att.decided:
            c = d.command
            if not c.done:
                c.finish(Outcome(stream, c.attempts, [], d.result, d.rejection, None))

    def _after_conflict(self, stream: str, att: _Attempt) -> list[_Command]:
        """Commands to decide again after a conflict; the others exhausted their attempts."""
        live: list[_Command] = []
        for d in att.decided:
            c = d.command
            if c.done or c.abandoned:
                continue
            if c.attempts >= self.max_attempts:
                c.finish(None, RetriesExhaustedError(stream=stream, attempts=c.attempts))
            else:
                live.append(c)
        return live

    async def _after_commit(self, stream: str) -> None:
        if self.snapshots is not None and self.cache_enabled:
            state = self._cache.get(stream)
            if state is not None:
                await self._maybe_snapshot(stream, state)

    # -- batching -------------------------------------------------------------------------

    async def _execute_batched(self, stream: str, command: _Command) -> None:
        lane = self._lanes.get(stream)
        if lane is None:
            lane = self._lanes[stream] = _Lane()
        lane.queue.append(command)
        if not lane.busy:
            lane.busy = True
            command.lead = True
        try:
            while not command.done:
                if command.lead:
                    await self._drive(stream, lane, command)
                else:
                    # No await between queueing and here: nobody can have
                    # tried to wake this caller before its event exists.
                    wake = command.wake = anyio.Event()
                    await wake.wait()
                    command.wake = None
        except BaseException:
            self._abandon(lane, command)
            raise
        finally:
            if not lane.busy and not lane.queue and lane.inflight is None:
                if self._lanes.get(stream) is lane:
                    del self._lanes[stream]

    def _abandon(self, lane: _Lane, command: _Command) -> None:
        """A cancelled caller: leave the queue, and pass on the lead if it had it."""
        command.abandoned = True
        try:
            lane.queue.remove(command)
        except ValueError:
            pass
        if command.lead:
            command.lead = False
            self._hand_off(lane)

    def _hand_off(self, lane: _Lane) -> None:
        """Make a waiting caller the stream's driver, or mark the stream idle."""
        candidates: list[_Command] = []
        if lane.inflight is not None:
            candidates = [d.command for d in lane.inflight.decided]
        candidates.extend(lane.queue)
        for c in candidates:
            if not c.done and not c.abandoned:
                c.lead = True
                if c.wake is not None:
                    c.wake.set()
                return
        lane.inflight = None
        lane.busy = False

    async def _drive(self, stream: str, lane: _Lane, me: _Command) -> None:
        """Run batches for the stream until ``me`` has its outcome, then hand off."""
        try:
            while not me.done:
                att = lane.inflight
                if att is not None:
                    lane.inflight = None
                    await self._settle(stream, lane, att)
                    continue
                batch: list[_Command] = []
                while lane.queue and len(batch) < self.max_batch:
                    c = lane.queue.popleft()
                    if not c.done and not c.abandoned:
                        batch.append(c)
                if not batch:  # pragma: no cover - me is always queued or inflight
                    msg = "command neither queued nor in flight"
                    raise AssertionError(msg)
                await self._run(stream, batch, lane)
        except BaseException:
            me.abandoned = True
            raise
        finally:
            me.lead = False
            self._hand_off(lane)

    async def _settle(self, stream: str, lane: _Lane, att: _Attempt) -> None:
        """Learn the outcome of an append a cancelled driver left unanswered."""
        try:
            r = await self._append(stream, att.expected, att.new)
        except Exception as exc:
            self._finish_all([d.command for d in att.decided if not d.command.abandoned], exc)
            return
        except BaseException:
            lane.inflight = att
            raise
        if isinstance(r, Committed):
            self._committed(stream, att, r)
            return
        live = self._after_conflict(stream, att)
        lane.queue.extendleft(reversed(live))


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
