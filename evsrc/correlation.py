"""Correlation and causation ids: which conversation an event belongs to, and what caused it.

The command handler stamps every event it appends with two ``metadata`` keys:

- :data:`CORRELATION_ID` — the conversation: taken from the command
  (``execute(..., correlation_id=...)``), else from :func:`correlated`
  (say, an HTTP request's ``X-Request-Id``), else the command's own id. A process
  manager passes on the correlation id of the event it reacts to.
- :data:`CAUSATION_ID` — the direct cause: the command's id (new for each
  command unless given), or, in a process manager, the id of the event that
  triggered the reaction.

Projectors and process managers read them from ``RecordedEvent.metadata``.
"""

from __future__ import annotations

import contextvars
import itertools
import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID, uuid4

from evsrc.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "CAUSATION_ID",
    "CORRELATION_ID",
    "correlated",
    "current_correlation_id",
    "new_id",
    "stamp",
]

#: The metadata key of the conversation an event belongs to.
CORRELATION_ID: Final = "correlation_id"
#: The metadata key of the command or event that caused an event.
CAUSATION_ID: Final = "causation_id"

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "evsrc_correlation_id", default=None
)

# New command ids: a random per-process prefix and a counter, unique without a
# system call per command (uuid4 reads the OS's random source every time).
_prefix = uuid4().hex[:24]
_counter = itertools.count(1)


def _reseed() -> None:
    global _prefix, _counter  # a forked child must not repeat its parent's ids
    _prefix = uuid4().hex[:24]
    _counter = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def new_id() -> str:
    """A new command id, unique across processes: 24 random hex digits, ``-``, a counter."""
    return f"{_prefix}-{next(_counter):x}"


def _check_id(name: str, value: object) -> str:
    """An id as text: a non-empty ``str`` of at most 200 characters, or a ``UUID``."""
    if isinstance(value, UUID):
        return str(value)
    if not isinstance(value, str) or not value or len(value) > 200 or "\x00" in value:
        msg = f"{name} must be a UUID or a non-empty str of at most 200 characters, got {value!r}"
        raise InvalidInputError(msg, argument=name, value=value)
    return value


@contextmanager
def correlated(correlation_id: str | UUID) -> Iterator[str]:
    """``with correlated(request_id):`` — commands inside get this correlation id.

    For code that cannot pass ``correlation_id=`` down to each command (an
    HTTP middleware, say). Context-local: concurrent tasks keep their own.
    """
    value = _check_id("correlation_id", correlation_id)
    token = _current.set(value)
    try:
        yield value
    finally:
        _current.reset(token)


def current_correlation_id() -> str | None:
    """The correlation id set by the innermost :func:`correlated`, or ``None``."""
    return _current.get()


def stamp(
    metadata: dict[str, Any] | None,
    correlation_id: str | UUID | None,
    causation_id: str | UUID | None,
) -> dict[str, Any]:
    """``metadata`` plus the two ids: explicit arguments, then ``metadata``'s own, then new.

    Without any id given, the command gets a new id that is both its
    causation id and the correlation id (it starts a conversation).
    """
    if metadata is None and correlation_id is None and causation_id is None:
        command = f"{_prefix}-{next(_counter):x}"  # new_id(), inline: the usual case
        current = _current.get()
        return {CAUSATION_ID: command, CORRELATION_ID: command if current is None else current}
    md: dict[str, Any] = {} if metadata is None else dict(metadata)
    if correlation_id is not None:
        md[CORRELATION_ID] = _check_id("correlation_id", correlation_id)
    if causation_id is not None:
        md[CAUSATION_ID] = _check_id("causation_id", causation_id)
    if CAUSATION_ID not in md:
        md[CAUSATION_ID] = new_id()
    if CORRELATION_ID not in md:
        current = _current.get()
        md[CORRELATION_ID] = current if current is not None else md[CAUSATION_ID]
    return md
