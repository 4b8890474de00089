"""Compression of large event data, opt-in per event type, transparent to readers.

``CompressingStore(store, types=["report"], threshold=1024)`` stores the data
of a ``report`` event whose compact JSON is at least ``threshold`` bytes as
``{"$z": "<base64 of zlib of the JSON>"}`` when that is smaller; every read
puts the original dict back. Compression is deterministic (same data, same
bytes), so a re-sent append is still recognised as the same event. See
docs/lifecycle.md, "Compression".
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import TYPE_CHECKING, Any, Final

import orjson

from evsrc._json import encode_object
from evsrc.delegating import OpeningStore
from evsrc.errors import EventDecodeError, InvalidEventError, InvalidInputError
from evsrc.records import NewEvent
from evsrc.store import MAX_EVENT_BYTES

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from evsrc.records import Committed, Conflict, RecordedEvent
    from evsrc.store import EventStore

__all__ = ["COMPRESSED_KEY", "DEFAULT_THRESHOLD", "CompressingStore", "compress", "decompress"]

#: The only key of the dict that holds compressed data at rest.
COMPRESSED_KEY: Final = "$z"
#: Data smaller than this many bytes of JSON is stored as is, by default.
DEFAULT_THRESHOLD: Final = 1024
# A decompressed event is never larger than the largest event a caller could append
# uncompressed times this: a bound against a crafted row that inflates without end.
_MAX_INFLATE: Final = 16 * MAX_EVENT_BYTES


def compress(data: dict[str, Any], *, level: int = 6) -> dict[str, str]:
    """The ``{"$z": …}`` form of ``data`` (deterministic for equal dicts in equal order).

    Raises ``TypeError`` or ``ValueError`` for data that is not strict JSON.
    """
    raw = encode_object(data)[0].encode()
    return {COMPRESSED_KEY: base64.b64encode(zlib.compress(raw, level)).decode()}


def decompress(data: dict[str, Any]) -> dict[str, Any] | None:
    """The original data of a ``{"$z": …}`` dict; ``None`` if ``data`` is not one.

    Raises ``ValueError`` if it is one but cannot be decompressed.
    """
    if len(data) != 1:
        return None
    token = data.get(COMPRESSED_KEY)
    if type(token) is not str:
        return None
    try:
        packed = base64.b64decode(token.encode(), validate=True)
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, _MAX_INFLATE)
    except (binascii.Error, zlib.error) as exc:
        msg = f"compressed data is corrupt: {exc}"
        raise ValueError(msg) from exc
    if inflater.unconsumed_tail or not inflater.eof:
        msg = "compressed data is truncated or inflates past the size limit"
        raise ValueError(msg)
    value = orjson.loads(raw)
    if type(value) is not dict:
        msg = "compressed data is not a JSON object"
        raise ValueError(msg)
    return value


class CompressingStore(OpeningStore):
    """An ``EventStore`` that compresses the data of large events of the given ``types``.

    Only events whose type is in ``types`` and whose data is at least
    ``threshold`` bytes of JSON are compressed, and only when that saves
    space. Reads decompress whatever compressed data they meet, whatever
    ``types`` says now. ``"$z"`` as the only key of an event's data is
    reserved: appending it raises ``InvalidEventError``. Metadata is never
    compressed. The store's size limit applies to what is stored, so a
    compressed event may hold more than ``MAX_EVENT_BYTES`` of JSON.
    """

    def __init__(
        self,
        inner: EventStore,
        types: Iterable[str],
        *,
        threshold: int = DEFAULT_THRESHOLD,
        level: int = 6,
        owns_inner: bool = True,
    ) -> None:
        super().__init__(inner, owns_inner=owns_inner)
        if isinstance(types, str | bytes):
            msg = f"types must be a collection of event type names, got {types!r}"
            raise InvalidInputError(msg, argument="types", value=types)
        self.types = frozenset(types)
        if not all(type(t) is str and t for t in self.types):
            msg = f"types must hold non-empty str, got {sorted(map(repr, self.types))}"
            raise InvalidInputError(msg, argument="types", value=types)
        if type(threshold) is not int or threshold < 0:
            msg = f"threshold must be an int >= 0, got {threshold!r}"
            raise InvalidInputError(msg, argument="threshold", value=threshold)
        if type(level) is not int or not 0 <= level <= 9:
            msg = f"level must be an int from 0 to 9, got {level!r}"
            raise InvalidInputError(msg, argument="level", value=level)
        self.threshold = threshold
        self.level = level

    def _pack(self, events: Sequence[NewEvent]) -> Sequence[NewEvent]:
        if isinstance(events, str | bytes | dict | NewEvent) or not hasattr(events, "__iter__"):
            return events  # the inner store refuses it with its usual error
        out = list(events)
        for i, ev in enumerate(out):
            if type(ev) is not NewEvent or type(ev.data) is not dict:
                continue
            data = ev.data
            if len(data) == 1 and COMPRESSED_KEY in data:
                msg = f"events[{i}].data: a sole {COMPRESSED_KEY!r} key is reserved"
                raise InvalidEventError(msg, argument=f"events[{i}].data", value=data)
            if ev.type not in self.types:
                continue
            try:
                text, size = encode_object(data)
                raw = text.encode()
            except (TypeError, ValueError, RecursionError):
                continue  # not JSON: the inner store refuses it with its usual error
            if size < self.threshold:
                continue
            packed = {COMPRESSED_KEY: base64.b64encode(zlib.compress(raw, self.level)).decode()}
            if len(packed[COMPRESSED_KEY]) + 8 < len(raw):
                out[i] = NewEvent(ev.type, packed, ev.metadata, ev.id, ev.version)
        return out

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """``append_expect`` with large data of the chosen types compressed."""
        return await self.inner.append_expect(stream, expected, self._pack(events))

    async def append(self, stream: str, events: Sequence[NewEvent]) -> Committed:
        """``append`` with large data of the chosen types compressed."""
        return await self.inner.append(stream, self._pack(events))

    @staticmethod
    def _unpack(record: RecordedEvent) -> RecordedEvent:
        data = record.data
        if len(data) != 1 or COMPRESSED_KEY not in data:
            return record
        try:
            original = decompress(data)
        except ValueError as exc:
            raise EventDecodeError.at(record, str(exc)) from exc
        return record if original is None else record._replace(data=original)

    async def open_events(self, records: list[RecordedEvent]) -> list[RecordedEvent]:
        """``records`` with compressed data restored (every read passes through here)."""
        return [self._unpack(r) for r in records]
