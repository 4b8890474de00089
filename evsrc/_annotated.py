"""Event models named by a method's annotation: how ``@applies`` learns what a fold takes.

``events_of(fn, localns, what)`` reads the annotation of ``fn``'s event
parameter (the one after ``self``) with ``typing.get_type_hints``: one model
or a union of models. Names defined after the decorated method (a forward
reference) raise ``NameError``; the caller keeps a :class:`Deferred` and
resolves it on first use.
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from typing import TYPE_CHECKING, Any

from evsrc.errors import AggregateError
from evsrc.models import Event

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Deferred", "caller_namespace", "events_of"]


class Deferred:
    """A decorated method whose event annotation names a class not defined yet."""

    def __init__(self, fn: Callable[..., Any], localns: dict[str, Any], what: str) -> None:
        self.fn = fn
        self.localns = localns
        self.what = what

    def resolve(self) -> tuple[type[Event], ...]:
        """The annotated models, now; ``NameError`` if a name is still undefined."""
        return events_of(self.fn, self.localns, self.what)


def events_of(
    fn: Callable[..., Any], localns: dict[str, Any], what: str
) -> tuple[type[Event], ...]:
    """The event models named by the annotation of ``fn``'s second parameter.

    ``AggregateError`` when the parameter is missing or unannotated, or names
    something other than ``Event`` subclasses; ``NameError`` when the
    annotation names something not defined yet.
    """
    where = getattr(fn, "__qualname__", repr(fn))
    params = list(inspect.signature(fn).parameters.values())
    if len(params) < 2:
        msg = f"{what} {where} must take (self, event)"
        raise AggregateError(msg)
    hints = typing.get_type_hints(fn, localns=localns)
    hint = hints.get(params[1].name)
    if hint is None:
        msg = (
            f"{what} {where} has no annotation on its event parameter: annotate it "
            "(e: Deposited) or name the events in the decorator"
        )
        raise AggregateError(msg)
    found: tuple[Any, ...] = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType)
        else (hint,)
    )
    for t in found:
        if not (isinstance(t, type) and issubclass(t, Event)):
            msg = f"{what} {where} is annotated with {t!r}, which is not an Event subclass"
            raise AggregateError(msg)
    return found


def caller_namespace(depth: int) -> dict[str, Any]:
    """Names visible in the class body ``depth`` frames above the caller, then its function's.

    Lets annotations name classes local to a function (tests, examples).
    """
    ns: dict[str, Any] = {}
    try:
        body = sys._getframe(depth + 1)
    except ValueError:  # pragma: no cover - no such frame
        return ns
    if body.f_back is not None and body.f_back.f_code.co_name != "<module>":
        ns.update(body.f_back.f_locals)
    if body.f_code.co_name != "<module>":
        ns.update(body.f_locals)
    return ns
