"""Given / when / then for decisions: test an aggregate without a store.

::

    spec = DecisionSpec(Account)
    spec.given(Deposited(amount=5)).when(lambda a: a.withdraw(3)).then(Withdrawn(amount=3))
    spec.given(Deposited(amount=5)).when(lambda a: a.withdraw(9)).then_rejected(
        "insufficient funds", detail=5
    )

``given`` folds the events into a fresh aggregate (through its ``@applies``
folds, as a replay would); ``when`` runs the decision once, as the command
handler would; the ``then_…`` checks raise ``AssertionError`` with a message
that says what differed. Every ``when`` also checks the rules the handler
relies on: the decision left the state unchanged, returned only registered
events, and those events fold.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from evsrc.aggregate import Aggregate, normalize_decision

if TYPE_CHECKING:
    from collections.abc import Callable

    from evsrc.decision import Rejection
    from evsrc.models import Event

__all__ = ["DecisionSpec", "Given", "Then"]

A = TypeVar("A", bound=Aggregate)

_UNSET: Any = object()


class DecisionSpec(Generic[A]):
    """Given/when/then tests of the decisions of ``aggregate`` (an :class:`Aggregate` class)."""

    def __init__(self, aggregate: type[A]) -> None:
        self.aggregate = aggregate

    def given(self, *events: Event) -> Given[A]:
        """The state after ``events`` (none: a fresh aggregate)."""
        return Given(self.aggregate, list(events))


class Given(Generic[A]):
    """A state, folded from the given events; decide on it with :meth:`when`."""

    def __init__(self, aggregate: type[A], events: list[Event]) -> None:
        state = aggregate()
        state.apply_new(events)
        self.state = state

    def when(self, decide: Callable[[A], object]) -> Then:
        """Run ``decide`` on (a copy of) the state; check the result with ``then_…``."""
        state = self.state.clone()
        before = state.to_snapshot()
        seq = state.seq
        try:
            value = decide(state)
        except Exception as exc:
            return Then(error=exc)
        if state.to_snapshot() != before or state.seq != seq:
            msg = f"the decision changed the state of {type(state).__qualname__}: {before!r}"
            raise AssertionError(msg)
        events, result, rejection = normalize_decision(value)
        registry = type(state).event_registry()
        for e in events:
            registry.encode(e)  # raises for an event the aggregate cannot store
        state.apply_new(events)  # the handler folds decided events: they must fold
        return Then(events=events, result=result, rejection=rejection)


class Then:
    """What a decision returned (or raised), with checks that say what differed."""

    def __init__(
        self,
        *,
        events: list[Event] | None = None,
        result: Any = None,
        rejection: Rejection[Any] | None = None,
        error: Exception | None = None,
    ) -> None:
        self.events = events if events is not None else []
        self.result = result
        self.rejection = rejection
        self.error = error

    def _decided(self) -> None:
        if self.error is not None:
            msg = f"the decision raised {self.error!r}"
            raise AssertionError(msg) from self.error

    def then(self, *events: Event) -> Then:
        """The decision said yes with exactly these events, in order."""
        self._decided()
        if self.rejection is not None:
            msg = f"expected events {list(events)!r}, got {self.rejection!r}"
            raise AssertionError(msg)
        if list(events) != self.events:
            msg = f"expected events {list(events)!r}, got {self.events!r}"
            raise AssertionError(msg)
        return self

    def then_nothing(self) -> Then:
        """The decision said yes and appends nothing (a no-op)."""
        return self.then()

    def then_result(self, result: object) -> Then:
        """The decision's result (of a ``Decision``) equals ``result``."""
        self._decided()
        if self.rejection is not None or self.result != result:
            got = self.rejection if self.rejection is not None else self.result
            msg = f"expected result {result!r}, got {got!r}"
            raise AssertionError(msg)
        return self

    def then_rejected(self, reason: str | None = None, *, detail: object = _UNSET) -> Then:
        """The decision said no (with this ``reason`` and ``detail``, when given)."""
        self._decided()
        r = self.rejection
        if r is None:
            msg = f"expected a rejection, got events {self.events!r}"
            raise AssertionError(msg)
        if reason is not None and r.reason != reason:
            msg = f"expected rejection {reason!r}, got {r.reason!r}"
            raise AssertionError(msg)
        if detail is not _UNSET and r.detail != detail:
            msg = f"expected rejection detail {detail!r}, got {r.detail!r}"
            raise AssertionError(msg)
        return self

    def then_raises(self, error: type[Exception], match: str | None = None) -> Then:
        """The decision raised ``error`` (whose message matches ``match``, when given)."""
        if not isinstance(self.error, error):
            msg = f"expected {error.__name__}, got {self.error!r}"
            raise AssertionError(msg) from self.error
        if match is not None and not re.search(match, str(self.error)):
            msg = f"{self.error!r} does not match {match!r}"
            raise AssertionError(msg)
        return self
