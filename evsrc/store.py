"""``EventStore``: the contract every backend keeps.

A backend subclasses ``EventStore`` and implements its abstract methods. It
calls :func:`prepare_append` first thing in every append, so that bad input is
refused in the same way, with the same typed errors, before anything is
written — whatever the backend. The checks live in :mod:`evsrc.checks` and
``DelegatingStore`` in :mod:`evsrc.delegating`; both are re-exported here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Self

from evsrc._json import decode_metadata, decode_objects
from evsrc.checks import (
    MAX_EVENT_BYTES,
    MAX_EVENT_VERSION,
    MAX_STREAM_LENGTH,
    MAX_TYPE_LENGTH,
    EncodedEvent,
    EventFilter,
    check_checkpoint,
    check_filter,
    check_read_args,
    check_stream,
    prepare_append,
    unsupported,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from datetime import timedelta
    from types import TracebackType

    from evsrc.delegating import DelegatingStore as DelegatingStore
    from evsrc.records import (
        Checkpoint,
        Committed,
        Conflict,
        Deleted,
        NewEvent,
        RecordedEvent,
        StreamMetadata,
    )

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_EVENT_VERSION",
    "MAX_STREAM_LENGTH",
    "MAX_TYPE_LENGTH",
    "DelegatingStore",
    "EncodedEvent",
    "EventFilter",
    "EventStore",
    "check_checkpoint",
    "check_filter",
    "check_read_args",
    "check_stream",
    "decode_metadata",
    "decode_objects",
    "prepare_append",
    "unsupported",
]


class EventStore(ABC):
    """An append-only store of event streams with optimistic concurrency.

    See the module ``evsrc`` docs for the invariants every backend keeps.
    Use as ``async with store:`` or call ``await store.close()``.
    """

    @abstractmethod
    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """Append ``events`` as ``expected+1 …`` iff the stream's last seq is ``expected``.

        Returns ``Committed``, or ``Conflict(expected, actual)`` when the
        stream is elsewhere (behind or ahead) — in which case nothing was
        written. Re-sending an append whose event ids are already committed at
        exactly these positions, with the same content (type, version, data,
        metadata), returns the original ``Committed``; the same ids with other
        content raise ``EventIdReusedError``, and an id committed anywhere else
        raises ``DuplicateEventIdError`` (its base class). Nothing is written.
        """

    @abstractmethod
    async def append(self, stream: str, events: Sequence[NewEvent]) -> Committed:
        """Append ``events`` at the end of ``stream``, whatever its last seq."""

    @abstractmethod
    async def read(
        self,
        stream: str,
        *,
        after: int = 0,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """Events of ``stream`` with ``seq > after``, oldest first.

        With ``backwards=True``, newest first: the last ``limit`` events after
        ``after``.
        """

    @abstractmethod
    async def last_seq(self, stream: str) -> int:
        """The stream's last seq; 0 for a stream with no events."""

    async def count(self, stream: str) -> int:
        """How many events were ever appended to the stream: its last seq.

        Truncation, retention and soft deletion do not lower it (seqs never go back).
        """
        return await self.last_seq(stream)

    @abstractmethod
    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        limit: int | None = None,
        stream_prefix: str | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Every committed event of every stream in global order, after ``after``.

        Ends when it has caught up with what was committed when it got there.
        ``stream_prefix`` and ``types`` keep only events of streams starting
        with it and of those types (applied by the backend; ``limit`` counts
        the events returned). Order and checkpoints are those of the
        unfiltered log: a checkpoint from a filtered read resumes any read
        exactly after it. Bad filters raise ``InvalidInputError`` (see
        :func:`check_filter`).
        """

    @abstractmethod
    def subscribe(
        self,
        after: Checkpoint | None = None,
        *,
        stream_prefix: str | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Like ``read_all``, then live: waits for new commits and never ends by itself.

        Takes the same filters. A transient outage of the backend does not end
        it: it retries until the backend is back. Raises ``StoreClosedError``
        when the store is closed.
        """

    @abstractmethod
    async def close(self) -> None:
        """Release the store's resources. Idempotent."""

    # -- stream lifecycle (docs/lifecycle.md) ----------------------------------
    # Not abstract, so that stores written before these existed still load; the
    # contract suite (evsrc.testing) checks every backend implements them.

    async def delete_stream(self, stream: str, *, hard: bool = False) -> Deleted:
        """Delete ``stream``: its events go, a ``$stream-deleted`` event is appended to it.

        Soft (the default): that event (``STREAM_DELETED``) is the stream's
        head and what ``read`` returns; the stream may go on after it
        (``append_expect`` with its seq; ``expected=0`` is a ``Conflict``).
        Hard: the stream is tombstoned; every later read or write of it raises
        ``StreamDeletedError``. See docs/lifecycle.md.
        """
        raise unsupported(self, "delete_stream")

    async def truncate_before(self, stream: str, seq: int) -> int:
        """Remove the events of ``stream`` with a seq below ``seq``; return how many.

        The newest event is always kept, so the stream's head and ``last_seq``
        do not change and ``append_expect`` with the head works as before.
        """
        raise unsupported(self, "truncate_before")

    async def set_stream_metadata(
        self, stream: str, *, max_count: int | None = None, max_age: timedelta | None = None
    ) -> StreamMetadata:
        """Set (replace) the retention of ``stream``; ``None`` means no limit.

        Enforced by ``read`` at once; ``sweep`` removes what it hides.
        """
        raise unsupported(self, "set_stream_metadata")

    async def stream_metadata(self, stream: str) -> StreamMetadata:
        """The retention of ``stream`` (no limits if never set)."""
        raise unsupported(self, "stream_metadata")

    async def sweep(self) -> int:
        """Remove the events that retention hides from reads; return how many."""
        raise unsupported(self, "sweep")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def __getattr__(name: str) -> Any:
    # ``evsrc.delegating`` subclasses ``EventStore``, so it is imported on first use.
    if name == "DelegatingStore":
        from evsrc.delegating import DelegatingStore

        return DelegatingStore
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
