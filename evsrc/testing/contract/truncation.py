"""``truncate_before``: the head and the numbering stay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from evsrc.errors import InvalidInputError
from evsrc.records import Committed
from evsrc.testing.contract.helpers import ev, everything

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["TruncationContract"]

pytestmark = [pytest.mark.asyncio]


class TruncationContract:
    """A part of :class:`StreamLifecycleContract`; the tests take its ``store`` fixture."""

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
