"""The booking app's Prometheus metrics (``GET /metrics``), via ``prometheus-client``.

Each app has its own :class:`Metrics` (its own registry), so that several apps
in one process — tests — do not share counters. :class:`MeteredStore` wraps
the app's store and times every conditional append, counting its events
(the size of a batch) and its conflicts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from evsrc.records import Conflict
from evsrc.store import DelegatingStore, EventStore

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evsrc.records import Committed, NewEvent

__all__ = ["CONTENT_TYPE", "MeteredStore", "Metrics"]

#: The content type of the Prometheus text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The app's counters, histograms and gauges, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.commands = Counter(
            "booking_commands",
            "Booking commands by command and outcome status.",
            ["command", "status"],
            registry=r,
        )
        self.retries = Counter(
            "booking_retries",
            "Decide-and-append attempts beyond a command's first (each one followed a conflict).",
            registry=r,
        )
        self.conflicts = Counter(
            "booking_append_conflicts",
            "Conditional appends refused because the stream had moved.",
            registry=r,
        )
        self.batch_size = Histogram(
            "booking_append_batch_events",
            "Events per conditional append (concurrent commands batched together).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.append_seconds = Histogram(
            "booking_append_seconds",
            "Latency of conditional appends, committed or conflicting.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.requests = Counter(
            "booking_http_requests",
            "HTTP requests by method, route and status code.",
            ["method", "route", "status"],
            registry=r,
        )
        self.projection_lag = Gauge(
            "booking_projection_lag_events",
            "Events committed that the seats board has not folded yet (at the last scrape).",
            registry=r,
        )
        self.projection_lag_seconds = Gauge(
            "booking_projection_lag_seconds",
            "Age of the oldest event the seats board has not folded yet (at the last scrape).",
            registry=r,
        )

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class MeteredStore(DelegatingStore):
    """``store`` with its conditional appends timed and counted in ``metrics``.

    Every other call goes straight to ``store``. Closing it does not close
    ``store`` (the caller owns that).
    """

    def __init__(self, store: EventStore, metrics: Metrics) -> None:
        super().__init__(store, owns_inner=False)
        self.metrics = metrics

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """``store.append_expect``, timed; its batch size and any conflict counted."""
        started = time.perf_counter()
        result = await self.inner.append_expect(stream, expected, events)
        self.metrics.append_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(events))
        if isinstance(result, Conflict):
            self.metrics.conflicts.inc()
        return result
