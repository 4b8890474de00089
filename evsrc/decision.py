"""What a decision returns: events, a :class:`Decision` or a :class:`Rejection`.

Decisions are plain methods of an :class:`~evsrc.aggregate.Aggregate`; the
command handler turns what they return into ``(events, result, rejection)``
with :func:`normalize_decision`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, overload

from typing_extensions import TypeVar

from evsrc.errors import AggregateError
from evsrc.models import Event

__all__ = ["Decision", "Rejection", "normalize_decision"]

R = TypeVar("R", default=Any)
D = TypeVar("D", default=Any)


@dataclass(frozen=True, slots=True, init=False)
class Rejection(Generic[D]):
    """A decision's "no": returned by a decision (not raised), with a reason for the caller.

    ``detail`` is anything the caller may need (the balance that was too
    low, …); its type is the ``D`` of ``Rejection[D]`` (``None`` when omitted).
    """

    reason: str
    detail: D

    @overload
    def __init__(self: Rejection[None], reason: str) -> None: ...
    @overload
    def __init__(self, reason: str, detail: D) -> None: ...
    def __init__(self, reason: str, detail: Any = None) -> None:
        # The slots' own descriptors: frozen, so no __setattr__ (half the cost).
        _set_reason(self, reason)
        _set_detail(self, detail)


@dataclass(frozen=True, slots=True, init=False)
class Decision(Generic[R]):
    """A decision's "yes": the events to append, and a result value for the caller.

    ``Decision(events)`` has no result (``Decision[None]``);
    ``Decision(events, result)`` is a ``Decision[type of result]``.
    """

    events: Sequence[Event]
    result: R

    @overload
    def __init__(self: Decision[None], events: Sequence[Event] = ()) -> None: ...
    @overload
    def __init__(self, events: Sequence[Event], result: R) -> None: ...
    @overload
    def __init__(self, events: Sequence[Event] = (), *, result: R) -> None: ...
    def __init__(self, events: Sequence[Event] = (), result: Any = None) -> None:
        _set_events(self, events)
        _set_result(self, result)


_set_reason = Rejection.__dict__["reason"].__set__
_set_detail = Rejection.__dict__["detail"].__set__
_set_events = Decision.__dict__["events"].__set__
_set_result = Decision.__dict__["result"].__set__


def normalize_decision(value: object) -> tuple[list[Event], Any, Rejection | None]:
    """Turn what a decision returned into ``(events, result, rejection)``.

    Raises ``AggregateError`` for anything that is not a sequence of events,
    a :class:`Decision` or a :class:`Rejection`.
    """
    result: Any = None
    events: object = value
    if type(value) is Decision:
        events, result = value.events, value.result
    elif type(value) is not list:
        if isinstance(value, Rejection):
            return [], None, value
        if isinstance(value, Decision):
            events, result = value.events, value.result
    kind = type(events)
    # A list or tuple is a sequence of something: no need for the Sequence ABC's check.
    if (
        kind is not list
        and kind is not tuple
        and (
            isinstance(events, Event) or not isinstance(events, Sequence) or isinstance(events, str)
        )
    ):
        msg = (
            "a decision must return a sequence of events, a Decision or a Rejection, "
            f"got {type(value).__name__}"
        )
        raise AggregateError(msg)
    out: list[Event] = list(events)  # type: ignore[call-overload]
    for i, e in enumerate(out):
        if not isinstance(e, Event):
            msg = f"a decision returned events[{i}] = {e!r}, which is not an Event"
            raise AggregateError(msg)
    return out, result, None
