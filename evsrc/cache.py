"""Folded aggregate state per stream, caught up with ``read(after=seq)``, and its snapshots.

A :class:`StateCache` keeps the last folded state of up to ``size`` streams
(least recently used evicted), so observing a stream reads only the events
committed since; deciding costs O(new events), not O(stream length). With a
:class:`~evsrc.snapshot.SnapshotStore`, a stream not in the cache starts from
its latest snapshot, and a snapshot is saved every ``snapshot_every`` events.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Generic, TypeVar

from evsrc.aggregate import Aggregate
from evsrc.errors import AggregateError, EvsrcError
from evsrc.snapshot import Snapshot

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from evsrc.models import Event
    from evsrc.records import RecordedEvent
    from evsrc.snapshot import SnapshotStore

__all__ = ["StateCache"]

log = logging.getLogger("evsrc.handler")

A = TypeVar("A", bound=Aggregate)


class StateCache(Generic[A]):
    """Folded state of ``aggregate`` per stream, read through ``read(stream, after)``.

    With ``enabled=False`` nothing is kept: every observation replays the
    stream (from a snapshot, if any).
    """

    def __init__(
        self,
        aggregate: type[A],
        read: Callable[[str, int], Awaitable[list[RecordedEvent]]],
        *,
        enabled: bool = True,
        size: int = 10_000,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int = 1000,
    ) -> None:
        self.aggregate = aggregate
        self.enabled = enabled
        self.size = size
        self.snapshots = snapshots
        self.snapshot_every = snapshot_every
        self._read = read
        self._states: OrderedDict[str, A] = OrderedDict()
        self._snapshot_seq: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._states)

    def peek(self, stream: str) -> A | None:
        """The cached state of ``stream`` as it is (perhaps stale), marked recently used."""
        state = self._states.get(stream)
        if state is not None:
            self._states.move_to_end(stream)
        return state

    def forget(self, stream: str | None = None) -> None:
        """Drop the cached state of ``stream`` (or of every stream)."""
        if stream is None:
            self._states.clear()
        else:
            self._states.pop(stream, None)

    async def observe(self, stream: str) -> A:
        """State of ``stream`` caught up with the store (the cached instance when caching)."""
        if not self.enabled:
            return await self._load_fresh(stream)
        states = self._states
        state = states.get(stream)
        if state is None:
            fresh = await self._load_fresh(stream)
            state = states.get(stream)
            if state is None or state.seq < fresh.seq:
                state = states[stream] = fresh
                if len(states) > self.size:
                    states.popitem(last=False)
            return state
        states.move_to_end(stream)
        events = await self._read(stream, state.seq)
        # No await from here on: events are folded and seq advanced in one step, and
        # fold() skips what another task's catch-up already folded meanwhile.
        if events:
            try:
                _fold(state, stream, events)
            except AggregateError:
                states.pop(stream, None)
                raise
            await self.maybe_snapshot(stream, state)
        return state

    async def _load_fresh(self, stream: str) -> A:
        agg = self.aggregate
        state: A | None = None
        if self.snapshots is not None:
            snap = await self.snapshots.load(stream)
            if snap is not None and snap.schema == agg.snapshot_schema():
                try:
                    state = agg.from_snapshot(snap.state)
                    state.seq = snap.seq
                    self._snapshot_seq[stream] = snap.seq
                except Exception:
                    log.warning(
                        "ignoring a snapshot of %r that does not load", stream, exc_info=True
                    )
                    state = None
        if state is None:
            state = agg()
        _fold(state, stream, await self._read(stream, state.seq))
        await self.maybe_snapshot(stream, state)
        return state

    async def maybe_snapshot(self, stream: str, state: A | None = None) -> None:
        """Save a snapshot of ``state`` (default: the cached one) if one is due."""
        if self.snapshots is None:
            return
        if state is None:
            state = self._states.get(stream) if self.enabled else None
            if state is None:
                return
        last = self._snapshot_seq.get(stream, 0)
        if state.seq - last < self.snapshot_every:
            return
        self._snapshot_seq[stream] = state.seq
        try:
            snap = Snapshot(stream, state.seq, state.snapshot_schema(), state.to_snapshot())
            await self.snapshots.save(snap)
        except Exception:
            # A snapshot is an optimisation: failing to take one must not fail a command.
            log.warning("could not save a snapshot of %r", stream, exc_info=True)

    def committed(
        self,
        stream: str,
        expected: int,
        work: Aggregate | None,
        events: Sequence[Event],
        last_seq: int,
    ) -> None:
        """Fold the ``events`` just committed after ``expected`` (up to ``last_seq``) in.

        ``work`` is the private copy a batch was decided on, holding all the
        events but the last decision's: it replaces the cached state when it
        catches up. Whatever does not line up is dropped; the next read fixes it.
        """
        if not self.enabled:
            return
        cached = self._states.get(stream)
        if cached is None or cached.seq != expected:
            # Another task's catch-up got there first, or the entry changed.
            return
        try:
            if work is not None and work.seq >= expected:
                work.apply_new(list(events)[work.seq - expected :])
                if work.seq == last_seq:
                    self._states[stream] = work  # type: ignore[assignment]
                    return
                self._states.pop(stream, None)
                return
            cached.apply_new(events)
            if cached.seq != last_seq:
                self._states.pop(stream, None)
        except Exception:
            log.warning("failed to apply committed events to cached %r", stream, exc_info=True)
            self._states.pop(stream, None)


def _fold(state: Aggregate, stream: str, events: Sequence[RecordedEvent]) -> None:
    """``state.fold_all(events)``, a fold's own failure wrapped in ``AggregateError``."""
    try:
        state.fold_all(events)
    except EvsrcError:
        raise
    except Exception as exc:
        msg = f"{type(state).__qualname__} failed to apply an event of {stream!r}: {exc}"
        raise AggregateError(msg, stream=stream) from exc
