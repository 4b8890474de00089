"""A hypothesis state machine that checks a store against a plain model.

It runs in a worker thread (``anyio.to_thread.run_sync``) and calls the store
on the test's event loop through ``anyio.from_thread.run``, so it works for any
backend whose ``store`` fixture lives on that loop.
"""

from __future__ import annotations

import math
import uuid
from typing import TYPE_CHECKING, Any

import anyio.from_thread
import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from evsrc.errors import DuplicateEventIdError, InvalidEventError
from evsrc.records import Checkpoint, Committed, Conflict, NewEvent, RecordedEvent

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from evsrc.store import EventStore

NAMES = st.sampled_from(["a", "b", "c"])


def run_model_test(store: EventStore, examples: int) -> None:
    """Run the model test against ``store`` from a worker thread."""

    def call(fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        return anyio.from_thread.run(fn, *args)

    async def drain(after: Checkpoint | None) -> list[RecordedEvent]:
        return [e async for e in store.read_all(after=after)]

    last: dict[str, Checkpoint | None] = {"checkpoint": None}
    first_run = call(drain, None)
    if first_run:
        last["checkpoint"] = first_run[-1].checkpoint

    class StoreModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.prefix = uuid.uuid4().hex[:10]
            self.start = last["checkpoint"]
            self.streams: dict[str, list[uuid.UUID]] = {}
            self.log: list[uuid.UUID] = []
            self.appends: list[tuple[str, list[NewEvent], Committed]] = []
            self.touched: str | None = None

        def name(self, short: str) -> str:
            return f"{self.prefix}:{short}"

        def record(self, stream: str, events: list[NewEvent], r: Committed) -> None:
            ids = self.streams.setdefault(stream, [])
            assert (r.stream, r.first_seq, r.last_seq) == (
                stream,
                len(ids) + 1,
                len(ids) + len(events),
            )
            ids.extend(e.id for e in events)
            self.log.extend(e.id for e in events)
            self.appends.append((stream, events, r))

        @rule(short=NAMES, offset=st.sampled_from([0, 0, 0, -1, 1, -3, 2]), n=st.integers(1, 3))
        def append_expect(self, short: str, offset: int, n: int) -> None:
            stream = self.touched = self.name(short)
            actual = len(self.streams.get(stream, []))
            expected = max(0, actual + offset)
            events = [NewEvent("e", {"n": i, "x": [short, i]}) for i in range(n)]
            r = call(store.append_expect, stream, expected, events)
            if expected == actual:
                assert isinstance(r, Committed), r
                self.record(stream, events, r)
            else:
                assert r == Conflict(stream, expected, actual)

        @rule(short=NAMES, n=st.integers(1, 3))
        def append_any(self, short: str, n: int) -> None:
            stream = self.touched = self.name(short)
            events = [NewEvent("any", {"n": i}, {"m": short}) for i in range(n)]
            r = call(store.append, stream, events)
            assert isinstance(r, Committed)
            self.record(stream, events, r)

        @rule(data=st.data())
        def retry_a_committed_append(self, data: st.DataObject) -> None:
            if not self.appends:
                return
            stream, events, original = data.draw(st.sampled_from(self.appends))
            self.touched = stream
            again = call(store.append_expect, stream, original.first_seq - 1, events)
            assert again == original
            assert call(store.append, stream, events) == original

        @rule(data=st.data(), short=NAMES)
        def reuse_an_id_elsewhere(self, data: st.DataObject, short: str) -> None:
            if not self.appends:
                return
            _, events, _ = data.draw(st.sampled_from(self.appends))
            target = self.touched = self.name(short)
            reused = data.draw(st.sampled_from(events))
            new = [NewEvent("fresh", {}), reused]
            with pytest.raises(DuplicateEventIdError):
                call(store.append_expect, target, len(self.streams.get(target, [])), new)

        @rule(short=NAMES, bad=st.sampled_from(["empty", "nan", "nul", "type"]))
        def bad_append(self, short: str, bad: str) -> None:
            stream = self.touched = self.name(short)
            events = {
                "empty": [],
                "nan": [NewEvent("e", {}), NewEvent("e", {"x": math.nan})],
                "nul": [NewEvent("e", {"x": "\x00"})],
                "type": [NewEvent("", {})],
            }[bad]
            with pytest.raises(InvalidEventError):
                call(store.append_expect, stream, len(self.streams.get(stream, [])), events)

        @invariant()
        def touched_stream_matches_model(self) -> None:
            if self.touched is None:
                return
            ids = self.streams.get(self.touched, [])
            got = call(store.read, self.touched)
            assert [e.id for e in got] == ids
            assert [e.seq for e in got] == list(range(1, len(ids) + 1))
            assert call(store.last_seq, self.touched) == len(ids)

        def teardown(self) -> None:
            events = call(drain, self.start)
            assert [e.id for e in events] == self.log
            for stream, ids in self.streams.items():
                assert [e.id for e in call(store.read, stream)] == ids
            if events:
                last["checkpoint"] = events[-1].checkpoint

    run_state_machine_as_test(
        StoreModel,
        settings=settings(
            max_examples=examples,
            stateful_step_count=15,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
