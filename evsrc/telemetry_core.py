"""The state behind evsrc's OpenTelemetry wrappers: what would receive telemetry, and spans.

:class:`Telemetry` answers the one question every instrumented call asks —
would anything receive a span or a measurement right now? — cheaply, and
starts and ends spans, writes and reads the trace context of events, and
wraps a projection's batch. :mod:`evsrc.telemetry` holds the wrappers and
``instrument``; this module imports OpenTelemetry only when a ``Telemetry``
is created.
"""

from __future__ import annotations

import time
import weakref
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from evsrc.errors import ConfigurationError
from evsrc.records import NewEvent
from evsrc.telemetry_metrics import Instruments, instruments_for, metric_readers

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from evsrc.records import RecordedEvent

__all__ = ["MAX_LINKS", "MAX_QUIET_CALLS", "RECHECK", "TRACEPARENT", "Live", "Telemetry"]

#: The metadata key that carries the W3C trace context of the appending span.
TRACEPARENT: Final = "traceparent"
#: At most this many links on a projection batch's span.
MAX_LINKS: Final = 32
#: Seconds between look-ups of the providers (and of their processors and readers).
RECHECK: Final = 1.0
#: At most this many calls go straight through between two reads of the clock.
MAX_QUIET_CALLS: Final = 1000

_monotonic = time.monotonic


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
        #: The span kinds of an append (a call to the store) and of a command.
        self.client_kind = trace.SpanKind.CLIENT
        self.internal_kind = trace.SpanKind.INTERNAL
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
        self._holders: weakref.WeakSet[Any] = weakref.WeakSet()

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
        for holder in self._holders:
            holder.quiet_calls = 0

    def share_quiet_calls(self, holder: Any) -> None:
        """Let ``holder`` keep its own copy of ``quiet_calls``; :meth:`refresh` zeroes it."""
        self._holders.add(holder)

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

    def start(
        self, tracer: Any, name: str, attributes: dict[str, Any], kind: Any, start_ns: int
    ) -> Any:
        """A span made current (returns ``(span, token)``; end it with :meth:`end`)."""
        span = tracer.start_span(name, kind=kind, attributes=attributes, start_time=start_ns)
        # Current even when not recording: its children then follow its sampling decision.
        token = self._context.attach(self._trace.set_span_in_context(span))
        return span, token

    def end(self, span: Any, token: Any, error: BaseException | None, end_ns: int) -> None:
        """Detach and end a span from :meth:`start`, marking ``error`` on it as the SDK does."""
        self._context.detach(token)
        if error is not None and span.is_recording():
            span.record_exception(error)
            status = self._trace.Status(self._error, f"{type(error).__name__}: {error}")
            span.set_status(status)
        span.end(end_time=end_ns)

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
