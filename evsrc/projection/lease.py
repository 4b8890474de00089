"""One active runner per projection: the lease a runner holds while it works.

A :class:`LeaseKeeper` decides which of the runners of one projection name is
active. :class:`InMemoryLease` is the in-process rule (one holder per event
store object and name); the PostgreSQL runner keeps a session advisory lock
instead (:mod:`evsrc.postgres.projection`).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Protocol

import anyio

from evsrc.errors import EvsrcError

if TYPE_CHECKING:
    from evsrc.projection.runner import ProjectionRunner

__all__ = ["InMemoryLease", "LeaseKeeper"]


class _LeaseLostError(EvsrcError):
    """Another runner of the projection moved its checkpoint; this one stands by."""


class LeaseKeeper(Protocol):
    """What a runner asks of its lease; each runner has its own keeper."""

    async def acquire(self) -> bool:
        """Become the active runner of the projection if none is; whether it did."""
        ...

    async def release(self) -> None:
        """Give up the lease (if held), so a standby runner can take over."""
        ...

    def lost(self) -> bool:
        """Whether the lease was lost while active (checked between batches)."""
        ...

    async def watch(self) -> None:
        """Watch the lease while active; interrupt the runner's waits when it is lost."""
        ...

    async def standby_wait(self) -> None:
        """Wait in standby before trying for the lease again."""
        ...


# In-process leases of the in-memory rule: event store -> projection name -> holder.
_holders: weakref.WeakKeyDictionary[object, dict[str, ProjectionRunner]] = (
    weakref.WeakKeyDictionary()
)
_released: weakref.WeakKeyDictionary[object, dict[str, anyio.Event]] = weakref.WeakKeyDictionary()


class InMemoryLease:
    """The in-process rule: one holder per event store object and projection name."""

    def __init__(self, runner: ProjectionRunner) -> None:
        self._runner = runner

    async def acquire(self) -> bool:
        """Become the holder if there is none; whether this runner holds the lease."""
        r = self._runner
        holders = _holders.setdefault(r.store, {})
        holder = holders.get(r.name)
        if holder is None or holder is r:
            holders[r.name] = r
            return True
        return False

    async def release(self) -> None:
        """Stop holding the lease and wake the runners standing by for it."""
        r = self._runner
        holders = _holders.get(r.store, {})
        if holders.get(r.name) is r:
            del holders[r.name]
            released = _released.get(r.store, {}).pop(r.name, None)
            if released is not None:
                released.set()

    def lost(self) -> bool:
        """Never: nothing else takes an in-process lease away."""
        return False

    async def watch(self) -> None:
        """Nothing to watch in process."""

    async def standby_wait(self) -> None:
        """Follow the active runner's checkpoint; wait until it releases, or a while."""
        r = self._runner
        await r.progress.follow_active()
        waits = _released.setdefault(r.store, {})
        released = waits.get(r.name)
        if released is None:
            released = waits[r.name] = anyio.Event()
        await r.waits.interruptible(released.wait, within=r.standby_interval)
