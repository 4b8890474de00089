"""Scenario: what OpenTelemetry costs the hot paths (appends, booking commands).

The same work four ways, in the same run:

- evsrc: store and handler wrapped by ``evsrc.instrument`` with an SDK tracer
  provider and meter provider configured but no exporter (no span processor,
  no metric reader: nothing would receive a span or a measurement);
- off: wrapped, but no provider configured (the global no-op ones);
- export: wrapped, the SDK exporting — every span through a
  ``SimpleSpanProcessor`` to an exporter that discards it, metrics aggregated
  for an in-memory reader (what telemetry costs when it is really on);
- plain: not instrumented.

Memory and PostgreSQL (4 writers), reported as evsrc / plain, off / plain and
export / plain (an overhead, evsrc against itself: raw asyncpg beside evsrc is
in the ``append_expect`` scenario). Goal: evsrc / plain ≥ 0.97.
"""

from __future__ import annotations

import gc
import time
from typing import TYPE_CHECKING, Any

import anyio

from benchmarks.harness import Case, NotAvailable, Sample, median
from benchmarks.scenarios.append import _unavailable
from benchmarks.targets import open_evsrc_pg
from benchmarks.workloads import PgDatabases, make_events, stream_names
from evsrc.memory import InMemoryEventStore
from evsrc.records import Committed

if TYPE_CHECKING:
    from benchmarks.harness import Context
    from evsrc.store import EventStore

__all__ = ["run_telemetry"]

LABELS = {
    "evsrc": "instrumented, SDK configured, no exporter",
    "off": "instrumented, no provider",
    "export": "instrumented, SDK exporting (discarded)",
    "plain": "not instrumented",
}


def _providers(variant: str = "evsrc") -> dict[str, Any]:
    """Fresh SDK providers: bare (``evsrc``), exporting (``export``), none otherwise."""
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            SimpleSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError as exc:
        msg = "install opentelemetry-sdk (the dev extra)"
        raise NotAvailable(msg) from exc
    if variant == "evsrc":
        return {"tracer_provider": TracerProvider(), "meter_provider": MeterProvider()}
    if variant != "export":
        return {}

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(Discard()))
    return {"tracer_provider": tp, "meter_provider": MeterProvider([InMemoryMetricReader()])}


def _wrap(store: EventStore, variant: str, providers: dict[str, Any]) -> EventStore:
    from evsrc.telemetry import instrument

    if variant == "plain":
        return store
    wrapped: EventStore = instrument(store, **providers)
    return wrapped


async def _appends(store: EventStore, writers: int, per_writer: int) -> Sample:
    names = stream_names(f"t{time.monotonic_ns()}", writers)
    payloads = [[make_events(1, i) for i in range(per_writer)] for _ in names]

    async def writer(stream: str, items: list[Any]) -> None:
        for expected, events in enumerate(items):
            r = await store.append_expect(stream, expected, events)
            if type(r) is not Committed:
                raise AssertionError(f"append to {stream} at {expected} did not commit")

    t0, c0 = time.perf_counter(), time.process_time()
    async with anyio.create_task_group() as tg:
        for s, items in zip(names, payloads, strict=True):
            tg.start_soon(writer, s, items)
    return _sample(writers * per_writer, t0, c0)


def _sample(ops: int, t0: float, c0: float) -> Sample:
    """``ops`` since ``t0`` (wall) and ``c0`` (this process's CPU time), per op in µs."""
    cpu = time.process_time() - c0
    return Sample(ops, time.perf_counter() - t0, {"cpu_us": cpu / ops * 1e6})


async def _bookings(store: EventStore, variant: str, providers: dict[str, Any], n: int) -> Sample:
    from evsrc.telemetry import instrument
    from examples.booking import BookingService

    svc = BookingService(store)
    if variant != "plain":
        instrument(svc.handler, **providers)
    occurrence = f"o{time.monotonic_ns()}"
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        r = await svc.book(occurrence, capacity=n, actor=f"a{i}")
        if r.status != "booked":
            raise AssertionError(f"booking {i} was {r.status}")
    return _sample(n, t0, c0)


def _mem(variant: str, work: str, n: int) -> Any:
    async def prepare() -> Any:
        providers = _providers(variant)

        async def rep() -> Sample:
            # The previous repetition's store is garbage: collect it outside the clock,
            # or collections land on alternate repetitions and skew the ratios.
            gc.collect()
            async with InMemoryEventStore() as inner:
                store = _wrap(inner, variant, providers)
                if work == "append":
                    return await _appends(store, 1, n)
                return await _bookings(store, variant, providers, n)

        return rep

    return prepare


def _pg(dbs: PgDatabases, variant: str, work: str, n: int) -> Any:
    async def prepare() -> Any:
        providers = _providers(variant)
        url = await dbs.evsrc_db(f"{work}{variant}")

        async def rep() -> Sample:
            gc.collect()
            inner = await open_evsrc_pg(url, 10)
            try:
                await inner.read("warm", limit=1)
                store = _wrap(inner, variant, providers)
                if work == "append":
                    return await _appends(store, 4, n // 4)
                return await _bookings(store, variant, providers, n)
            finally:
                await inner.close()

        return rep

    return prepare


async def run_telemetry(ctx: Context) -> None:
    """Appends and booking commands, instrumented (SDK, no exporter) beside not."""
    for work, n, unit in (
        ("append", ctx.size(20000, 50), "appends/s"),
        ("book", ctx.size(2000, 20), "commands/s"),
    ):
        case = await ctx.run_case(
            Case(
                f"memory · {work}, instrumented vs not",
                unit,
                {"backend": "memory", "work": work},
                dict(LABELS),
            ),
            {v: _mem(v, work, n) for v in LABELS},
        )
        _ratios(case)
    dbs = PgDatabases(ctx, "telemetry")
    try:
        for work, n, unit in (
            ("append", ctx.size(4000, 20), "appends/s"),
            ("book", ctx.size(1000, 10), "commands/s"),
        ):
            if ctx.dsn is None or ctx.pg_reason is not None:
                why = ctx.pg_reason or "PostgreSQL not available"
                runners = {v: _unavailable(why) for v in LABELS}
            else:
                runners = {v: _pg(dbs, v, work, n) for v in LABELS}
            case = await ctx.run_case(
                Case(
                    f"postgres · {work}, instrumented vs not",
                    unit,
                    {"backend": "postgres", "work": work},
                    dict(LABELS),
                ),
                runners,
            )
            _ratios(case)
    finally:
        await dbs.drop_all()
    ctx.check("an instrumented append inside a span stamps its traceparent", await _stamps())


def _ratios(case: Case) -> None:
    for v in ("evsrc", "off", "export"):
        case.derived[f"{v}/plain"] = case.ratio(v, "plain")
        # Repetitions run interleaved: the ratio within each round, then the median,
        # is less moved by a machine whose load drifts between rounds.
        pairs = zip(case.rates.get(v, []), case.rates.get("plain", []), strict=False)
        case.derived[f"{v}/plain paired"] = median([a / b for a, b in pairs if b])
        case.derived[f"{v}/plain from CPU"] = _cpu_ratio(case, v)


def _cpu_ratio(case: Case, variant: str) -> float | None:
    """The rate ratio if ``variant`` cost only its extra CPU time per op over plain's.

    What instrumenting adds is CPU work in this process; measured as CPU time it
    is far less moved by other load on the machine than a wall-clock rate. Added
    to plain's wall time per op in full (as if nothing overlapped it): a bound.
    """
    cpu, base, rate = (
        case.metric(variant, "cpu_us"),
        case.metric("plain", "cpu_us"),
        case.rate("plain"),
    )
    if cpu is None or base is None or not rate:
        return None
    wall_us = 1e6 / rate
    return wall_us / (wall_us + cpu - base)


async def _stamps() -> bool:
    """Whether an instrumented append made inside a span carries that span's trace context."""
    from evsrc.telemetry import TRACEPARENT, instrument

    providers = _providers("export")
    async with InMemoryEventStore() as inner:
        store = instrument(inner, **providers)
        with providers["tracer_provider"].get_tracer("bench").start_as_current_span("cmd"):
            await store.append("s", make_events(1))
        [e] = await inner.read("s")
        return isinstance(e.metadata.get(TRACEPARENT), str)
