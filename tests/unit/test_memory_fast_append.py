"""InMemoryEventStore.append_expect's fast path answers exactly as the general path.

The same appends go to a plain store (fast path) and to one whose ``_write_batch``
is overridden (which sends every append down the general path, Backend.append_expect);
results, errors (type and message) and what each store then holds must agree.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest

from evsrc.errors import StoreClosedError
from evsrc.memory import InMemoryEventStore
from evsrc.records import Committed, NewEvent


class GeneralPathStore(InMemoryEventStore):
    async def _write_batch(self, stream: str, expected: int | None, encoded: Any) -> Any:
        return await super()._write_batch(stream, expected, encoded)


async def both(stores: list[InMemoryEventStore], stream: Any, expected: Any, events: Any) -> Any:
    answers = []
    for store in stores:
        try:
            answers.append(("ok", tuple(await store.append_expect(stream, expected, events))))
        except Exception as exc:
            answers.append(("error", type(exc), str(exc)))
    assert answers[0] == answers[1]
    return answers[0]


async def contents(store: InMemoryEventStore) -> list[tuple[Any, ...]]:
    return [
        (
            e.stream,
            e.seq,
            e.position,
            tuple(e.checkpoint),
            e.id,
            e.type,
            e.version,
            e.data,
            e.metadata,
        )
        for e in [ev async for ev in store.read_all()]
    ]


E1 = uuid.uuid4()
E2 = uuid.uuid4()


def cases() -> list[tuple[Any, Any, Any]]:
    ok = NewEvent("booking", {"actor": "ann"}, id=E1)
    return [
        ("s", 0, [ok]),
        ("s", 0, [ok]),  # a retry with the same ids: the original result
        ("s", 0, [NewEvent("booking", {"actor": "bob"}, id=E1)]),  # id reused
        ("s", 0, [NewEvent("booking")]),  # a conflict
        ("t", 0, [ok]),  # id stored elsewhere
        ("s", 1, (NewEvent("b", {"n": None}), NewEvent("c", metadata={"k": [1, 2]}))),
        ("s", 3, [NewEvent("b", {"x": math.nan})]),
        ("s", 3, [NewEvent("b", {"x": "a\x00b"})]),
        ("s", 3, [NewEvent("b", {"x": "\\u0000"})]),
        ("s", 3, [NewEvent("b", {1: "int key"})]),
        ("s", 3, [NewEvent("b", {"x": 2**70})]),
        ("s", 3, [NewEvent("b", {"x": "\ud800"})]),
        ("s", 3, [NewEvent("b", {"x": "é" * 300_000})]),
        ("s", 3, [NewEvent("b", {"x": "x" * (1024 * 1024)})]),
        ("s", 3, [NewEvent("$stream-deleted")]),
        ("s", 3, [NewEvent("")]),
        ("s", 3, [NewEvent("\ud800")]),
        ("s", 3, [NewEvent("typé")]),
        ("s", 4, [NewEvent("b", version=0)]),
        ("s", 4, [NewEvent("b", version=True)]),
        ("s", 4, [NewEvent("b", id="not a uuid")]),  # type: ignore[arg-type]
        ("s", 4, [NewEvent("b", data=[])]),  # type: ignore[arg-type]
        ("s", 4, [NewEvent("b", metadata={"m": math.inf})]),
        ("s", 4, [NewEvent("b", id=E2), NewEvent("c", id=E2)]),  # an id twice
        ("s", 4, []),
        ("s", 4, ["not an event"]),
        ("s", 4, NewEvent("b")),
        ("s", -1, [NewEvent("b")]),
        ("s", True, [NewEvent("b")]),
        ("s", None, [NewEvent("b")]),
        ("", 0, [NewEvent("b")]),
        ("x" * 256, 0, [NewEvent("b")]),
        ("a\x00", 0, [NewEvent("b")]),
        ("\ud800", 0, [NewEvent("b")]),
        (b"s", 0, [NewEvent("b")]),
        (["s"], 0, [NewEvent("b")]),
        ("new", 3, [NewEvent("b")]),  # a conflict on a new stream
        ("ü", 0, [NewEvent("b", {"x": [1.5, True, "ü"]}, {"trace": "t"})]),
    ]


async def test_the_fast_path_answers_as_the_general_path() -> None:
    stores = [InMemoryEventStore(), GeneralPathStore()]
    assert stores[0]._plain_writes and not stores[1]._plain_writes
    for stream, expected, events in cases():
        await both(stores, stream, expected, events)
    assert await contents(stores[0]) == await contents(stores[1])


async def test_deleted_and_closed_stores_answer_as_the_general_path() -> None:
    stores = [InMemoryEventStore(), GeneralPathStore()]
    for store in stores:
        await store.append_expect("gone", 0, [NewEvent("b")])
        await store.delete_stream("gone", hard=True)
    answer = await both(stores, "gone", 2, [NewEvent("b")])
    assert answer[0] == "error"
    answer = await both(stores, "gone", 0, [NewEvent("b")])  # conflicting, and deleted
    assert answer[0] == "error"
    for store in stores:
        await store.close()
    answer = await both(stores, "s", 0, [NewEvent("b")])
    assert answer[1] is StoreClosedError


async def test_a_conflict_releases_the_claimed_id() -> None:
    store = InMemoryEventStore()
    await store.append_expect("s", 0, [NewEvent("b")])
    event = NewEvent("b")
    conflict = await store.append_expect("s", 0, [event])
    assert type(conflict) is not Committed
    committed = await store.append_expect("s", 1, [event])
    assert type(committed) is Committed and not committed.retried


def _broken_event() -> NewEvent:
    # A NewEvent whose fields were never set: reading one raises AttributeError.
    broken: NewEvent = object.__new__(NewEvent)
    return broken


@pytest.mark.parametrize(
    "last",
    [
        NewEvent("b", {"x": math.nan}),  # refused
        NewEvent("$stream-deleted"),  # refused
        _broken_event(),  # raises while checked
    ],
)
async def test_a_batch_that_fails_late_releases_every_claimed_id(last: NewEvent) -> None:
    store = InMemoryEventStore()
    first, second = NewEvent("b"), NewEvent("c")
    with pytest.raises(Exception):  # noqa: B017 - whichever error the general path raises
        await store.append_expect("s", 0, [first, second, last])
    assert store._ids == {} and await store.read("s") == []
    committed = await store.append_expect("t", 0, [first, second])
    assert type(committed) is Committed and not committed.retried
    assert [e.id for e in await store.read("t")] == [first.id, second.id]


async def test_a_conflicting_batch_releases_every_claimed_id() -> None:
    store = InMemoryEventStore()
    await store.append_expect("s", 0, [NewEvent("b")])
    events = [NewEvent("b"), NewEvent("c")]
    assert type(await store.append_expect("s", 0, events)) is not Committed
    assert len(store._ids) == 1
    committed = await store.append_expect("s", 1, events)
    assert type(committed) is Committed and not committed.retried


@pytest.mark.parametrize("batch", [1, 3])
async def test_fast_appends_are_read_back_and_retried(batch: int) -> None:
    store = InMemoryEventStore()
    events = [NewEvent("b", {"i": i}) for i in range(batch)]
    first = await store.append_expect("s", 0, events)
    again = await store.append_expect("s", 0, events)
    assert again == first and again.retried
    read = await store.read("s")
    assert [(e.seq, e.id, e.data) for e in read] == [
        (i + 1, ev.id, {"i": i}) for i, ev in enumerate(events)
    ]


async def test_a_plain_append_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import evsrc._memory_append as fast

    calls: list[object] = []
    general = fast._general

    async def counting(*args: Any) -> Any:
        calls.append(args)
        return await general(*args)

    monkeypatch.setattr(fast, "_general", counting)
    store = InMemoryEventStore()
    await store.append_expect("s", 0, [NewEvent("b", {"a": 1})])
    await store.append_expect("s", 1, [NewEvent("b"), NewEvent("c", metadata={"m": "x"})])
    await store.append_expect("s", 0, [NewEvent("b")])  # a conflict
    assert calls == []
    await store.append_expect("s", 3, [NewEvent("b", {"a": None})])  # null: a closer look
    assert len(calls) == 1
