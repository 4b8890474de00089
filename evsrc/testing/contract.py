"""``EventStoreContract``: the tests every ``EventStore`` backend must pass, unchanged.

Subclass it and provide a ``store`` fixture yielding a fresh, empty store. The
class attributes below scale the heavier tests; a backend may lower them to
fit its speed, never to dodge a failure.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import random
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest

from evsrc.errors import (
    DuplicateEventIdError,
    EvsrcError,
    InvalidCheckpointError,
    InvalidEventError,
    InvalidInputError,
    InvalidStreamError,
    StoreClosedError,
    StreamDeletedError,
)
from evsrc.lifecycle import StreamDeleted
from evsrc.records import (
    STREAM_DELETED,
    Checkpoint,
    Committed,
    Conflict,
    Deleted,
    NewEvent,
    RecordedEvent,
    StreamMetadata,
)
from evsrc.store import MAX_EVENT_BYTES, MAX_STREAM_LENGTH, MAX_TYPE_LENGTH

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from evsrc.store import EventStore

__all__ = ["EventStoreContract", "StreamLifecycleContract"]

pytestmark = [pytest.mark.asyncio]


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


class EventStoreContract:
    """The store contract (docs/backends.md). Subclasses supply the ``store`` fixture."""

    #: Tasks racing with observe-and-retry on one stream.
    race_tasks: ClassVar[int] = 1000
    #: Writers and streams in the live-subscriber test.
    subscriber_writers: ClassVar[int] = 16
    subscriber_streams: ClassVar[int] = 48
    subscriber_appends_per_writer: ClassVar[int] = 30
    #: Hypothesis examples for the stateful model test.
    stateful_examples: ClassVar[int] = 30

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        pytest.fail("subclass EventStoreContract and provide a `store` fixture")
        yield  # pragma: no cover

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

    # -- reading ---------------------------------------------------------------

    async def test_read_after_limit_backwards(self, store: EventStore) -> None:
        await store.append_expect("s", 0, [ev(n=i) for i in range(1, 11)])
        assert [e.seq for e in await store.read("s", after=7)] == [8, 9, 10]
        assert [e.seq for e in await store.read("s", after=10)] == []
        assert [e.seq for e in await store.read("s", after=50)] == []
        assert [e.seq for e in await store.read("s", limit=3)] == [1, 2, 3]
        assert [e.seq for e in await store.read("s", after=4, limit=2)] == [5, 6]
        assert [e.seq for e in await store.read("s", limit=0)] == []
        assert [e.seq for e in await store.read("s", backwards=True)] == list(range(10, 0, -1))
        assert [e.seq for e in await store.read("s", backwards=True, limit=3)] == [10, 9, 8]
        assert [e.seq for e in await store.read("s", after=8, backwards=True)] == [10, 9]

    @pytest.mark.parametrize(
        ("kwargs", "argument"),
        [
            ({"after": -1}, "after"),
            ({"after": "3"}, "after"),
            ({"limit": -1}, "limit"),
            ({"limit": 1.5}, "limit"),
        ],
    )
    async def test_read_refuses_bad_arguments(
        self, store: EventStore, kwargs: dict[str, Any], argument: str
    ) -> None:
        with pytest.raises(InvalidInputError) as info:
            await store.read("s", **kwargs)
        assert info.value.argument == argument

    @pytest.mark.parametrize("stream", BAD_STREAMS)
    async def test_reads_refuse_bad_stream_names(self, store: EventStore, stream: Any) -> None:
        with pytest.raises(InvalidStreamError):
            await store.read(stream)
        with pytest.raises(InvalidStreamError):
            await store.last_seq(stream)
        with pytest.raises(InvalidStreamError):
            await store.count(stream)

    # -- bad input -------------------------------------------------------------

    @pytest.mark.parametrize("stream", BAD_STREAMS)
    async def test_bad_stream_name_is_refused(self, store: EventStore, stream: Any) -> None:
        await store.append_expect("ok", 0, [ev()])
        with pytest.raises(InvalidStreamError) as info:
            await store.append_expect(stream, 0, [ev()])
        assert info.value.argument == "stream"
        with pytest.raises(InvalidStreamError):
            await store.append(stream, [ev()])
        assert len(await everything(store)) == 1

    @pytest.mark.parametrize("expected", [-1, 1.0, "0", None, True])
    async def test_bad_expected_is_refused(self, store: EventStore, expected: Any) -> None:
        with pytest.raises(InvalidInputError) as info:
            await store.append_expect("s", expected, [ev()])
        assert info.value.argument == "expected"
        assert await everything(store) == []

    @pytest.mark.parametrize(("case", "make"), BAD_EVENTS, ids=[c for c, _ in BAD_EVENTS])
    async def test_bad_events_are_refused_before_writing(
        self, store: EventStore, case: str, make: Callable[[], Any]
    ) -> None:
        await store.append_expect("s", 0, [ev(keep=True)])
        with pytest.raises(InvalidEventError) as info:
            await store.append_expect("s", 1, make())
        assert isinstance(info.value, EvsrcError)
        assert isinstance(info.value, ValueError)
        assert str(info.value)
        with pytest.raises(InvalidEventError):
            await store.append("s", make())
        with pytest.raises(InvalidEventError):
            await store.append_expect("fresh", 0, make())
        events = await everything(store)
        assert [(e.stream, e.seq, e.data) for e in events] == [("s", 1, {"keep": True})]
        assert await store.last_seq("fresh") == 0

    # -- idempotent retries ----------------------------------------------------

    async def test_retry_of_committed_append_returns_original(self, store: EventStore) -> None:
        events = [ev(n=1), ev(n=2)]
        first = await store.append_expect("s", 0, events)
        await store.append_expect("s", 2, [ev(n=3)])
        again = await store.append_expect("s", 0, events)
        assert again == first
        assert [e.data["n"] for e in await store.read("s")] == [1, 2, 3]

    async def test_retry_of_append_without_expectation(self, store: EventStore) -> None:
        await store.append("s", [ev()])
        events = [ev(n=1), ev(n=2)]
        first = await store.append("s", events)
        await store.append("s", [ev()])
        again = await store.append("s", events)
        assert again == first
        assert await store.last_seq("s") == 4

    async def test_retry_with_append_expect_after_plain_append(self, store: EventStore) -> None:
        events = [ev(n=1)]
        first = await store.append("s", events)
        assert await store.append_expect("s", 0, events) == first

    async def test_a_retry_says_it_was_one(self, store: EventStore) -> None:
        """A re-send that wrote nothing is marked ``retried``; it still equals the original."""
        events = [ev(n=1), ev(n=2)]
        first = await store.append_expect("s", 0, events)
        assert isinstance(first, Committed)
        assert first.retried is False
        again = await store.append_expect("s", 0, events)
        assert isinstance(again, Committed)
        assert again.retried is True
        assert again == first
        assert tuple(again) == tuple(first)
        plain = await store.append("s", events)
        assert plain.retried is True
        assert plain == first
        fresh = await store.append("s", [ev()])
        assert fresh.retried is False
        last = await store.append_expect("s", 3, [ev()])
        assert isinstance(last, Committed)
        assert last.retried is False
        assert await store.last_seq("s") == 4

    async def test_same_id_in_another_stream_is_an_error(self, store: EventStore) -> None:
        e = ev()
        await store.append_expect("a", 0, [e])
        with pytest.raises(DuplicateEventIdError) as info:
            await store.append_expect("b", 0, [e])
        assert info.value.event_id == e.id
        assert (info.value.stream, info.value.seq) == ("a", 1)
        with pytest.raises(DuplicateEventIdError):
            await store.append("b", [e])
        assert await store.last_seq("b") == 0

    async def test_same_id_at_another_position_is_an_error(self, store: EventStore) -> None:
        e = ev()
        await store.append_expect("a", 0, [ev(), e])
        with pytest.raises(DuplicateEventIdError):
            await store.append_expect("a", 0, [e])  # it is at seq 2, not 1
        with pytest.raises(DuplicateEventIdError):
            await store.append_expect("a", 2, [e])
        assert await store.last_seq("a") == 2

    async def test_partial_overlap_is_an_error(self, store: EventStore) -> None:
        old = ev()
        await store.append_expect("a", 0, [old])
        with pytest.raises(DuplicateEventIdError) as info:
            await store.append_expect("a", 0, [old, ev()])
        assert info.value.event_id == old.id
        with pytest.raises(DuplicateEventIdError):
            await store.append_expect("a", 1, [ev(), old])
        assert await store.last_seq("a") == 1
        assert len(await everything(store)) == 1

    @pytest.mark.parametrize(
        "change",
        [
            {"type": "other"},
            {"version": 2},
            {"data": {"n": 2}},
            {"data": {"n": True}},
            {"metadata": {"m": 1}},
        ],
    )
    async def test_resend_with_different_content_is_an_error(
        self, store: EventStore, change: dict[str, Any]
    ) -> None:
        """Same ids at the same positions but other content: not a retry, and nothing changes."""
        first, second = ev(n=1), ev(n=1)
        committed = await store.append_expect("a", 0, [first, second])
        changed = dataclasses.replace(second, **change)
        with pytest.raises(DuplicateEventIdError) as info:
            await store.append_expect("a", 0, [first, changed])
        assert info.value.event_id == second.id
        with pytest.raises(DuplicateEventIdError):
            await store.append("a", [first, changed])
        # The original events are untouched, and a faithful retry still succeeds.
        assert [(e.type, e.version, e.data, e.metadata) for e in await store.read("a")] == [
            ("thing", 1, {"n": 1}, {}),
            ("thing", 1, {"n": 1}, {}),
        ]
        same = dataclasses.replace(second, data={"n": 1}, metadata={})
        assert await store.append_expect("a", 0, [first, same]) == committed

    async def test_resend_compares_json_values_not_text(self, store: EventStore) -> None:
        e = ev()
        e = dataclasses.replace(e, data={"a": 1, "b": [1, {"c": None}]}, metadata={"x": "y"})
        committed = await store.append("a", [e])
        reordered = dataclasses.replace(e, data={"b": [1, {"c": None}], "a": 1})
        assert await store.append("a", [reordered]) == committed

    @pytest.mark.parametrize("text", ["1:2\n", " 1:2", "1:2 ", "\u0661:2", "1:2:3", "+1:2"])
    async def test_checkpoint_text_must_match_as_a_whole(
        self, store: EventStore, text: str
    ) -> None:
        with pytest.raises(InvalidCheckpointError):
            await everything(store, after=text)  # type: ignore[arg-type]

    # -- global order ------------------------------------------------------------

    async def test_read_all_is_global_commit_order(self, store: EventStore) -> None:
        await store.append_expect("a", 0, [ev(n=1), ev(n=2)])
        await store.append_expect("b", 0, [ev(n=3)])
        await store.append_expect("a", 2, [ev(n=4)])
        await store.append("c", [ev(n=5), ev(n=6)])
        events = await everything(store)
        assert [e.data["n"] for e in events] == [1, 2, 3, 4, 5, 6]
        assert [(e.stream, e.seq) for e in events] == [
            ("a", 1), ("a", 2), ("b", 1), ("a", 3), ("c", 1), ("c", 2),
        ]  # fmt: skip
        checkpoints = [e.checkpoint for e in events]
        assert checkpoints == sorted(checkpoints)
        assert len({e.position for e in events}) == 6

    async def test_read_all_resumes_after_any_checkpoint(self, store: EventStore) -> None:
        for i in range(6):
            await store.append_expect(f"s{i % 3}", i // 3, [ev(n=i), ev(n=i + 100)])
        events = await everything(store)
        for k, e in enumerate(events):
            rest = await everything(store, after=e.checkpoint)
            assert [x.id for x in rest] == [x.id for x in events[k + 1 :]]
            as_text = await everything(store, after=str(e.checkpoint))  # type: ignore[arg-type]
            assert [x.id for x in as_text] == [x.id for x in rest]
            assert Checkpoint.parse(str(e.checkpoint)) == e.checkpoint
        assert await everything(store, after=events[-1].checkpoint) == []

    async def test_read_all_limit(self, store: EventStore) -> None:
        await store.append("s", [ev(n=i) for i in range(5)])
        got = [e async for e in store.read_all(limit=2)]
        assert [e.data["n"] for e in got] == [0, 1]
        got = [e async for e in store.read_all(after=got[-1].checkpoint, limit=10)]
        assert [e.data["n"] for e in got] == [2, 3, 4]

    @pytest.mark.parametrize("after", [3, "nonsense", "1:-2", object()])
    async def test_read_all_refuses_bad_checkpoints(self, store: EventStore, after: Any) -> None:
        with pytest.raises(InvalidCheckpointError):
            await everything(store, after=after)
        with pytest.raises(InvalidCheckpointError):
            async for _ in store.subscribe(after=after):
                pass  # pragma: no cover

    async def test_committed_checkpoint_matches_recorded(self, store: EventStore) -> None:
        r = await store.append_expect("s", 0, [ev(), ev()])
        assert isinstance(r, Committed)
        events = await everything(store)
        assert events[-1].checkpoint == r.checkpoint
        assert events[-1].position == r.position
        assert await everything(store, after=r.checkpoint) == []

    # -- filtered global reads ---------------------------------------------------------

    async def _mixed_log(self, store: EventStore) -> list[RecordedEvent]:
        """A log of several streams and types, interleaved; returned unfiltered."""
        streams = ["order:1", "order:2", "cart:1", "order%x", "orderly", "Order:3", "é:1"]
        for k in range(3):
            for i, stream in enumerate(streams):
                types = ["placed", "paid", "note"][(i + k) % 3]
                await store.append(stream, [ev(types, k=k), ev("note", k=k)])
        return await everything(store)

    FILTERS: ClassVar[list[dict[str, Any]]] = [
        {"types": ["placed"]},
        {"types": ["placed", "paid"]},
        {"types": ("paid",)},
        {"stream_prefix": "order:"},
        {"stream_prefix": "order"},
        {"stream_prefix": "order%"},
        {"stream_prefix": "é"},
        {"stream_prefix": "order:", "types": ["placed", "note"]},
        {"stream_prefix": "nobody:"},
        {"types": ["never-written"]},
    ]

    @pytest.mark.parametrize("flt", FILTERS)
    async def test_filtered_read_all_is_the_log_filtered(
        self, store: EventStore, flt: dict[str, Any]
    ) -> None:
        log = await self._mixed_log(store)
        prefix, types = flt.get("stream_prefix"), flt.get("types")

        def keep(e: RecordedEvent) -> bool:
            return (prefix is None or e.stream.startswith(prefix)) and (
                types is None or e.type in types
            )

        want = [e.id for e in log if keep(e)]
        got = [e async for e in store.read_all(**flt)]
        assert [e.id for e in got] == want
        # Each with its normal checkpoint, and from any of them a filtered read
        # resumes exactly after it.
        by_id = {e.id: e.checkpoint for e in log}
        assert [e.checkpoint for e in got] == [by_id[i] for i in want]
        for k, e in enumerate(got):
            rest = [x.id async for x in store.read_all(after=e.checkpoint, **flt)]
            assert rest == want[k + 1 :]
        # limit counts the events returned.
        assert [e.id async for e in store.read_all(limit=2, **flt)] == want[:2]

    async def test_filtered_and_unfiltered_checkpoints_are_interchangeable(
        self, store: EventStore
    ) -> None:
        log = await self._mixed_log(store)
        filtered = [e async for e in store.read_all(stream_prefix="order:", types=["note"])]
        assert filtered
        for e in filtered:
            # A checkpoint from a filtered read resumes an unfiltered one exactly after it.
            rest = await everything(store, after=e.checkpoint)
            assert [x.id for x in rest] == [x.id for x in log if x.checkpoint > e.checkpoint]
        for e in log:
            # ... and the other way round.
            rest_f = [x.id async for x in store.read_all(after=e.checkpoint, types=["paid"])]
            assert rest_f == [x.id for x in log if x.checkpoint > e.checkpoint and x.type == "paid"]

    async def test_filtered_subscribe_catches_up_then_goes_live_in_order(
        self, store: EventStore
    ) -> None:
        log = await self._mixed_log(store)
        want = [e.id for e in log if e.stream.startswith("order:") and e.type == "placed"]
        seen: list[RecordedEvent] = []
        caught_up = anyio.Event()

        async def consume(after: Checkpoint | None, out: list[RecordedEvent], n: int) -> None:
            async for e in store.subscribe(after, stream_prefix="order:", types=["placed"]):
                out.append(e)
                if len(out) == len(want):
                    caught_up.set()
                if len(out) == n:
                    return

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume, None, seen, len(want) + 2)
                await caught_up.wait()
                await store.append("order:1", [ev("note"), ev("placed", live=1)])
                await store.append("cart:1", [ev("placed", live=2)])  # not for it
                await store.append("order:9", [ev("placed", live=3)])
        assert [e.id for e in seen[: len(want)]] == want
        assert [e.data.get("live") for e in seen[len(want) :]] == [1, 3]
        # Resumed from a filtered checkpoint, it continues exactly after it.
        resumed: list[RecordedEvent] = []
        with anyio.fail_after(30):
            await consume(seen[-3].checkpoint, resumed, 2)
        assert [e.id for e in resumed] == [e.id for e in seen[-2:]]

    @pytest.mark.parametrize(
        "flt",
        [
            {"stream_prefix": ""},
            {"stream_prefix": 42},
            {"stream_prefix": "a\x00"},
            {"stream_prefix": "a\ud800"},
            {"stream_prefix": "x" * (MAX_STREAM_LENGTH + 1)},
            {"types": "placed"},
            {"types": []},
            {"types": [""]},
            {"types": [1]},
            {"types": ["a\x00"]},
            {"types": 7},
        ],
    )
    async def test_filters_refuse_bad_input(self, store: EventStore, flt: dict[str, Any]) -> None:
        with pytest.raises(InvalidInputError):
            await everything_filtered(store, **flt)
        with pytest.raises(InvalidInputError):
            async for _ in store.subscribe(**flt):
                pass  # pragma: no cover

    # -- subscriptions -------------------------------------------------------------

    async def test_subscribe_catches_up_then_goes_live(self, store: EventStore) -> None:
        await store.append_expect("s", 0, [ev(n=1), ev(n=2)])
        seen: list[int] = []
        caught_up = anyio.Event()

        async def consume() -> None:
            async for e in store.subscribe():
                seen.append(e.data["n"])
                if len(seen) == 2:
                    caught_up.set()
                if len(seen) == 5:
                    return

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await caught_up.wait()
                await store.append_expect("s", 2, [ev(n=3)])
                await store.append("t", [ev(n=4), ev(n=5)])
        assert seen == [1, 2, 3, 4, 5]

    async def test_subscribe_resumes_from_checkpoint(self, store: EventStore) -> None:
        r = await store.append_expect("s", 0, [ev(n=1), ev(n=2)])
        assert isinstance(r, Committed)
        await store.append_expect("s", 2, [ev(n=3)])
        got: list[int] = []
        with anyio.fail_after(30):
            async for e in store.subscribe(after=r.checkpoint):
                got.append(e.data["n"])
                break
        assert got == [3]

    async def test_waiting_subscriber_wakes_on_append(self, store: EventStore) -> None:
        got: list[RecordedEvent] = []
        started = anyio.Event()

        async def consume() -> None:
            started.set()
            async for e in store.subscribe():
                got.append(e)
                return

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await started.wait()
                await anyio.sleep(0.05)  # let it find nothing and start waiting
                r = await store.append_expect("s", 0, [ev()])
        assert isinstance(r, Committed)
        assert [e.id for e in got] == [(await store.read("s"))[0].id]

    async def test_live_subscriber_sees_every_event_exactly_once(self, store: EventStore) -> None:
        writers = self.subscriber_writers
        n_streams = self.subscriber_streams
        per_writer = self.subscriber_appends_per_writer
        streams = [f"live-{i}" for i in range(n_streams)]
        committed: list[tuple[str, int]] = []
        seen: list[RecordedEvent] = []

        async def writer(w: int) -> None:
            rnd = random.Random(w)
            for _ in range(per_writer):
                stream = rnd.choice(streams)
                while True:
                    seq = await store.last_seq(stream)
                    await anyio.lowlevel.checkpoint()
                    size = rnd.randint(1, 3)
                    r = await store.append_expect(stream, seq, batch(size))
                    if isinstance(r, Committed):
                        committed.extend((stream, s) for s in range(r.first_seq, r.last_seq + 1))
                        break

        async def subscriber() -> None:
            async for e in store.subscribe():
                seen.append(e)
                if e.stream == "live-end":
                    return

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(subscriber)
                async with anyio.create_task_group() as wg:
                    for w in range(writers):
                        wg.start_soon(writer, w)
                # Committed after every writer finished, so it is last in global order.
                await store.append("live-end", [ev()])
                committed.append(("live-end", 1))
        keys = [(e.stream, e.seq) for e in seen]
        assert Counter(keys) == Counter(committed)  # every event, exactly once
        last: dict[str, int] = defaultdict(int)
        for stream, seq in keys:
            assert seq == last[stream] + 1, f"{stream} went {last[stream]} -> {seq}"
            last[stream] = seq
        assert [e.checkpoint for e in seen] == sorted(e.checkpoint for e in seen)

    async def test_close_ends_use(self, store: EventStore) -> None:
        await store.append("s", [ev()])
        errors: list[BaseException] = []
        waiting = anyio.Event()

        async def consume() -> None:
            try:
                async for _ in store.subscribe():
                    waiting.set()
            except StoreClosedError as exc:
                errors.append(exc)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await waiting.wait()
                await anyio.sleep(0.05)
                await store.close()
        assert len(errors) == 1
        with pytest.raises(StoreClosedError):
            await store.append("s", [ev()])
        with pytest.raises(StoreClosedError):
            await store.append_expect("s", 1, [ev()])
        await store.close()  # idempotent

    # -- concurrency -----------------------------------------------------------

    async def test_two_writers_one_expected_exactly_one_wins(self, store: EventStore) -> None:
        await store.append_expect("seat", 0, [ev()])
        results: list[Committed | Conflict] = []

        async def attempt(name: str) -> None:
            results.append(await store.append_expect("seat", 1, [ev(actor=name)]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(attempt, "ann")
            tg.start_soon(attempt, "bob")
        assert sorted(type(r).__name__ for r in results) == ["Committed", "Conflict"]
        conflict = next(r for r in results if isinstance(r, Conflict))
        assert (conflict.expected, conflict.actual) == (1, 2)
        assert await store.last_seq("seat") == 2

    async def test_racing_writers_leave_a_gapless_stream(self, store: EventStore) -> None:
        n = self.race_tasks
        attempts = 0

        async def writer(i: int) -> None:
            nonlocal attempts
            seq = await store.last_seq("hot")
            while True:
                attempts += 1
                await anyio.lowlevel.checkpoint()  # the gap between observing and appending
                r = await store.append_expect("hot", seq, [ev(writer=i)])
                if isinstance(r, Committed):
                    return
                assert r.actual > seq
                seq = r.actual

        with anyio.fail_after(300):
            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(writer, i)
        events = await store.read("hot")
        assert [e.seq for e in events] == list(range(1, n + 1))
        assert sorted(e.data["writer"] for e in events) == list(range(n))
        assert attempts > n  # they really raced
        assert await store.last_seq("hot") == n

    async def test_cancelled_appends_are_all_or_nothing(self, store: EventStore) -> None:
        rnd = random.Random(7)

        async def appender(k: int) -> None:
            stream = f"cancel-{k % 4}"
            for _ in range(5):
                await store.append(stream, batch(rnd.randint(1, 20)))

        async with anyio.create_task_group() as tg:
            for k in range(24):
                tg.start_soon(appender, k)
            for _ in range(rnd.randint(1, 5)):
                await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
        for k in range(4):
            events = await store.read(f"cancel-{k}")
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            sizes: Counter[str] = Counter(e.metadata["append"] for e in events)
            for e in events:
                assert sizes[e.metadata["append"]] == e.metadata["size"]
        r = await store.append("cancel-0", [ev()])
        assert isinstance(r, Committed)

    # -- a model-based test ----------------------------------------------------

    async def test_matches_a_plain_model_under_random_operations(self, store: EventStore) -> None:
        """Hypothesis drives the store with random operations and checks it against a model."""
        from evsrc.testing._stateful import run_model_test

        await anyio.to_thread.run_sync(run_model_test, store, self.stateful_examples)


class StreamLifecycleContract:
    """Delete, truncate and retention (docs/lifecycle.md), the same on every backend.

    Subclass it beside :class:`EventStoreContract` with the same ``store``
    fixture. Removing events must never break the global order: a reader sees
    every event still stored exactly once, in order, and every deletion as a
    ``$stream-deleted`` event.
    """

    #: Writers, deleters and rounds in the concurrent lifecycle test.
    lifecycle_writers: ClassVar[int] = 12
    lifecycle_rounds: ClassVar[int] = 15

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        pytest.fail("subclass StreamLifecycleContract and provide a `store` fixture")
        yield  # pragma: no cover

    # -- delete ----------------------------------------------------------------

    async def test_soft_delete_reads_as_deleted_and_is_recorded(self, store: EventStore) -> None:
        await store.append_expect("s", 0, [ev(n=1), ev(n=2), ev(n=3)])
        await store.append_expect("other", 0, [ev()])
        d = await store.delete_stream("s")
        assert (d.stream, d.last_seq, d.hard) == ("s", 3, False)
        assert d.checkpoint is not None
        (marker,) = await store.read("s")
        assert (marker.stream, marker.seq, marker.type) == ("s", 4, STREAM_DELETED)
        assert marker.data == {"last_seq": 3, "hard": False}
        assert marker.checkpoint == d.checkpoint
        assert StreamDeleted.model_validate(marker.data) == StreamDeleted(last_seq=3, hard=False)
        assert await store.read("s", backwards=True, limit=1) == [marker]
        assert await store.last_seq("s") == 4
        log = await everything(store)
        assert [(e.stream, e.type) for e in log] == [("other", "thing"), ("s", STREAM_DELETED)]
        assert log[-1] == marker
        assert [e.seq for e in await store.read("other")] == [1]

    async def test_soft_deleted_stream_goes_on_after_its_deletion(self, store: EventStore) -> None:
        events = [ev(n=1), ev(n=2)]
        await store.append_expect("s", 0, events)
        await store.delete_stream("s")
        # Seqs never go back: expected=0 is refused, as is a writer's old head.
        assert await store.append_expect("s", 0, [ev()]) == Conflict("s", 0, 3)
        assert await store.append_expect("s", 2, [ev()]) == Conflict("s", 2, 3)
        # A re-send of the deleted append (same ids, same place) cannot bring it back.
        assert await store.append_expect("s", 0, events) == Conflict("s", 0, 3)
        r = await store.append_expect("s", 3, [ev(n=10)])
        assert isinstance(r, Committed)
        assert (r.first_seq, r.last_seq) == (4, 4)
        assert [(e.seq, e.type) for e in await store.read("s")] == [
            (3, STREAM_DELETED), (4, "thing")
        ]  # fmt: skip
        plain = await store.append("s", [ev()])
        assert plain.first_seq == 5
        # Deleting it again removes the new life too, deletion event included.
        d = await store.delete_stream("s")
        assert d.last_seq == 5
        assert [(e.seq, e.type) for e in await store.read("s")] == [(6, STREAM_DELETED)]

    async def test_soft_delete_without_live_events_writes_nothing(self, store: EventStore) -> None:
        assert await store.delete_stream("nothing") == Deleted("nothing", 0, False, None)
        await store.append("s", [ev()])
        await store.delete_stream("s")
        before = await everything(store)
        assert await store.delete_stream("s") == Deleted("s", 2, False, None)
        assert await everything(store) == before

    async def test_hard_delete_tombstones_the_stream(self, store: EventStore) -> None:
        events = [ev(n=1), ev(n=2)]
        await store.append_expect("s", 0, events)
        d = await store.delete_stream("s", hard=True)
        assert (d.last_seq, d.hard) == (2, True)
        for call in (
            lambda: store.read("s"),
            lambda: store.last_seq("s"),
            lambda: store.append("s", [ev()]),
            lambda: store.append_expect("s", 0, [ev()]),
            lambda: store.append_expect("s", 3, [ev()]),
            # A retry of the deleted append cannot bring its events back.
            lambda: store.append_expect("s", 0, events),
            lambda: store.delete_stream("s"),
            lambda: store.delete_stream("s", hard=True),
            lambda: store.truncate_before("s", 2),
            lambda: store.set_stream_metadata("s", max_count=5),
        ):
            with pytest.raises(StreamDeletedError) as info:
                await call()
            assert info.value.stream == "s"
        (marker,) = await everything(store)
        assert (marker.stream, marker.seq, marker.type) == ("s", 3, STREAM_DELETED)
        assert marker.data == {"last_seq": 2, "hard": True}
        assert marker.checkpoint == d.checkpoint
        # The events are gone: their ids are free again.
        r = await store.append_expect("elsewhere", 0, events)
        assert isinstance(r, Committed)

    async def test_hard_delete_of_an_absent_or_soft_deleted_stream(self, store: EventStore) -> None:
        d = await store.delete_stream("never", hard=True)
        assert (d.last_seq, d.hard) == (0, True)
        assert d.checkpoint is not None
        with pytest.raises(StreamDeletedError):
            await store.append("never", [ev()])
        await store.append("s", [ev()])
        await store.delete_stream("s")
        await store.delete_stream("s", hard=True)
        with pytest.raises(StreamDeletedError):
            await store.append_expect("s", 0, [ev()])
        markers = [(e.stream, e.seq, e.data["hard"]) for e in await everything(store)]
        assert markers == [("never", 1, True), ("s", 3, True)]

    @pytest.mark.parametrize("stream", BAD_STREAMS)
    async def test_lifecycle_calls_refuse_bad_stream_names(
        self, store: EventStore, stream: Any
    ) -> None:
        for call in (
            lambda: store.delete_stream(stream),
            lambda: store.truncate_before(stream, 1),
            lambda: store.set_stream_metadata(stream, max_count=1),
            lambda: store.stream_metadata(stream),
        ):
            with pytest.raises(InvalidStreamError):
                await call()
        assert await everything(store) == []

    @pytest.mark.parametrize("hard", [1, "yes", None, 0])
    async def test_delete_refuses_a_non_bool_hard(self, store: EventStore, hard: Any) -> None:
        await store.append("s", [ev()])
        with pytest.raises(InvalidInputError) as info:
            await store.delete_stream("s", hard=hard)
        assert info.value.argument == "hard"
        assert [e.seq for e in await store.read("s")] == [1]

    async def test_the_deletion_type_is_reserved(self, store: EventStore) -> None:
        with pytest.raises(InvalidEventError):
            await store.append("s", [ev(), NewEvent(STREAM_DELETED, {"last_seq": 0})])
        assert await everything(store) == []

    # -- truncate --------------------------------------------------------------

    async def test_truncate_before_keeps_the_head_and_numbering(self, store: EventStore) -> None:
        await store.append_expect("s", 0, [ev(n=i) for i in range(1, 11)])
        await store.append("other", [ev()])
        assert await store.truncate_before("s", 5) == 4
        assert [e.seq for e in await store.read("s")] == [5, 6, 7, 8, 9, 10]
        assert [e.seq for e in await store.read("s", after=2, limit=2)] == [5, 6]
        assert [e.seq for e in await store.read("s", after=7)] == [8, 9, 10]
        assert [e.seq for e in await store.read("s", backwards=True, limit=3)] == [10, 9, 8]
        assert [e.seq for e in await store.read("s", after=8, backwards=True)] == [10, 9]
        assert await store.last_seq("s") == 10
        assert await store.truncate_before("s", 5) == 0  # idempotent
        assert [(e.stream, e.seq) for e in await everything(store)] == [
            *(("s", i) for i in range(5, 11)),
            ("other", 1),
        ]
        r = await store.append_expect("s", 10, [ev(n=11)])
        assert isinstance(r, Committed)
        assert r.first_seq == 11

    async def test_truncate_never_removes_the_newest_event(self, store: EventStore) -> None:
        await store.append("s", [ev(), ev(), ev()])
        assert await store.truncate_before("s", 2**63 - 1) == 2
        assert [e.seq for e in await store.read("s")] == [3]
        assert await store.last_seq("s") == 3
        assert await store.truncate_before("nothing", 9) == 0

    @pytest.mark.parametrize("seq", [0, -1, 2**63, "3", 3.0, True, None])
    async def test_truncate_refuses_a_bad_seq(self, store: EventStore, seq: Any) -> None:
        await store.append("s", [ev(), ev(), ev()])
        with pytest.raises(InvalidInputError) as info:
            await store.truncate_before("s", seq)
        assert info.value.argument == "seq"
        assert [e.seq for e in await store.read("s")] == [1, 2, 3]

    async def test_retry_of_a_kept_append_resolves_after_truncation(
        self, store: EventStore
    ) -> None:
        """Truncation keeps ids of what remains: retries of kept appends still resolve."""
        kept = [ev(n=3)]
        await store.append_expect("s", 0, [ev(n=1), ev(n=2)])
        first = await store.append_expect("s", 2, kept)
        await store.truncate_before("s", 3)
        assert await store.append_expect("s", 2, kept) == first

    # -- retention -------------------------------------------------------------

    @pytest.mark.parametrize(
        "settings",
        [
            {"max_count": 0},
            {"max_count": -3},
            {"max_count": 2**31},
            {"max_count": "5"},
            {"max_count": 5.0},
            {"max_count": True},
            {"max_age": timedelta(0)},
            {"max_age": timedelta(seconds=-1)},
            {"max_age": timedelta(days=10**6)},
            {"max_age": 60},
            {"max_age": "1h"},
        ],
    )
    async def test_metadata_refuses_bad_settings(
        self, store: EventStore, settings: dict[str, Any]
    ) -> None:
        await store.set_stream_metadata("s", max_count=7)
        with pytest.raises(InvalidInputError) as info:
            await store.set_stream_metadata("s", **settings)
        assert info.value.argument == next(iter(settings))
        assert await store.stream_metadata("s") == StreamMetadata(7, None)

    async def test_metadata_round_trips_and_clears(self, store: EventStore) -> None:
        assert await store.stream_metadata("s") == StreamMetadata()
        meta = await store.set_stream_metadata("s", max_count=3, max_age=timedelta(hours=2))
        assert meta == StreamMetadata(3, timedelta(hours=2))
        assert await store.stream_metadata("s") == meta
        assert await store.stream_metadata("t") == StreamMetadata()
        await store.set_stream_metadata("s")
        assert await store.stream_metadata("s") == StreamMetadata()

    async def test_max_count_is_enforced_on_read_and_swept(self, store: EventStore) -> None:
        await store.append("s", [ev(n=i) for i in range(1, 11)])
        await store.append("other", [ev(), ev()])
        await store.set_stream_metadata("s", max_count=3)
        assert [e.seq for e in await store.read("s")] == [8, 9, 10]
        assert [e.seq for e in await store.read("s", backwards=True, limit=2)] == [10, 9]
        assert await store.last_seq("s") == 10
        assert len(await everything(store)) == 12  # until the sweep
        assert await store.sweep() == 7
        assert await store.sweep() == 0
        assert [(e.stream, e.seq) for e in await everything(store)] == [
            ("s", 8), ("s", 9), ("s", 10), ("other", 1), ("other", 2)
        ]  # fmt: skip
        await store.append_expect("s", 10, [ev(), ev()])
        assert [e.seq for e in await store.read("s")] == [10, 11, 12]
        await store.set_stream_metadata("s")
        assert [e.seq for e in await store.read("s")] == [8, 9, 10, 11, 12]

    async def test_max_age_is_enforced_on_read_and_swept(self, store: EventStore) -> None:
        await store.append("s", [ev(n=1), ev(n=2)])
        await store.append("s", [ev(n=3)])
        await anyio.sleep(0.05)
        await store.append("s", [ev(n=4)])
        await store.set_stream_metadata("s", max_age=timedelta(seconds=30))
        assert [e.seq for e in await store.read("s")] == [1, 2, 3, 4]
        await store.set_stream_metadata("s", max_age=timedelta(milliseconds=40))
        assert [e.seq for e in await store.read("s")] == [4]
        await anyio.sleep(0.05)
        assert [e.seq for e in await store.read("s")] == [4]  # the newest event stays
        assert await store.sweep() == 3
        assert [e.seq for e in await everything(store)] == [4]
        assert await store.last_seq("s") == 4

    async def test_sweep_leaves_streams_without_retention_alone(self, store: EventStore) -> None:
        await store.append("a", [ev(), ev()])
        await store.append("b", [ev(), ev(), ev()])
        await store.set_stream_metadata("b", max_count=1)
        assert await store.sweep() == 2
        assert [(e.stream, e.seq) for e in await everything(store)] == [
            ("a", 1), ("a", 2), ("b", 3)
        ]  # fmt: skip

    # -- readers see deletions, in order, and never stall -------------------------

    async def test_filtered_readers_see_deletions_they_ask_for(self, store: EventStore) -> None:
        await store.append("booking:1", [ev(), ev()])
        await store.append("other:1", [ev()])
        await store.delete_stream("booking:1")
        await store.delete_stream("other:1", hard=True)
        by_prefix = await everything_filtered(store, stream_prefix="booking:")
        assert [(e.stream, e.type) for e in by_prefix] == [("booking:1", STREAM_DELETED)]
        by_type = await everything_filtered(store, types=[STREAM_DELETED])
        assert [e.stream for e in by_type] == ["booking:1", "other:1"]
        assert await everything_filtered(store, types=["thing"]) == []

    async def test_subscriber_sees_a_deletion_live(self, store: EventStore) -> None:
        await store.append("s", [ev(), ev()])
        seen: list[RecordedEvent] = []
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:

                async def follow() -> None:
                    async for e in store.subscribe(types=[STREAM_DELETED]):
                        seen.append(e)
                        tg.cancel_scope.cancel()

                tg.start_soon(follow)
                await anyio.sleep(0.05)
                d = await store.delete_stream("s")
        assert [(e.stream, e.checkpoint) for e in seen] == [("s", d.checkpoint)]

    async def test_concurrent_writes_and_removals_keep_the_global_order(
        self, store: EventStore
    ) -> None:
        """Writers, deleters and truncaters race; a live reader misses nothing still stored."""
        rnd = random.Random(18)
        seen: list[RecordedEvent] = []
        tombstoned: set[str] = set()
        streams = [f"life-{i}" for i in range(6)]

        async def writer(k: int) -> None:
            for _ in range(self.lifecycle_rounds):
                stream = streams[(k + rnd.randrange(3)) % len(streams)]
                try:
                    await store.append(stream, batch(rnd.randint(1, 4)))
                except StreamDeletedError:
                    assert stream in tombstoned
                await anyio.lowlevel.checkpoint()

        async def remover() -> None:
            for i in range(self.lifecycle_rounds):
                stream = streams[i % len(streams)]
                try:
                    if i % 3 == 0:
                        await store.delete_stream(stream)
                    elif i == self.lifecycle_rounds - 1:
                        tombstoned.add(stream)
                        await store.delete_stream(stream, hard=True)
                    else:
                        await store.truncate_before(stream, rnd.randint(1, 40))
                except StreamDeletedError:
                    assert stream in tombstoned
                await anyio.sleep(0.001)

        async def reader(done: anyio.Event) -> None:
            async for e in store.subscribe():
                seen.append(e)
                if done.is_set() and e.stream == "end":
                    return

        with anyio.fail_after(120):
            done = anyio.Event()
            async with anyio.create_task_group() as outer:
                outer.start_soon(reader, done)
                async with anyio.create_task_group() as tg:
                    for k in range(self.lifecycle_writers):
                        tg.start_soon(writer, k)
                    tg.start_soon(remover)
                done.set()
                await store.append("end", [ev()])
        checkpoints = [e.checkpoint for e in seen]
        assert checkpoints == sorted(checkpoints)
        assert len(set(checkpoints)) == len(checkpoints)
        # Everything still stored was seen, in the same order.
        stored = await everything(store)
        seen_ids = {e.id for e in seen}
        assert all(e.id in seen_ids for e in stored)
        order = {e.id: i for i, e in enumerate(seen)}
        assert [order[e.id] for e in stored] == sorted(order[e.id] for e in stored)
        # Per stream, seqs only grow, and each marker follows what it removed.
        last: dict[str, int] = defaultdict(int)
        for e in seen:
            assert e.seq > last[e.stream]
            if e.type == STREAM_DELETED:
                assert e.data["last_seq"] == e.seq - 1
            last[e.stream] = e.seq
        for stream in streams:
            if stream in tombstoned:
                with pytest.raises(StreamDeletedError):
                    await store.read(stream)
                continue
            kept = [e.seq for e in await store.read(stream)]
            assert kept == list(range(kept[0], kept[-1] + 1)) if kept else True
            assert await store.last_seq(stream) in (0, *kept[-1:])

    async def test_hard_delete_racing_appends_loses_nothing_it_acknowledged(
        self, store: EventStore
    ) -> None:
        """Appends that committed before the tombstone are deleted by it; none land after."""
        committed: list[Committed] = []
        refused = 0

        async def appender() -> None:
            nonlocal refused
            for _ in range(20):
                try:
                    committed.append(await store.append("hot", [ev()]))
                except StreamDeletedError:
                    refused += 1
                    return
                await anyio.lowlevel.checkpoint()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(appender)
                for _ in range(5):
                    await anyio.lowlevel.checkpoint()
                d = await store.delete_stream("hot", hard=True)
        assert refused > 0 or len(committed) == 8 * 20
        assert d.checkpoint is not None
        assert all(c.checkpoint < d.checkpoint for c in committed)
        assert d.last_seq == max((c.last_seq for c in committed), default=0)
        assert [e.type for e in await everything(store)] == [STREAM_DELETED]
