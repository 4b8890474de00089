-- 0002: projection checkpoints, kept in the same file as the events and read models.

CREATE TABLE evsrc_checkpoints (
    name TEXT PRIMARY KEY,
    checkpoint TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
