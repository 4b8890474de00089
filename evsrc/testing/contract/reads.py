"""Reading one stream: ``after``, ``limit``, ``backwards`` and their checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from evsrc.errors import InvalidInputError, InvalidStreamError
from evsrc.testing.contract.helpers import BAD_STREAMS, ev

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["ReadsContract"]

pytestmark = [pytest.mark.asyncio]


class ReadsContract:
    """A part of :class:`EventStoreContract`; the tests take its ``store`` fixture."""

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
