"""Appends, ``append_expect`` numbering and conflicts, and what a recorded event holds."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from evsrc.records import Checkpoint, Committed, Conflict, NewEvent
from evsrc.store import MAX_EVENT_BYTES, MAX_STREAM_LENGTH, MAX_TYPE_LENGTH
from evsrc.testing.contract.helpers import ev, everything

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["AppendsContract"]

pytestmark = [pytest.mark.asyncio]


class AppendsContract:
    """A part of :class:`EventStoreContract`; the tests take its ``store`` fixture."""

    # -- sequences and append_expect -----------------------------------------

    async def test_empty_stream(self, store: EventStore) -> None:
        assert await store.last_seq("nothing-here") == 0
        assert await store.count("nothing-here") == 0
        assert await store.read("nothing-here") == []
        assert await everything(store) == []

    async def test_append_expect_numbers_from_one(self, store: EventStore) -> None:
        r1 = await store.append_expect("s", 0, [ev(n=1)])
        assert isinstance(r1, Committed)
        assert (r1.stream, r1.first_seq, r1.last_seq) == ("s", 1, 1)
        r2 = await store.append_expect("s", 1, [ev(n=2), ev(n=3), ev(n=4)])
        assert isinstance(r2, Committed)
        assert (r2.first_seq, r2.last_seq) == (2, 4)
        assert r2.position > r1.position
        assert r2.checkpoint > r1.checkpoint
        events = await store.read("s")
        assert [e.seq for e in events] == [1, 2, 3, 4]
        assert [e.data["n"] for e in events] == [1, 2, 3, 4]
        assert events[-1].position == r2.position
        assert events[-1].checkpoint == r2.checkpoint
        assert await store.last_seq("s") == 4
        assert await store.count("s") == 4

    async def test_stale_expected_is_a_conflict_value(self, store: EventStore) -> None:
        await store.append_expect("s", 0, [ev(), ev()])
        r = await store.append_expect("s", 1, [ev(x="late")])
        assert r == Conflict("s", 1, 2)
        assert await store.last_seq("s") == 2
        assert all("x" not in e.data for e in await store.read("s"))

    async def test_expected_ahead_is_a_conflict_not_a_gap(self, store: EventStore) -> None:
        r = await store.append_expect("s", 3, [ev()])
        assert r == Conflict("s", 3, 0)
        await store.append_expect("s", 0, [ev()])
        r = await store.append_expect("s", 5, [ev(), ev()])
        assert r == Conflict("s", 5, 1)
        assert [e.seq for e in await store.read("s")] == [1]
        assert await store.last_seq("s") == 1

    async def test_append_without_expectation(self, store: EventStore) -> None:
        r = await store.append("s", [ev(), ev()])
        assert (r.first_seq, r.last_seq) == (1, 2)
        r = await store.append("s", [ev()])
        assert (r.first_seq, r.last_seq) == (3, 3)
        assert [e.seq for e in await store.read("s")] == [1, 2, 3]

    async def test_streams_are_independent(self, store: EventStore) -> None:
        await store.append_expect("a", 0, [ev()])
        await store.append_expect("b", 0, [ev(), ev()])
        await store.append_expect("a", 1, [ev()])
        assert [e.seq for e in await store.read("a")] == [1, 2]
        assert [e.seq for e in await store.read("b")] == [1, 2]
        assert {e.stream for e in await store.read("a")} == {"a"}

    async def test_recorded_event_fields(self, store: EventStore) -> None:
        new = NewEvent(
            "booking",
            {"actor": "ann", "n": [1, 2.5, None, True, {"deep": "ü€😀"}], "big": 2**62},
            {"correlation_id": "c-1", "causation_id": "k-9"},
            version=3,
        )
        before = datetime.now(UTC) - timedelta(minutes=5)
        await store.append_expect("booking:yoga-0900", 0, [new])
        (got,) = await store.read("booking:yoga-0900")
        assert got.stream == "booking:yoga-0900"
        assert got.seq == 1
        assert got.id == new.id
        assert got.type == "booking"
        assert got.version == 3
        assert got.data == new.data
        assert got.metadata == new.metadata
        assert got.recorded_at.tzinfo is not None
        assert before <= got.recorded_at <= datetime.now(UTC) + timedelta(minutes=5)
        assert isinstance(got.position, int)
        assert isinstance(got.checkpoint, Checkpoint)

    async def test_json_values_round_trip(self, store: EventStore) -> None:
        class Colour(enum.Enum):
            RED = "red"

        class Size(enum.IntEnum):
            L = 3

        class Name(str):
            pass

        marker = uuid.UUID(int=7)
        data: dict[Any, Any] = {
            "none": None,
            "float": -0.5,
            "huge": 2**80,
            "tuple": (1, "two"),
            "deep": [[[[{"k": [None]}]]]],
            1: "int key",
            "uuid": marker,
            "enum": Colour.RED,
            "intenum": Size.L,
            "str subclass": Name("ann"),
            "unicode": "ü€😀\u2028",
        }
        await store.append_expect("s", 0, [NewEvent("t", data, {"m": None})])
        (got,) = await store.read("s")
        assert got.data == {
            "none": None,
            "float": -0.5,
            "huge": 2**80,
            "tuple": [1, "two"],
            "deep": [[[[{"k": [None]}]]]],
            "1": "int key",
            "uuid": str(marker),
            "enum": "red",
            "intenum": 3,
            "str subclass": "ann",
            "unicode": "ü€😀\u2028",
        }
        assert got.metadata == {"m": None}

    async def test_data_is_copied_in_and_out(self, store: EventStore) -> None:
        data: dict[str, Any] = {"items": [1, 2]}
        await store.append_expect("s", 0, [NewEvent("t", data)])
        data["items"].append(3)
        (first,) = await store.read("s")
        assert first.data == {"items": [1, 2]}
        first.data["items"].append(99)
        (again,) = await store.read("s")
        assert again.data == {"items": [1, 2]}

    async def test_largest_allowed_event_and_longest_names(self, store: EventStore) -> None:
        stream = "é" * MAX_STREAM_LENGTH
        overhead = len('{"x":""}') + len("{}")
        big = NewEvent("t" * MAX_TYPE_LENGTH, {"x": "a" * (MAX_EVENT_BYTES - overhead)})
        r = await store.append_expect(stream, 0, [big])
        assert isinstance(r, Committed)
        (got,) = await store.read(stream)
        assert len(got.data["x"]) == MAX_EVENT_BYTES - overhead
        assert got.type == big.type

    async def test_odd_but_valid_names_are_data(self, store: EventStore) -> None:
        names = ["'; DROP TABLE evsrc_events; --", 'a"b', "$1", "%s", "booking:yoga 09:00", "∑"]
        for name in names:
            await store.append_expect(name, 0, [NewEvent(name, {name: name})])
        for name in names:
            (e,) = await store.read(name)
            assert (e.stream, e.type, e.data) == (name, name, {name: name})
