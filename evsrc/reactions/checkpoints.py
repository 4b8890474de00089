"""Checkpoints kept as events in the event store itself: durable on every backend.

:class:`StreamCheckpointStore` saves a checkpoint by appending an event to the
stream ``$checkpoint:<name>`` with ``append_expect``: the conditional write
(``compare_and_save``) is the store's own optimistic concurrency, so two
runners in two processes can never both move one checkpoint — on memory,
SQLite or PostgreSQL alike, with no table of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from evsrc.records import Checkpoint, Committed, NewEvent

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["CHECKPOINT_EVENT", "StreamCheckpointStore"]

#: The type of the events that hold checkpoints.
CHECKPOINT_EVENT: Final = "evsrc.checkpoint"


class StreamCheckpointStore:
    """A :class:`~evsrc.projection.CheckpointStore` whose checkpoints are events in ``store``.

    Each save appends one small event to ``<prefix><name>``; the last one is
    the checkpoint. Use it for runners whose work goes to other aggregates
    (process managers, deadlines, the outbox dispatcher), where there is no
    read-model transaction to commit the checkpoint in.
    """

    def __init__(self, store: EventStore, *, prefix: str = "$checkpoint:") -> None:
        self.store = store
        self.prefix = prefix

    def stream(self, name: str) -> str:
        """The stream that holds the checkpoints of ``name``."""
        return f"{self.prefix}{name}"

    async def _last(self, name: str) -> tuple[Checkpoint | None, int]:
        stream = self.stream(name)
        seq = await self.store.last_seq(stream)
        if seq == 0:
            return None, 0
        events = await self.store.read(stream, after=seq - 1, limit=1)
        text = events[0].data.get("checkpoint") if events else None
        if not isinstance(text, str) or not text:
            return None, seq
        return Checkpoint.parse(text), seq

    async def load(self, name: str) -> Checkpoint | None:
        """The saved checkpoint of ``name``, or ``None``."""
        cp, _ = await self._last(name)
        return cp

    async def save(self, name: str, checkpoint: Checkpoint) -> None:
        """Save the checkpoint of ``name`` unconditionally."""
        await self.store.append(self.stream(name), [_event(checkpoint)])

    async def compare_and_save(
        self, name: str, previous: Checkpoint | None, checkpoint: Checkpoint
    ) -> bool:
        """Save ``checkpoint`` iff the saved one is still ``previous``; whether it was saved."""
        cp, seq = await self._last(name)
        if cp != previous:
            return False
        r = await self.store.append_expect(self.stream(name), seq, [_event(checkpoint)])
        return isinstance(r, Committed)

    async def reset(self, name: str) -> None:
        """Forget the checkpoint of ``name``: its next runner starts from the beginning."""
        await self.store.append(self.stream(name), [NewEvent(CHECKPOINT_EVENT, {"checkpoint": ""})])


def _event(checkpoint: Checkpoint) -> NewEvent:
    return NewEvent(CHECKPOINT_EVENT, {"checkpoint": str(checkpoint)})
