"""Bad input to ``append``: refused with a typed error, before anything is written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from evsrc.errors import EvsrcError, InvalidEventError, InvalidInputError, InvalidStreamError
from evsrc.testing.contract.helpers import BAD_EVENTS, BAD_STREAMS, ev, everything

if TYPE_CHECKING:
    from collections.abc import Callable

    from evsrc.store import EventStore

__all__ = ["InputsContract"]

pytestmark = [pytest.mark.asyncio]


class InputsContract:
    """A part of :class:`EventStoreContract`; the tests take its ``store`` fixture."""

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
