"""The SQLite backend: ``SqliteEventStore``, durable in one file, no server needed.

Uses only the standard library's ``sqlite3``. See ``docs/backends.md``.
"""

from evsrc.sqlite.projection import (
    SqliteCheckpointStore as SqliteCheckpointStore,
    SqliteProjectionRunner as SqliteProjectionRunner,
)
from evsrc.sqlite.store import SqliteEventStore as SqliteEventStore

__all__ = ["SqliteCheckpointStore", "SqliteEventStore", "SqliteProjectionRunner"]
