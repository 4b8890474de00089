"""SQLite ``inline_appends``: the append written on the event loop honours deletions too."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from evsrc import STREAM_DELETED, Committed, Conflict, NewEvent, StreamDeletedError
from evsrc.sqlite import SqliteEventStore, _writer

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def thread_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch of appends written on the writer thread."""
    sizes: list[int] = []
    batch = _writer.append_batch

    def counting(connector, conn, items):  # type: ignore[no-untyped-def]
        sizes.append(len(items))
        return batch(connector, conn, items)

    monkeypatch.setattr(_writer, "append_batch", counting)
    return sizes


async def test_inline_appends_refuse_a_tombstone_and_go_on_after_a_soft_delete(
    tmp_path: Path, thread_batches: list[int]
) -> None:
    async with await SqliteEventStore.connect(tmp_path / "i.db", inline_appends=True) as store:
        await store.setup()
        await store.append("soft", [NewEvent("t", {"i": i}) for i in range(3)])
        await store.append("hard", [NewEvent("t", {"i": i}) for i in range(3)])
        assert (await store.delete_stream("soft")).last_seq == 3
        await store.delete_stream("hard", hard=True)

        assert await store.append_expect("soft", 0, [NewEvent("t")]) == Conflict("soft", 0, 4)
        again = await store.append_expect("soft", 4, [NewEvent("t", {"i": 9})])
        assert isinstance(again, Committed) and again.first_seq == 5
        for attempt in range(3):  # each refused on the event loop, nothing written
            with pytest.raises(StreamDeletedError):
                await store.append("hard", [NewEvent("t", {"i": attempt})])
            with pytest.raises(StreamDeletedError):
                await store.append_expect("hard", 4, [NewEvent("t")])
        assert thread_batches == []  # every append above ran inline
        assert [e.seq for e in await store.read("soft")] == [4, 5]
        kept = [(e.stream, e.seq, e.type) async for e in store.read_all()]
        assert [k for k in kept if k[0] == "hard"] == [("hard", 4, STREAM_DELETED)]
        # The writer thread's path refuses it as well.
        with pytest.raises(StreamDeletedError):
            await store.append("hard", [NewEvent("t", {"i": i}) for i in range(40)])
        assert thread_batches == [1]
