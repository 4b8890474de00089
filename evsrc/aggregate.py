"""Aggregates: the state of one stream, folded from its events, and the decisions made on it.

A user subclasses :class:`Aggregate`, names its streams (``stream_prefix``),
declares how each event changes state with :func:`applies` (the event type is
read from the fold's annotation, and the aggregate's
:class:`~evsrc.models.EventRegistry` is built from its folds), and writes
decisions as plain methods that read ``self`` and return new events, a
:class:`~evsrc.decision.Decision` or a :class:`~evsrc.decision.Rejection` —
never mutating ``self``::

    class Account(Aggregate):
        stream_prefix = "account"

        def __init__(self) -> None:
            super().__init__()
            self.balance = 0

        @applies
        def _deposited(self, e: Deposited) -> None:
            self.balance += e.amount

        @applies
        def _withdrawn(self, e: Withdrawn) -> None:
            self.balance -= e.amount

        def withdraw(self, amount: int) -> list[Event] | Rejection[int]:
            if amount > self.balance:
                return Rejection("insufficient funds", self.balance)
            return [Withdrawn(amount=amount)]

An explicit ``registry = EventRegistry(...)`` stays possible (to keep old
versions' models for decoding, say); every fold's event must then be in it.
The :class:`~evsrc.handler.CommandHandler` loads, caches and catches up
aggregates, and commits their decisions.
"""

from __future__ import annotations

import copy
import inspect
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar, overload

from evsrc._annotated import Deferred, caller_namespace, events_of
from evsrc.decision import Decision, Rejection, normalize_decision
from evsrc.errors import AggregateError
from evsrc.folds import APPLIES_ATTR, collect_folds, registry_from
from evsrc.models import Event, EventRegistry
from evsrc.records import STREAM_DELETED

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from evsrc.records import RecordedEvent

__all__ = ["Aggregate", "Decision", "Rejection", "applies", "normalize_decision"]

F = TypeVar("F", bound="Callable[..., Any]")


@overload
def applies(*event_types: type[Event]) -> Callable[[F], F]: ...
@overload
def applies(fn: F, /) -> F: ...
def applies(*event_types: Any) -> Any:
    """Mark an aggregate method as the fold of event models.

    The method takes ``(self, event)`` and mutates ``self``; it must not fail
    for an event that a decision of the same aggregate produced. Used bare
    (``@applies``) or empty (``@applies()``), the models are read from the
    annotation of the event parameter (``e: Deposited``, or a union
    ``e: Deposited | Withdrawn``); ``@applies(Deposited)`` names them.
    """
    if len(event_types) == 1 and inspect.isfunction(event_types[0]):
        return _mark_annotated(event_types[0], caller_namespace(1))
    for t in event_types:
        if not (isinstance(t, type) and issubclass(t, Event)):
            msg = f"applies() takes Event subclasses, got {t!r}"
            raise AggregateError(msg)
    if not event_types:
        ns = caller_namespace(1)

        def mark_annotated(fn: F) -> F:
            return _mark_annotated(fn, ns)

        return mark_annotated

    def mark(fn: F) -> F:
        existing: tuple[Any, ...] = getattr(fn, APPLIES_ATTR, ())
        setattr(fn, APPLIES_ATTR, existing + event_types)
        return fn

    return mark


def _mark_annotated(fn: F, localns: dict[str, Any]) -> F:
    try:
        found: tuple[Any, ...] = events_of(fn, localns, "@applies fold")
    except NameError:
        found = (Deferred(fn, localns, "@applies fold"),)
    existing: tuple[Any, ...] = getattr(fn, APPLIES_ATTR, ())
    setattr(fn, APPLIES_ATTR, existing + found)
    return fn


class Aggregate:
    """Base class of aggregates: the folded state of one stream, ``f"{stream_prefix}:{key}"``.

    ``seq`` is the last stream seq folded into this instance (0: nothing yet).
    Subclasses set their initial state in ``__init__`` (calling
    ``super().__init__()``), declare folds with :func:`applies` (or override
    :meth:`apply`), and may override :meth:`clone` (a copy to decide against;
    default ``copy.deepcopy``) and the snapshot hooks :meth:`to_snapshot` /
    :meth:`from_snapshot`. Without an explicit ``registry``, the aggregate's
    registry holds the events its folds take.
    """

    stream_prefix: ClassVar[str]
    registry: ClassVar[EventRegistry]
    #: Bump when the state's shape changes: older snapshots are then ignored.
    snapshot_version: ClassVar[int] = 1

    #: Fold method name per event model; None until the folds' annotations resolve.
    _appliers: ClassVar[dict[type[Event], str] | None] = {}
    #: True when ``registry`` was built from the folds (not declared).
    _registry_built: ClassVar[bool] = False

    seq: int

    def __init__(self) -> None:
        self.seq = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        prefix = cls.__dict__.get("stream_prefix")
        if prefix is not None and (not isinstance(prefix, str) or not prefix or ":" in prefix):
            msg = f"{cls.__qualname__}.stream_prefix must be a non-empty str without ':'"
            raise AggregateError(msg)
        registry = cls.__dict__.get("registry")
        if registry is not None and not isinstance(registry, EventRegistry):
            msg = f"{cls.__qualname__}.registry must be an EventRegistry"
            raise AggregateError(msg)
        try:
            cls._appliers = collect_folds(cls)
        except NameError:
            cls._appliers = None  # resolved on first use, once the names exist
            return
        cls._check_folds()

    @classmethod
    def _check_folds(cls) -> None:
        """Every fold's event is in the declared registry; or build the registry from them."""
        appliers = cls._folds()
        declared = next(
            (
                klass.__dict__["registry"]
                for klass in cls.__mro__
                if "registry" in klass.__dict__ and not klass.__dict__.get("_registry_built")
            ),
            None,
        )
        if declared is None:
            if appliers:
                cls.registry = registry_from(cls, appliers)
                cls._registry_built = True
            return
        registry = cls.__dict__.get("registry")
        if registry is None:
            return  # inherited: checked where it was declared
        for t in appliers:
            if t not in registry:
                msg = (
                    f"{cls.__qualname__} applies {t.__qualname__}, "
                    "which is not registered in its registry"
                )
                raise AggregateError(msg)

    @classmethod
    def _folds(cls) -> dict[type[Event], str]:
        appliers = cls.__dict__.get("_appliers")
        if appliers is None:
            try:
                appliers = collect_folds(cls)
            except NameError as exc:
                msg = f"{cls.__qualname__} has a fold whose annotation does not resolve: {exc}"
                raise AggregateError(msg) from exc
            cls._appliers = appliers
            cls._check_folds()
        return appliers

    # -- naming ----------------------------------------------------------------

    @classmethod
    def stream_name(cls, key: str) -> str:
        """The stream of the aggregate with this key: ``f"{stream_prefix}:{key}"``."""
        prefix = getattr(cls, "stream_prefix", None)
        if prefix is None:
            prefix = cls._prefix()  # raises
        if not isinstance(key, str) or not key:
            msg = f"aggregate key must be a non-empty str, got {key!r}"
            raise AggregateError(msg)
        return f"{prefix}:{key}"

    @classmethod
    def key_of(cls, stream: str) -> str:
        """The key of the aggregate whose stream is ``stream``: the inverse of :meth:`stream_name`.

        ``AggregateError`` when ``stream`` is not one of this aggregate's streams.
        """
        head = cls._prefix() + ":"
        if not isinstance(stream, str) or not stream.startswith(head) or stream == head:
            msg = f"{stream!r} is not a stream of {cls.__qualname__} (expected {head!r}<key>)"
            raise AggregateError(msg)
        return stream[len(head) :]

    @classmethod
    def _prefix(cls) -> str:
        prefix = getattr(cls, "stream_prefix", None)
        if prefix is None:
            msg = f"{cls.__qualname__} declares no stream_prefix"
            raise AggregateError(msg)
        return str(prefix)

    @classmethod
    def event_registry(cls) -> EventRegistry:
        """The aggregate's registry: declared, or built from its folds.

        ``AggregateError`` if it declares none and has no folds.
        """
        cls._folds()
        registry = getattr(cls, "registry", None)
        if not isinstance(registry, EventRegistry):
            msg = f"{cls.__qualname__} declares no registry (an EventRegistry) and no folds"
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
        if appliers is None:  # a fold's annotation is still unresolved
            appliers = type(self)._folds()
        name = appliers.get(type(event))  # the usual case: a fold of the event's own model
        if name is not None:
            getattr(self, name)(event)
            return
        for klass in type(event).__mro__[1:]:
            name = appliers.get(klass)
            if name is not None:
                getattr(self, name)(event)
                return
        msg = f"{type(self).__qualname__} has no @applies method for {type(event).__qualname__}"
        raise AggregateError(msg)

    def fold(self, recorded: RecordedEvent) -> bool:
        """Decode and apply one stored event; ``False`` (and nothing done) if already folded.

        The event must be the next one (``self.seq + 1``): a gap is an
        ``AggregateError``, never a silent skip. A ``$stream-deleted`` event (a
        soft delete, docs/lifecycle.md) follows events that are gone: it resets
        the state to a fresh instance's, at its seq.
        """
        if recorded.seq <= self.seq:
            return False
        if recorded.type == STREAM_DELETED:
            vars(self).clear()
            vars(self).update(vars(type(self)()))
            self.seq = recorded.seq
            return True
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
