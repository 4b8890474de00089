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
``docs/operations.md`` and :mod:`evsrc.telemetry_metrics`; the state behind
the wrappers is :mod:`evsrc.telemetry_core`.

Install with ``pip install 'evsrc[otel]'``; configure the SDK (providers,
exporters) in the application, as usual.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from evsrc.errors import InvalidInputError
from evsrc.records import Committed
from evsrc.store import DelegatingStore, EventStore
from evsrc.telemetry_core import MAX_QUIET_CALLS, RECHECK, TRACEPARENT, Live, Telemetry
from evsrc.telemetry_metrics import watch_lag

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine, Sequence

    from evsrc.records import Checkpoint, Conflict, NewEvent, RecordedEvent

__all__ = [
    "MAX_QUIET_CALLS",
    "RECHECK",
    "TRACEPARENT",
    "InstrumentedStore",
    "Live",
    "Telemetry",
    "instrument",
    "watch_lag",
]

#: A subscription that waited at least this long for its next event counts as woken up.
WAKE_AFTER: Final = 0.001

_time_ns = time.time_ns

# Attribute sets are built once and reused: the SDK only reads them.
_OUTCOME = {o: {"evsrc.outcome": o} for o in ("committed", "retried", "conflict", "error")}
_COMMAND = {o: {"evsrc.outcome": o} for o in ("accepted", "rejected", "error")}


class InstrumentedStore(DelegatingStore):
    """An event store that traces and measures its appends, and stamps the trace context.

    Everything else is delegated to the wrapped store (``.inner``). A store
    whose class has public attributes of its own (``pool``, ``schema`` …) is
    wrapped by a subclass that forwards every attribute it lacks, so backend
    runners accept it.
    """

    def __init__(self, inner: EventStore, telemetry: Telemetry) -> None:
        super().__init__(inner)
        self.telemetry = telemetry
        #: This store's own copy of ``telemetry.quiet_calls`` (see ``Telemetry.live``).
        self.quiet_calls = 0
        telemetry.share_quiet_calls(self)

    # Plain methods returning the coroutine: while nothing would receive telemetry,
    # the caller awaits the wrapped store's own coroutine, with no frame of ours.
    # The counter lives on the store itself: one object fewer touched per call.
    def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Coroutine[Any, Any, Committed | Conflict]:
        """``append_expect`` of the wrapped store, traced and measured."""
        if self.quiet_calls:
            self.quiet_calls -= 1
            return self.inner.append_expect(stream, expected, events)
        return self._append(stream, expected, events)

    def append(self, stream: str, events: Sequence[NewEvent]) -> Coroutine[Any, Any, Committed]:
        """``append`` of the wrapped store, traced and measured."""
        if self.quiet_calls:
            self.quiet_calls -= 1
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
        self.quiet_calls = t.quiet_calls
        if live is None:
            return await self._call(stream, expected, events)
        tracer, meters = live
        span = token = None
        # One clock for the span and the duration metric: the SDK would read its own.
        start = _time_ns()
        if tracer is not None:
            events = t.stamp(events)
            attributes = {"evsrc.stream": stream, "evsrc.event_count": len(events)}
            span, token = t.start(tracer, "evsrc.append", attributes, t.client_kind, start)
        outcome = "error"
        error: BaseException | None = None
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
            end = _time_ns()
            if span is not None:
                if span.is_recording():
                    span.set_attribute("evsrc.outcome", outcome)
                t.end(span, token, error, end)
            if meters is not None:
                meters.append_duration.record((end - start) / 1e9, _OUTCOME[outcome])
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
    """Whether ``store``'s class has public attributes that the plain wrapper lacks.

    The class, not the instance: ``dir(instance)`` would make CPython build the
    instance's ``__dict__``, and every attribute lookup of the store slower.
    """
    cls = type(store)
    return any(not n.startswith("_") and not hasattr(InstrumentedStore, n) for n in dir(cls))


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
        start = _time_ns()
        if tracer is not None:
            attributes = {"evsrc.stream": str(key)}
            span, token = telemetry.start(
                tracer, "evsrc.command", attributes, telemetry.internal_kind, start
            )
        error: BaseException | None = None
        result = "error"
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
            end = _time_ns()
            if span is not None:
                if error is not None and span.is_recording():
                    span.set_attribute("evsrc.outcome", result)
                telemetry.end(span, token, error, end)
            if meters is not None:
                meters.command_duration.record((end - start) / 1e9, _COMMAND[result])

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
