"""The values that cross the store boundary.

``NewEvent`` goes in; ``RecordedEvent`` comes out; an append returns
``Committed`` or ``Conflict``; ``Checkpoint`` marks a place in the store's
global order from which ``read_all`` and ``subscribe`` resume.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NamedTuple

# At run time: typing.get_type_hints(NewEvent) (pydantic, hypothesis) resolves it.
from uuid import UUID  # noqa: TC003

from evsrc._ids import uuid4
from evsrc.errors import InvalidCheckpointError

if TYPE_CHECKING:
    from datetime import datetime, timedelta

__all__ = [
    "STREAM_DELETED",
    "Checkpoint",
    "Committed",
    "Conflict",
    "Deleted",
    "NewEvent",
    "RecordedEvent",
    "StreamMetadata",
    "recorded",
    "retried",
]

#: The type of the event that ``delete_stream`` records at the deleted stream's
#: head, in the global order; reserved (an append of this type is refused).
STREAM_DELETED: Final = "$stream-deleted"


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


class RecordedEvent(NamedTuple):
    """An event as stored: its place in its stream and in the global order.

    An immutable named tuple: fields by name (``event.seq``), ``_replace()``
    and ``_asdict()`` as for any ``NamedTuple``. A tuple rather than a
    dataclass because a read creates one per event, and a tuple is built in
    one C call. Treat
    ``data`` and ``metadata`` as read-only; every read decodes fresh copies.
    """

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


_CHECKPOINT_RE = re.compile(r"([0-9]{1,20}):([0-9]{1,20})")


class _CheckpointFields(NamedTuple):
    commit: int
    position: int


class Checkpoint(_CheckpointFields):
    """A place in the store's global order; ``after=`` a checkpoint resumes past it.

    Checkpoints are ordered by ``(commit, position)``. ``commit`` identifies
    the committing transaction (on PostgreSQL its transaction id, in memory a
    commit counter); ``position`` is the event's unique global position. Store
    one as text with ``str(cp)`` and read it back with ``Checkpoint.parse``.
    An immutable named tuple of two non-negative ints, validated on creation.
    """

    __slots__ = ()

    def __new__(cls, commit: int, position: int) -> Checkpoint:
        if type(commit) is not int or type(position) is not int or commit < 0 or position < 0:
            msg = f"checkpoint parts must be non-negative ints, got {commit!r}:{position!r}"
            raise InvalidCheckpointError(msg, argument="checkpoint", value=(commit, position))
        return _tuple_new(cls, (commit, position))

    def __str__(self) -> str:
        return f"{self[0]}:{self[1]}"

    def __repr__(self) -> str:
        return f"Checkpoint(commit={self[0]}, position={self[1]})"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse the ``"commit:position"`` text that ``str(checkpoint)`` produces.

        The whole text must match: ASCII digits only, nothing before or after
        (not even a newline); anything else is ``InvalidCheckpointError``.
        """
        m = _CHECKPOINT_RE.fullmatch(text) if isinstance(text, str) else None
        if m is None:
            msg = f"not a checkpoint: {text!r} (expected 'commit:position')"
            raise InvalidCheckpointError(msg, argument="checkpoint", value=text)
        return cls(int(m.group(1)), int(m.group(2)))

    def _replace(self, **changes: int) -> Checkpoint:
        """A copy with ``commit`` and/or ``position`` changed (validated)."""
        commit = changes.pop("commit", self[0])
        position = changes.pop("position", self[1])
        if changes:
            msg = f"Got unexpected field names: {list(changes)!r}"
            raise ValueError(msg)
        return Checkpoint(commit, position)


_tuple_new = tuple.__new__


def recorded(
    stream: str,
    seq: int,
    position: int,
    commit: int,
    id_: UUID,
    type_: str,
    version: int,
    data: dict[str, Any],
    metadata: dict[str, Any],
    recorded_at: datetime,
) -> RecordedEvent:
    """A ``RecordedEvent`` from values a backend already checked (no validation)."""
    return _tuple_new(
        RecordedEvent,
        (
            stream, seq, position, _tuple_new(Checkpoint, (commit, position)), id_,
            type_, version, data, metadata, recorded_at,
        ),
    )  # fmt: skip


class Committed(NamedTuple):
    """The append landed: its events are ``first_seq … last_seq`` in ``stream``.

    ``position`` and ``checkpoint`` are those of the last event appended;
    a projector that has passed ``checkpoint`` has seen this append.
    An immutable named tuple, like every value an append or a read returns.

    ``retried`` (not a field) is true when this append was an idempotent
    re-send: its event ids were already committed there, nothing was written,
    and this is the original result.
    """

    stream: str
    first_seq: int
    last_seq: int
    position: int
    checkpoint: Checkpoint

    @property
    def retried(self) -> bool:
        """Whether the events were already committed by an earlier send (nothing written now)."""
        return False


class _RetriedCommitted(Committed):
    # A subclass rather than a sixth field: a retry still equals, unpacks and
    # hashes like the original result, as the idempotency contract promises.
    __slots__ = ()

    @property
    def retried(self) -> bool:
        return True

    def __repr__(self) -> str:
        fields = super().__repr__().partition("(")[2]
        return f"Committed({fields[:-1]}, retried=True)"


def retried(committed: Committed) -> Committed:
    """``committed`` marked as the result of an idempotent re-send (``retried`` true)."""
    return _tuple_new(_RetriedCommitted, tuple(committed))


class Conflict(NamedTuple):
    """The stream moved: it was at ``actual``, not ``expected``. Nothing was written.

    Re-observe the stream and decide again.
    """

    stream: str
    expected: int
    actual: int


class Deleted(NamedTuple):
    """A stream was deleted: its events ``1 … last_seq`` are gone.

    ``checkpoint`` is that of the ``$stream-deleted`` event recorded in the
    global order (a projector that has passed it has seen the deletion);
    ``None`` when nothing was written (the stream had no live events).
    """

    stream: str
    last_seq: int
    hard: bool
    checkpoint: Checkpoint | None


class StreamMetadata(NamedTuple):
    """A stream's retention: its newest ``max_count`` events, those younger than ``max_age``.

    ``None`` means no limit. Retention never removes a stream's newest event.
    """

    max_count: int | None = None
    max_age: timedelta | None = None
