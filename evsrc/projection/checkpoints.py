"""Where projections keep their checkpoints: the protocol, and a dict for tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from evsrc.records import Checkpoint

__all__ = ["CheckpointStore", "InMemoryCheckpointStore"]


@runtime_checkable
class CheckpointStore(Protocol):
    """Where projections keep their checkpoints, by projection name.

    A store may also offer ``async compare_and_save(name, previous, checkpoint)
    -> bool``: save only if the saved checkpoint is still ``previous`` (``None``:
    none saved). Runners use it when present, so that a runner that lost its
    turn cannot move a checkpoint that another one has moved meanwhile.
    """

    async def load(self, name: str) -> Checkpoint | None:
        """The saved checkpoint of projection ``name``; ``None`` to start from the beginning."""
        ...

    async def save(self, name: str, checkpoint: Checkpoint) -> None:
        """Save the checkpoint of projection ``name``."""
        ...


class InMemoryCheckpointStore:
    """Checkpoints in a dict: for tests and read models that live in the same process."""

    def __init__(self) -> None:
        self._checkpoints: dict[str, Checkpoint] = {}

    async def load(self, name: str) -> Checkpoint | None:
        """The saved checkpoint of ``name``, or ``None``."""
        return self._checkpoints.get(name)

    async def save(self, name: str, checkpoint: Checkpoint) -> None:
        """Save the checkpoint of ``name``."""
        self._checkpoints[name] = checkpoint

    async def compare_and_save(
        self, name: str, previous: Checkpoint | None, checkpoint: Checkpoint
    ) -> bool:
        """Save ``checkpoint`` iff the saved one is ``previous``; whether it was saved."""
        if self._checkpoints.get(name) != previous:
            return False
        self._checkpoints[name] = checkpoint
        return True

    async def reset(self, name: str) -> None:
        """Forget the checkpoint of ``name``: its next runner starts from the beginning."""
        self._checkpoints.pop(name, None)
