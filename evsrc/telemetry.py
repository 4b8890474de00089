"""OpenTelemetry traces and metrics, by wrapping: ``instrument(store)``, a handler or a runner.

Nothing here imports OpenTelemetry until :func:`instrument` is called, and an
uninstrumented store, handler or runner does no telemetry work at all (the
runner checks one attribute per batch). An instrumented one asks, at most once
every ``RECHECK`` seconds, whether anything would receive its telemetry — a
tracer provider with a span processor, a meter provider with a metric reader —
and in between, while nothing would, calls straight through (a counter
decremented, no clock read, no extra coroutine).

Spans: ``evsrc.append`` (stream, event count, outcome ``committed`` /
``retried`` / ``conflict`` / ``error``), ``evsrc.command`` (stream, attempts,
outcome), ``evsrc.projection.batch`` (projection, batch size; linked to the
spans that appended its events). An append made inside a span writes that
span's W3C ``traceparent`` into each event's metadata (unless the event has
one), which is how a projection's batch — or a process manager's reaction —
links back to the command that caused the event. Metrics: see
``docs/operations.md`` and :mod:`evsrc.telemetry_metrics`.

Install with ``pip install 'evsrc[otel]'``; configure the SDK (providers,
exporters) in the application, as usual.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from evsrc.errors import ConfigurationError, InvalidInputError
from evsrc.records import Committed, NewEvent
from evsrc.store import DelegatingStore, EventStore
from evsrc.telemetry_metrics import Instruments, instruments_for, metric_readers, watch_lag

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence

    from evsrc.records import Checkpoint, Conflict, RecordedEvent

__all__ = ["TRACEPARENT", "InstrumentedStore", "Live", "Telemetry", "instrument", "watch_lag"]

#: The metadata key that carries the W3C trace context of the appending span.
TRACEPARENT: Final = "traceparent"
#: At most this many links on a projection batch's span.
MAX_LINKS: Final = 32
#: Seconds between look-ups of the providers (and of their processors and readers).
RECHECK: Final = 1.0
#: At most this many calls go straight through between two reads of the clock.
MAX_QUIET_CALLS: Final = 1000
#: A subscription that waited at least this long for its next event counts as woken up.
WAKE_AFTER: Final = 0.001

_monotonic = time.monotonic
_time_ns = time.time_ns

# Attribute sets are built once and reused: the SDK only reads them.
_OUTCOME = {o: {"evsrc.outcome": o} for o in ("committed", "retried", "conflict", "error")}
_COMMAND = {o: {"evsrc.outcome": o} for o in ("accepted", "rejected", "error")}


class Live(NamedTuple):
    """What would receive evsrc's telemetry right now (``None`` for a part nobody receives)."""

    tracer: Any
    meters: Instruments | None


class Telemetry:
    """The tracer and the metric instruments of evsrc, for one pair of providers.

    ``tracer_provider`` / ``meter_provider``: ``None`` to use the global ones
    (looked up again every ``RECHECK`` seconds, so an SDK configured later is
    picked up).
    """

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        try:
            from opentelemetry import context, metrics, trace
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError as exc:
            msg = "evsrc.telemetry needs OpenTelemetry: pip install 'evsrc[otel]'"
            raise ConfigurationError(msg) from exc
        self._trace = trace
        self._context = context
        self._metrics = metrics
        self._client = trace.SpanKind.CLIENT
        self._internal = trace.SpanKind.INTERNAL
        self._error = trace.StatusCode.ERROR
        self._propagator = TraceContextTextMapPropagator()
        self._tp_given = tracer_provider
        self._mp_given = meter_provider
        self._tp: Any = object()
        self._tracer: Any = None
        self._mp: Any = object()
        self._meters: Instruments | None = None
        self._live: Live | None = None
        self._until = 0.0
        self._granted = 1
        self._granted_at = 0.0
        #: Calls that may go straight through, nothing receiving telemetry (see live()).
        self.quiet_calls = 0

    def live(self) -> Live | None:
        """What would receive telemetry now; ``None`` when nothing would (the one check).

        Looked up at most every ``RECHECK`` seconds: a provider, processor or
        reader configured later is seen then (or at once after :meth:`refresh`).
        """
        now = _monotonic()
        if now >= self._until:
            self._until = now + RECHECK
            tracer, meters = self.tracer(), self.instruments()
            self._live = None if tracer is None and meters is None else Live(tracer, meters)
        if self._live is None:
            # The clock is slow to read on some machines: the next this-many calls
            # pass straight through without reading it — about RECHECK seconds' worth
            # at the rate seen since the last grant, at most MAX_QUIET_CALLS.
            elapsed = now - self._granted_at
            budget = self._granted * RECHECK / elapsed if elapsed > 0 else MAX_QUIET_CALLS
            self._granted = self.quiet_calls = max(1, min(MAX_QUIET_CALLS, int(budget)))
            self._granted_at = now
        else:
            self.quiet_calls = 0
        return self._live

    def refresh(self) -> None:
        """Look the providers, processors and readers up again on the next call."""
        self._until = 0.0
        self.quiet_calls = 0

    def disabled(self) -> bool:
        """Whether nothing would receive traces or metrics."""
        return self.live() is None

    def tracer(self) -> Any:
        """The evsrc tracer, or ``None`` when no span would reach a span processor."""
        tp = self._tp_given if self._tp_given is not None else self._trace.get_tracer_provider()
        if tp is not self._tp:
            self._tp = tp
            noop = (self._trace.ProxyTracerProvider, self._trace.NoOpTracerProvider)
            self._tracer = None if isinstance(tp, noop) else tp.get_tracer("evsrc")
        if self._tracer is None or not _has_span_processors(tp):
            return None
        return self._tracer

    def instruments(self) -> Instruments | None:
        """The metric instruments, or ``None`` when no reader would collect them."""
        mp = self._mp_given if self._mp_given is not None else self._metrics.get_meter_provider()
        if mp is not self._mp:
            self._mp = mp
            name = type(mp).__name__
            noop = name in ("_ProxyMeterProvider", "NoOpMeterProvider") or not metric_readers(mp)
            self._meters = None if noop else instruments_for(mp)
        return self._meters

    # -- spans ----------------------------------------------------------------------------

    def start(self, tracer: Any, name: str, attributes: dict[str, Any], kind: Any) -> Any:
        """A span made current (returns ``(span, token)``; end it with :meth:`end`)."""
        span = tracer.start_span(name, kind=kind, attributes=attributes)
        # Current even when not recording: its children then follow its sampling decision.
        token = self._context.attach(self._trace.set_span_in_context(span))
        return span, token

    def end(self, span: Any, token: Any, error: BaseException | None) -> None:
        """Detach and end a span from :meth:`start`, marking ``error`` on it as the SDK does."""
        self._context.detach(token)
        if error is not None and span.is_recording():
            span.record_exception(error)
            status = self._trace.Status(self._error, f"{type(error).__name__}: {error}")
            span.set_status(status)
        span.end()

    # -- trace context in metadata ------------------------------------------------------

    def stamp(self, events: Sequence[NewEvent]) -> Sequence[NewEvent]:
        """``events`` with the current span's ``traceparent`` in their metadata (if any span)."""
        sc = self._trace.get_current_span().get_span_context()
        if not sc.is_valid:
            return events
        # What TraceContextTextMapPropagator.inject writes, without the carrier round trip.
        parent = f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"
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
        live = self.live()
        if live is None:
            yield
            return
        meters = live.meters
        if meters is not None:
            attrs = meters.projection_attributes(name)
            meters.projection_batch.record(len(events), attrs)
            age = (datetime.now(UTC) - events[-1].recorded_at).total_seconds()
            meters.projection_lag.record(max(0.0, age), attrs)
        tracer = live.tracer
        if tracer is None:
            yield
            return
        attributes = {"evsrc.projection": name, "evsrc.batch_size": len(events)}
        with tracer.start_as_current_span(
            "evsrc.projection.batch", attributes=attributes, links=self.links(events)
        ):
            yield


def _has_span_processors(tp: Any) -> bool:
    """Whether a span from ``tp`` would reach a span processor.

    Reads the SDK's tuple of processors — not public API, so anything else (a
    provider that is not the SDK's, an SDK that moved it) counts as having one.
    """
    active = getattr(tp, "_active_span_processor", None)
    processors = getattr(active, "_span_processors", None)
    return not isinstance(processors, tuple) or len(processors) > 0


class InstrumentedStore(DelegatingStore):
    """An event store that traces and measures its appends, and stamps the trace context.

    Everything else is delegated to the wrapped store (``.inner``). A store
    with public attributes of its own (``pool``, ``schema`` …) is wrapped by a
    subclass that forwards those too, so backend runners accept it.
    """

    def __init__(self, inner: EventStore, telemetry: Telemetry) -> None:
        super().__init__(inner)
        self.telemetry = telemetry

    # Plain methods returning the coroutine: while nothing would receive telemetry,
    # the caller awaits the wrapped store's own coroutine, with no frame of ours.
    def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Coroutine[Any, Any, Committed | Conflict]:
        """``append_expect`` of the wrapped store, traced and measured."""
        t = self.telemetry
        if t.quiet_calls:
            t.quiet_calls -= 1
            return self.inner.append_expect(stream, expected, events)
        return self._append(stream, expected, events)

    def append(self, stream: str, events: Sequence[NewEvent]) -> Coroutine[Any, Any, Committed]:
        """``append`` of the wrapped store, traced and measured."""
        t = self.telemetry
        if t.quiet_calls:
            t.quiet_calls -= 1
            return self.inner.append(stream, events)
        return self._append_any(stream, events)

    async def _append_any(self, stream: str, events: Sequence[NewEvent]) -> Committed:
        result = await self._append(stream, None, events)
        assert isinstance(result, Committed)
        return result

    async def _append(
        self, stream: str, expected: int | None, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        t = self.telemetry
        live = t.live()
        if live is None:
            return await self._call(stream, expected, events)
        tracer, meters = live
        span = token = None
        if tracer is not None:
            events = t.stamp(events)
            attributes = {"evsrc.stream": stream, "evsrc.event_count": len(events)}
            span, token = t.start(tracer, "evsrc.append", attributes, t._client)
        outcome = "error"
        error: BaseException | None = None
        start = _monotonic()
        try:
            result = await self._call(stream, expected, events)
            if isinstance(result, Committed):
                outcome = "retried" if result.retried else "committed"
            else:
                outcome = "conflict"
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            if span is not None:
                if span.is_recording():
                    span.set_attribute("evsrc.outcome", outcome)
                t.end(span, token, error)
            if meters is not None:
                meters.append_duration.record(_monotonic() - start, _OUTCOME[outcome])
                if outcome == "committed":
                    meters.append_events.record(len(events))
                elif outcome == "conflict":
                    meters.conflicts.add(1)

    def _call(
        self, stream: str, expected: int | None, events: Sequence[NewEvent]
    ) -> Coroutine[Any, Any, Committed | Conflict]:
        if expected is None:
            return self.inner.append(stream, events)
        return self.inner.append_expect(stream, expected, events)

    def subscribe(
        self,
        after: Checkpoint | None = None,
        *,
        stream_prefix: str | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """``subscribe`` of the wrapped store, counting wake-ups."""
        feed = self.inner.subscribe(after, stream_prefix=stream_prefix, types=types)
        live = self.telemetry.live()
        if live is None or live.meters is None:
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
                    live = self.telemetry.live()
                    if live is not None and live.meters is not None:
                        live.meters.wakeups.add(1)
                yield recorded
        finally:
            aclose = getattr(feed, "aclose", None)
            if aclose is not None:
                await aclose()


class _ForwardingStore(InstrumentedStore):
    # Only where needed: a class with __getattr__ makes every attribute lookup on
    # its instances slower (CPython cannot specialise them), the hot path's too.
    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _own_attributes(store: EventStore) -> bool:
    """Whether ``store`` has public attributes that the plain wrapper would not forward."""
    return any(not n.startswith("_") and not hasattr(InstrumentedStore, n) for n in dir(store))


def _instrument_handler(handler: Any, telemetry: Telemetry) -> Any:
    """Wrap ``handler.execute`` on the instance: a span and metrics per command."""
    execute = handler.execute

    def traced(key: str, decide: Any, **kw: Any) -> Any:
        if telemetry.quiet_calls:
            telemetry.quiet_calls -= 1
            return execute(key, decide, **kw)
        return _traced(key, decide, kw)

    async def _traced(key: str, decide: Any, kw: dict[str, Any]) -> Any:
        live = telemetry.live()
        if live is None:
            return await execute(key, decide, **kw)
        tracer, meters = live
        span = token = None
        if tracer is not None:
            attributes = {"evsrc.stream": str(key)}
            span, token = telemetry.start(tracer, "evsrc.command", attributes, telemetry._internal)
        error: BaseException | None = None
        result = "error"
        start = _monotonic()
        try:
            outcome = await execute(key, decide, **kw)
            result = "accepted" if outcome.ok else "rejected"
            if span is not None and span.is_recording():
                span.set_attribute("evsrc.attempts", outcome.attempts)
                span.set_attribute("evsrc.outcome", result)
                span.set_attribute("evsrc.event_count", len(outcome.events))
            if meters is not None and outcome.attempts > 1:
                meters.command_retries.add(outcome.attempts - 1)
            return outcome
        except BaseException as exc:
            error = exc
            raise
        finally:
            if span is not None:
                if error is not None and span.is_recording():
                    span.set_attribute("evsrc.outcome", result)
                telemetry.end(span, token, error)
            if meters is not None:
                meters.command_duration.record(_monotonic() - start, _COMMAND[result])

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
        wrapper = _ForwardingStore if _own_attributes(target) else InstrumentedStore
        return wrapper(target, telemetry)
    if isinstance(target, CommandHandler):
        return _instrument_handler(target, telemetry)
    if isinstance(target, ProjectionRunner):
        target.telemetry = telemetry
        return target
    msg = f"instrument() takes an EventStore, CommandHandler or ProjectionRunner, got {target!r}"
    raise InvalidInputError(msg, argument="target", value=target)
