"""Global order: ``read_all``, checkpoints and the ``types`` / ``stream_prefix`` filters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest

from evsrc.errors import InvalidCheckpointError, InvalidInputError
from evsrc.records import Checkpoint, Committed, RecordedEvent
from evsrc.store import MAX_STREAM_LENGTH
from evsrc.testing.contract.helpers import ev, everything, everything_filtered

if TYPE_CHECKING:
    from evsrc.store import EventStore

__all__ = ["GlobalOrderContract"]

pytestmark = [pytest.mark.asyncio]


class GlobalOrderContract:
    """A part of :class:`EventStoreContract`; the tests take its ``store`` fixture."""

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
