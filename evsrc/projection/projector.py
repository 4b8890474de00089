"""Projectors: what a projection does with each event, and the ``@handles`` marker."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from evsrc._annotated import caller_namespace, events_of
from evsrc.errors import EvsrcError, InvalidInputError
from evsrc.models import Event, EventRegistry

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from evsrc.records import RecordedEvent

__all__ = ["Projector", "handles", "overrides_handle_batch"]

F = TypeVar("F", bound="Callable[..., Any]")

_HANDLES_ATTR = "__evsrc_handles__"


@overload
def handles(*event_types: type[Event]) -> Callable[[F], F]: ...
@overload
def handles(fn: F, /) -> F: ...
def handles(*event_types: Any) -> Any:
    """Mark an async projector method as the handler of the given event models.

    The method is called as ``await method(event, recorded, *context)``:
    the decoded model, the stored event (stream, seq, checkpoint, metadata …)
    and whatever the runner passes (the PostgreSQL runner passes the
    connection of the transaction). Used bare (``@handles``), the models are
    read from the annotation of the event parameter, as
    :func:`~evsrc.aggregate.applies` does.
    """
    if len(event_types) == 1 and inspect.isfunction(event_types[0]):
        return handles(*_annotated(event_types[0], caller_namespace(1)))(event_types[0])
    if not event_types:
        msg = "handles() needs at least one event model (or use it bare: @handles)"
        raise InvalidInputError(msg, argument="event_types", value=event_types)
    for t in event_types:
        if not (isinstance(t, type) and issubclass(t, Event)):
            msg = f"handles() takes Event subclasses, got {t!r}"
            raise InvalidInputError(msg, argument="event_types", value=t)

    def mark(fn: F) -> F:
        if not inspect.iscoroutinefunction(fn):
            msg = f"{getattr(fn, '__qualname__', fn)!r}: a @handles method must be async"
            raise InvalidInputError(msg, argument="fn", value=fn)
        existing: tuple[type[Event], ...] = getattr(fn, _HANDLES_ATTR, ())
        setattr(fn, _HANDLES_ATTR, existing + event_types)
        return fn

    return mark


def _annotated(fn: Callable[..., Any], localns: dict[str, Any]) -> tuple[type[Event], ...]:
    """The models named by the annotation of ``fn``'s event parameter."""
    try:
        return events_of(fn, localns, "@handles method")
    except NameError as exc:
        msg = f"@handles: {exc}; define the event before the projector, or name it in @handles(...)"
        raise InvalidInputError(msg, argument="fn", value=fn) from exc
    except EvsrcError as exc:
        raise InvalidInputError(str(exc), argument="fn", value=fn) from exc


class Projector:
    """Base class of projectors; ``name`` identifies its checkpoint.

    Mark async methods with :func:`handles`; the runner reads only the events
    of those types (the filter is pushed to the store), restricted to streams
    starting with ``stream_prefix`` when it is set. ``registry`` decodes events
    for the handlers; by default it holds exactly the handled models.
    Override :meth:`handle` and :meth:`wants` to see every raw event instead
    (the runner then reads everything). Override :meth:`handle_batch` to
    handle a whole batch at once (say, one multi-row ``INSERT``).
    """

    name: ClassVar[str]
    registry: ClassVar[EventRegistry]
    #: Only streams whose name starts with this (``None``: every stream).
    stream_prefix: ClassVar[str | None] = None

    _handlers: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, str] = {}
        models: list[type[Event]] = []
        for klass in reversed(cls.__mro__):
            for attr, member in vars(klass).items():
                for t in getattr(member, _HANDLES_ATTR, ()):
                    handlers[t.event_type] = attr
                    models.append(t)
        cls._handlers = handlers
        if "registry" not in cls.__dict__:
            registry = EventRegistry()
            for m in models:
                if m not in registry:
                    registry.register(m)
            cls.registry = registry

    def wants(self, recorded: RecordedEvent) -> bool:
        """Whether :meth:`handle` does anything with this event (else it is skipped)."""
        return recorded.type in self._handlers

    def event_types(self) -> list[str] | None:
        """The event types the runner reads: those of the handlers; ``None`` for every type.

        ``None`` when :meth:`wants` or :meth:`handle` is overridden (a raw projector).
        """
        cls = type(self)
        if cls.wants is not Projector.wants or cls.handle is not Projector.handle:
            return None
        return sorted(self._handlers)

    async def handle(self, recorded: RecordedEvent, *context: Any) -> None:
        """Decode the event and call its ``@handles`` method."""
        attr = self._handlers.get(recorded.type)
        if attr is None:
            return
        event = self.registry.decode(recorded)
        await getattr(self, attr)(event, recorded, *context)

    async def handle_batch(self, events: Sequence[RecordedEvent], *context: Any) -> None:
        """Handle a batch of wanted events, in order; by default :meth:`handle` for each.

        A runner calls this only when a subclass overrides it. An error then
        fails the whole batch: the checkpoint stays before its first event.
        """
        for recorded in events:
            await self.handle(recorded, *context)


def overrides_handle_batch(projector: Projector) -> bool:
    """Whether ``projector`` declares its own batch handler."""
    return type(projector).handle_batch is not Projector.handle_batch
