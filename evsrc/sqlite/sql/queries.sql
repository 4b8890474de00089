-- The SQLite backend's statements, by name (read by evsrc/sqlite/_sql.py).
-- Every value is a bind parameter.

-- name: head
SELECT coalesce(max(seq), 0) FROM evsrc_events WHERE stream = ?

-- name: last_position
SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'evsrc_events'), 0)

-- name: head_last
-- The stream's head and the last position handed out, in one statement.
SELECT (SELECT coalesce(max(seq), 0) FROM evsrc_events WHERE stream = ?),
    coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'evsrc_events'), 0)

-- name: insert
INSERT INTO evsrc_events
    (position, txn, stream, seq, id, type, version, data, metadata, recorded_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: read_forward
SELECT stream, seq, position, txn, id, type, version, data, metadata, recorded_at
FROM evsrc_events
WHERE stream = ? AND seq > ?
ORDER BY seq
LIMIT ?

-- name: read_backward
SELECT stream, seq, position, txn, id, type, version, data, metadata, recorded_at
FROM evsrc_events
WHERE stream = ? AND seq > ?
ORDER BY seq DESC
LIMIT ?

-- name: read_all
-- Parameters, in order: lower position bound, last position to read, checkpoint
-- txn, checkpoint txn again, checkpoint position (plain ? placeholders: numbered
-- ones with a sequence of values are deprecated since Python 3.12); filters are
-- appended by the store (placeholders only).
SELECT stream, seq, position, txn, id, type, version, data, metadata, recorded_at
FROM evsrc_events
WHERE position > ? AND position <= ? AND (txn > ? OR (txn = ? AND position > ?))

-- name: find_ids
-- ?s: one placeholder per id, added by the store.
SELECT id, stream, seq, position, txn, type, version, data, metadata
FROM evsrc_events
WHERE id IN

-- name: schema_version
SELECT coalesce(max(version), 0) FROM evsrc_schema_version

-- name: has_schema
SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'evsrc_schema_version'

-- name: stamp_version
INSERT INTO evsrc_schema_version (version, applied_at) VALUES (?, ?)

-- name: checkpoint_load
SELECT checkpoint FROM evsrc_checkpoints WHERE name = ?

-- name: checkpoint_save
INSERT INTO evsrc_checkpoints (name, checkpoint, updated_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET checkpoint = excluded.checkpoint, updated_at = excluded.updated_at
