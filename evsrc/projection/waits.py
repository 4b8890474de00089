"""A runner's waits, which :meth:`~evsrc.projection.ProjectionRunner.stop` can cut short."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Final

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

    from evsrc.projection.runner import ProjectionRunner

__all__ = ["INTERRUPTED", "Waits"]

#: What an interrupted wait returns.
INTERRUPTED: Final = object()


class Waits:
    """Waits that end early on ``stop()``, a lost lease or a parked-event replay request."""

    def __init__(self, runner: ProjectionRunner) -> None:
        self._runner = runner
        self._scope: anyio.CancelScope | None = None

    async def interruptible(self, fn: Callable[[], Any], *, within: float | None = None) -> Any:
        """``await fn()``; ``INTERRUPTED`` on stop, a lost lease or ``within`` seconds."""
        r = self._runner
        with anyio.CancelScope() as scope:
            if within is not None:
                scope.deadline = anyio.current_time() + within
            self._scope = scope
            if r._stopping or r.lease.lost() or r.applier.parked_dirty:
                scope.cancel()
            try:
                return await fn()
            finally:
                self._scope = None
        return INTERRUPTED

    def interrupt(self) -> None:
        """End the wait in progress, if any."""
        scope = self._scope
        if scope is not None:
            scope.cancel()

    async def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if interrupted."""
        await self.interruptible(anyio.sleep_forever, within=seconds)

    def backoff(self, failures: int) -> float:
        """Capped exponential backoff with jitter (half to full) after ``failures`` faults."""
        r = self._runner
        ceiling = min(r.retry_max, r.retry_initial * 2.0 ** min(failures - 1, 30))
        jitter: float = random.uniform(0.5, 1.0)
        return ceiling * jitter
