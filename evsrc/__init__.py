"""evsrc: asyncio event sourcing with optimistic concurrency.

State lives in append-only streams of events; a writer decides against what it
observed and commits with ``append_expect``, which lands only if the stream has
not moved since. See ``README.md`` and ``docs/`` for the guide.
"""

from evsrc.aggregate import Aggregate as Aggregate
from evsrc.aggregate import Decision as Decision
from evsrc.aggregate import Rejection as Rejection
from evsrc.aggregate import applies as applies
from evsrc.codec import Event as Event
from evsrc.codec import EventRegistry as EventRegistry
from evsrc.errors import (
    AggregateError as AggregateError,
)
from evsrc.errors import (
    DuplicateEventIdError as DuplicateEventIdError,
)
from evsrc.errors import (
    EventCodecError as EventCodecError,
)
from evsrc.errors import (
    EventDecodeError as EventDecodeError,
)
from evsrc.errors import (
    EvsrcError as EvsrcError,
)
from evsrc.errors import (
    InvalidCheckpointError as InvalidCheckpointError,
)
from evsrc.errors import (
    InvalidEventError as InvalidEventError,
)
from evsrc.errors import (
    InvalidInputError as InvalidInputError,
)
from evsrc.errors import (
    InvalidStreamError as InvalidStreamError,
)
from evsrc.errors import (
    OutcomeUnknownError as OutcomeUnknownError,
)
from evsrc.errors import (
    ProjectionError as ProjectionError,
)
from evsrc.errors import (
    RetriesExhaustedError as RetriesExhaustedError,
)
from evsrc.errors import (
    SchemaError as SchemaError,
)
from evsrc.errors import (
    StoreClosedError as StoreClosedError,
)
from evsrc.errors import (
    StoreUnavailableError as StoreUnavailableError,
)
from evsrc.errors import (
    UnknownEventTypeError as UnknownEventTypeError,
)
from evsrc.events import Checkpoint as Checkpoint
from evsrc.events import Committed as Committed
from evsrc.events import Conflict as Conflict
from evsrc.events import NewEvent as NewEvent
from evsrc.events import RecordedEvent as RecordedEvent
from evsrc.handler import CommandHandler as CommandHandler
from evsrc.handler import Outcome as Outcome
from evsrc.projection import CheckpointStore as CheckpointStore
from evsrc.projection import InMemoryCheckpointStore as InMemoryCheckpointStore
from evsrc.projection import Lag as Lag
from evsrc.projection import ProjectionRunner as ProjectionRunner
from evsrc.projection import Projector as Projector
from evsrc.projection import handles as handles
from evsrc.snapshot import EventStreamSnapshotStore as EventStreamSnapshotStore
from evsrc.snapshot import InMemorySnapshotStore as InMemorySnapshotStore
from evsrc.snapshot import Snapshot as Snapshot
from evsrc.snapshot import SnapshotStore as SnapshotStore
from evsrc.store import MAX_EVENT_BYTES as MAX_EVENT_BYTES
from evsrc.store import MAX_STREAM_LENGTH as MAX_STREAM_LENGTH
from evsrc.store import MAX_TYPE_LENGTH as MAX_TYPE_LENGTH
from evsrc.store import EventStore as EventStore

__version__ = "0.1.0"

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_STREAM_LENGTH",
    "MAX_TYPE_LENGTH",
    "Aggregate",
    "AggregateError",
    "Checkpoint",
    "CheckpointStore",
    "CommandHandler",
    "Committed",
    "Conflict",
    "Decision",
    "DuplicateEventIdError",
    "Event",
    "EventCodecError",
    "EventDecodeError",
    "EventRegistry",
    "EventStore",
    "EventStreamSnapshotStore",
    "EvsrcError",
    "InMemoryCheckpointStore",
    "InMemorySnapshotStore",
    "InvalidCheckpointError",
    "InvalidEventError",
    "InvalidInputError",
    "InvalidStreamError",
    "Lag",
    "NewEvent",
    "Outcome",
    "OutcomeUnknownError",
    "ProjectionError",
    "ProjectionRunner",
    "Projector",
    "RecordedEvent",
    "Rejection",
    "RetriesExhaustedError",
    "SchemaError",
    "Snapshot",
    "SnapshotStore",
    "StoreClosedError",
    "StoreUnavailableError",
    "UnknownEventTypeError",
    "applies",
    "handles",
]
