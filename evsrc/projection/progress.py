"""What a runner reports: its state, how far behind it is (:class:`Lag`), waits for a checkpoint."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import anyio

from evsrc.errors import InvalidInputError
from evsrc.records import Checkpoint, Committed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from evsrc.projection.runner import ProjectionRunner
    from evsrc.records import RecordedEvent

__all__ = ["CATCHING_UP", "RUNNING", "STANDBY", "STOPPED", "Lag", "Progress", "closing"]

#: Runner states (``runner.state``); a retrying runner reports ``"retrying: <error>"``.
STOPPED: Final = "stopped"
STANDBY: Final = "standby"
CATCHING_UP: Final = "catching up"
RUNNING: Final = "running"


@dataclass(frozen=True, slots=True)
class Lag:
    """How far a projection is behind the store.

    ``events``: events committed after its checkpoint (counted up to a limit;
    ``exact`` is false when the count stopped there). ``seconds``: age of the
    oldest event it has not processed yet (0 when caught up).
    """

    events: int
    seconds: float
    exact: bool = True


@asynccontextmanager
async def closing(
    feed: AsyncIterator[RecordedEvent],
) -> AsyncIterator[AsyncIterator[RecordedEvent]]:
    """Close an event feed (an async generator) when done, as trio requires."""
    try:
        yield feed
    finally:
        aclose = getattr(feed, "aclose", None)
        if aclose is not None:
            await aclose()


class Progress:
    """A runner's progress as others see it: who waits for which checkpoint, and the lag."""

    def __init__(self, runner: ProjectionRunner) -> None:
        self._runner = runner
        # Created only while someone waits: an event per processed event is not free.
        self._advanced: anyio.Event | None = None

    def notify(self) -> None:
        """The checkpoint moved (or the runner failed): wake whoever waits."""
        advanced = self._advanced
        if advanced is not None:
            self._advanced = None
            advanced.set()

    def reached(self, checkpoint: Checkpoint | Committed) -> bool:
        """Whether the projection has processed everything up to ``checkpoint``."""
        target = checkpoint.checkpoint if isinstance(checkpoint, Committed) else checkpoint
        current = self._runner.checkpoint
        return current is not None and current >= target

    async def wait_until(self, checkpoint: Checkpoint | Committed) -> None:
        """Return once the projection has processed ``checkpoint``; raise the error if it failed."""
        if not isinstance(checkpoint, (Checkpoint, Committed)):
            msg = f"wait_until takes a Checkpoint or Committed, got {type(checkpoint).__name__}"
            raise InvalidInputError(msg, argument="checkpoint", value=checkpoint)
        target = checkpoint.checkpoint if isinstance(checkpoint, Committed) else checkpoint
        while not self.reached(target):
            failed = self._runner.failed
            if failed is not None:
                raise failed
            # Take the wakeup before probing, so an advance meanwhile is not missed.
            advanced = self._advanced
            if advanced is None:
                advanced = self._advanced = anyio.Event()
            if await self._nothing_to_read_until(target):
                return
            await advanced.wait()

    async def _nothing_to_read_until(self, target: Checkpoint) -> bool:
        """Whether no event this projection reads lies between its checkpoint and ``target``.

        The runner reads only its events, so its checkpoint stops at the last
        of them; a checkpoint of another event is reached when nothing it
        reads comes before it.
        """
        r = self._runner
        flt = r.feed_filter()
        if not flt:
            return False
        feed = r.store.read_all(after=r.checkpoint, limit=1, **flt)
        async with closing(feed) as events:
            async for recorded in events:
                return recorded.checkpoint > target
        return True

    async def read_head(self) -> Checkpoint | None:
        """The checkpoint of the last event the projection reads, found by reading its tail."""
        r = self._runner
        last = r.checkpoint
        async with closing(r.store.read_all(after=r.checkpoint, **r.feed_filter())) as f:
            async for recorded in f:
                last = recorded.checkpoint
        return last

    async def lag(self, *, limit: int) -> Lag:
        """Events it reads committed after its checkpoint, and the age of the oldest."""
        r = self._runner
        n = 0
        oldest: datetime | None = None
        feed = r.store.read_all(after=r.checkpoint, limit=limit, **r.feed_filter())
        async with closing(feed) as events:
            async for recorded in events:
                if oldest is None:
                    oldest = recorded.recorded_at
                n += 1
        seconds = 0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        return Lag(n, seconds, exact=n < limit)

    async def follow_active(self) -> None:
        """In standby, take the active runner's saved checkpoint (so ``wait_until`` works)."""
        r = self._runner
        try:
            cp = await r._load()
        except Exception:  # the active runner's progress is only informative here
            return
        if cp is not None and (r.checkpoint is None or cp > r.checkpoint):
            r.checkpoint = cp
            self.notify()
