-- The current schema in one piece, for a new file. setup() runs it when the file
-- holds no evsrc schema; an older schema is brought here by migrations/NNNN_*.sql.
-- tests/sqlite/test_store.py checks that both roads reach the same catalog.

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

CREATE TABLE evsrc_checkpoints (
    name TEXT PRIMARY KEY,
    checkpoint TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE evsrc_stream_metadata (
    stream TEXT PRIMARY KEY,
    max_count INTEGER CHECK (max_count >= 1),
    max_age_us INTEGER CHECK (max_age_us > 0),
    updated_at TEXT NOT NULL
);
