"""Reactions across aggregates: process managers, deadlines, an outbox, checkpoints as events.

See ``docs/framework.md`` ("Reactions across aggregates").
"""

from evsrc.reactions.checkpoints import StreamCheckpointStore as StreamCheckpointStore
from evsrc.reactions.deadlines import Deadline as Deadline, Deadlines as Deadlines
from evsrc.reactions.outbox import (
    DEAD_LETTERS as DEAD_LETTERS,
    FileSink as FileSink,
    LogSink as LogSink,
    OutboxDelivery as OutboxDelivery,
    OutboxDispatcher as OutboxDispatcher,
    OutboxMessage as OutboxMessage,
    Sink as Sink,
    WebhookSink as WebhookSink,
    dead_letters as dead_letters,
)
from evsrc.reactions.process import (
    ProcessManager as ProcessManager,
    Send as Send,
    reaction_id as reaction_id,
)

__all__ = [
    "DEAD_LETTERS",
    "Deadline",
    "Deadlines",
    "FileSink",
    "LogSink",
    "OutboxDelivery",
    "OutboxDispatcher",
    "OutboxMessage",
    "ProcessManager",
    "Send",
    "Sink",
    "StreamCheckpointStore",
    "WebhookSink",
    "dead_letters",
    "reaction_id",
]
