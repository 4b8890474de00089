"""OpenTelemetry: spans and metrics of an instrumented store, handler and runner (SDK)."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from evsrc import InvalidInputError, NewEvent, ProjectionRunner, Projector
from evsrc.memory import InMemoryEventStore
from evsrc.telemetry import TRACEPARENT, instrument
from evsrc.testing import RacingStore
from examples.booking import BookingService
from tests.telemetry.sdk import Sdk

if TYPE_CHECKING:
    from evsrc import RecordedEvent
    from evsrc.store import EventStore


class Everything(Projector):
    name = "everything"

    def __init__(self) -> None:
        self.seen: list[RecordedEvent] = []

    def wants(self, recorded: RecordedEvent) -> bool:
        return True

    async def handle(self, recorded: RecordedEvent, *context: Any) -> None:
        self.seen.append(recorded)


async def test_a_command_traces_its_appends_and_the_projection_links_to_it(
    any_store: EventStore,
) -> None:
    sdk = Sdk()
    racing = RacingStore(any_store, races=1, foreign=lambda: NewEvent("booking", {"actor": "zed"}))
    store = instrument(racing, **sdk.providers())
    svc = BookingService(store)
    instrument(svc.handler, **sdk.providers())
    r = await svc.book("yoga", capacity=3, actor="ann")
    assert r.status == "booked"

    [command] = sdk.finished("evsrc.command")
    assert command.attributes["evsrc.attempts"] == 2
    assert command.attributes["evsrc.outcome"] == "accepted"
    appends = sdk.finished("evsrc.append")
    assert [a.attributes["evsrc.outcome"] for a in appends] == ["conflict", "committed"]
    assert all(a.parent.span_id == command.context.span_id for a in appends)
    assert appends[-1].attributes["evsrc.stream"].endswith("yoga")

    # The committed event carries the command's trace context ...
    mine = await any_store.read(appends[-1].attributes["evsrc.stream"])
    [ann] = [e for e in mine if e.data.get("actor") == "ann"]
    parent = ann.metadata[TRACEPARENT]
    assert parent.startswith(f"00-{command.context.trace_id:032x}-{command.context.span_id:016x}-")
    [zed] = [e for e in mine if e.data.get("actor") == "zed"]
    assert TRACEPARENT not in zed.metadata  # the other writer had no span

    # ... and a projection's batch span links back to it.
    runner = instrument(ProjectionRunner(store, Everything()), **sdk.providers())
    await runner.catch_up()
    # One batch, or more on PostgreSQL when another session's open transaction
    # held the second event back from the first read.
    batches = sdk.finished("evsrc.projection.batch")
    assert sum(b.attributes["evsrc.batch_size"] for b in batches) == len(runner.projector.seen)
    linked = {(link.context.trace_id, link.context.span_id) for b in batches for link in b.links}
    assert (command.context.trace_id, command.context.span_id) in linked

    assert sum(p.value for p in sdk.points("evsrc.append.conflicts")) == 1
    assert sum(p.value for p in sdk.points("evsrc.command.retries")) == 1
    outcomes = {p.attributes["evsrc.outcome"]: p.count for p in sdk.points("evsrc.append.duration")}
    assert outcomes == {"conflict": 1, "committed": 1}
    [sizes] = sdk.points("evsrc.projection.batch")
    assert (sizes.count, sizes.sum) == (len(batches), len(runner.projector.seen))
    [lag] = sdk.points("evsrc.projection.lag")
    assert lag.count == len(batches)
    assert lag.min >= 0


async def test_subscription_wakeups_are_counted() -> None:
    sdk = Sdk()
    store = instrument(InMemoryEventStore(), **sdk.providers())
    got: list[RecordedEvent] = []

    async def follow() -> None:
        async for e in store.subscribe():
            got.append(e)
            if len(got) == 2:
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow)
        for i in range(2):
            await anyio.sleep(0.05)  # the subscriber is waiting by now
            await store.append("s", [NewEvent("tick", {"n": i})])
    assert len(got) == 2
    assert sum(p.value for p in sdk.points("evsrc.subscription.wakeups")) == 2


async def test_without_providers_nothing_is_traced_or_stamped() -> None:
    store = instrument(InMemoryEventStore())  # no SDK configured: the global no-op providers
    assert store.telemetry.tracer() is None
    assert store.telemetry.instruments() is None
    await store.append("s", [NewEvent("tick")])
    [e] = await store.read("s")
    assert e.metadata == {}
    runner = instrument(ProjectionRunner(store, Everything()))
    assert await runner.catch_up() == 1


def test_importing_evsrc_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, evsrc, evsrc.telemetry, evsrc.projection, evsrc.handler;"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_instrument_refuses_what_it_cannot_instrument() -> None:
    with pytest.raises(InvalidInputError):
        instrument(42)
