"""The sweep of a stream larger than one batch, on the SQL backends (batches made small)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import anyio
import pytest

from evsrc import NewEvent
from evsrc.postgres import _lifecycle as pg_lifecycle
from evsrc.sqlite import _lifecycle as sqlite_lifecycle

if TYPE_CHECKING:
    from evsrc.store import EventStore


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_lifecycle, "SWEEP_BATCH", 7)
    monkeypatch.setattr(sqlite_lifecycle, "SWEEP_BATCH", 7)
    monkeypatch.setattr(pg_lifecycle, "STREAMS_PAGE", 5)
    monkeypatch.setattr(sqlite_lifecycle, "STREAMS_PAGE", 5)


async def test_max_count_sweep_crosses_batches(any_store: EventStore) -> None:
    for k in range(5):
        await any_store.append("big", [NewEvent("t", {"i": i}) for i in range(10 * k, 10 * k + 10)])
        await any_store.append(f"small-{k}", [NewEvent("t")])
    await any_store.set_stream_metadata("big", max_count=4)
    assert await any_store.sweep() == 46
    assert [e.seq async for e in any_store.read_all(stream_prefix="big")] == [47, 48, 49, 50]
    assert await any_store.sweep() == 0


async def test_max_age_sweep_crosses_batches_and_stops_at_young_events(
    any_store: EventStore,
) -> None:
    await any_store.append("aged", [NewEvent("t", {"i": i}) for i in range(30)])
    await anyio.sleep(0.2)
    await any_store.append("aged", [NewEvent("t", {"i": i}) for i in range(30, 40)])
    await any_store.set_stream_metadata("aged", max_age=timedelta(milliseconds=100))
    assert [e.seq for e in await any_store.read("aged")] == list(range(31, 41))
    assert await any_store.sweep() == 30
    assert [e.seq async for e in any_store.read_all()] == list(range(31, 41))


async def test_many_retained_streams_are_all_swept(any_store: EventStore) -> None:
    for k in range(12):
        stream = f"r-{k:02}"
        await any_store.append(stream, [NewEvent("t") for _ in range(9)])
        await any_store.set_stream_metadata(stream, max_count=2)
    assert await any_store.sweep() == 12 * 7
    left = [(e.stream, e.seq) async for e in any_store.read_all()]
    assert left == [(f"r-{k:02}", s) for k in range(12) for s in (8, 9)]
