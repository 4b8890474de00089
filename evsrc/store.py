"""``EventStore``: the contract every backend keeps, and the input checks they share.

A backend subclasses ``EventStore`` and implements its abstract methods. It
calls :func:`prepare_append` first thing in every append, so that bad input is
refused in the same way, with the same typed errors, before anything is
written — whatever the backend.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Self
from uuid import UUID

from evsrc.errors import (
    InvalidCheckpointError,
    InvalidEventError,
    InvalidInputError,
    InvalidStreamError,
)
from evsrc.events import Checkpoint, Committed, Conflict, NewEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from types import TracebackType

    from evsrc.events import RecordedEvent

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_STREAM_LENGTH",
    "MAX_TYPE_LENGTH",
    "EncodedEvent",
    "EventStore",
    "check_after",
    "check_checkpoint",
    "check_read_args",
    "check_stream",
    "decode_metadata",
    "decode_objects",
    "prepare_append",
]

#: Longest stream name, in characters.
MAX_STREAM_LENGTH: Final = 255
#: Longest event type name, in characters.
MAX_TYPE_LENGTH: Final = 255
#: Largest event: its ``data`` and ``metadata`` encoded as compact JSON, in bytes.
MAX_EVENT_BYTES: Final = 1024 * 1024


def _not_json(value: object) -> Any:
    msg = f"Object of type {type(value).__name__} is not JSON serializable"
    raise TypeError(msg)


# Compact JSON, ASCII only (so len() is the size in bytes), no NaN/Infinity
# (jsonb refuses them). The C encoder is built once: json.dumps rebuilds it on
# every call, which costs more than encoding a small event. It does not track
# cycles; a cyclic value ends in RecursionError, which is caught below.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
if _c_make_encoder is not None:
    _c_encode = _c_make_encoder(
        None,
        _not_json,
        json.encoder.encode_basestring_ascii,
        float.__repr__,
        ":",
        ",",
        False,
        False,
        False,
    )

    def _encode(value: object) -> str:
        return "".join(_c_encode(value, 0))

else:  # pragma: no cover - interpreters without the C accelerator
    _encode = json.JSONEncoder(  # type: ignore[assignment]
        ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=_not_json
    ).encode
# A JSON-escaped NUL that is not itself an escaped backslash followed by "u0000".
_ESCAPED_NUL = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")


_tuple_new = tuple.__new__
_loads = json.loads


def decode_objects(texts: list[str]) -> list[dict[str, Any]]:
    """Decode stored JSON object texts in one ``json.loads`` call (a backend's read path).

    One call over a JSON array of a whole page is about three times cheaper
    than one call per event.
    """
    decoded: list[dict[str, Any]] = _loads("[" + ",".join(texts) + "]")
    return decoded


def decode_metadata(texts: list[str]) -> list[dict[str, Any]]:
    """Like :func:`decode_objects`, with a shortcut for the common all-empty page."""
    for t in texts:
        if t != "{}":
            return decode_objects(texts)
    return [{} for _ in texts]


class EncodedEvent(NamedTuple):
    """A checked ``NewEvent`` with its data and metadata encoded as JSON text."""

    id: UUID
    type: str
    version: int
    data: str
    metadata: str


def check_stream(stream: object) -> str:
    """Return ``stream`` if it is a valid stream name, else raise ``InvalidStreamError``."""
    if type(stream) is not str:
        msg = f"stream must be a str, got {type(stream).__name__}"
        raise InvalidStreamError(msg, argument="stream", value=stream)
    if not stream:
        msg = "stream name must not be empty"
        raise InvalidStreamError(msg, argument="stream", value=stream)
    if len(stream) > MAX_STREAM_LENGTH:
        msg = f"stream name is {len(stream)} characters; the limit is {MAX_STREAM_LENGTH}"
        raise InvalidStreamError(msg, argument="stream", value=stream)
    if "\x00" in stream:
        msg = "stream name must not contain NUL characters"
        raise InvalidStreamError(msg, argument="stream", value=stream)
    return stream


def _encode_json(value: object, what: str, index: int) -> str:
    if type(value) is not dict:
        msg = f"events[{index}].{what} must be a dict (a JSON object), got {type(value).__name__}"
        raise InvalidEventError(msg, argument=f"events[{index}].{what}", value=value)
    try:
        text = _encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        msg = f"events[{index}].{what} is not JSON-serialisable: {exc}"
        raise InvalidEventError(msg, argument=f"events[{index}].{what}", value=value) from exc
    if "\\u0000" in text and _ESCAPED_NUL.search(text):
        msg = f"events[{index}].{what} contains a NUL character, which JSON storage refuses"
        raise InvalidEventError(msg, argument=f"events[{index}].{what}", value=value)
    return text


def prepare_append(
    stream: object, expected: object, events: object, *, any_position: bool = False
) -> list[EncodedEvent]:
    """Check an append's arguments and encode its events; raise before anything is written.

    ``append_expect`` passes its ``expected``; ``append`` passes ``None`` with
    ``any_position=True`` (no expectation).
    """
    check_stream(stream)
    if (expected is None and not any_position) or (
        expected is not None and (type(expected) is not int or expected < 0)
    ):
        msg = f"expected must be an int >= 0 (use append() for no expectation), got {expected!r}"
        raise InvalidInputError(msg, argument="expected", value=expected)
    if isinstance(events, (str, bytes, dict, NewEvent)) or not hasattr(events, "__iter__"):
        msg = f"events must be a list of NewEvent, got {type(events).__name__}"
        raise InvalidEventError(msg, argument="events", value=events)
    out: list[EncodedEvent] = []
    seen: set[int] = set()
    for i, ev in enumerate(events):
        if type(ev) is not NewEvent:
            msg = f"events[{i}] must be a NewEvent, got {type(ev).__name__}"
            raise InvalidEventError(msg, argument=f"events[{i}]", value=ev)
        t = ev.type
        if type(t) is not str or not t or len(t) > MAX_TYPE_LENGTH or "\x00" in t:
            msg = (
                f"events[{i}].type must be a non-empty str of at most {MAX_TYPE_LENGTH} "
                f"characters without NUL, got {t!r}"
            )
            raise InvalidEventError(msg, argument=f"events[{i}].type", value=t)
        version = ev.version
        if type(version) is not int or version < 1:
            msg = f"events[{i}].version must be an int >= 1, got {version!r}"
            raise InvalidEventError(msg, argument=f"events[{i}].version", value=version)
        event_id = ev.id
        if type(event_id) is not UUID:
            msg = f"events[{i}].id must be a uuid.UUID, got {type(event_id).__name__}"
            raise InvalidEventError(msg, argument=f"events[{i}].id", value=event_id)
        key = event_id.int  # an int hashes in C; UUID.__hash__ is Python code
        if key in seen:
            msg = f"events[{i}].id {event_id} appears twice in one append"
            raise InvalidEventError(msg, argument=f"events[{i}].id", value=event_id)
        seen.add(key)
        data = _encode_json(ev.data, "data", i)
        metadata = ev.metadata
        metadata_text = (
            "{}"
            if not metadata and type(metadata) is dict
            else _encode_json(metadata, "metadata", i)
        )
        size = len(data) + len(metadata_text)
        if size > MAX_EVENT_BYTES:
            msg = f"events[{i}] is {size} bytes of JSON; the limit is {MAX_EVENT_BYTES}"
            raise InvalidEventError(msg, argument=f"events[{i}]", value=size)
        out.append(_tuple_new(EncodedEvent, (event_id, t, version, data, metadata_text)))
    if not out:
        msg = "events must not be empty"
        raise InvalidEventError(msg, argument="events", value=events)
    return out


def check_read_args(stream: object, after: object, limit: object) -> None:
    """Check ``read`` arguments."""
    check_stream(stream)
    if type(after) is not int or after < 0:
        msg = f"after must be an int >= 0, got {after!r}"
        raise InvalidInputError(msg, argument="after", value=after)
    if limit is not None and (type(limit) is not int or limit < 0):
        msg = f"limit must be None or an int >= 0, got {limit!r}"
        raise InvalidInputError(msg, argument="limit", value=limit)


def check_checkpoint(after: object) -> Checkpoint | None:
    """Check a global-order ``after=``: a ``Checkpoint``, its text form, or ``None``."""
    if after is None or type(after) is Checkpoint:
        return after
    if isinstance(after, str):
        return Checkpoint.parse(after)
    msg = f"after must be a Checkpoint, its str() form or None, got {type(after).__name__}"
    raise InvalidCheckpointError(msg, argument="after", value=after)


check_after = check_checkpoint


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
        exactly these positions returns the original ``Committed``.
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
        """How many events the stream holds (streams are gapless: its last seq)."""
        return await self.last_seq(stream)

    @abstractmethod
    def read_all(
        self, after: Checkpoint | None = None, *, limit: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Every committed event of every stream in global order, after ``after``.

        Ends when it has caught up with what was committed when it got there.
        """

    @abstractmethod
    def subscribe(self, after: Checkpoint | None = None) -> AsyncIterator[RecordedEvent]:
        """Like ``read_all``, then live: waits for new commits and never ends by itself.

        Raises ``StoreClosedError`` when the store is closed.
        """

    @abstractmethod
    async def close(self) -> None:
        """Release the store's resources. Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def decode_json(text: str) -> dict[str, Any]:
    """Decode JSON object text stored by a backend."""
    value: dict[str, Any] = json.loads(text)
    return value
