"""Process managers: react to events with commands for other aggregates, exactly once.

A :class:`ProcessManager` is a :class:`~evsrc.projection.Projector` whose
``@handles`` methods return commands (:class:`Send`) instead of writing a
read model. Run it with any :class:`~evsrc.projection.ProjectionRunner` (one
active runner per name, checkpoint kept like a projection's; a
:class:`~evsrc.reactions.checkpoints.StreamCheckpointStore` keeps it in the
event store itself).

Exactly once: each command a reaction sends is executed with deterministic
event ids, ``uuid5`` of the manager's name, the triggering event's id and the
command's index (:func:`reaction_id`). A crash after the command committed
but before the checkpoint moved, or a second replica handling the same event,
re-runs the reaction: the command is decided again and either decides nothing
new (the decision already happened) or re-sends events whose ids the store
already holds, which it refuses (``DuplicateEventIdError``) — taken here as
"already done". ``docs/framework.md`` ("Reactions across aggregates") has the
long form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID, uuid5

from evsrc.correlation import CORRELATION_ID, correlated
from evsrc.errors import DuplicateEventIdError, InvalidInputError
from evsrc.projection import Projector

if TYPE_CHECKING:
    from collections.abc import Callable

    from evsrc.handler import CommandHandler
    from evsrc.outcome import Outcome
    from evsrc.records import RecordedEvent

__all__ = ["ProcessManager", "Send", "reaction_id"]

#: The namespace of reaction ids (``uuid5``).
REACTIONS_NAMESPACE: Final = UUID("6b1f3c52-4f0e-5d0a-9a51-2f1e0c7d9b10")


def reaction_id(manager: str, event_id: UUID, index: int) -> UUID:
    """The seed of the event ids of command ``index`` sent by ``manager`` for ``event_id``."""
    return uuid5(REACTIONS_NAMESPACE, f"{manager}\x1f{event_id}\x1f{index}")


@dataclass(frozen=True, slots=True)
class Send:
    """A command for another aggregate: ``handler.execute(key, decide)``."""

    handler: CommandHandler[Any]
    key: str
    decide: Callable[[Any], Any]


def _sends(value: object, where: str) -> list[Send]:
    if value is None:
        return []
    if isinstance(value, Send):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(s, Send) for s in value):
        return list(value)
    msg = f"{where} must return a Send, a sequence of Send or None, got {value!r}"
    raise InvalidInputError(msg, argument="reaction", value=value)


def _correlation(recorded: RecordedEvent) -> str:
    """The correlation id an event passes on: its own, else its id."""
    value = recorded.metadata.get(CORRELATION_ID)
    if isinstance(value, str) and 0 < len(value) <= 200 and "\x00" not in value:
        return value
    return str(recorded.id)


class ProcessManager(Projector):
    """Base class of process managers; ``name`` identifies its checkpoint and its ids.

    Mark async methods with :func:`~evsrc.projection.handles`; each gets the
    decoded event and the :class:`~evsrc.records.RecordedEvent` and returns the
    commands to send (a :class:`Send`, a list of them, or ``None``). They are
    executed in order, each stamped with the triggering event's correlation
    id and, as causation id, the event's id; the handler itself runs inside
    :func:`~evsrc.correlation.correlated` with that correlation id (so a
    deadline it schedules carries it too). ``outcomes`` of the commands go
    to :meth:`reacted` (override it to log or count).

    Per-key state (a saga) is an aggregate of its own, in its own stream:
    send it commands like any other (``Send(saga_handler, key, decide)``),
    and read it with ``await saga_handler.load(key)``.
    """

    def event_types(self) -> list[str] | None:
        """The event types of its handlers (the runner reads only those)."""
        return sorted(self._handlers)

    async def handle(self, recorded: RecordedEvent, *context: Any) -> None:
        """Decode the event, call its handler and send the commands it returns."""
        attr = self._handlers.get(recorded.type)
        if attr is None:
            return
        event = self.registry.decode(recorded)
        method = getattr(self, attr)
        with correlated(_correlation(recorded)):  # for what the handler does itself
            value = await method(event, recorded)
        sends = _sends(value, f"{type(self).__qualname__}.{attr}")
        for index, send in enumerate(sends):
            out = await self.send(send, recorded, index)
            await self.reacted(recorded, send, out)

    async def send(
        self, send: Send, recorded: RecordedEvent, index: int
    ) -> Outcome[Any, Any] | None:
        """Execute command ``index`` of the reaction to ``recorded``; ``None``: done before."""
        try:
            return await send.handler.execute(
                send.key,
                send.decide,
                correlation_id=_correlation(recorded),
                causation_id=recorded.id,
                event_ids=reaction_id(self.name, recorded.id, index),
            )
        except DuplicateEventIdError:
            return None  # a re-run: this command's events are already committed

    async def reacted(
        self, recorded: RecordedEvent, send: Send, outcome: Outcome[Any, Any] | None
    ) -> None:
        """Called after each command; ``outcome`` is ``None`` when it had run before."""
