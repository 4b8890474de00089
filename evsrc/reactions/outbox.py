"""An outbox: side effects recorded with the decision that causes them, delivered at least once.

A decision returns an :class:`OutboxMessage` among its events, so the message
commits in the same append as the decision — both or neither. An
:class:`OutboxDispatcher` (a projector: run it with a
:class:`~evsrc.projection.ProjectionRunner` and a checkpoint store of its own)
reads only outbox messages and hands each to its sink, with a stable
``dedupe_key`` (the message event's id: the same on every redelivery). A sink
that fails is retried after capped, jittered pauses; after ``max_attempts``
failures the message is *dead*: recorded as an event in the stream
:data:`DEAD_LETTERS` (visible in ``python -m evsrc outbox`` and ``status``) and
the dispatcher moves on. A crash before the checkpoint moved delivers the
batch again: sinks must use the dedupe key (a webhook receiver, an e-mail
provider's idempotency key) to drop repeats.

Sinks shipped: :class:`LogSink`, :class:`FileSink` (JSON lines) and
:class:`WebhookSink` (HTTP POST through httpx: the ``webhook`` extra).
Write your own with one method, ``async def deliver(self, message)``.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable
from uuid import uuid5

import anyio
from pydantic import Field

from evsrc.errors import DuplicateEventIdError, InvalidInputError
from evsrc.models import Event
from evsrc.projection import Projector, handles
from evsrc.records import NewEvent

if TYPE_CHECKING:
    from collections.abc import Mapping

    from evsrc.records import RecordedEvent
    from evsrc.store import EventStore

__all__ = [
    "DEAD_LETTERS",
    "FileSink",
    "LogSink",
    "OutboxDelivery",
    "OutboxDispatcher",
    "OutboxMessage",
    "Sink",
    "WebhookSink",
    "dead_letters",
]

#: The stream of dead letters (messages no sink took after ``max_attempts``).
DEAD_LETTERS: Final = "$outbox-dead"
#: The type of a dead letter event.
DEAD_LETTER_EVENT: Final = "evsrc.outbox.dead"


class OutboxMessage(Event, type="evsrc.outbox"):
    """A message to the outside world, appended with the decision that causes it.

    ``sink`` names the dispatcher's sink that delivers it; ``topic`` says what
    it is about (``"waitlist.promoted"``); ``payload`` is its JSON body.
    An aggregate that emits it registers it and folds it as a no-op.
    """

    sink: str
    topic: str
    payload: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboxDelivery:
    """One delivery attempt of a message, as a sink receives it."""

    dedupe_key: str
    sink: str
    topic: str
    payload: dict[str, Any]
    stream: str
    seq: int
    metadata: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1

    def to_json(self) -> dict[str, Any]:
        """The delivery as a JSON object (what the file and webhook sinks send)."""
        return asdict(self)


@runtime_checkable
class Sink(Protocol):
    """Delivers outbox messages; raise to have the message retried."""

    async def deliver(self, message: OutboxDelivery) -> None:
        """Deliver ``message`` (at least once: drop repeats by ``message.dedupe_key``)."""
        ...


class LogSink:
    """Logs each message (logger ``evsrc.outbox`` by default) at INFO."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger if logger is not None else logging.getLogger("evsrc.outbox")

    async def deliver(self, message: OutboxDelivery) -> None:
        """Log the message with its dedupe key."""
        self.logger.info("outbox %s", message.topic, extra={"outbox": message.to_json()})


class FileSink:
    """Appends each message to a file as one JSON line (flushed before it counts as delivered)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    async def deliver(self, message: OutboxDelivery) -> None:
        """Append one JSON line."""
        line = json.dumps(message.to_json(), ensure_ascii=False, sort_keys=True, default=str)
        await anyio.to_thread.run_sync(self._write, line + "\n")

    def _write(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()


class WebhookSink:
    """POSTs each message as JSON to ``url``; a non-2xx answer or a network error retries.

    Sends the dedupe key as the ``Idempotency-Key`` header. Needs httpx
    (``pip install 'evsrc[webhook]'``); pass ``client`` to reuse one.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, client: Any = None) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            msg = f"url must be an http(s) URL, got {url!r}"
            raise InvalidInputError(msg, argument="url", value=url)
        self.url = url
        self.timeout = timeout
        self.client = client

    async def deliver(self, message: OutboxDelivery) -> None:
        """POST the message; raises on a non-2xx status."""
        import httpx  # an optional dependency (the webhook extra)

        headers = {"Idempotency-Key": message.dedupe_key}
        body = message.to_json()
        if self.client is not None:
            r = await self.client.post(self.url, json=body, headers=headers, timeout=self.timeout)
        else:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                r = await client.post(self.url, json=body, headers=headers)
        r.raise_for_status()


class OutboxDispatcher(Projector):
    """Delivers :class:`OutboxMessage` events to their sinks, at least once.

    ``sinks`` maps a sink name to a :class:`Sink`. A failed delivery is
    retried up to ``max_attempts`` times in all, pausing ``backoff`` seconds
    doubling up to ``max_backoff``, jittered (half to full); then the message
    goes to :data:`DEAD_LETTERS` and delivery moves on. ``name`` (default
    ``"evsrc.outbox"``) names its checkpoint. Messages are delivered in
    commit order; a failing sink holds up the ones behind it while it is
    retried.
    """

    name = "evsrc.outbox"

    def __init__(
        self,
        store: EventStore,
        sinks: Mapping[str, Sink],
        *,
        name: str | None = None,
        max_attempts: int = 5,
        backoff: float = 0.1,
        max_backoff: float = 30.0,
    ) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            msg = f"max_attempts must be an int >= 1, got {max_attempts!r}"
            raise InvalidInputError(msg, argument="max_attempts", value=max_attempts)
        for arg, value in (("backoff", backoff), ("max_backoff", max_backoff)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value:
                msg = f"{arg} must be a number >= 0, got {value!r}"
                raise InvalidInputError(msg, argument=arg, value=value)
        for key, sink in sinks.items():
            if not isinstance(sink, Sink):
                msg = f"sink {key!r} has no async deliver(message) method: {sink!r}"
                raise InvalidInputError(msg, argument="sinks", value=sink)
        if name is not None:
            self.name = name  # type: ignore[misc]
        self.store = store
        self.sinks = dict(sinks)
        self.max_attempts = max_attempts
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        #: Deliveries that succeeded, and messages sent to the dead letters, by this dispatcher.
        self.delivered = 0
        self.dead = 0

    def pause(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed attempts (capped, jittered)."""
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** min(failures - 1, 30))
        jitter: float = random.uniform(0.5, 1.0)
        return ceiling * jitter

    @handles(OutboxMessage)
    async def _dispatch(self, m: OutboxMessage, r: RecordedEvent) -> None:
        sink = self.sinks.get(m.sink)
        error = f"no sink named {m.sink!r}"
        attempts = 0
        if sink is not None:
            while attempts < self.max_attempts:
                attempts += 1
                delivery = OutboxDelivery(
                    str(r.id), m.sink, m.topic, dict(m.payload), r.stream, r.seq,
                    dict(r.metadata), attempts,
                )  # fmt: skip
                try:
                    await sink.deliver(delivery)
                except Exception as exc:  # a sink's failure, whatever it is, is retried
                    error = f"{type(exc).__name__}: {exc}"[:1000]
                    if attempts < self.max_attempts:
                        await anyio.sleep(self.pause(attempts))
                    continue
                self.delivered += 1
                return
        await self._bury(m, r, attempts, error)

    async def _bury(self, m: OutboxMessage, r: RecordedEvent, attempts: int, error: str) -> None:
        """Record the message as dead (once: the dead letter's id is derived from the message)."""
        dead = NewEvent(
            DEAD_LETTER_EVENT,
            {
                "dispatcher": self.name,
                "dedupe_key": str(r.id),
                "stream": r.stream,
                "seq": r.seq,
                "sink": m.sink,
                "topic": m.topic,
                "payload": dict(m.payload),
                "attempts": attempts,
                "error": error,
            },
            id=uuid5(r.id, f"dead:{self.name}"),
        )
        try:
            await self.store.append(DEAD_LETTERS, [dead])
        except DuplicateEventIdError:
            return  # buried before a crash
        self.dead += 1


async def dead_letters(store: EventStore, *, limit: int = 100) -> list[RecordedEvent]:
    """The most recent dead letters, oldest first (at most ``limit``)."""
    last = await store.last_seq(DEAD_LETTERS)
    return await store.read(DEAD_LETTERS, after=max(0, last - limit), limit=limit)
