"""Compression of large event data, opt-in per type, on every backend."""

from __future__ import annotations

import base64
import zlib
from typing import TYPE_CHECKING

import pytest

from evsrc.compression import COMPRESSED_KEY, CompressingStore, compress, decompress
from evsrc.errors import EventDecodeError, EventIdReusedError, InvalidEventError, InvalidInputError
from evsrc.memory import InMemoryEventStore
from evsrc.records import Committed, NewEvent
from evsrc.store import MAX_EVENT_BYTES

if TYPE_CHECKING:
    from evsrc.store import EventStore

BIG = {"lines": [f"line {i}: the quick brown fox" for i in range(400)], "n": 1}


async def test_large_data_of_chosen_types_is_stored_compressed(any_store: EventStore) -> None:
    store = CompressingStore(any_store, types=["report"], threshold=512, owns_inner=False)
    events = [
        NewEvent("report", BIG),
        NewEvent("report", {"small": True}),
        NewEvent("other", BIG),
    ]
    await store.append("s-1", events)
    at_rest = await any_store.read("s-1")
    assert list(at_rest[0].data) == [COMPRESSED_KEY]
    assert len(at_rest[0].data[COMPRESSED_KEY]) < len(str(BIG)) // 5
    assert at_rest[1].data == {"small": True}
    assert at_rest[2].data == BIG
    assert [e.data for e in await store.read("s-1")] == [BIG, {"small": True}, BIG]
    assert [e.data async for e in store.read_all()] == [BIG, {"small": True}, BIG]
    got = []
    async for e in store.subscribe(types=["report"]):
        got.append(e.data)
        if len(got) == 2:
            break
    assert got == [BIG, {"small": True}]
    # Readers that no longer compress the type (or a wrapper with no types) still decompress.
    plain = CompressingStore(any_store, types=[], owns_inner=False)
    assert [e.data for e in await plain.read("s-1", backwards=True, limit=1)] == [BIG]


async def test_compression_is_deterministic_so_resends_match(any_store: EventStore) -> None:
    store = CompressingStore(any_store, types=["report"], threshold=0, owns_inner=False)
    events = [NewEvent("report", BIG), NewEvent("report", {**BIG, "n": 2})]
    first = await store.append_expect("s-1", 0, events)
    assert isinstance(first, Committed)
    assert await store.append_expect("s-1", 0, events) == first
    changed = [events[0], NewEvent("report", {**BIG, "n": 3}, id=events[1].id)]
    with pytest.raises(EventIdReusedError):
        await store.append_expect("s-1", 0, changed)


async def test_more_than_the_size_limit_fits_when_compressed(any_store: EventStore) -> None:
    store = CompressingStore(any_store, types=["report"], owns_inner=False)
    huge = {"blob": "a" * (MAX_EVENT_BYTES + 1000)}
    with pytest.raises(InvalidEventError):
        await any_store.append("s-1", [NewEvent("report", huge)])
    await store.append("s-1", [NewEvent("report", huge)])
    assert (await store.read("s-1"))[0].data == huge


async def test_bad_input_is_refused_before_anything_is_written(any_store: EventStore) -> None:
    store = CompressingStore(any_store, types=["report"], threshold=0, owns_inner=False)
    with pytest.raises(InvalidEventError):
        await store.append("s-1", [NewEvent("report", {COMPRESSED_KEY: "x"})])
    with pytest.raises(InvalidEventError):
        await store.append("s-1", [NewEvent("other", {COMPRESSED_KEY: "x"})])
    with pytest.raises(InvalidEventError):
        await store.append("s-1", [NewEvent("report", {"x": float("nan")})])
    with pytest.raises(InvalidEventError):
        await store.append("s-1", [])
    assert await any_store.last_seq("s-1") == 0
    for bad in ({"types": "report"}, {"types": [""]}, {"types": ["r"], "threshold": -1}):
        with pytest.raises(InvalidInputError):
            CompressingStore(any_store, owns_inner=False, **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        CompressingStore(any_store, ["r"], level=10, owns_inner=False)


async def test_corrupt_or_bomb_data_at_rest_is_a_decode_error() -> None:
    raw = InMemoryEventStore()
    store = CompressingStore(raw, types=["report"])
    await raw.append("s-1", [NewEvent("report", {COMPRESSED_KEY: "not base64!"})])
    with pytest.raises(EventDecodeError) as info:
        await store.read("s-1")
    assert info.value.stream == "s-1"
    bomb = base64.b64encode(zlib.compress(b"[" * (32 * MAX_EVENT_BYTES), 9)).decode()
    await raw.append("s-2", [NewEvent("report", {COMPRESSED_KEY: bomb})])
    with pytest.raises(EventDecodeError):
        await store.read("s-2")
    not_object = base64.b64encode(zlib.compress(b"[1]")).decode()
    await raw.append("s-3", [NewEvent("report", {COMPRESSED_KEY: not_object})])
    with pytest.raises(EventDecodeError):
        await store.read("s-3")
    assert decompress(compress(BIG)) == BIG
    assert decompress({"a": 1}) is None
    await store.close()
