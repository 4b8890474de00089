"""evsrc: asyncio event sourcing with optimistic concurrency.

State lives in append-only streams of events; a writer decides against what it
observed and commits with ``append_expect``, which lands only if the stream has
not moved since. See ``README.md`` and ``docs/`` for the guide.
"""

from evsrc.aggregate import (
    Aggregate as Aggregate,
    Decision as Decision,
    Rejection as Rejection,
    applies as applies,
)
from evsrc.compression import CompressingStore as CompressingStore
from evsrc.correlation import (
    CAUSATION_ID as CAUSATION_ID,
    CORRELATION_ID as CORRELATION_ID,
    correlated as correlated,
)
from evsrc.errors import (
    AggregateError as AggregateError,
    ConfigurationError as ConfigurationError,
    DuplicateEventIdError as DuplicateEventIdError,
    EventCodecError as EventCodecError,
    EventDecodeError as EventDecodeError,
    EventIdReusedError as EventIdReusedError,
    EvsrcError as EvsrcError,
    InvalidCheckpointError as InvalidCheckpointError,
    InvalidEventError as InvalidEventError,
    InvalidInputError as InvalidInputError,
    InvalidStreamError as InvalidStreamError,
    OutcomeUnknownError as OutcomeUnknownError,
    ProjectionError as ProjectionError,
    RetriesExhaustedError as RetriesExhaustedError,
    SchemaError as SchemaError,
    StoreClosedError as StoreClosedError,
    StoreUnavailableError as StoreUnavailableError,
    StreamDeletedError as StreamDeletedError,
    UnknownEventTypeError as UnknownEventTypeError,
)
from evsrc.handler import CommandHandler as CommandHandler
from evsrc.keys import InMemoryKeyStore as InMemoryKeyStore, KeyStore as KeyStore
from evsrc.lifecycle import StreamDeleted as StreamDeleted, Sweeper as Sweeper
from evsrc.models import Event as Event, EventRegistry as EventRegistry
from evsrc.outcome import Accepted as Accepted, Outcome as Outcome, Rejected as Rejected
from evsrc.parking import ParkedEvent as ParkedEvent, ParkedEvents as ParkedEvents
from evsrc.projection import (
    CheckpointStore as CheckpointStore,
    FailurePolicy as FailurePolicy,
    InMemoryCheckpointStore as InMemoryCheckpointStore,
    Lag as Lag,
    ProjectionRunner as ProjectionRunner,
    Projector as Projector,
    handles as handles,
)
from evsrc.reactions import (
    Deadline as Deadline,
    Deadlines as Deadlines,
    OutboxDispatcher as OutboxDispatcher,
    OutboxMessage as OutboxMessage,
    ProcessManager as ProcessManager,
    Send as Send,
    StreamCheckpointStore as StreamCheckpointStore,
)
from evsrc.records import (
    STREAM_DELETED as STREAM_DELETED,
    Checkpoint as Checkpoint,
    Committed as Committed,
    Conflict as Conflict,
    Deleted as Deleted,
    NewEvent as NewEvent,
    RecordedEvent as RecordedEvent,
    StreamMetadata as StreamMetadata,
)
from evsrc.retry import RetryPolicy as RetryPolicy
from evsrc.shredding import Personal as Personal, ShreddingStore as ShreddingStore
from evsrc.snapshot import (
    EventStreamSnapshotStore as EventStreamSnapshotStore,
    InMemorySnapshotStore as InMemorySnapshotStore,
    Snapshot as Snapshot,
    SnapshotStore as SnapshotStore,
)
from evsrc.store import (
    MAX_EVENT_BYTES as MAX_EVENT_BYTES,
    MAX_EVENT_VERSION as MAX_EVENT_VERSION,
    MAX_STREAM_LENGTH as MAX_STREAM_LENGTH,
    MAX_TYPE_LENGTH as MAX_TYPE_LENGTH,
    EventStore as EventStore,
)
from evsrc.telemetry import instrument as instrument
from evsrc.urls import open_store as open_store

__version__ = "0.1.0"

__all__ = [
    "CAUSATION_ID",
    "CORRELATION_ID",
    "MAX_EVENT_BYTES",
    "MAX_EVENT_VERSION",
    "MAX_STREAM_LENGTH",
    "MAX_TYPE_LENGTH",
    "STREAM_DELETED",
    "Accepted",
    "Aggregate",
    "AggregateError",
    "Checkpoint",
    "CheckpointStore",
    "CommandHandler",
    "Committed",
    "CompressingStore",
    "ConfigurationError",
    "Conflict",
    "Deadline",
    "Deadlines",
    "Decision",
    "Deleted",
    "DuplicateEventIdError",
    "Event",
    "EventCodecError",
    "EventDecodeError",
    "EventIdReusedError",
    "EventRegistry",
    "EventStore",
    "EventStreamSnapshotStore",
    "EvsrcError",
    "FailurePolicy",
    "InMemoryCheckpointStore",
    "InMemoryKeyStore",
    "InMemorySnapshotStore",
    "InvalidCheckpointError",
    "InvalidEventError",
    "InvalidInputError",
    "InvalidStreamError",
    "KeyStore",
    "Lag",
    "NewEvent",
    "OutboxDispatcher",
    "OutboxMessage",
    "Outcome",
    "OutcomeUnknownError",
    "ParkedEvent",
    "ParkedEvents",
    "Personal",
    "ProcessManager",
    "ProjectionError",
    "ProjectionRunner",
    "Projector",
    "RecordedEvent",
    "Rejected",
    "Rejection",
    "RetriesExhaustedError",
    "RetryPolicy",
    "SchemaError",
    "Send",
    "ShreddingStore",
    "Snapshot",
    "SnapshotStore",
    "StoreClosedError",
    "StoreUnavailableError",
    "StreamCheckpointStore",
    "StreamDeleted",
    "StreamDeletedError",
    "StreamMetadata",
    "Sweeper",
    "UnknownEventTypeError",
    "applies",
    "correlated",
    "handles",
    "instrument",
    "open_store",
]
