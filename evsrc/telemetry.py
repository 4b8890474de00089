"""OpenTelemetry traces and metrics, by wrapping: ``instrument(store)``, a handler or a runner.

Nothing here imports OpenTelemetry until :func:`instrument` is called, and an
uninstrumented store, handler or runner does no telemetry work at all (the
runner checks one attribute per batch). An instrumented one checks, per call,
whether a tracer (meter) provider is configured — the global one, or the one
passed to :func:`instrument` — and does nothing more when none is.

Spans: ``evsrc.append`` (stream, event count, outcome ``committed`` /
``conflict`` / ``error``), ``evsrc.command`` (stream, attempts, outcome),
``evsrc.projection.batch`` (projection, batch size; linked to the spans that
appended its events). An append made inside a span writes that span's W3C
``traceparent`` into each event's metadata (unless the event has one), which is
how a projection's batch — or a process manager's reaction — links back to the
command that caused the event. Metrics: see ``docs/operations.md``.

Install with ``pip install 'evsrc[otel]'``; configure the SDK (providers,
exporters) in the application, as usual.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from evsrc.errors import ConfigurationError, InvalidInputError
from evsrc.records import Committed, NewEvent
from evsrc.store import DelegatingStore, EventStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from evsrc.records import Checkpoint, Conflict, RecordedEvent

__all__ = ["TRACEPARENT", "InstrumentedStore", "Telemetry", "instrument"]

#: The metadata key that carries the W3C trace context of the appending span.
TRACEPARENT: Final = "traceparent"
#: At most this many links on a projection batch's span.
MAX_LINKS: Final = 32
#: Seconds between look-ups of the global providers while none is configured.
RECHECK: Final = 1.0
#: A subscription that waited at least this long for its next event counts as woken up.
WAKE_AFTER: Final = 0.001


class Telemetry:
    """The tracer and the metric instruments of evsrc, for one pair of providers.

    ``tracer_provider`` / ``meter_provider``: ``None`` to use the global ones
    (looked up per call, so an SDK configured later is picked up).
    """

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        try:
            from opentelemetry import metrics, trace
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError as exc:
            msg = "evsrc.telemetry needs OpenTelemetry: pip install 'evsrc[otel]'"
            raise ConfigurationError(msg) from exc
        self._trace = trace
        self._metrics = metrics
        self._propagator = TraceContextTextMapPropagator()
        self._tp_given = tracer_provider
        self._mp_given = meter_provider
        self._tp: Any = object()
        self._tracer: Any = None
        self._mp: Any = object()
        self._meters: _Instruments | None = None
        self._recheck_at = 0.0
        self._disabled = False

    def disabled(self) -> bool:
        """Whether neither traces nor metrics are configured (the one check per call).

        The global providers are looked up at most every ``RECHECK`` seconds
        (a lookup reads the environment): an SDK configured later is seen then.
        """
        now = time.monotonic()
        if now < self._recheck_at:
            return self._disabled
        self._recheck_at = now + RECHECK
        self._disabled = self.tracer() is None and self.instruments() is None
        return self._disabled

    def tracer(self) -> Any:
        """The evsrc tracer, or ``None`` when no tracer provider is configured."""
        tp = self._tp_given if self._tp_given is not None else self._trace.get_tracer_provider()
        if tp is not self._tp:
            self._tp = tp
            noop = (self._trace.ProxyTracerProvider, self._trace.NoOpTracerProvider)
            self._tracer = None if isinstance(tp, noop) else tp.get_tracer("evsrc")
        return self._tracer

    def instruments(self) -> _Instruments | None:
        """The metric instruments, or ``None`` when no meter provider is configured."""
        mp = self._mp_given if self._mp_given is not None else self._metrics.get_meter_provider()
        if mp is not self._mp:
            self._mp = mp
            name = type(mp).__name__
            noop = name in ("_ProxyMeterProvider", "NoOpMeterProvider")
            self._meters = None if noop else _Instruments(mp.get_meter("evsrc"))
        return self._meters

    # -- trace context in metadata ------------------------------------------------------

    def stamp(self, events: Sequence[NewEvent]) -> Sequence[NewEvent]:
        """``events`` with the current span's ``traceparent`` in their metadata (if any span)."""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        parent = carrier.get(TRACEPARENT)
        if parent is None:
            return events
        return [
            e
            if TRACEPARENT in e.metadata
            else NewEvent(e.type, e.data, {**e.metadata, TRACEPARENT: parent}, e.id, e.version)
            for e in events
        ]

    def links(self, events: Sequence[RecordedEvent]) -> list[Any]:
        """Links to the spans that appended ``events`` (distinct, at most ``MAX_LINKS``)."""
        seen: set[str] = set()
        links: list[Any] = []
        for e in events:
            parent = e.metadata.get(TRACEPARENT)
            if not isinstance(parent, str) or parent in seen:
                continue
            seen.add(parent)
            ctx = self._propagator.extract({TRACEPARENT: parent})
            sc = self._trace.get_current_span(ctx).get_span_context()
            if sc.is_valid:
                links.append(self._trace.Link(sc))
                if len(links) >= MAX_LINKS:
                    break
        return links

    # -- the projection runner's hook -----------------------------------------------------

    @contextmanager
    def projection_batch(self, name: str, events: Sequence[RecordedEvent]) -> Iterator[None]:
        """Around one batch of a projection: a span linked to its causes, size and lag."""
        if self.disabled():
            yield
            return
        meters = self.instruments()
        if meters is not None:
            attrs = {"evsrc.projection": name}
            meters.projection_batch.record(len(events), attrs)
            age = (datetime.now(UTC) - events[-1].recorded_at).total_seconds()
            meters.projection_lag.record(max(0.0, age), attrs)
        tracer = self.tracer()
        if tracer is None:
            yield
            return
        attributes = {"evsrc.projection": name, "evsrc.batch_size": len(events)}
        with tracer.start_as_current_span(
            "evsrc.projection.batch", attributes=attributes, links=self.links(events)
        ):
            yield


class _Instruments:
    """The metric instruments (created once per meter provider)."""

    def __init__(self, meter: Any) -> None:
        self.append_duration = meter.create_histogram(
            "evsrc.append.duration", unit="s", description="Time an append took, by outcome"
        )
        self.append_events = meter.create_histogram(
            "evsrc.append.events", unit="{event}", description="Events per append (batch size)"
        )
        self.conflicts = meter.create_counter(
            "evsrc.append.conflicts", unit="{conflict}", description="Appends refused: conflict"
        )
        self.command_retries = meter.create_counter(
            "evsrc.command.retries",
            unit="{retry}",
            description="Decide+append rounds past the first",
        )
        self.command_duration = meter.create_histogram(
            "evsrc.command.duration", unit="s", description="Time a command took, all attempts"
        )
        self.projection_batch = meter.create_histogram(
            "evsrc.projection.batch", unit="{event}", description="Events per projection batch"
        )
        self.projection_lag = meter.create_histogram(
            "evsrc.projection.lag",
            unit="s",
            description="Age of a batch's last event when the projection handled it",
        )
        self.wakeups = meter.create_counter(
            "evsrc.subscription.wakeups",
            unit="{wakeup}",
            description="Times a waiting subscription was woken by new events",
        )


class InstrumentedStore(DelegatingStore):
    """An event store that traces and measures its appends, and stamps the trace context.

    Everything else is delegated to the wrapped store (``.inner``), including
    backend-specific attributes (``pool``, ``schema`` …), so backend runners
    accept it.
    """

    def __init__(self, inner: EventStore, telemetry: Telemetry) -> None:
        super().__init__(inner)
        self.telemetry = telemetry

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """``append_expect`` of the wrapped store, traced and measured."""
        if self.telemetry.disabled():
            return await self.inner.append_expect(stream, expected, events)
        return await self._append(stream, expected, events)

    async def append(self, stream: str, events: Sequence[NewEvent]) -> Committed:
        """``append`` of the wrapped store, traced and measured."""
        if self.telemetry.disabled():
            return await self.inner.append(stream, events)
        result = await self._append(stream, None, events)
        assert isinstance(result, Committed)
        return result

    async def _append(
        self, stream: str, expected: int | None, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        t = self.telemetry
        tracer = t.tracer()
        meters = t.instruments()
        if tracer is not None:
            events = t.stamp(events)
        outcome = "error"
        start = time.perf_counter()
        try:
            if tracer is None:
                result = await self._call(stream, expected, events)
            else:
                attributes = {"evsrc.stream": stream, "evsrc.event_count": len(events)}
                with tracer.start_as_current_span(
                    "evsrc.append", kind=t._trace.SpanKind.CLIENT, attributes=attributes
                ) as span:
                    result = await self._call(stream, expected, events)
                    outcome = "committed" if isinstance(result, Committed) else "conflict"
                    span.set_attribute("evsrc.outcome", outcome)
            outcome = "committed" if isinstance(result, Committed) else "conflict"
            return result
        finally:
            if meters is not None:
                attrs = {"evsrc.outcome": outcome}
                meters.append_duration.record(time.perf_counter() - start, attrs)
                if outcome == "committed":
                    meters.append_events.record(len(events))
                elif outcome == "conflict":
                    meters.conflicts.add(1)

    async def _call(
        self, stream: str, expected: int | None, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        if expected is None:
            return await self.inner.append(stream, events)
        return await self.inner.append_expect(stream, expected, events)

    def subscribe(
        self,
        after: Checkpoint | None = None,
        *,
        stream_prefix: str | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """``subscribe`` of the wrapped store, counting wake-ups."""
        feed = self.inner.subscribe(after, stream_prefix=stream_prefix, types=types)
        if self.telemetry.disabled() or self.telemetry.instruments() is None:
            return feed
        return self._counted(feed)

    async def _counted(self, feed: AsyncIterator[RecordedEvent]) -> AsyncIterator[RecordedEvent]:
        try:
            while True:
                start = time.perf_counter()
                try:
                    recorded = await anext(feed)
                except StopAsyncIteration:
                    return
                if time.perf_counter() - start >= WAKE_AFTER:
                    meters = self.telemetry.instruments()
                    if meters is not None:
                        meters.wakeups.add(1)
                yield recorded
        finally:
            aclose = getattr(feed, "aclose", None)
            if aclose is not None:
                await aclose()


def _instrument_handler(handler: Any, telemetry: Telemetry) -> Any:
    """Wrap ``handler.execute`` on the instance: a span and metrics per command."""
    execute = handler.execute

    async def traced(key: str, decide: Any, **kw: Any) -> Any:
        if telemetry.disabled():
            return await execute(key, decide, **kw)
        tracer = telemetry.tracer()
        meters = telemetry.instruments()
        start = time.perf_counter()
        if tracer is None:
            outcome = await execute(key, decide, **kw)
        else:
            with tracer.start_as_current_span(
                "evsrc.command", attributes={"evsrc.stream": str(key)}
            ) as span:
                outcome = await execute(key, decide, **kw)
                span.set_attribute("evsrc.attempts", outcome.attempts)
                span.set_attribute("evsrc.outcome", "accepted" if outcome.ok else "rejected")
                span.set_attribute("evsrc.event_count", len(outcome.events))
        if meters is not None:
            meters.command_duration.record(time.perf_counter() - start)
            if outcome.attempts > 1:
                meters.command_retries.add(outcome.attempts - 1)
        return outcome

    handler.execute = traced
    return handler


def instrument(target: Any, *, tracer_provider: Any = None, meter_provider: Any = None) -> Any:
    """Add OpenTelemetry traces and metrics to a store, command handler or projection runner.

    A store comes back wrapped (:class:`InstrumentedStore`: use the returned
    object); a ``CommandHandler`` or ``ProjectionRunner`` is instrumented in
    place and returned. Instrument the store the handler and runners use, so
    appends carry the trace context. Raises ``ConfigurationError`` when
    OpenTelemetry is not installed.
    """
    from evsrc.handler import CommandHandler
    from evsrc.projection import ProjectionRunner

    telemetry = Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    if isinstance(target, EventStore):
        return InstrumentedStore(target, telemetry)
    if isinstance(target, CommandHandler):
        return _instrument_handler(target, telemetry)
    if isinstance(target, ProjectionRunner):
        target.telemetry = telemetry
        return target
    msg = f"instrument() takes an EventStore, CommandHandler or ProjectionRunner, got {target!r}"
    raise InvalidInputError(msg, argument="target", value=target)
