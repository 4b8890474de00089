"""The exceptions evsrc raises, in one tree.

A ``Conflict`` from ``append_expect`` is *not* an exception: it is the normal
outcome of a race and comes back as a value. Everything below is raised::

    EvsrcError                      root; catch this to catch everything evsrc raises
    ├── InvalidInputError           bad argument, refused before any write (also ValueError)
    │   ├── InvalidStreamError      empty, over-long or NUL-bearing stream name
    │   ├── InvalidEventError       empty event list, bad type/version, non-JSON or oversized data
    │   └── InvalidCheckpointError  a checkpoint that cannot be parsed or is of the wrong kind
    ├── DuplicateEventIdError       an event id already committed at another place
    │   └── EventIdReusedError      an event id re-sent to its own position with different content
    ├── ConfigurationError          the store is misconfigured (bad URL or DSN, unknown database
    │                               or role, bad password, missing privilege): fix, don't retry
    ├── StreamDeletedError          the stream was hard-deleted (tombstoned): no reads, no writes
    ├── StoreClosedError            the store was closed
    ├── StoreUnavailableError       the backend cannot be reached (connection refused, pool closed)
    │   └── OutcomeUnknownError     an append was interrupted; it may or may not have committed.
    │                               Retrying the same append (same event ids) is safe.
    ├── SchemaError                 the database schema is missing, or newer than this library
    ├── EventCodecError             an event could not be encoded or decoded by the registry
    │   ├── UnknownEventTypeError   no model registered for (type, version)
    │   └── EventDecodeError        the stored payload no longer validates against its model
    ├── AggregateError              a misdeclared aggregate, or an event it cannot apply
    ├── RetriesExhaustedError       a command kept conflicting past the attempt limit
    └── ProjectionError             a projector failed while handling an event

Every exception carries its facts as attributes (``stream``, ``expected``,
``event_id`` …) as well as in its message; the class docstring is the default
message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uuid import UUID

__all__ = [
    "AggregateError",
    "ConfigurationError",
    "DuplicateEventIdError",
    "EventCodecError",
    "EventDecodeError",
    "EventIdReusedError",
    "EvsrcError",
    "InvalidCheckpointError",
    "InvalidEventError",
    "InvalidInputError",
    "InvalidStreamError",
    "OutcomeUnknownError",
    "ProjectionError",
    "RetriesExhaustedError",
    "SchemaError",
    "StoreClosedError",
    "StoreUnavailableError",
    "StreamDeletedError",
    "UnknownEventTypeError",
]


class EvsrcError(Exception):
    """An evsrc error."""

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        self.message = message or (self.__doc__ or "").strip().splitlines()[0]
        for name, value in fields.items():
            setattr(self, name, value)
        super().__init__(self.message)


class InvalidInputError(EvsrcError, ValueError):
    """Invalid input; nothing was written."""

    argument: str | None
    value: Any

    def __init__(
        self, message: str | None = None, *, argument: str | None = None, value: Any = None
    ) -> None:
        super().__init__(message, argument=argument, value=value)


class InvalidStreamError(InvalidInputError):
    """Invalid stream name; nothing was written."""


class InvalidEventError(InvalidInputError):
    """Invalid event; nothing was written."""


class InvalidCheckpointError(InvalidInputError):
    """Invalid checkpoint."""


class DuplicateEventIdError(EvsrcError):
    """An event id is already committed at another place; nothing was written."""

    event_id: UUID
    stream: str | None
    seq: int | None

    def __init__(
        self,
        message: str | None = None,
        *,
        event_id: UUID,
        stream: str | None = None,
        seq: int | None = None,
    ) -> None:
        if message is None:
            where = f" as {stream!r} seq {seq}" if stream is not None else ""
            message = (
                f"event id {event_id} is already committed{where}; "
                "an id may only be re-sent to the same position (an idempotent retry)"
            )
        super().__init__(message, event_id=event_id, stream=stream, seq=seq)


class EventIdReusedError(DuplicateEventIdError):
    """An event id re-sent to its own position with different content; nothing was written.

    A retry is idempotent only if it re-sends the same events: same ids, types,
    versions, data and metadata. Reusing an id for a different event is a bug
    in the caller (say, an id derived from too little of the event).
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        event_id: UUID,
        stream: str | None = None,
        seq: int | None = None,
    ) -> None:
        if message is None:
            message = (
                f"event id {event_id} is already committed as {stream!r} seq {seq} with "
                "different content (type, version, data or metadata); an idempotent retry "
                "must re-send the same events"
            )
        super().__init__(message, event_id=event_id, stream=stream, seq=seq)


class ConfigurationError(EvsrcError):
    """The store is misconfigured; retrying will not help until the configuration is fixed."""


class StreamDeletedError(EvsrcError):
    """The stream was hard-deleted: its name is tombstoned; nothing was read or written.

    A tombstone is forever: the stream cannot be read, appended to or started
    again (a retry of an append whose events were deleted cannot bring them
    back). Use another stream name.
    """

    stream: str | None

    def __init__(self, message: str | None = None, *, stream: str | None = None) -> None:
        if message is None and stream is not None:
            message = f"stream {stream!r} was hard-deleted; it can never be read or written again"
        super().__init__(message, stream=stream)


class StoreClosedError(EvsrcError):
    """The event store is closed."""


class StoreUnavailableError(EvsrcError):
    """The event store's backend cannot be reached."""


class OutcomeUnknownError(StoreUnavailableError):
    """The append was interrupted and may or may not have committed; retrying it is safe."""

    stream: str | None

    def __init__(self, message: str | None = None, *, stream: str | None = None) -> None:
        super().__init__(message, stream=stream)


class SchemaError(EvsrcError):
    """The database schema is missing or incompatible; run setup()."""


class EventCodecError(EvsrcError):
    """An event could not be encoded or decoded."""


class UnknownEventTypeError(EventCodecError):
    """No event model is registered for this type and version."""

    type: str | None
    version: int | None

    def __init__(
        self, message: str | None = None, *, type: str | None = None, version: int | None = None
    ) -> None:
        if message is None and type is not None:
            message = f"no event model registered for type {type!r} version {version}"
        super().__init__(message, type=type, version=version)


class EventDecodeError(EventCodecError):
    """A stored event no longer validates against its model."""

    @classmethod
    def at(cls, recorded: Any, problem: str) -> EventDecodeError:
        """The error for ``recorded`` (a ``RecordedEvent``), naming it: ``event S#N: problem``."""
        return cls(
            f"event {recorded.stream}#{recorded.seq}: {problem}",
            type=recorded.type,
            version=recorded.version,
            stream=recorded.stream,
            seq=recorded.seq,
            event_id=recorded.id,
        )


class AggregateError(EvsrcError):
    """The aggregate is misdeclared or cannot apply an event."""


class RetriesExhaustedError(EvsrcError):
    """The command kept conflicting with other writers past its attempt limit."""

    stream: str | None
    attempts: int | None

    def __init__(
        self, message: str | None = None, *, stream: str | None = None, attempts: int | None = None
    ) -> None:
        if message is None and stream is not None:
            message = (
                f"command on {stream!r} conflicted {attempts} times; "
                "other writers keep moving the stream"
            )
        super().__init__(message, stream=stream, attempts=attempts)


class ProjectionError(EvsrcError):
    """A projector failed while handling an event."""

    projection: str | None
    event: Any
    cause: BaseException | None

    def __init__(
        self,
        message: str | None = None,
        *,
        projection: str | None = None,
        event: Any = None,
        cause: BaseException | None = None,
    ) -> None:
        if message is None and projection is not None:
            where = f" at {event.stream}#{event.seq}" if event is not None else ""
            message = f"projection {projection!r} failed{where}: {cause!r}"
        super().__init__(message, projection=projection, event=event, cause=cause)
