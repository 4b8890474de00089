"""The values that cross the store boundary.

``NewEvent`` goes in; ``RecordedEvent`` comes out; an append returns
``Committed`` or ``Conflict``; ``Checkpoint`` marks a place in the store's
global order from which ``read_all`` and ``subscribe`` resume.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from evsrc.errors import InvalidCheckpointError

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["Checkpoint", "Committed", "Conflict", "NewEvent", "RecordedEvent"]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append.

    ``data`` and ``metadata`` must be JSON objects (dicts of JSON-serialisable
    values). ``id`` makes retries idempotent: re-sending an append whose ids
    are already committed at the same positions returns the original result.
    ``version`` is the version of the event's schema, used for upcasting.
    """

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    id: UUID = field(default_factory=uuid4)
    version: int = 1


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: its place in its stream and in the global order."""

    stream: str
    seq: int
    position: int
    checkpoint: Checkpoint
    id: UUID
    type: str
    version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime


_CHECKPOINT_RE = re.compile(r"^(\d{1,20}):(\d{1,20})$")


@dataclass(frozen=True, slots=True, order=True)
class Checkpoint:
    """A place in the store's global order; ``after=`` a checkpoint resumes past it.

    Checkpoints are ordered by ``(commit, position)``. ``commit`` identifies
    the committing transaction (on PostgreSQL its transaction id, in memory a
    commit counter); ``position`` is the event's unique global position. Store
    one as text with ``str(cp)`` and read it back with ``Checkpoint.parse``.
    """

    commit: int
    position: int

    def __post_init__(self) -> None:
        if (
            type(self.commit) is not int
            or type(self.position) is not int
            or self.commit < 0
            or self.position < 0
        ):
            msg = (
                f"checkpoint parts must be non-negative ints, got {self.commit!r}:{self.position!r}"
            )
            raise InvalidCheckpointError(
                msg, argument="checkpoint", value=(self.commit, self.position)
            )

    def __str__(self) -> str:
        return f"{self.commit}:{self.position}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse the ``"commit:position"`` text that ``str(checkpoint)`` produces."""
        m = _CHECKPOINT_RE.match(text) if isinstance(text, str) else None
        if m is None:
            msg = f"not a checkpoint: {text!r} (expected 'commit:position')"
            raise InvalidCheckpointError(msg, argument="checkpoint", value=text)
        return cls(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True, slots=True)
class Committed:
    """The append landed: its events are ``first_seq … last_seq`` in ``stream``.

    ``position`` and ``checkpoint`` are those of the last event appended;
    a projector that has passed ``checkpoint`` has seen this append.
    """

    stream: str
    first_seq: int
    last_seq: int
    position: int
    checkpoint: Checkpoint


@dataclass(frozen=True, slots=True)
class Conflict:
    """The stream moved: it was at ``actual``, not ``expected``. Nothing was written.

    Re-observe the stream and decide again.
    """

    stream: str
    expected: int
    actual: int
