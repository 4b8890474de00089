"""What became of a command: :class:`Outcome`, either :class:`Accepted` or :class:`Rejected`.

``CommandHandler.execute`` returns ``Accepted[R, D] | Rejected[R, D]``, where
``R`` is the decision's result type and ``D`` its rejection's detail type, both
inferred from the decision's return annotation. ``ok`` tells them apart, and a
type checker narrows on it::

    out = await handler.execute("a", lambda a: a.withdraw(5))
    if out.ok:
        out.result            # R, not R | None
    else:
        out.rejection.detail  # D
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal

from typing_extensions import TypeVar

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evsrc.aggregate import Rejection
    from evsrc.models import Event
    from evsrc.records import Committed

__all__ = ["Accepted", "Outcome", "Rejected"]

R = TypeVar("R", default=Any)
D = TypeVar("D", default=Any)


@dataclass(frozen=True, slots=True, init=False)
class Outcome(Generic[R, D]):
    """What became of a command.

    ``events`` are the events this command committed (empty for a rejection or
    a no-op); ``committed`` covers exactly those events' seqs (``first_seq …
    last_seq``) and carries the checkpoint of the append that wrote them —
    wait for it with ``ProjectionRunner.wait_until`` to read your own writes.
    ``attempts`` counts decide+append rounds (>= 1). ``result`` is the
    decision's result (``None`` for a plain list of events or a rejection),
    ``rejection`` the decision's :class:`~evsrc.aggregate.Rejection`, if any.
    """

    stream: str
    attempts: int
    events: Sequence[Event]
    result: R | None
    rejection: Rejection[D] | None
    committed: Committed | None

    def __init__(
        self,
        stream: str,
        attempts: int,
        events: Sequence[Event],
        result: R | None,
        rejection: Rejection[D] | None,
        committed: Committed | None,
    ) -> None:
        # The fields' slot descriptors set them directly: a frozen dataclass's own
        # __init__ calls object.__setattr__ per field, twice the cost, once per command.
        _set_stream(self, stream)
        _set_attempts(self, attempts)
        _set_events(self, events)
        _set_result(self, result)
        _set_rejection(self, rejection)
        _set_committed(self, committed)

    @property
    def ok(self) -> bool:
        """True unless the decision was a rejection."""
        return self.rejection is None


@dataclass(frozen=True, slots=True, init=False)
class Accepted(Outcome[R, D]):
    """The decision said yes (or decided nothing): ``result`` is its result."""

    if TYPE_CHECKING:
        result: R
        rejection: None

    @property
    def ok(self) -> Literal[True]:
        """Always true: narrows ``Accepted | Rejected`` for type checkers."""
        return True


@dataclass(frozen=True, slots=True, init=False)
class Rejected(Outcome[R, D]):
    """The decision said no: ``rejection`` says why; nothing was appended."""

    if TYPE_CHECKING:
        result: None
        rejection: Rejection[D]

    @property
    def ok(self) -> Literal[False]:
        """Always false: narrows ``Accepted | Rejected`` for type checkers."""
        return False


_set_stream = Outcome.__dict__["stream"].__set__
_set_attempts = Outcome.__dict__["attempts"].__set__
_set_events = Outcome.__dict__["events"].__set__
_set_result = Outcome.__dict__["result"].__set__
_set_rejection = Outcome.__dict__["rejection"].__set__
_set_committed = Outcome.__dict__["committed"].__set__


def outcome(
    stream: str,
    attempts: int,
    events: Sequence[Event],
    result: Any,
    rejection: Rejection[Any] | None,
    committed: Committed | None,
) -> Accepted[Any, Any] | Rejected[Any, Any]:
    """The :class:`Accepted` or :class:`Rejected` outcome for these values."""
    if rejection is None:
        return Accepted(stream, attempts, events, result, None, committed)
    return Rejected(stream, attempts, events, None, rejection, committed)
