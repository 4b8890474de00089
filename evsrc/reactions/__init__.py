"""Reactions across aggregates: process managers, deadlines, checkpoints kept as events.

See ``docs/framework.md`` ("Reactions across aggregates").
"""

from evsrc.reactions.checkpoints import StreamCheckpointStore as StreamCheckpointStore
from evsrc.reactions.deadlines import Deadline as Deadline, Deadlines as Deadlines
from evsrc.reactions.process import (
    ProcessManager as ProcessManager,
    Send as Send,
    reaction_id as reaction_id,
)

__all__ = [
    "Deadline",
    "Deadlines",
    "ProcessManager",
    "Send",
    "StreamCheckpointStore",
    "reaction_id",
]
