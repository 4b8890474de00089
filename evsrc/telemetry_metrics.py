"""evsrc's OpenTelemetry metric instruments, one set per meter provider, and projection lag.

:class:`Instruments` is created once per meter provider and shared by every
instrumented store, handler and runner using it (the SDK warns about an
instrument created twice, and would drop a second observable callback).
:func:`watch_lag` measures an instrumented runner's ``lag()`` periodically for
the ``evsrc.projection.lag.events`` gauge. Nothing here imports OpenTelemetry.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Final

import anyio

from evsrc.errors import ConfigurationError, InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from evsrc.projection import ProjectionRunner

__all__ = ["LAG_EVERY", "Instruments", "instruments_for", "metric_readers", "watch_lag"]

#: Seconds between two measurements of a projection's lag by :func:`watch_lag`.
LAG_EVERY: Final = 5.0

_SHARED: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()


def metric_readers(mp: Any) -> bool:
    """Whether the SDK meter provider ``mp`` has a metric reader (something collects).

    Reads the SDK's list of readers — not public API, so anything else (a
    provider that is not the SDK's, an SDK that moved it) counts as having one.
    """
    readers = getattr(mp, "_metric_readers", None)
    if readers is None:
        readers = getattr(getattr(mp, "_sdk_config", None), "metric_readers", None)
    return readers is None or len(readers) > 0


def instruments_for(mp: Any) -> Instruments:
    """The instruments of meter provider ``mp`` (created the first time)."""
    found = _SHARED.get(mp)
    if found is None:
        found = _SHARED[mp] = Instruments(mp.get_meter("evsrc"))
    return found


class Instruments:
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
        #: The last lag in events measured per projection name (by :func:`watch_lag`).
        self.lag_events: dict[str, int] = {}
        self._observation = _observation_class()
        meter.create_observable_gauge(
            "evsrc.projection.lag.events",
            callbacks=[self._observe_lag],
            unit="{event}",
            description="Events committed after a projection's checkpoint (last measured)",
        )
        self._projection_attrs: dict[str, dict[str, str]] = {}

    def projection_attributes(self, name: str) -> dict[str, str]:
        """The attribute set of projection ``name`` (one dict per name, reused)."""
        attrs = self._projection_attrs.get(name)
        if attrs is None:
            attrs = self._projection_attrs[name] = {"evsrc.projection": name}
        return attrs

    def _observe_lag(self, options: Any) -> Iterable[Any]:
        # Called from the metric reader's thread: iterate over a copy.
        return [
            self._observation(n, self.projection_attributes(name))
            for name, n in list(self.lag_events.items())
        ]


def _observation_class() -> Any:
    from opentelemetry.metrics import Observation

    return Observation


async def watch_lag(runner: ProjectionRunner, *, every: float = LAG_EVERY) -> None:
    """Measure ``runner.lag()`` every ``every`` seconds for ``evsrc.projection.lag.events``.

    The runner must be instrumented (``instrument(runner)``). Runs until
    cancelled — start it beside the runner in a task group; the gauge stops
    reporting the projection when it ends. While no metric reader would
    collect, it does not read the store. A count that stopped at ``lag()``'s
    limit is reported as that limit.
    """
    telemetry = getattr(runner, "telemetry", None)
    if telemetry is None:
        msg = "watch_lag() needs an instrumented runner: instrument(runner) first"
        raise ConfigurationError(msg)
    if isinstance(every, bool) or not isinstance(every, (int, float)) or not every > 0:
        msg = f"every must be a positive number of seconds, got {every!r}"
        raise InvalidInputError(msg, argument="every", value=every)
    name = runner.name
    reported: set[Instruments] = set()
    try:
        while True:
            live = telemetry.live()
            meters = None if live is None else live.meters
            if meters is not None:
                lag = await runner.lag()
                meters.lag_events[name] = lag.events
                reported.add(meters)
            await anyio.sleep(every)
    finally:
        for meters in reported:
            meters.lag_events.pop(name, None)
