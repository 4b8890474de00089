"""A tiny two-aggregate domain for reaction tests: pings cause pongs elsewhere."""

from __future__ import annotations

from typing import Any

from evsrc import (
    Aggregate,
    CommandHandler,
    Event,
    EventRegistry,
    ProcessManager,
    RecordedEvent,
    Send,
    applies,
    handles,
)


class Pinged(Event, type="test.pinged"):
    n: int


class Ponged(Event, type="test.ponged"):
    n: int


class Pinger(Aggregate):
    stream_prefix = "pinger"
    registry = EventRegistry(Pinged)

    @applies(Pinged)
    def _pinged(self, e: Pinged) -> None:
        pass


class Ponger(Aggregate):
    """Appends a pong for every command: NOT idempotent by itself, so doubles would show."""

    stream_prefix = "ponger"
    registry = EventRegistry(Ponged)

    def __init__(self) -> None:
        super().__init__()
        self.pongs: list[int] = []

    @applies(Ponged)
    def _ponged(self, e: Ponged) -> None:
        self.pongs.append(e.n)


class CrashError(Exception):
    """Raised by the test manager after a chosen reaction committed."""


class PingPong(ProcessManager):
    """Every ping makes two pongs: in ``ponger:all`` and in ``ponger:<n % 3>``."""

    name = "ping-pong"
    stream_prefix = "pinger:"

    def __init__(self, pongs: CommandHandler[Ponger], crash_after: int | None = None) -> None:
        self.pongs = pongs
        self.crash_after = crash_after
        self.seen: list[RecordedEvent] = []

    @handles(Pinged)
    async def on_ping(self, e: Pinged, r: RecordedEvent) -> list[Send]:
        self.seen.append(r)
        return [
            Send(self.pongs, "all", lambda s: [Ponged(n=e.n)]),
            Send(self.pongs, str(e.n % 3), lambda s: [Ponged(n=e.n)]),
        ]

    async def reacted(self, recorded: RecordedEvent, send: Send, outcome: Any) -> None:
        if self.crash_after is not None and recorded.data["n"] == self.crash_after:
            raise CrashError(recorded.data["n"])
