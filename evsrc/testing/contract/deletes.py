"""Soft and hard deletion of a stream, and their input checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from evsrc.errors import (
    InvalidEventError,
    InvalidInputError,
    InvalidStreamError,
    StreamDeletedError,
)
from evsrc.lifecycle import StreamDeleted
from evsrc.records import STREAM_DELETED, Committed, Conflict, Deleted, NewEvent
from evsrc.testing.contract.helpers import BAD_STREAMS, ev, everything

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["DeletesContract"]

pytestmark = [pytest.mark.asyncio]


class DeletesContract:
    """A part of :class:`StreamLifecycleContract`; the tests take its ``store`` fixture."""

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
