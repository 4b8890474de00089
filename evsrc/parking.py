"""Parked (dead-letter) events: where a projection puts an event it cannot handle, and continues.

A runner whose :class:`~evsrc.projection.FailurePolicy` parks appends a record
to the stream ``$parked:<projection>`` in the event store itself, so every
backend has a dead-letter store and the admin command reads it like any
stream. The stream is a log, folded into the state of each parked event::

    evsrc.parked            the event (stream, seq, id, type, checkpoint), the error, attempts
    evsrc.parked.replay     an operator asked for a replay (``python -m evsrc parked replay``)
    evsrc.parked.replayed   the active runner handled it again, successfully
    evsrc.parked.failed     the replay failed again (the error); it stays parked
    evsrc.parked.discarded  an operator gave up on it

Record ids are derived from the projection and the event (``uuid5``), so
re-parking after a crash is idempotent. ``docs/operations.md`` ("Parked
events") has the procedure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace as _replace
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID, uuid5

from evsrc.errors import DuplicateEventIdError, InvalidInputError
from evsrc.records import Checkpoint, NewEvent

if TYPE_CHECKING:
    from datetime import datetime

    from evsrc.records import RecordedEvent
    from evsrc.store import EventStore

__all__ = ["PARKED_PREFIX", "ParkedEvent", "ParkedEvents", "parked_projections"]

#: Parked streams are named ``$parked:<projection>``; projections never read them.
PARKED_PREFIX: Final = "$parked:"
PARKED: Final = "evsrc.parked"
REPLAY: Final = "evsrc.parked.replay"
REPLAYED: Final = "evsrc.parked.replayed"
FAILED: Final = "evsrc.parked.failed"
DISCARDED: Final = "evsrc.parked.discarded"
_MARKS: Final = {REPLAY, REPLAYED, FAILED, DISCARDED}
_NAMESPACE: Final = UUID("5d0f3c1e-54a8-4c8e-9a57-6a1d3a0f2b21")
#: Longest error text kept in a parked record.
MAX_ERROR_CHARS: Final = 4000


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """One parked event, as folded from its projection's parked stream.

    ``number`` is its place in the parked stream (what the admin command takes).
    ``status`` is ``"parked"``, ``"replay requested"``, ``"replayed"`` or
    ``"discarded"``; ``error`` is the last error (a failed replay's, if any).
    """

    projection: str
    number: int
    stream: str
    seq: int
    event_id: UUID
    type: str
    checkpoint: Checkpoint
    error: str
    attempts: int
    parked_at: datetime
    status: str
    replay_request: int | None = None

    @property
    def pending(self) -> bool:
        """Whether it still waits for a replay or a discard."""
        return self.status in ("parked", "replay requested")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of the fields."""
        return {
            "projection": self.projection,
            "number": self.number,
            "stream": self.stream,
            "seq": self.seq,
            "event_id": str(self.event_id),
            "type": self.type,
            "checkpoint": str(self.checkpoint),
            "error": self.error,
            "attempts": self.attempts,
            "parked_at": self.parked_at.isoformat(),
            "status": self.status,
        }


def _check_name(projection: object) -> str:
    if type(projection) is not str or not projection:
        msg = f"projection must be a non-empty str, got {projection!r}"
        raise InvalidInputError(msg, argument="projection", value=projection)
    return projection


class ParkedEvents:
    """The parked events of one projection on one store (the stream ``$parked:<name>``)."""

    def __init__(self, store: EventStore, projection: str) -> None:
        self.store = store
        self.projection = _check_name(projection)
        self.stream = PARKED_PREFIX + projection

    def _id(self, *parts: object) -> UUID:
        return uuid5(_NAMESPACE, "\x1f".join([self.projection, *map(str, parts)]))

    async def _append_once(self, event: NewEvent) -> None:
        """Append ``event``; an id already committed means it is there (a retry after a crash)."""
        try:
            await self.store.append(self.stream, [event])
        except DuplicateEventIdError:
            pass

    async def park(self, recorded: RecordedEvent, error: BaseException, attempts: int) -> None:
        """Record ``recorded`` as parked after ``attempts`` failed attempts with ``error``."""
        text = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
        data = {
            "stream": recorded.stream,
            "seq": recorded.seq,
            "event_id": str(recorded.id),
            "type": recorded.type,
            "checkpoint": str(recorded.checkpoint),
            "error": text,
            "attempts": attempts,
        }
        await self._append_once(NewEvent(PARKED, data, id=self._id("parked", recorded.id)))

    async def all(self) -> list[ParkedEvent]:
        """Every parked event of the projection, oldest first, with its current status."""
        found: dict[int, ParkedEvent] = {}
        for r in await self.store.read(self.stream):
            d = r.data
            if r.type == PARKED:
                found[r.seq] = ParkedEvent(
                    projection=self.projection,
                    number=r.seq,
                    stream=d["stream"],
                    seq=d["seq"],
                    event_id=UUID(d["event_id"]),
                    type=d["type"],
                    checkpoint=Checkpoint.parse(d["checkpoint"]),
                    error=d["error"],
                    attempts=d["attempts"],
                    parked_at=r.recorded_at,
                    status="parked",
                )
                continue
            if r.type not in _MARKS:
                continue
            p = found.get(d.get("number", -1))
            if p is None or not p.pending:
                continue
            if r.type == REPLAY:
                found[p.number] = _replace(p, status="replay requested", replay_request=r.seq)
            elif r.type == REPLAYED:
                found[p.number] = _replace(p, status="replayed")
            elif r.type == FAILED:
                found[p.number] = _replace(
                    p, status="parked", error=d.get("error", p.error), attempts=p.attempts + 1
                )
            else:
                found[p.number] = _replace(p, status="discarded")
        return list(found.values())

    async def pending(self) -> list[ParkedEvent]:
        """The parked events still waiting for a replay or a discard."""
        return [p for p in await self.all() if p.pending]

    async def get(self, number: int) -> ParkedEvent:
        """The parked event ``number``; ``InvalidInputError`` if there is none."""
        for p in await self.all():
            if p.number == number:
                return p
        msg = f"projection {self.projection!r} has no parked event number {number!r}"
        raise InvalidInputError(msg, argument="number", value=number)

    async def original(self, parked: ParkedEvent) -> RecordedEvent:
        """The stored event that was parked (read again from its stream)."""
        for r in await self.store.read(parked.stream, after=parked.seq - 1, limit=1):
            if r.id == parked.event_id:
                return r
        msg = f"{parked.stream}#{parked.seq} is gone (deleted or truncated); discard it"
        raise InvalidInputError(msg, argument="number", value=parked.number)

    async def _mark(self, kind: str, numbers: list[int] | None, **extra: Any) -> list[int]:
        targets = [p for p in await self.all() if p.pending]
        if numbers is not None:
            known = {p.number for p in targets}
            missing = [n for n in numbers if n not in known]
            if missing:
                msg = (
                    f"projection {self.projection!r} has no pending parked event numbered {missing}"
                )
                raise InvalidInputError(msg, argument="numbers", value=numbers)
            targets = [p for p in targets if p.number in set(numbers)]
        events = [NewEvent(kind, {"number": p.number, **extra}) for p in targets]
        if events:
            await self.store.append(self.stream, events)
        return [p.number for p in targets]

    async def request_replay(self, numbers: list[int] | None = None) -> list[int]:
        """Ask the projection's active runner to handle these again (all pending: ``None``)."""
        return await self._mark(REPLAY, numbers)

    async def discard(self, numbers: list[int] | None = None) -> list[int]:
        """Give up on these parked events (all pending: ``None``); the numbers discarded."""
        return await self._mark(DISCARDED, numbers)

    async def replayed(self, parked: ParkedEvent) -> None:
        """Record that ``parked`` was handled again (idempotent per replay request)."""
        key = self._id("replayed", parked.number, parked.replay_request)
        await self._append_once(NewEvent(REPLAYED, {"number": parked.number}, id=key))

    async def failed(self, parked: ParkedEvent, error: BaseException) -> None:
        """Record that the replay of ``parked`` failed again: it stays parked."""
        text = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
        key = self._id("failed", parked.number, parked.replay_request)
        data = {"number": parked.number, "error": text}
        await self._append_once(NewEvent(FAILED, data, id=key))


async def parked_projections(store: EventStore) -> list[str]:
    """The names of the projections that have a parked stream on ``store``."""
    names: set[str] = set()
    async for r in store.read_all(stream_prefix=PARKED_PREFIX, types=[PARKED]):
        names.add(r.stream[len(PARKED_PREFIX) :])
    return sorted(names)
