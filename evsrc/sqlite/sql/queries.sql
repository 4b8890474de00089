-- The SQLite backend's statements, by name (read by evsrc/sqlite/_sql.py).
-- Every value is a bind parameter.

-- name: head
-- The stream's head row: its seq, and whether it is a tombstone (a hard
-- $stream-deleted event, docs/lifecycle.md). No row: the stream has no events.
SELECT seq, type = '$stream-deleted' AND coalesce(json_extract(data, '$.hard'), 0)
FROM evsrc_events WHERE stream = ? ORDER BY seq DESC LIMIT 1

-- name: last_position
SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'evsrc_events'), 0)

-- name: head_last
-- The stream's head, whether it is a tombstone (as "head"), and the last
-- position handed out, in one statement; always one row.
SELECT coalesce(h.seq, 0), coalesce(h.tombstoned, 0),
    coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'evsrc_events'), 0)
FROM (SELECT 1) LEFT JOIN (
    SELECT seq, type = '$stream-deleted' AND coalesce(json_extract(data, '$.hard'), 0)
        AS tombstoned
    FROM evsrc_events WHERE stream = ? ORDER BY seq DESC LIMIT 1
) h

-- name: insert
INSERT INTO evsrc_events
    (position, txn, stream, seq, id, type, version, data, metadata, recorded_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

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

-- STREAM LIFECYCLE (docs/lifecycle.md, evsrc/sqlite/_lifecycle.py)

-- name: head_type
SELECT type FROM evsrc_events WHERE stream = ? ORDER BY seq DESC LIMIT 1

-- name: read_kept_forward
-- Parameters: stream, seq lower bound (after, or the max_count floor), max_age
-- cutoff, the head (always kept), limit. Without max_age: read_forward.
-- No stream column: the caller knows it (one str fewer to build per row).
SELECT seq, position, txn, id, type, version, data, metadata, recorded_at
FROM evsrc_events
WHERE stream = ? AND seq > ? AND (recorded_at >= ? OR seq = ?)
ORDER BY seq
LIMIT ?

-- name: read_kept_backward
SELECT seq, position, txn, id, type, version, data, metadata, recorded_at
FROM evsrc_events
WHERE stream = ? AND seq > ? AND (recorded_at >= ? OR seq = ?)
ORDER BY seq DESC
LIMIT ?

-- name: read_forward
-- read_kept_forward for a stream without max_age (parameters: stream, seq lower
-- bound, limit): no per-row time comparison.
SELECT seq, position, txn, id, type, version, data, metadata, recorded_at
FROM evsrc_events
WHERE stream = ? AND seq > ?
ORDER BY seq
LIMIT ?

-- name: read_backward
SELECT seq, position, txn, id, type, version, data, metadata, recorded_at
FROM evsrc_events
WHERE stream = ? AND seq > ?
ORDER BY seq DESC
LIMIT ?

-- name: delete_stream
DELETE FROM evsrc_events WHERE stream = ?

-- name: truncate
DELETE FROM evsrc_events WHERE stream = ? AND seq < ?

-- name: get_metadata
SELECT max_count, max_age_us FROM evsrc_stream_metadata WHERE stream = ?

-- name: set_metadata
INSERT INTO evsrc_stream_metadata (stream, max_count, max_age_us, updated_at)
VALUES (?, ?, ?, ?)
ON CONFLICT (stream) DO UPDATE
SET max_count = excluded.max_count, max_age_us = excluded.max_age_us,
    updated_at = excluded.updated_at

-- name: clear_metadata
DELETE FROM evsrc_stream_metadata WHERE stream = ?

-- name: retained_streams
SELECT stream FROM evsrc_stream_metadata WHERE stream > ? ORDER BY stream LIMIT ?

-- name: sweep_stream
-- One batch of the events of stream ?1 (head ?2) below the max_count floor ?3
-- or older than the cutoff ?4 ('' for none); never the head.
DELETE FROM evsrc_events
WHERE position IN (
    SELECT position FROM evsrc_events
    WHERE stream = ? AND seq < ? AND (seq <= ? OR recorded_at < ?)
    ORDER BY seq
    LIMIT ?
)
