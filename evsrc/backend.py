"""``Backend``: the public ``EventStore`` methods, built once on a few storage primitives.

A backend subclasses ``Backend`` and implements the primitives; the base
checks every argument (the same typed errors on every backend, before anything
is written), refuses calls on a closed store, and resolves idempotent retries.
docs/backends.md, "Writing a backend", walks through one.

The primitives:

- ``_write_batch(stream, expected, encoded)``: write the checked events at the
  end of ``stream`` iff its head is ``expected`` (``None``: any head), all or
  nothing. Returns ``Committed``, ``Conflict``, or the :class:`Place` of every
  event id already stored (then nothing was written; the base turns them into
  the original ``Committed`` or the right error with :func:`resolve_retry`).
- ``_read_stream(stream, after, limit, backwards)``: one stream's events.
- ``_head(stream)``: the stream's last seq.
- ``_read_global(start, flt, limit)``: the global log after ``start``, filtered,
  up to what was committed when the read got there.
- ``_follow(start, flt)``: the same, then live; never ends while the store is open.
- ``close()``: set ``_closed`` and release resources.

The stream lifecycle primitives (docs/lifecycle.md); a backend without them
fails their part of the contract suite with ``NotImplementedError``:

- ``_delete(stream, hard)``: in one transaction remove the stream's events
  and append :func:`deletion_marker` (a ``$stream-deleted`` event) at head + 1;
  a soft marker is an ordinary event from then on, a hard one makes every
  primitive of that stream raise ``StreamDeletedError``.
- ``_truncate(stream, before)``: remove events with seq below
  ``min(before, head)``; return how many.
- ``_write_metadata(stream, meta)`` / ``_read_metadata(stream)``: retention,
  enforced by ``_read_stream``.
- ``_sweep(now)``: remove every event that retention hides; return how many.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from contextlib import aclosing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple
from uuid import uuid4

from evsrc._json import same_json_text
from evsrc.errors import (
    DuplicateEventIdError,
    EventIdReusedError,
    InvalidInputError,
    StoreClosedError,
)
from evsrc.lifecycle import check_metadata, check_truncate
from evsrc.records import STREAM_DELETED, Checkpoint, Committed, Conflict, retried
from evsrc.store import (
    MAX_STREAM_LENGTH,
    EncodedEvent,
    EventStore,
    check_checkpoint,
    check_filter,
    check_read_args,
    check_stream,
    prepare_append,
    unsupported,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
    from datetime import timedelta
    from uuid import UUID

    from evsrc.records import Deleted, NewEvent, RecordedEvent, StreamMetadata
    from evsrc.store import EventFilter

__all__ = ["Backend", "Place", "check_global_read", "deletion_marker", "resolve_retry"]


class Place(NamedTuple):
    """Where an event id is stored, and (when the backend has it at hand) what it holds.

    ``type`` … ``metadata`` left ``None`` mean the backend compares the content
    itself (PostgreSQL does it in SQL).
    """

    stream: str
    seq: int
    position: int
    commit: int
    type: str | None = None
    version: int | None = None
    data: str | None = None
    metadata: str | None = None


def _same_content(place: Place, e: EncodedEvent) -> bool:
    return (
        place.type == e.type
        and place.version == e.version
        and place.data is not None
        and place.metadata is not None
        and same_json_text(e.data, place.data)
        and same_json_text(e.metadata, place.metadata)
    )


def resolve_retry(
    stream: str,
    expected: int | None,
    encoded: Sequence[EncodedEvent],
    found: Mapping[UUID, Place],
) -> Committed:
    """The original ``Committed``, marked ``retried``, if every id sits where this append puts it.

    Otherwise ``DuplicateEventIdError`` naming the first id found; when the ids
    sit in place but a ``Place`` with content holds another event,
    ``EventIdReusedError``. Places without content are not compared here.
    """
    places = [found.get(e.id) for e in encoded]
    first = places[0]
    base = expected
    if base is None and first is not None and first.stream == stream:
        base = first.seq - 1
    if base is not None and all(
        p is not None and p.stream == stream and p.seq == base + i for i, p in enumerate(places, 1)
    ):
        for p, e in zip(places, encoded, strict=True):
            assert p is not None
            if p.type is not None and not _same_content(p, e):
                raise EventIdReusedError(event_id=e.id, stream=stream, seq=p.seq)
        last = places[-1]
        assert last is not None
        return retried(
            Committed(
                stream, base + 1, last.seq, last.position, Checkpoint(last.commit, last.position)
            )
        )
    # Some ids exist elsewhere, or only part of the append exists: not a retry.
    e, where = next((e, w) for e, w in zip(encoded, places, strict=True) if w is not None)
    raise DuplicateEventIdError(event_id=e.id, stream=where.stream, seq=where.seq)


def check_global_read(
    after: object, limit: object, stream_prefix: object, types: object
) -> tuple[Checkpoint | None, EventFilter]:
    """Check ``read_all``'s arguments: the start checkpoint and the filter."""
    start = check_checkpoint(after)
    if limit is not None and (type(limit) is not int or limit < 0):
        check_read_args("-", 0, limit)
    return start, check_filter(stream_prefix, types)


def deletion_marker(last_seq: int, *, hard: bool) -> EncodedEvent:
    """The ``$stream-deleted`` event that records a deletion of events ``1 … last_seq``."""
    data = json.dumps({"last_seq": last_seq, "hard": hard}, separators=(",", ":"))
    return EncodedEvent(uuid4(), STREAM_DELETED, 1, data, "{}")


class Backend(EventStore):
    """An ``EventStore`` whose public methods are built on a backend's storage primitives.

    Subclasses set ``self._closed = False`` when open and implement the
    primitives listed in the module docs.
    """

    _closed: bool = False

    def _closed_error(self) -> StoreClosedError:
        """The error a call on a closed store raises (a backend may say more)."""
        return StoreClosedError()

    # -- the primitives ------------------------------------------------------

    @abstractmethod
    async def _write_batch(
        self, stream: str, expected: int | None, encoded: list[EncodedEvent]
    ) -> Committed | Conflict | Mapping[UUID, Place]:
        """Write ``encoded`` iff the head is ``expected``; or say where its ids are stored."""

    async def _resolve(
        self,
        stream: str,
        expected: int | None,
        encoded: list[EncodedEvent],
        found: Mapping[UUID, Place],
    ) -> Committed:
        """Turn the places of ids already stored into the original result or an error."""
        return resolve_retry(stream, expected, encoded, found)

    @abstractmethod
    async def _read_stream(
        self, stream: str, after: int, limit: int | None, backwards: bool
    ) -> list[RecordedEvent]:
        """The checked stream read."""

    @abstractmethod
    async def _head(self, stream: str) -> int:
        """The stream's last seq; 0 if it has no events."""

    @abstractmethod
    def _read_global(
        self, start: Checkpoint | None, flt: EventFilter, limit: int | None
    ) -> AsyncGenerator[RecordedEvent, None]:
        """The global log after ``start`` that passes ``flt``, up to ``limit`` events."""

    @abstractmethod
    def _follow(
        self, start: Checkpoint | None, flt: EventFilter
    ) -> AsyncGenerator[RecordedEvent, None]:
        """The global log after ``start`` that passes ``flt``, then live."""

    # -- the stream lifecycle primitives (see the module docs) ----------------

    async def _delete(self, stream: str, hard: bool) -> Deleted:
        """Remove the stream's events and record a deletion marker, atomically."""
        raise unsupported(self, "delete_stream")

    async def _truncate(self, stream: str, before: int) -> int:
        """Remove events with seq below ``min(before, head)``."""
        raise unsupported(self, "truncate_before")

    async def _write_metadata(self, stream: str, meta: StreamMetadata) -> None:
        """Store the stream's retention (all ``None``: forget it)."""
        raise unsupported(self, "set_stream_metadata")

    async def _read_metadata(self, stream: str) -> StreamMetadata:
        """The stream's retention."""
        raise unsupported(self, "stream_metadata")

    async def _sweep(self, now: datetime) -> int:
        """Remove every event retention hides as of ``now``."""
        raise unsupported(self, "sweep")

    # -- the public contract ---------------------------------------------------

    async def _append_encoded(
        self, stream: str, expected: int | None, encoded: list[EncodedEvent]
    ) -> Committed | Conflict:
        result = await self._write_batch(stream, expected, encoded)
        if isinstance(result, (Committed, Conflict)):
            return result
        return await self._resolve(stream, expected, encoded, result)

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """See ``EventStore.append_expect``."""
        if self._closed:
            raise self._closed_error()
        return await self._append_encoded(
            stream, expected, prepare_append(stream, expected, events)
        )

    async def append(self, stream: str, events: Sequence[NewEvent]) -> Committed:
        """See ``EventStore.append``."""
        if self._closed:
            raise self._closed_error()
        encoded = prepare_append(stream, None, events, any_position=True)
        result = await self._append_encoded(stream, None, encoded)
        assert isinstance(result, Committed)
        return result

    async def read(
        self,
        stream: str,
        *,
        after: int = 0,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """See ``EventStore.read``."""
        if (
            type(stream) is not str
            or not 0 < len(stream) <= MAX_STREAM_LENGTH
            or not stream.isascii()
            or "\x00" in stream
            or type(after) is not int
            or after < 0
            or limit is not None
        ):
            # Only the usual arguments (a plain ASCII stream name, no limit) pass
            # without the checks' two calls; check_read_args sees all the rest.
            check_read_args(stream, after, limit)
        if self._closed:
            raise self._closed_error()
        return await self._read_stream(stream, after, limit, backwards)

    async def last_seq(self, stream: str) -> int:
        """See ``EventStore.last_seq``."""
        check_stream(stream)
        if self._closed:
            raise self._closed_error()
        return await self._head(stream)

    async def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        limit: int | None = None,
        stream_prefix: str | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """See ``EventStore.read_all``."""
        start, flt = check_global_read(after, limit, stream_prefix, types)
        if self._closed:
            raise self._closed_error()
        async with aclosing(self._read_global(start, flt, limit)) as events:
            async for event in events:
                yield event

    async def subscribe(
        self,
        after: Checkpoint | None = None,
        *,
        stream_prefix: str | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """See ``EventStore.subscribe``."""
        start = check_checkpoint(after)
        flt = check_filter(stream_prefix, types)
        if self._closed:
            raise self._closed_error()
        async with aclosing(self._follow(start, flt)) as events:
            async for event in events:
                yield event

    # -- the stream lifecycle ------------------------------------------------------

    async def delete_stream(self, stream: str, *, hard: bool = False) -> Deleted:
        """See ``EventStore.delete_stream``."""
        check_stream(stream)
        if type(hard) is not bool:
            msg = f"hard must be a bool, got {hard!r}"
            raise InvalidInputError(msg, argument="hard", value=hard)
        if self._closed:
            raise self._closed_error()
        return await self._delete(stream, hard)

    async def truncate_before(self, stream: str, seq: int) -> int:
        """See ``EventStore.truncate_before``."""
        before = check_truncate(stream, seq)
        if self._closed:
            raise self._closed_error()
        return await self._truncate(stream, before)

    async def set_stream_metadata(
        self, stream: str, *, max_count: int | None = None, max_age: timedelta | None = None
    ) -> StreamMetadata:
        """See ``EventStore.set_stream_metadata``."""
        check_stream(stream)
        meta = check_metadata(max_count, max_age)
        if self._closed:
            raise self._closed_error()
        await self._write_metadata(stream, meta)
        return meta

    async def stream_metadata(self, stream: str) -> StreamMetadata:
        """See ``EventStore.stream_metadata``."""
        check_stream(stream)
        if self._closed:
            raise self._closed_error()
        return await self._read_metadata(stream)

    async def sweep(self) -> int:
        """See ``EventStore.sweep``."""
        if self._closed:
            raise self._closed_error()
        return await self._sweep(datetime.now(UTC))
