"""Idempotent retries: a resend of a committed append returns the original."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest

from evsrc.errors import DuplicateEventIdError
from evsrc.records import Committed
from evsrc.testing.contract.helpers import ev, everything

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["RetriesContract"]

pytestmark = [pytest.mark.asyncio]


class RetriesContract:
    """A part of :class:`EventStoreContract`; the tests take its ``store`` fixture."""

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
