"""What a runner does when its projector fails on an event, and the checks of its options."""

from __future__ import annotations

import random
from dataclasses import dataclass

from evsrc.errors import InvalidInputError

__all__ = ["FailurePolicy", "check_number"]


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """What a runner does when its projector raises on an event (not on a fault).

    ``retries``: how many more times to try the event, after ``backoff``
    seconds doubling up to ``max_backoff``. Then ``then``: ``"stop"`` (the
    runner stops with ``ProjectionError``, its checkpoint just before the
    event) or ``"park"`` (the event is recorded in the projection's parked
    stream, ``$parked:<name>``, with its position and the error, and the
    runner goes on). Build one with :meth:`stop`, :meth:`retry` or :meth:`park`.
    """

    retries: int = 0
    backoff: float = 0.1
    max_backoff: float = 5.0
    then: str = "stop"

    def __post_init__(self) -> None:
        check_number(self.retries, "retries", low=0, integer=True)
        check_number(self.backoff, "backoff", low=0)
        check_number(self.max_backoff, "max_backoff", low=0)
        if self.then not in ("stop", "park"):
            msg = f'then must be "stop" or "park", got {self.then!r}'
            raise InvalidInputError(msg, argument="then", value=self.then)

    @classmethod
    def stop(cls) -> FailurePolicy:
        """Stop at the first failure (the default)."""
        return cls()

    @classmethod
    def retry(
        cls, times: int, *, backoff: float = 0.1, max_backoff: float = 5.0, then: str = "stop"
    ) -> FailurePolicy:
        """Try a failing event ``times`` more times with backoff, then stop (or park)."""
        return cls(times, backoff, max_backoff, then)

    @classmethod
    def park(
        cls, *, retries: int = 0, backoff: float = 0.1, max_backoff: float = 5.0
    ) -> FailurePolicy:
        """Park a failing event (after ``retries`` more attempts) and continue."""
        return cls(retries, backoff, max_backoff, "park")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based), jittered."""
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** min(attempt - 1, 30))
        jitter: float = random.uniform(0.5, 1.0)
        return ceiling * jitter


def check_number(value: object, argument: str, *, low: float, integer: bool = False) -> None:
    """Raise ``InvalidInputError`` unless ``value`` is a finite number (an int) >= ``low``."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int if integer else (int, float))
        and value >= low
        and value == value  # not NaN
        and value != float("inf")
    )
    if not ok:
        kind = "an int" if integer else "a number"
        msg = f"{argument} must be {kind} >= {low}, got {value!r}"
        raise InvalidInputError(msg, argument=argument, value=value)
