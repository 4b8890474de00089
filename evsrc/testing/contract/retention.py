"""Retention metadata (``max_count`` / ``max_age``) and the sweep."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest

from evsrc.errors import InvalidInputError
from evsrc.records import StreamMetadata
from evsrc.testing.contract.helpers import ev, everything

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["RetentionContract"]

pytestmark = [pytest.mark.asyncio]


class RetentionContract:
    """A part of :class:`StreamLifecycleContract`; the tests take its ``store`` fixture."""

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
