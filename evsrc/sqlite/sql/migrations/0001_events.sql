-- 0001: the event table and the version stamp.

CREATE TABLE evsrc_schema_version (
    version INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL
);

CREATE TABLE evsrc_events (
    -- Global position, assigned by the one writer holding the file's write lock:
    -- commit order (see THE GLOBAL ORDER in evsrc/sqlite/_writer.py). AUTOINCREMENT
    -- keeps a position from ever being handed out twice, even after a delete.
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The committing append: the position of its first event.
    txn INTEGER NOT NULL,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL CHECK (seq >= 1),
    id BLOB NOT NULL UNIQUE CHECK (length(id) = 16),
    type TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    data TEXT NOT NULL,
    metadata TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    UNIQUE (stream, seq)
);
