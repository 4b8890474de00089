"""Aggregates: the state of one stream, folded from its events, and the decisions made on it.

A user subclasses :class:`Aggregate`, names its streams (``stream_prefix``),
gives it an :class:`~evsrc.codec.EventRegistry`, declares how each event
changes state with :func:`applies`, and writes decisions as plain methods that
read ``self`` and return new events, a :class:`Decision` or a
:class:`Rejection` — never mutating ``self``::

    class Account(Aggregate):
        stream_prefix = "account"
        registry = EventRegistry(Deposited, Withdrawn)

        def __init__(self) -> None:
            super().__init__()
            self.balance = 0

        @applies(Deposited)
        def _deposited(self, e: Deposited) -> None:
            self.balance += e.amount

        def withdraw(self, amount: int) -> list[Event] | Rejection:
            if amount > self.balance:
                return Rejection("insufficient funds", self.balance)
            return [Withdrawn(amount=amount)]

The :class:`~evsrc.handler.CommandHandler` loads, caches and catches up
aggregates, and commits their decisions.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

from evsrc.codec import Event, EventRegistry
from evsrc.errors import AggregateError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from evsrc.events import RecordedEvent

__all__ = ["Aggregate", "Decision", "Rejection", "applies"]

R = TypeVar("R")
F = TypeVar("F", bound="Callable[..., Any]")

_APPLIES_ATTR = "__evsrc_applies__"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A decision's "no": returned by a decision (not raised), with a reason for the caller."""

    reason: str
    detail: Any = None


@dataclass(frozen=True, slots=True)
class Decision(Generic[R]):
    """A decision's "yes": the events to append, and a result value for the caller."""

    events: Sequence[Event] = ()
    result: R | None = None


def applies(*event_types: type[Event]) -> Callable[[F], F]:
    """Mark an aggregate method as the fold of the given event models.

    The method takes ``(self, event)`` and mutates ``self``; it must not fail
    for an event that a decision of the same aggregate produced.
    """
    if not event_types:
        msg = "applies() needs at least one event model"
        raise AggregateError(msg)
    for t in event_types:
        if not (isinstance(t, type) and issubclass(t, Event)):
            msg = f"applies() takes Event subclasses, got {t!r}"
            raise AggregateError(msg)

    def mark(fn: F) -> F:
        existing: tuple[type[Event], ...] = getattr(fn, _APPLIES_ATTR, ())
        setattr(fn, _APPLIES_ATTR, existing + event_types)
        return fn

    return mark


class Aggregate:
    """Base class of aggregates: the folded state of one stream, ``f"{stream_prefix}:{key}"``.

    ``seq`` is the last stream seq folded into this instance (0: nothing yet).
    Subclasses set their initial state in ``__init__`` (calling
    ``super().__init__()``), declare folds with :func:`applies` (or override
    :meth:`apply`), and may override :meth:`clone` (a copy to decide a batch
    against; default ``copy.deepcopy``) and the snapshot hooks
    :meth:`to_snapshot` / :meth:`from_snapshot`.
    """

    stream_prefix: ClassVar[str]
    registry: ClassVar[EventRegistry]
    #: Bump when the state's shape changes: older snapshots are then ignored.
    snapshot_version: ClassVar[int] = 1

    _appliers: ClassVar[dict[type[Event], str]] = {}

    seq: int

    def __init__(self) -> None:
        self.seq = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        appliers: dict[type[Event], str] = {}
        # Base classes first, so that a subclass's fold overrides its parent's.
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                for t in getattr(member, _APPLIES_ATTR, ()):
                    appliers[t] = name
        cls._appliers = appliers
        prefix = cls.__dict__.get("stream_prefix")
        if prefix is not None and (not isinstance(prefix, str) or not prefix or ":" in prefix):
            msg = f"{cls.__qualname__}.stream_prefix must be a non-empty str without ':'"
            raise AggregateError(msg)
        registry = cls.__dict__.get("registry")
        if registry is not None:
            if not isinstance(registry, EventRegistry):
                msg = f"{cls.__qualname__}.registry must be an EventRegistry"
                raise AggregateError(msg)
            for t in appliers:
                if t not in registry:
                    msg = (
                        f"{cls.__qualname__} applies {t.__qualname__}, "
                        "which is not registered in its registry"
                    )
                    raise AggregateError(msg)

    # -- naming ----------------------------------------------------------------

    @classmethod
    def stream_name(cls, key: str) -> str:
        """The stream of the aggregate with this key: ``f"{stream_prefix}:{key}"``."""
        prefix = getattr(cls, "stream_prefix", None)
        if prefix is None:
            msg = f"{cls.__qualname__} declares no stream_prefix"
            raise AggregateError(msg)
        if not isinstance(key, str) or not key:
            msg = f"aggregate key must be a non-empty str, got {key!r}"
            raise AggregateError(msg)
        return f"{prefix}:{key}"

    @classmethod
    def event_registry(cls) -> EventRegistry:
        """The aggregate's registry, or ``AggregateError`` if it declares none."""
        registry = getattr(cls, "registry", None)
        if not isinstance(registry, EventRegistry):
            msg = f"{cls.__qualname__} declares no registry (an EventRegistry)"
            raise AggregateError(msg)
        return registry

    # -- folding -----------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Change state by one event: calls the method marked ``@applies(type(event))``.

        An event with no fold is an error (``AggregateError``): silently
        skipping an event would decide against a wrong state. Mark a method
        with an empty body for events that change nothing.
        """
        appliers = type(self)._appliers
        for klass in type(event).__mro__:
            name = appliers.get(klass)
            if name is not None:
                getattr(self, name)(event)
                return
        msg = f"{type(self).__qualname__} has no @applies method for {type(event).__qualname__}"
        raise AggregateError(msg)

    def fold(self, recorded: RecordedEvent) -> bool:
        """Decode and apply one stored event; ``False`` (and nothing done) if already folded.

        The event must be the next one (``self.seq + 1``): a gap is an
        ``AggregateError``, never a silent skip.
        """
        if recorded.seq <= self.seq:
            return False
        if recorded.seq != self.seq + 1:
            msg = (
                f"{type(self).__qualname__} at seq {self.seq} cannot fold "
                f"{recorded.stream}#{recorded.seq}: events are missing"
            )
            raise AggregateError(msg)
        event = self.event_registry().decode(recorded)
        self.apply(event)
        self.seq = recorded.seq
        return True

    def fold_all(self, events: Iterable[RecordedEvent]) -> int:
        """Fold stored events in order, skipping those already folded; returns how many applied."""
        n = 0
        for recorded in events:
            if self.fold(recorded):
                n += 1
        return n

    def apply_new(self, events: Iterable[Event]) -> None:
        """Apply events that were just decided, as if they had been read back (advances ``seq``)."""
        for event in events:
            self.apply(event)
            self.seq += 1

    @classmethod
    def replay(cls, events: Iterable[RecordedEvent]) -> Self:
        """A fresh instance with ``events`` folded in (they must start at seq 1)."""
        state = cls()
        state.fold_all(events)
        return state

    # -- copies and snapshots --------------------------------------------------------

    def clone(self) -> Self:
        """An independent copy to decide against; override for speed (default: deepcopy)."""
        return copy.deepcopy(self)

    def to_snapshot(self) -> dict[str, Any]:
        """The state as a dict for a snapshot (default: the instance's attributes but ``seq``).

        Snapshot stores that persist outside the process need JSON values;
        override this and :meth:`from_snapshot` when the state holds sets,
        models or other non-JSON values.
        """
        return {k: copy.deepcopy(v) for k, v in vars(self).items() if k != "seq"}

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Self:
        """Rebuild state from :meth:`to_snapshot` output (``seq`` is set by the caller)."""
        state = cls()
        for k, v in data.items():
            setattr(state, k, copy.deepcopy(v))
        return state

    @classmethod
    def snapshot_schema(cls) -> str:
        """Identifies the state's shape; a snapshot of another schema is ignored."""
        return f"{cls.__module__}.{cls.__qualname__}:{cls.snapshot_version}"

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} seq={self.seq}>"


def normalize_decision(value: object) -> tuple[list[Event], Any, Rejection | None]:
    """Turn what a decision returned into ``(events, result, rejection)``.

    Raises ``AggregateError`` for anything that is not a sequence of events,
    a :class:`Decision` or a :class:`Rejection`.
    """
    if isinstance(value, Rejection):
        return [], None, value
    result: Any = None
    events: object = value
    if isinstance(value, Decision):
        events, result = value.events, value.result
    if isinstance(events, Event) or not isinstance(events, Sequence) or isinstance(events, str):
        msg = (
            "a decision must return a sequence of events, a Decision or a Rejection, "
            f"got {type(value).__name__}"
        )
        raise AggregateError(msg)
    out = list(events)
    for i, e in enumerate(out):
        if not isinstance(e, Event):
            msg = f"a decision returned events[{i}] = {e!r}, which is not an Event"
            raise AggregateError(msg)
    return out, result, None
