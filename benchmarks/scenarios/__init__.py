"""The benchmark scenarios, by name, in the order a full run takes them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from benchmarks.harness import Context

__all__ = ["SCENARIOS", "load"]

#: name -> (title, "module:function")
SCENARIOS: dict[str, tuple[str, str]] = {
    "append_expect": ("append_expect, one event", "append:run_append_expect"),
    "append_batch": ("append_expect, 100 events per append", "append:run_append_batch"),
    "read": ("Reading: a 10,000-event stream, read_all, projector catch-up", "read:run_read"),
    "hot_seat": ("The hot seat: bookers racing for few seats", "hot_seat:run_hot_seat"),
    "decision": ("Decision cost as the roster grows", "decision:run_decision"),
    "handler_cpu": (
        "Command handler CPU per command on a warm in-memory aggregate",
        "handler_cpu:run_handler_cpu",
    ),
    "sqlite": ("SQLite: appends, replay and the hot seat beside raw sqlite3", "sqlite:run_sqlite"),
    "subscribers": (
        "Appends with 50 idle subscribers beside none",
        "subscribers:run_subscribers",
    ),
    "reactions": (
        "Process-manager reactions per second and the delay from event to reaction",
        "reactions:run_reactions",
    ),
    "lifecycle": (
        "Stream lifecycle on PostgreSQL: sweeping and deleting a large stream",
        "lifecycle:run_lifecycle",
    ),
    "telemetry": (
        "OpenTelemetry on the hot paths: instrumented beside not",
        "telemetry:run_telemetry",
    ),
}


def load(name: str) -> Callable[[Context], Awaitable[None]]:
    """The coroutine function that runs scenario ``name``."""
    import importlib

    module, _, func = SCENARIOS[name][1].partition(":")
    mod = importlib.import_module(f"benchmarks.scenarios.{module}")
    fn: Callable[[Context], Awaitable[None]] = getattr(mod, func)
    return fn
