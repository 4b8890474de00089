"""The input checks every backend shares, and the limits they enforce.

A backend calls :func:`prepare_append` first thing in every append, so that
bad input is refused in the same way, with the same typed errors, before
anything is written, whatever the backend. ``evsrc.store`` re-exports every
name here.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple
from uuid import UUID

from evsrc._json import encode_object
from evsrc.errors import (
    InvalidCheckpointError,
    InvalidEventError,
    InvalidInputError,
    InvalidStreamError,
)
from evsrc.records import STREAM_DELETED, Checkpoint, NewEvent

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_EVENT_VERSION",
    "MAX_STREAM_LENGTH",
    "MAX_TYPE_LENGTH",
    "EncodedEvent",
    "EventFilter",
    "check_checkpoint",
    "check_filter",
    "check_read_args",
    "check_stream",
    "prepare_append",
    "unsupported",
]

#: Longest stream name, in characters.
MAX_STREAM_LENGTH: Final = 255
#: Longest event type name, in characters.
MAX_TYPE_LENGTH: Final = 255
#: Highest event schema version (PostgreSQL stores it as an ``integer``).
MAX_EVENT_VERSION: Final = 2**31 - 1
#: Largest event: its ``data`` and ``metadata`` encoded as compact JSON, in bytes.
MAX_EVENT_BYTES: Final = 1024 * 1024


# A JSON-escaped NUL that is not itself an escaped backslash followed by "u0000".
_ESCAPED_NUL = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")
_tuple_new = tuple.__new__


def _has_lone_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


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
    if _has_lone_surrogate(stream):
        msg = "stream name must be valid Unicode (it contains a lone surrogate)"
        raise InvalidStreamError(msg, argument="stream", value=stream)
    return stream


def _encode_json(value: object, what: str, index: int) -> tuple[str, int]:
    if type(value) is not dict:
        msg = f"events[{index}].{what} must be a dict (a JSON object), got {type(value).__name__}"
        raise InvalidEventError(msg, argument=f"events[{index}].{what}", value=value)
    try:
        text, size = encode_object(value)
    except (TypeError, ValueError, RecursionError) as exc:
        msg = f"events[{index}].{what} is not JSON-serialisable: {exc}"
        raise InvalidEventError(msg, argument=f"events[{index}].{what}", value=value) from exc
    if "\\u0000" in text and _ESCAPED_NUL.search(text):
        msg = f"events[{index}].{what} contains a NUL character, which JSON storage refuses"
        raise InvalidEventError(msg, argument=f"events[{index}].{what}", value=value)
    return text, size


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
        if (
            type(t) is not str
            or not t
            or len(t) > MAX_TYPE_LENGTH
            or "\x00" in t
            or _has_lone_surrogate(t)
        ):
            msg = (
                f"events[{i}].type must be a non-empty str of at most {MAX_TYPE_LENGTH} "
                f"characters of valid Unicode without NUL, got {t!r}"
            )
            raise InvalidEventError(msg, argument=f"events[{i}].type", value=t)
        if t == STREAM_DELETED:
            msg = f"events[{i}].type {t!r} is reserved: use delete_stream()"
            raise InvalidEventError(msg, argument=f"events[{i}].type", value=t)
        version = ev.version
        if type(version) is not int or not 1 <= version <= MAX_EVENT_VERSION:
            msg = (
                f"events[{i}].version must be an int from 1 to {MAX_EVENT_VERSION}, got {version!r}"
            )
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
        data, size = _encode_json(ev.data, "data", i)
        metadata = ev.metadata
        if not metadata and type(metadata) is dict:
            metadata_text = "{}"
            size += 2
        else:
            metadata_text, metadata_size = _encode_json(metadata, "metadata", i)
            size += metadata_size
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


def unsupported(store: object, what: str) -> NotImplementedError:
    """The error a store that lacks an optional operation (``what``) raises."""
    return NotImplementedError(f"{type(store).__name__} does not support {what}")


def check_checkpoint(after: object) -> Checkpoint | None:
    """Check a global-order ``after=``: a ``Checkpoint``, its text form, or ``None``."""
    if after is None or type(after) is Checkpoint:
        return after
    if isinstance(after, str):
        return Checkpoint.parse(after)
    msg = f"after must be a Checkpoint, its str() form or None, got {type(after).__name__}"
    raise InvalidCheckpointError(msg, argument="after", value=after)


class EventFilter(NamedTuple):
    """A checked ``read_all``/``subscribe`` filter; ``None`` fields match everything."""

    stream_prefix: str | None
    types: frozenset[str] | None

    def matches(self, stream: str, type_: str) -> bool:
        """Whether an event of ``stream`` and ``type_`` passes the filter."""
        prefix = self.stream_prefix
        if prefix is not None and not stream.startswith(prefix):
            return False
        types = self.types
        return types is None or type_ in types

    @property
    def everything(self) -> bool:
        """Whether the filter lets every event through."""
        return self.stream_prefix is None and self.types is None


def check_filter(stream_prefix: object = None, types: object = None) -> EventFilter:
    """Check the ``stream_prefix=`` and ``types=`` of a global read; ``InvalidInputError`` if bad.

    ``stream_prefix``: ``None`` or a non-empty str that could begin a stream
    name. ``types``: ``None`` or a non-empty collection (not a str) of event
    type names.
    """
    if stream_prefix is not None:
        if type(stream_prefix) is not str:
            msg = f"stream_prefix must be a str or None, got {type(stream_prefix).__name__}"
            raise InvalidInputError(msg, argument="stream_prefix", value=stream_prefix)
        if (
            not stream_prefix
            or len(stream_prefix) > MAX_STREAM_LENGTH
            or "\x00" in stream_prefix
            or _has_lone_surrogate(stream_prefix)
        ):
            msg = (
                f"stream_prefix must be a non-empty str of at most {MAX_STREAM_LENGTH} "
                f"characters of valid Unicode without NUL, got {stream_prefix!r}"
            )
            raise InvalidInputError(msg, argument="stream_prefix", value=stream_prefix)
    checked: frozenset[str] | None = None
    if types is not None:
        if isinstance(types, (str, bytes)) or not hasattr(types, "__iter__"):
            msg = f"types must be a list of event type names or None, got {types!r}"
            raise InvalidInputError(msg, argument="types", value=types)
        names = list(types)
        if not names:
            msg = "types must not be empty (pass None to read every type)"
            raise InvalidInputError(msg, argument="types", value=types)
        for t in names:
            if (
                type(t) is not str
                or not t
                or len(t) > MAX_TYPE_LENGTH
                or "\x00" in t
                or _has_lone_surrogate(t)
            ):
                msg = (
                    f"types must hold non-empty str of at most {MAX_TYPE_LENGTH} characters "
                    f"of valid Unicode without NUL, got {t!r}"
                )
                raise InvalidInputError(msg, argument="types", value=t)
        checked = frozenset(names)
    return EventFilter(stream_prefix, checked)
