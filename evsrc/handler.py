"""The command handler: observe → decide → ``append_expect`` → on conflict, again.

``CommandHandler.execute(key, decide)`` loads the aggregate's state (from a
:class:`~evsrc.cache.StateCache` that catches up with ``read(after=seq)``),
calls ``decide(state)``, and appends the resulting events expecting the seq it
observed. When another writer moved the stream in between, the store returns
``Conflict``; the handler re-observes and decides again, as its
:class:`~evsrc.retry.RetryPolicy` allows. When an append's outcome is unknown
(a dropped connection), it re-sends the *same* events — appends are
idempotent by event id — a bounded number of times.

On a hot stream, commands arriving while an append for that stream is in
flight queue up in its lane (:mod:`evsrc.lanes`); when it completes, the queue
is decided in order, each decision seeing the events of those before it, and
committed in one append. Each caller still gets its own :class:`Outcome`.

Cancellation: a caller cancelled while queued leaves the queue. A caller
cancelled while its command is being appended gets the cancellation, and its
command may or may not have been committed — exactly as with a plain append;
the other callers of its batch still get their real outcomes.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, TypeVar

from typing_extensions import TypeVar as DefaultTypeVar

from evsrc.aggregate import Aggregate, Decision, Rejection
from evsrc.cache import StateCache
from evsrc.correlation import _current, stamp
from evsrc.deciding import Attempt, Command, decide_one
from evsrc.errors import AggregateError, InvalidInputError
from evsrc.handler_loop import HandlerLoop
from evsrc.lanes import Lanes
from evsrc.outcome import Accepted, Outcome, Rejected, outcome
from evsrc.records import Conflict
from evsrc.retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from uuid import UUID

    from evsrc.models import Event
    from evsrc.snapshot import SnapshotStore
    from evsrc.store import EventStore

__all__ = ["Accepted", "CommandHandler", "Outcome", "Rejected", "RetryPolicy"]

A = TypeVar("A", bound=Aggregate)
#: A decision's result and rejection detail: ``None`` when the decision has none.
R = DefaultTypeVar("R", default=None)
D = DefaultTypeVar("D", default=None)


#: The correlation id current in the caller's context (``current_correlation_id``, bound).
_current_correlation = _current.get

_DEFAULT_STREAM_NAME = Aggregate.stream_name.__func__  # type: ignore[attr-defined]


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        msg = f"{name} must be an int >= {low}, got {value!r}"
        raise InvalidInputError(msg, argument=name, value=value)


def _command(
    decide: Callable[[Any], Any],
    metadata: dict[str, Any] | None,
    correlation_id: str | UUID | None,
    causation_id: str | UUID | None,
    event_ids: UUID | None,
) -> Command:
    """A queued command with its metadata stamped (correlation and causation ids)."""
    if metadata is not None and not isinstance(metadata, dict):
        msg = f"metadata must be a dict or None, got {type(metadata).__name__}"
        raise InvalidInputError(msg, argument="metadata", value=metadata)
    if event_ids is not None and not isinstance(event_ids, uuid.UUID):
        msg = f"event_ids must be a UUID or None, got {event_ids!r}"
        raise InvalidInputError(msg, argument="event_ids", value=event_ids)
    return Command(decide, stamp(metadata, correlation_id, causation_id), id_seed=event_ids)


class CommandHandler(HandlerLoop[A]):
    """Executes commands against aggregates of one type in ``store``.

    ``retry`` (a :class:`RetryPolicy`) bounds decide+append rounds per command
    and shapes the pauses between them; the keywords ``max_attempts``,
    ``backoff``, ``max_backoff`` and ``unknown_retries`` override its fields.
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
        retry: RetryPolicy | None = None,
        cache: bool = True,
        cache_size: int = 10_000,
        batching: bool = True,
        max_batch: int = 256,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int = 1000,
        optimistic: bool = True,
        max_attempts: int | None = None,
        backoff: float | None = None,
        max_backoff: float | None = None,
        unknown_retries: int | None = None,
    ) -> None:
        if not (isinstance(aggregate, type) and issubclass(aggregate, Aggregate)):
            msg = f"aggregate must be an Aggregate subclass, got {aggregate!r}"
            raise InvalidInputError(msg, argument="aggregate", value=aggregate)
        retry = RetryPolicy.merged(
            retry,
            max_attempts=max_attempts,
            backoff=backoff,
            max_backoff=max_backoff,
            unknown_retries=unknown_retries,
        )
        _check_int("max_batch", max_batch, 1)
        _check_int("cache_size", cache_size, 1)
        _check_int("snapshot_every", snapshot_every, 1)
        self.store = store
        self.aggregate = aggregate
        self.registry = aggregate.event_registry()  # fails early on a misdeclared aggregate
        self.retry = retry
        self.batching = batching
        self.optimistic = bool(optimistic)
        self._cache = StateCache(
            aggregate,
            self._read,
            enabled=cache,
            size=cache_size,
            snapshots=snapshots,
            snapshot_every=snapshot_every,
        )
        self._lanes = Lanes(max_batch, self._run, self._settle)
        # "<prefix>:" when the aggregate names its streams the default way (a fast path).
        self._stream_head: str | None = None
        if getattr(aggregate.stream_name, "__func__", None) is _DEFAULT_STREAM_NAME:
            try:
                self._stream_head = aggregate.stream_name("k")[:-1]
            except AggregateError:
                pass  # no stream_prefix: execute() raises it

    @property
    def cache(self) -> StateCache[A]:
        """The handler's :class:`~evsrc.cache.StateCache`."""
        return self._cache

    # -- public API --------------------------------------------------------------

    async def execute(
        self,
        key: str,
        decide: Callable[[A], Sequence[Event] | Decision[R] | Rejection[D]],
        *,
        metadata: dict[str, Any] | None = None,
        correlation_id: str | UUID | None = None,
        causation_id: str | UUID | None = None,
        event_ids: UUID | None = None,
    ) -> Accepted[R, D] | Rejected[R, D]:
        """Decide against the current state of ``key`` and commit; retry on conflict.

        Returns the :class:`Outcome` (a rejection is an outcome, not an
        error): :class:`Accepted` or :class:`Rejected`, told apart by ``ok``.
        Raises ``RetriesExhaustedError`` past ``max_attempts``,
        ``OutcomeUnknownError`` when re-sending an interrupted append did not
        settle it, and whatever ``decide`` raised.

        Every event appended gets ``correlation_id`` and ``causation_id`` in
        its metadata (:mod:`evsrc.correlation`). ``event_ids`` (a UUID) makes
        the events' ids deterministic — ``uuid5(event_ids, "<index>")`` — so
        that re-running the same command after a crash can never append its
        events twice (the store refuses an id it already holds).
        """
        head = self._stream_head
        if head is not None and type(key) is str and key:
            stream = head + key
        else:
            stream = self.aggregate.stream_name(key)
        if metadata is None and correlation_id is None and causation_id is None:
            if event_ids is None:
                # Stamped late (deciding._stamp), at its first decision that writes:
                # most commands that write nothing never build their metadata.
                command = Command(decide, None)
                command.correlation = _current_correlation()
            else:
                command = _command(decide, None, None, None, event_ids)
        else:
            command = _command(decide, metadata, correlation_id, causation_id, event_ids)
        if self.batching:
            await self._lanes.execute(stream, command)
        else:
            await self._run(stream, [command], None)
        if command.error is not None:
            raise command.error
        out = command.outcome
        assert out is not None
        return out  # type: ignore[return-value]

    async def load(self, key: str) -> A:
        """The current state of ``key``, caught up; a copy, safe to keep or mutate."""
        stream = self.aggregate.stream_name(key)
        state = await self._cache.observe(stream)
        return state.clone() if self._cache.enabled else state

    async def attempt(
        self,
        key: str,
        decide: Callable[[A], Sequence[Event] | Decision[R] | Rejection[D]],
        state: A,
        expected: int,
        *,
        metadata: dict[str, Any] | None = None,
        correlation_id: str | UUID | None = None,
        causation_id: str | UUID | None = None,
        event_ids: UUID | None = None,
    ) -> Accepted[R, D] | Rejected[R, D] | Conflict:
        """ONE decide+append against a given observed ``state`` and ``expected`` seq.

        Returns the ``Conflict`` the store returned when the stream had moved
        (nothing written), else the :class:`Outcome` (``attempts == 1``).
        An interrupted append is re-sent as in :meth:`execute`; the ids are
        stamped as there.
        """
        stream = self.aggregate.stream_name(key)
        if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
            msg = f"expected must be an int >= 0, got {expected!r}"
            raise InvalidInputError(msg, argument="expected", value=expected)
        command = _command(decide, metadata, correlation_id, causation_id, event_ids)
        command.attempts = 1
        decided = decide_one(self.registry, command, state)
        if decided is None:
            assert command.error is not None
            raise command.error
        if decided.rejection is not None or not decided.new:
            return outcome(stream, 1, [], decided.result, decided.rejection, None)
        att = Attempt(expected, [decided], decided.new, None, state)
        r = await self._append(stream, expected, att.new)
        if isinstance(r, Conflict):
            return r
        self._committed(stream, att, r)
        assert isinstance(command.outcome, (Accepted, Rejected))
        return command.outcome

    def forget(self, key: str | None = None) -> None:
        """Drop cached state (of one key, or all); the next command reloads it."""
        self._cache.forget(None if key is None else self.aggregate.stream_name(key))
