"""Snapshots: folded aggregate state saved every N events, so loading skips the replay.

Snapshots are an optimisation and transparent: the command handler loads the
latest snapshot whose schema matches the aggregate's
(:meth:`~evsrc.aggregate.Aggregate.snapshot_schema`), then reads only the
events after it. A snapshot of another schema (the aggregate's
``snapshot_version`` was bumped, or another class) is ignored.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from evsrc.records import NewEvent
from evsrc.store import MAX_STREAM_LENGTH

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["EventStreamSnapshotStore", "InMemorySnapshotStore", "Snapshot", "SnapshotStore"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of ``stream`` folded up to ``seq``, in the shape named by ``schema``."""

    stream: str
    seq: int
    schema: str
    state: dict[str, Any]


@runtime_checkable
class SnapshotStore(Protocol):
    """Where snapshots are kept."""

    async def load(self, stream: str) -> Snapshot | None:
        """The latest snapshot of ``stream``, or ``None``."""
        ...

    async def save(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` as the latest of its stream (unless a later one is kept)."""
        ...


class InMemorySnapshotStore:
    """Snapshots in a dict (deep copies): for tests and single-process applications."""

    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}

    async def load(self, stream: str) -> Snapshot | None:
        """The latest snapshot of ``stream``, or ``None``."""
        snap = self._snapshots.get(stream)
        return None if snap is None else copy.deepcopy(snap)

    async def save(self, snapshot: Snapshot) -> None:
        """Keep a deep copy of ``snapshot`` unless a later one is kept already."""
        kept = self._snapshots.get(snapshot.stream)
        if kept is None or kept.seq <= snapshot.seq:
            self._snapshots[snapshot.stream] = copy.deepcopy(snapshot)


class EventStreamSnapshotStore:
    """Snapshots as events of a stream ``snapshot:<stream>`` in any ``EventStore``.

    The state must be JSON (override ``Aggregate.to_snapshot`` /
    ``from_snapshot`` otherwise). Loading reads only the newest event of the
    snapshot stream. These events appear in ``read_all`` and ``subscribe``
    like any other; projectors that do not handle type ``evsrc.snapshot``
    skip them.
    """

    #: The event type of snapshot events.
    EVENT_TYPE = "evsrc.snapshot"

    def __init__(self, store: EventStore, *, prefix: str = "snapshot:") -> None:
        self.store = store
        self.prefix = prefix

    def stream_for(self, stream: str) -> str:
        """The snapshot stream of ``stream`` (hashed when the name would be too long)."""
        name = self.prefix + stream
        if len(name) > MAX_STREAM_LENGTH:
            name = self.prefix + "sha256:" + hashlib.sha256(stream.encode()).hexdigest()
        return name

    async def load(self, stream: str) -> Snapshot | None:
        """The newest snapshot event of ``stream``'s snapshot stream, or ``None``."""
        events = await self.store.read(self.stream_for(stream), backwards=True, limit=1)
        if not events:
            return None
        data = events[0].data
        if data.get("stream") != stream:  # a hash collision or a foreign event
            return None
        seq, schema, state = data.get("seq"), data.get("schema"), data.get("state")
        if not isinstance(seq, int) or not isinstance(schema, str) or not isinstance(state, dict):
            return None
        return Snapshot(stream, seq, schema, state)

    async def save(self, snapshot: Snapshot) -> None:
        """Append ``snapshot`` to the snapshot stream."""
        data = {
            "stream": snapshot.stream,
            "seq": snapshot.seq,
            "schema": snapshot.schema,
            "state": snapshot.state,
        }
        await self.store.append(
            self.stream_for(snapshot.stream), [NewEvent(type=self.EVENT_TYPE, data=data)]
        )
