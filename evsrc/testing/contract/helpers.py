"""Helpers shared by the contract mixins: event builders, log readers, bad inputs."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from evsrc.records import Checkpoint, NewEvent, RecordedEvent
from evsrc.store import MAX_EVENT_BYTES, MAX_STREAM_LENGTH, MAX_TYPE_LENGTH

if TYPE_CHECKING:
    from collections.abc import Callable

    from evsrc.store import EventStore

__all__ = ["BAD_EVENTS", "BAD_STREAMS", "batch", "ev", "everything", "everything_filtered"]


def ev(type: str = "thing", **data: Any) -> NewEvent:
    """A ``NewEvent`` of ``type`` with ``data`` as its keyword arguments."""
    return NewEvent(type=type, data=data)


def batch(n: int, tag: str = "") -> list[NewEvent]:
    """``n`` events tagged so that a test can tell which append wrote them."""
    tag = tag or uuid.uuid4().hex
    return [NewEvent("part", {"i": i}, {"append": tag, "size": n}) for i in range(n)]


async def everything(store: EventStore, after: Checkpoint | None = None) -> list[RecordedEvent]:
    """All events of the store in global order (``read_all`` drained)."""
    return [e async for e in store.read_all(after=after)]


async def everything_filtered(store: EventStore, **flt: Any) -> list[RecordedEvent]:
    """All events of the store that pass the filter keywords, in global order."""
    return [e async for e in store.read_all(**flt)]


BAD_STREAMS: list[Any] = [
    "",
    "x" * (MAX_STREAM_LENGTH + 1),
    "a\x00b",
    "booking:\ud800",
    None,
    42,
    b"bytes",
]


def _cyclic() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["me"] = [d]
    return d


def _bad_events() -> list[tuple[str, Callable[[], Any]]]:
    class Opaque:
        pass

    return [
        ("empty list", lambda: []),
        ("not a list", lambda: ev()),
        ("dict not list", lambda: {"type": "x"}),
        ("element not NewEvent", lambda: [{"type": "x", "data": {}}]),
        ("empty type", lambda: [NewEvent("", {})]),
        ("NUL in type", lambda: [NewEvent("a\x00", {})]),
        ("over-long type", lambda: [NewEvent("t" * (MAX_TYPE_LENGTH + 1), {})]),
        ("version 0", lambda: [NewEvent("t", {}, version=0)]),
        ("version not int", lambda: [NewEvent("t", {}, version="1")]),  # type: ignore[arg-type]
        ("id not UUID", lambda: [NewEvent("t", {}, id="x")]),  # type: ignore[arg-type]
        ("data not a dict", lambda: [NewEvent("t", [1, 2])]),  # type: ignore[arg-type]
        ("data not JSON", lambda: [NewEvent("t", {"x": Opaque()})]),
        ("data has a set", lambda: [NewEvent("t", {"x": {1, 2}})]),
        ("data is cyclic", lambda: [NewEvent("t", _cyclic())]),
        ("data has NaN", lambda: [NewEvent("t", {"x": math.nan})]),
        ("data has NaN beside a null", lambda: [NewEvent("t", {"a": None, "x": math.nan})]),
        ("data has infinity", lambda: [NewEvent("t", {"x": [1, -math.inf]})]),
        ("data has a datetime", lambda: [NewEvent("t", {"x": datetime.now(UTC)})]),
        ("data has bytes", lambda: [NewEvent("t", {"x": b"raw"})]),
        ("lone surrogate in data", lambda: [NewEvent("t", {"x": "a\ud800b"})]),
        ("lone surrogate in a key", lambda: [NewEvent("t", {"\udfff": 1})]),
        ("lone surrogate in metadata", lambda: [NewEvent("t", {}, {"m": "\ud800"})]),
        ("lone surrogate in type", lambda: [NewEvent("t\ud800", {})]),
        ("version beyond int32", lambda: [NewEvent("t", {}, version=2**31)]),
        ("oversized in UTF-8", lambda: [NewEvent("t", {"x": "é" * (MAX_EVENT_BYTES // 2)})]),
        ("data has NUL", lambda: [NewEvent("t", {"x": "a\x00b"})]),
        ("NUL in a key", lambda: [NewEvent("t", {"a\x00": 1})]),
        ("metadata not JSON", lambda: [NewEvent("t", {}, {"x": Opaque()})]),
        ("oversized", lambda: [NewEvent("t", {"x": "a" * MAX_EVENT_BYTES})]),
        ("one bad among good", lambda: [ev(), ev(), NewEvent("t", {"x": Opaque()})]),
        (
            "duplicate id in one append",
            lambda: (lambda i: [NewEvent("t", {}, id=i), NewEvent("t", {}, id=i)])(uuid.uuid4()),
        ),
    ]


BAD_EVENTS = _bad_events()
