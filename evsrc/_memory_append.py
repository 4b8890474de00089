"""``InMemoryEventStore.append_expect``'s fast path: the common append in one function.

The general path (``Backend.append_expect``: :func:`~evsrc.checks.prepare_append`,
then ``_write_batch``) builds an ``EncodedEvent`` per event and runs three
coroutines per append. Here the same checks run inline, each row is built as
its event passes them, and nothing is stored until every check has passed (an
id claimed in the index on the way is given back when the append is refused,
conflicts, or raises). One loop serves one event and many. Anything unusual
goes to the general path before anything is written, so that its answer — and
every error, with its message — is the general path's own: input that fails a
check or needs a closer look (a ``null`` in the JSON, which may stand for a
NaN; a NUL; a very large event; a lone surrogate), an id already stored (an
idempotent retry, or a reused id), a deleted stream, a closed store, a
subclass with its own write primitive.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

import orjson

from evsrc._json import ORJSON_OPTIONS, orjson_decline
from evsrc.backend import Backend
from evsrc.checks import (
    MAX_EVENT_BYTES,
    MAX_EVENT_VERSION,
    MAX_STREAM_LENGTH,
    MAX_TYPE_LENGTH,
    _has_lone_surrogate,
)
from evsrc.records import STREAM_DELETED, Checkpoint, Committed, Conflict, NewEvent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evsrc._memory_lifecycle import Row
    from evsrc.memory import InMemoryEventStore

__all__ = ["append_expect"]

_now = datetime.now
_tuple_new = tuple.__new__
_dumps = orjson.dumps
_JSONEncodeError = orjson.JSONEncodeError
_general = Backend.append_expect
#: Within this many characters of JSON an event is within MAX_EVENT_BYTES,
#: whatever its characters (at most 4 UTF-8 bytes each); a larger one goes
#: to the general path, which counts its bytes.
_SAFE_CHARS = MAX_EVENT_BYTES // 4


def _fresh_name(stream: str) -> bool:
    """Whether ``stream`` (a str) passes ``check_stream``."""
    return (
        0 < len(stream) <= MAX_STREAM_LENGTH
        and "\x00" not in stream
        and (stream.isascii() or not _has_lone_surrogate(stream))
    )


#: Event types (``str`` only) that passed ``_plain_type``: one set probe
#: instead of five tests per event. Bounded: past ``_TYPES_KEPT`` types, the
#: others are checked each time.
_types: set[str] = set()
_TYPES_KEPT = 1024


def _plain_type(t: str) -> bool:
    """Whether ``t`` (a str) passes prepare_append's type checks; remembers it if so."""
    if (
        not t
        or len(t) > MAX_TYPE_LENGTH
        or "\x00" in t
        or t == STREAM_DELETED
        or (not t.isascii() and _has_lone_surrogate(t))
    ):
        return False
    if len(_types) < _TYPES_KEPT:
        _types.add(t)
    return True


def _release(ids: dict[int, int], rows: list[Row]) -> None:
    """Give back the ids ``rows`` claimed (nothing of theirs was written)."""
    for r in rows:
        del ids[r[4]]


async def append_expect(
    self: InMemoryEventStore, stream: str, expected: int, events: Sequence[NewEvent]
) -> Committed | Conflict:
    """See ``EventStore.append_expect``."""
    # Only plain arguments of the usual types; the general path checks the rest.
    if (
        type(stream) is not str
        or type(expected) is not int
        or expected < 0
        or (type(events) is not list and type(events) is not tuple)
        or not events
        or self._closed
        or not self._plain_writes
    ):
        return await _general(self, stream, expected, events)
    streams = self._streams
    rows = streams.get(stream)
    # A stream with rows passed check_stream when it was first appended to.
    if rows is None and not _fresh_name(stream):
        return await _general(self, stream, expected, events)
    actual = 0 if rows is None else len(rows)
    log = self._log
    ids = self._ids
    commit = self._commits + 1
    seq = actual
    position = len(log)
    now = _now(UTC)
    new: list[Row] = []
    # Each event passes prepare_append's checks plainly and claims its id (one
    # dict probe: held, it is someone's, or twice in this append), or every
    # claim is given back and the general path answers.
    for ev in events:
        # A check that raises (a NewEvent without its fields, say) gives the claims back.
        try:
            if type(ev) is not NewEvent:
                break
            t = ev.type
            version = ev.version
            event_id = ev.id
            data = ev.data
            metadata = ev.metadata
            if (
                type(t) is not str
                or (t not in _types and not _plain_type(t))
                or type(version) is not int
                or not 1 <= version <= MAX_EVENT_VERSION
                or type(event_id) is not UUID
                or type(data) is not dict
                or type(metadata) is not dict
            ):
                break
            try:
                text: str = _dumps(data, orjson_decline, ORJSON_OPTIONS).decode()
                metadata_text: str = (
                    _dumps(metadata, orjson_decline, ORJSON_OPTIONS).decode() if metadata else "{}"
                )
            except _JSONEncodeError:
                break
            # A null may stand for a NaN, an escaped NUL needs a closer look.
            if (
                "null" in text
                or "\\u0000" in text
                or (metadata and ("null" in metadata_text or "\\u0000" in metadata_text))
                or len(text) + len(metadata_text) > _SAFE_CHARS
            ):
                break
        except BaseException:
            _release(ids, new)
            raise
        seq += 1
        position += 1
        key = event_id.int
        if ids.setdefault(key, position) != position:
            break
        new.append((stream, seq, position, commit, key, t, version, text, metadata_text, now))
    else:
        if actual != expected or (self._tombstones and stream in self._tombstones):
            _release(ids, new)
            if stream in self._tombstones:
                return await _general(self, stream, expected, events)
            return _tuple_new(Conflict, (stream, expected, actual))
        # No await between the check and the write: atomic without a lock.
        self._commits = commit
        if rows is None:
            streams[stream] = new
        else:
            rows.extend(new)
        log.extend(new)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()
        if self._filtered:
            self._wake_filtered(stream, events)
        return _tuple_new(
            Committed,
            (stream, actual + 1, seq, position, _tuple_new(Checkpoint, (commit, position))),
        )
    _release(ids, new)
    return await _general(self, stream, expected, events)
