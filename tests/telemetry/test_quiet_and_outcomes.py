"""Telemetry that nobody receives costs nothing; what is received is right (SDK in memory)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode

import evsrc.telemetry_core as telemetry_core
from evsrc import (
    ConfigurationError,
    InvalidInputError,
    NewEvent,
    ProjectionRunner,
    Projector,
    StoreClosedError,
)
from evsrc.memory import InMemoryEventStore
from evsrc.store import DelegatingStore
from evsrc.telemetry import MAX_QUIET_CALLS, TRACEPARENT, InstrumentedStore, instrument, watch_lag
from evsrc.testing import RacingStore
from examples.booking import BookingService
from tests.telemetry.sdk import Sdk

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evsrc import Committed, Conflict, RecordedEvent
    from evsrc.store import EventStore


class Everything(Projector):
    name = "everything"

    def wants(self, recorded: RecordedEvent) -> bool:
        return True

    async def handle(self, recorded: RecordedEvent, *context: Any) -> None:
        pass


def outcomes(sdk: Sdk) -> dict[str, int]:
    return {p.attributes["evsrc.outcome"]: p.count for p in sdk.points("evsrc.append.duration")}


async def test_a_retried_append_is_told_apart(any_store: EventStore) -> None:
    sdk = Sdk()
    store = instrument(any_store, **sdk.providers())
    events = [NewEvent("tick", {"n": 1}), NewEvent("tick", {"n": 2})]
    first = await store.append_expect("s", 0, events)
    again = await store.append_expect("s", 0, events)  # a re-send after a lost reply
    assert again == first
    assert again.retried
    plain = await store.append("s", events)
    assert plain.retried
    assert await any_store.last_seq("s") == 2

    spans = sdk.finished("evsrc.append")
    assert [s.attributes["evsrc.outcome"] for s in spans] == ["committed", "retried", "retried"]
    assert outcomes(sdk) == {"committed": 1, "retried": 2}
    # The duration metric and the spans read one clock.
    measured = sum(p.sum for p in sdk.points("evsrc.append.duration"))
    assert measured == pytest.approx(sum(s.end_time - s.start_time for s in spans) / 1e9)
    [written] = sdk.points("evsrc.append.events")
    assert (written.count, written.sum) == (1, 2)  # a retry wrote nothing


async def test_an_sdk_nobody_listens_to_gets_no_spans_until_a_processor_is_added(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(telemetry_core, "RECHECK", 0.01)
    sdk = Sdk(spans=False, metrics=False)
    store = instrument(InMemoryEventStore(), **sdk.providers())
    checked = 0  # calls that looked at the providers (the others went straight through)
    checking = store._append

    async def counted(*args: Any) -> Any:
        nonlocal checked
        checked += 1
        return await checking(*args)

    monkeypatch.setattr(store, "_append", counted)
    outer = sdk.tracer_provider.get_tracer("app")
    with outer.start_as_current_span("request"):
        for i in range(50):
            await store.append_expect("s", i, [NewEvent("tick")])
    assert store.telemetry.live() is None
    # Each check grants at least the next call a pass, whatever the clock says.
    assert 1 <= checked <= 25, checked
    # Nothing was built: not even the trace context was written into the events.
    assert all(TRACEPARENT not in e.metadata for e in await store.read("s"))

    sdk.listen()  # an exporter configured later, without telling evsrc
    await anyio.sleep(0.02)
    seq = 50
    while not sdk.finished("evsrc.append"):
        assert seq < 50 + MAX_QUIET_CALLS + 2, "the new processor was never noticed"
        await store.append_expect("s", seq, [NewEvent("tick")])
        seq += 1
    with outer.start_as_current_span("request"):
        await store.append_expect("s", seq, [NewEvent("tick")])
    [last] = await store.read("s", after=seq)
    assert TRACEPARENT in last.metadata
    assert store.quiet_calls == 0


async def test_refresh_makes_a_new_processor_count_at_once() -> None:
    sdk = Sdk(spans=False, metrics=False)
    store = instrument(InMemoryEventStore(), **sdk.providers())
    for i in range(10):
        await store.append_expect("s", i, [NewEvent("tick")])
    assert store.quiet_calls > 0
    sdk.listen()
    store.telemetry.refresh()
    await store.append_expect("s", 10, [NewEvent("tick")])
    assert len(sdk.finished("evsrc.append")) == 1


async def test_traces_without_metrics_and_metrics_without_traces() -> None:
    traces_only = Sdk(metrics=False)
    store = instrument(InMemoryEventStore(), **traces_only.providers())
    await store.append("s", [NewEvent("tick")])
    assert len(traces_only.finished("evsrc.append")) == 1
    live = store.telemetry.live()
    assert live is not None
    assert live.meters is None

    metrics_only = Sdk(spans=False)
    store = instrument(InMemoryEventStore(), **metrics_only.providers())
    with metrics_only.tracer_provider.get_tracer("app").start_as_current_span("request"):
        await store.append("s", [NewEvent("tick")])
    assert metrics_only.spans.get_finished_spans() == ()
    assert outcomes(metrics_only) == {"committed": 1}
    [e] = await store.read("s")
    assert TRACEPARENT not in e.metadata  # no span of ours: nothing to link to


async def test_sampled_out_commands_record_nothing_and_their_appends_follow() -> None:
    sdk = Sdk(sampler=ALWAYS_OFF, metrics=False)
    store = instrument(InMemoryEventStore(), **sdk.providers())
    svc = BookingService(store)
    instrument(svc.handler, **sdk.providers())
    r = await svc.book("yoga", capacity=3, actor="ann")
    assert r.status == "booked"
    assert sdk.spans.get_finished_spans() == ()
    assert trace.get_current_span() is trace.INVALID_SPAN  # everything detached


class Stalling(DelegatingStore):
    """Appends that never finish (until cancelled)."""

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover


async def test_failed_and_cancelled_appends_are_error_spans_and_leave_the_context_clean() -> None:
    sdk = Sdk()
    closed = InMemoryEventStore()
    await closed.close()
    store = instrument(closed, **sdk.providers())
    with pytest.raises(StoreClosedError):
        await store.append("s", [NewEvent("tick")])

    stalling = instrument(Stalling(InMemoryEventStore()), **sdk.providers())
    before = context.get_current()
    with anyio.move_on_after(0.05) as scope:
        await stalling.append_expect("s", 0, [NewEvent("tick")])
    assert scope.cancelled_caught
    assert context.get_current() == before

    failed, cancelled = sdk.finished("evsrc.append")
    for span in (failed, cancelled):
        assert span.attributes["evsrc.outcome"] == "error"
        assert span.status.status_code is StatusCode.ERROR
        assert [e.name for e in span.events] == ["exception"]
    assert "StoreClosedError" in failed.status.description
    assert outcomes(sdk) == {"error": 2}


async def test_concurrent_commands_each_parent_their_own_appends() -> None:
    sdk = Sdk()
    foreign = lambda: NewEvent("booking", {"actor": "zed"})  # noqa: E731
    racing = RacingStore(InMemoryEventStore(), races=20, foreign=foreign)
    store = instrument(racing, **sdk.providers())
    svc = BookingService(store)
    instrument(svc.handler, **sdk.providers())

    async def book(i: int) -> None:
        # Several people per class, and another writer: commands conflict and retry.
        r = await svc.book(f"class{i % 5}", capacity=100, actor=f"a{i}")
        assert r.status == "booked"

    async with anyio.create_task_group() as tg:
        for i in range(60):
            tg.start_soon(book, i)

    commands = {c.context.span_id: c for c in sdk.finished("evsrc.command")}
    assert len(commands) == 60
    appends = sdk.finished("evsrc.append")
    for a in appends:
        # Under the command whose task ran it (the handler may batch commands on a
        # stream into one append), and on that command's stream.
        parent = commands[a.parent.span_id]
        assert a.context.trace_id == parent.context.trace_id
        assert a.attributes["evsrc.stream"] == f"booking:{parent.attributes['evsrc.stream']}"
    conflicts = [a for a in appends if a.attributes["evsrc.outcome"] == "conflict"]
    assert len(conflicts) == 20  # one per race
    assert sum(p.value for p in sdk.points("evsrc.append.conflicts")) == 20
    assert outcomes(sdk) == {"conflict": 20, "committed": len(appends) - 20}
    assert trace.get_current_span() is trace.INVALID_SPAN


async def test_projection_lag_in_events_is_a_gauge() -> None:
    sdk = Sdk()
    store = InMemoryEventStore()
    runner = instrument(ProjectionRunner(store, Everything()), **sdk.providers())
    for i in range(5):
        await store.append("s", [NewEvent("tick", {"n": i})])

    def lag() -> dict[str, int]:
        return {
            p.attributes["evsrc.projection"]: p.value
            for p in sdk.points("evsrc.projection.lag.events")
        }

    async def until(expected: dict[str, int]) -> None:
        with anyio.fail_after(5):
            while lag() != expected:
                await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: watch_lag(runner, every=0.01))
        await until({"everything": 5})
        assert await runner.catch_up() == 5
        await until({"everything": 0})
        await store.append("s", [NewEvent("tick")])
        await until({"everything": 1})
        tg.cancel_scope.cancel()
    assert lag() == {}  # no longer watched: no longer reported


async def test_watch_lag_refuses_what_it_cannot_watch() -> None:
    plain = ProjectionRunner(InMemoryEventStore(), Everything())
    with pytest.raises(ConfigurationError):
        await watch_lag(plain)
    runner = instrument(ProjectionRunner(InMemoryEventStore(), Everything()))
    for every in (0, -1.0, True, "5"):
        with pytest.raises(InvalidInputError):
            await watch_lag(runner, every=every)


async def test_instruments_are_shared_by_everything_on_one_meter_provider(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sdk = Sdk()
    with caplog.at_level(logging.WARNING):
        stores = [instrument(InMemoryEventStore(), **sdk.providers()) for _ in range(3)]
        for s in stores:
            await s.append("s", [NewEvent("tick")])
    assert not [r for r in caplog.records if "created already" in r.getMessage()]
    assert outcomes(sdk) == {"committed": 3}


async def test_only_a_store_with_attributes_of_its_own_gets_them_forwarded() -> None:
    class WithPool(InMemoryEventStore):
        @property
        def pool(self) -> str:
            return "the pool"

        def __init__(self) -> None:
            super().__init__()
            self.extra = "an instance attribute"

    wrapped = instrument(WithPool())
    assert wrapped.pool == "the pool"
    assert wrapped.extra == "an instance attribute"
    plain = instrument(InMemoryEventStore())
    assert type(plain) is InstrumentedStore  # no __getattr__ on the hot path
    with pytest.raises(AttributeError):
        _ = plain.pool
