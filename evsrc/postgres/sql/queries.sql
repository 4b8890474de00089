-- Named queries of PostgresEventStore. Each starts at a "-- name: <name>" line.
-- {schema} is replaced once, when the store is created, by the quoted schema
-- name; every value is a bind parameter. asyncpg prepares each one per
-- connection on first use and keeps it in its statement cache. Comments are
-- sent too, and pg_stat_activity shows a statement's first 1024 bytes: keep
-- those above a write short enough that its INSERT/DELETE shows there.

-- name: append
-- One statement, no lock (docs/postgres.md, "Appending"): read the head row, and
-- insert after it iff it is $2 ($2 null: any) and not a tombstone. A race on
-- the same head is the unique (stream, seq) key's: the later writer waits, then
-- fails. The snapshot precedes the transaction id, so (commit, position) keeps
-- seq order. No insert: "retried" says whether an id is stored.
WITH h AS (
    SELECT coalesce(t.seq, 0) AS head, coalesce(t.dead, false) AS tombstoned
    FROM (SELECT) one LEFT JOIN LATERAL (
        SELECT e.seq, e.type = '$stream-deleted'
                      AND coalesce((e.data ->> 'hard')::boolean, false) AS dead
        FROM {schema}.evsrc_events e WHERE e.stream = $1::text
        ORDER BY e.seq DESC LIMIT 1
    ) t ON true
), inserted AS (
    INSERT INTO {schema}.evsrc_events
        (stream, seq, commit, id, type, version, data, metadata)
    SELECT $1::text, h.head + u.ord, pg_current_xact_id(), u.id, u.type, u.version,
           u.data::jsonb, u.metadata::jsonb
    FROM h,
         unnest($3::uuid[], $4::text[], $5::integer[], $6::text[], $7::text[])
         WITH ORDINALITY AS u (id, type, version, data, metadata, ord)
    WHERE ($2::bigint IS NULL OR h.head = $2::bigint) AND NOT h.tombstoned
    ORDER BY u.ord
    RETURNING position, commit
)
SELECT h.head, i.position, i.commit,
       CASE WHEN i.position IS NULL AND NOT h.tombstoned THEN EXISTS (
           SELECT 1 FROM {schema}.evsrc_events e WHERE e.id = ANY ($3::uuid[])
       ) END AS retried,
       h.tombstoned
FROM h
LEFT JOIN (SELECT position, commit FROM inserted ORDER BY position DESC LIMIT 1) i ON true;

-- name: append_one
-- The append of one event, the common case: the same as "append" without the
-- arrays and the row that reports a conflict — just the insert. No row: the
-- head was not $2, or is a tombstone; the caller asks "append_refused" why.
INSERT INTO {schema}.evsrc_events
    (stream, seq, commit, id, type, version, data, metadata)
SELECT $1::text, coalesce(h.seq, 0) + 1, pg_current_xact_id(), $3::uuid, $4::text,
       $5::integer, $6::text::jsonb, $7::text::jsonb
FROM (SELECT) one
LEFT JOIN LATERAL (
    SELECT e.seq, e.type = '$stream-deleted'
                  AND coalesce((e.data ->> 'hard')::boolean, false) AS tombstoned
    FROM {schema}.evsrc_events e
    WHERE e.stream = $1::text
    ORDER BY e.seq DESC
    LIMIT 1
) h ON true
WHERE ($2::bigint IS NULL OR coalesce(h.seq, 0) = $2::bigint) AND h.tombstoned IS NOT TRUE
RETURNING seq, position, commit;

-- name: append_refused
-- After append_one inserted nothing: the stream's head now, whether it is a
-- tombstone, and whether the event's id is stored (an idempotent retry: the
-- caller looks it up).
SELECT coalesce(h.seq, 0) AS head, coalesce(h.tombstoned, false) AS tombstoned,
       EXISTS (SELECT 1 FROM {schema}.evsrc_events x WHERE x.id = $2::uuid) AS retried
FROM (SELECT) one
LEFT JOIN LATERAL (
    SELECT e.seq, e.type = '$stream-deleted'
                  AND coalesce((e.data ->> 'hard')::boolean, false) AS tombstoned
    FROM {schema}.evsrc_events e
    WHERE e.stream = $1::text
    ORDER BY e.seq DESC
    LIMIT 1
) h ON true;

-- name: find_ids
SELECT id, stream, seq, position, commit
FROM {schema}.evsrc_events
WHERE id = ANY ($1::uuid[]);

-- name: last_seq
SELECT h.seq, h.tombstoned FROM {schema}.evsrc_head($1) h;

-- name: read_forward
-- recorded_at as Unix seconds, and as itself outside 1900-2100 (_rows.py says why).
SELECT e.seq, e.position, e.commit, e.id, e.type, e.version, e.data, e.metadata,
       date_part('epoch', e.recorded_at),
       CASE WHEN e.recorded_at >= '1900-01-01 00:00+00' AND e.recorded_at < '2100-01-01 00:00+00'
            THEN NULL ELSE e.recorded_at END,
       h.tombstoned
FROM (
    SELECT x.seq, CASE WHEN x.type = '$stream-deleted'
                       THEN coalesce((x.data ->> 'hard')::boolean, false) ELSE false END
                  AS tombstoned
    FROM {schema}.evsrc_events x
    WHERE x.stream = $1
    ORDER BY x.seq DESC
    LIMIT 1
) h
LEFT JOIN {schema}.evsrc_stream_metadata m ON m.stream = $1
LEFT JOIN LATERAL (
    SELECT x.seq, x.position, x.commit, x.id, x.type, x.version, x.data, x.metadata,
           x.recorded_at
    FROM {schema}.evsrc_events x
    WHERE x.stream = $1 AND x.seq > $2 AND NOT h.tombstoned
      AND (m.max_count IS NULL OR x.seq > h.seq - m.max_count)
      AND (m.max_age IS NULL OR x.recorded_at >= now() - m.max_age OR x.seq = h.seq)
    ORDER BY x.seq
    LIMIT $3
) e ON true;

-- name: read_backward
SELECT e.seq, e.position, e.commit, e.id, e.type, e.version, e.data, e.metadata,
       date_part('epoch', e.recorded_at),
       CASE WHEN e.recorded_at >= '1900-01-01 00:00+00' AND e.recorded_at < '2100-01-01 00:00+00'
            THEN NULL ELSE e.recorded_at END,
       h.tombstoned
FROM (
    SELECT x.seq, CASE WHEN x.type = '$stream-deleted'
                       THEN coalesce((x.data ->> 'hard')::boolean, false) ELSE false END
                  AS tombstoned
    FROM {schema}.evsrc_events x
    WHERE x.stream = $1
    ORDER BY x.seq DESC
    LIMIT 1
) h
LEFT JOIN {schema}.evsrc_stream_metadata m ON m.stream = $1
LEFT JOIN LATERAL (
    SELECT x.seq, x.position, x.commit, x.id, x.type, x.version, x.data, x.metadata,
           x.recorded_at
    FROM {schema}.evsrc_events x
    WHERE x.stream = $1 AND x.seq > $2 AND NOT h.tombstoned
      AND (m.max_count IS NULL OR x.seq > h.seq - m.max_count)
      AND (m.max_age IS NULL OR x.recorded_at >= now() - m.max_age OR x.seq = h.seq)
    ORDER BY x.seq DESC
    LIMIT $3
) e ON true;

-- name: read_all
-- One page of the global order after ($1, $2), of transactions below $4.
-- "ready" marks rows of transactions below the snapshot's xmin: every
-- transaction with a smaller id has ended, so nothing can later commit in front
-- of them. Rows after the first unready one are committed and visible but not
-- yet orderable (an older transaction still runs); callers stop there and wait.
SELECT e.stream, e.seq, e.position, e.commit, e.id, e.type, e.version, e.data,
       e.metadata, date_part('epoch', e.recorded_at),
       CASE WHEN e.recorded_at >= '1900-01-01 00:00+00' AND e.recorded_at < '2100-01-01 00:00+00'
            THEN NULL ELSE e.recorded_at END,
       e.commit < h.xmin AS ready
FROM {schema}.evsrc_events e,
     (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) h
WHERE (e.commit, e.position) > ($1::xid8, $2::bigint) AND e.commit < $4::xid8
ORDER BY e.commit, e.position
LIMIT $3;

-- name: horizon
-- Every transaction committed by now has an id below this.
SELECT pg_snapshot_xmax(pg_current_snapshot());

-- name: oldest_xact
-- The session holding the global order back (for a warning).
SELECT pid, datname, usename, state, xact_start, left(query, 200) AS query
FROM pg_stat_activity
WHERE backend_xid IS NOT NULL
ORDER BY age(backend_xid) DESC
LIMIT 1;

-- name: schema_version
SELECT max(version) FROM {schema}.evsrc_schema_version;

-- name: stamp_version
INSERT INTO {schema}.evsrc_schema_version (version) VALUES ($1);

-- name: notify
-- A wakeup for LISTENing subscribers, in its own transaction after appends
-- commit. NOTIFY gives its transaction an id, so its commit would wait for a
-- WAL flush like an append's; a lost wakeup costs nothing (subscribers poll),
-- so this one commit is asynchronous. The payload names the sending store, which
-- ignores its own echo (its commits woke its subscribers already).
SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2);

-- name: differing_ids
-- Of events re-sent by an idempotent retry ($1 ids, $2 types, $3 versions,
-- $4 data, $5 metadata), those whose stored content differs (jsonb equality).
SELECT e.id, e.stream, e.seq
FROM unnest($1::uuid[], $2::text[], $3::integer[], $4::text[], $5::text[])
     WITH ORDINALITY AS u (id, type, version, data, metadata, ord)
JOIN {schema}.evsrc_events e ON e.id = u.id
WHERE (e.type, e.version, e.data, e.metadata)
      IS DISTINCT FROM (u.type, u.version, u.data::jsonb, u.metadata::jsonb)
ORDER BY u.ord
LIMIT 1;

-- THE ORDER AFTER A RESTORE (setup() runs these under its lock; docs/postgres.md).
-- Global order is (commit, position) with commit a transaction id of the cluster
-- that wrote the row. A logical restore copies those ids into a cluster whose
-- own counter may be behind: new appends would sort before restored events and
-- readers would wait for ever for "transactions" that never end there. The
-- repair gives every existing event commit 0 and renumbers positions 1..n in
-- the old order, so everything restored sorts first and below any snapshot's
-- xmin; checkpoints saved in evsrc_checkpoints are moved along (to "0:<rank>").

-- name: order_broken
-- Healthy, every visible row was written by a transaction below the snapshot's xmax.
SELECT EXISTS (
    SELECT 1 FROM {schema}.evsrc_events
    WHERE commit >= pg_snapshot_xmax(pg_current_snapshot())
);

-- name: repair_checkpoints
-- Before the events move: the rank of the last event at or before each checkpoint.
UPDATE {schema}.evsrc_checkpoints c
SET checkpoint = '0:' || (
    SELECT count(*) FROM {schema}.evsrc_events e
    WHERE (e.commit, e.position)
          <= (split_part(c.checkpoint, ':', 1)::xid8, split_part(c.checkpoint, ':', 2)::bigint)
)
WHERE c.checkpoint ~ '^[0-9]{1,19}:[0-9]{1,18}$';

-- name: repair_events
-- Negative first: positions are unique, and a row may take a rank another still holds.
WITH ranked AS (
    SELECT position AS old, row_number() OVER (ORDER BY commit, position) AS rank
    FROM {schema}.evsrc_events
)
UPDATE {schema}.evsrc_events e
SET commit = '0'::xid8, position = -ranked.rank
FROM ranked
WHERE e.position = ranked.old;

-- name: repair_positions
UPDATE {schema}.evsrc_events SET position = -position WHERE position < 0;

-- name: repaired
SELECT EXISTS (SELECT 1 FROM {schema}.evsrc_events WHERE commit = '0'::xid8);

-- name: checkpoint_exists
-- After a repair, a checkpoint is valid only if it is an event's own.
SELECT EXISTS (
    SELECT 1 FROM {schema}.evsrc_events WHERE commit = $1::xid8 AND position = $2::bigint
);

-- name: read_all_types
-- read_all of some event types (and, when $6 is not null, of streams starting
-- with $6): one ordered range scan of evsrc_events_type_idx per type, each
-- stopping after a page (evsrc_read_type), merged: a read touches what it returns.
SELECT e.stream, e.seq, e.position, e.commit, e.id, e.type, e.version, e.data,
       e.metadata, date_part('epoch', e.recorded_at),
       CASE WHEN e.recorded_at >= '1900-01-01 00:00+00' AND e.recorded_at < '2100-01-01 00:00+00'
            THEN NULL ELSE e.recorded_at END,
       e.commit < h.xmin AS ready
FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) h,
     unnest($5::text[]) AS t (type),
     LATERAL {schema}.evsrc_read_type(t.type, $1::xid8, $2::bigint, $4::xid8, $6::text, $3::bigint) e
ORDER BY e.commit, e.position
LIMIT $3;

-- name: read_all_prefix
-- read_all of the streams starting with $5: [$5, $6) is that prefix as a range
-- in byte ("C") order, scanned on evsrc_events_stream_idx.
SELECT e.stream, e.seq, e.position, e.commit, e.id, e.type, e.version, e.data,
       e.metadata, date_part('epoch', e.recorded_at),
       CASE WHEN e.recorded_at >= '1900-01-01 00:00+00' AND e.recorded_at < '2100-01-01 00:00+00'
            THEN NULL ELSE e.recorded_at END,
       e.commit < h.xmin AS ready
FROM {schema}.evsrc_events e,
     (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) h
WHERE e.stream COLLATE "C" >= $5::text AND e.stream COLLATE "C" < $6::text
  AND starts_with(e.stream, $5::text)
  AND (e.commit, e.position) > ($1::xid8, $2::bigint) AND e.commit < $4::xid8
ORDER BY e.commit, e.position
LIMIT $3;

-- name: ready_head
-- The last event of a transaction below the snapshot's xmin: it and everything
-- before it in the global order are final. The live feed starts there.
SELECT e.commit, e.position
FROM {schema}.evsrc_events e
WHERE e.commit < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY e.commit DESC, e.position DESC
LIMIT 1;

-- name: head
-- The last committed event in the global order (ready or not): what a reader
-- must reach to have seen everything committed before this statement.
SELECT e.commit, e.position
FROM {schema}.evsrc_events e
ORDER BY e.commit DESC, e.position DESC
LIMIT 1;

-- name: head_types
-- The same among some event types (and streams starting with $2, if not null):
-- the last of each type, from the end of its range in evsrc_events_type_idx.
SELECT x.commit, x.position
FROM unnest($1::text[]) AS t (type),
     LATERAL (
         SELECT e.commit, e.position
         FROM {schema}.evsrc_events e
         WHERE e.type = t.type AND ($2::text IS NULL OR starts_with(e.stream, $2::text))
         ORDER BY e.type DESC, e.commit DESC, e.position DESC
         LIMIT 1
     ) x
ORDER BY x.commit DESC, x.position DESC
LIMIT 1;

-- STREAM LIFECYCLE (docs/lifecycle.md). A stream read also fetches the stream's
-- head row (is it a tombstone? where does max_count count from?) and its
-- retention row, in the same statement: two index probes per read, not per event.

-- name: delete_stream
SELECT last_seq, last_position, commit_id, tombstoned
FROM {schema}.evsrc_delete_stream($1, $2, $3);

-- name: truncate
SELECT {schema}.evsrc_truncate($1, $2);

-- name: get_metadata
SELECT max_count, max_age FROM {schema}.evsrc_stream_metadata WHERE stream = $1;

-- name: set_metadata
INSERT INTO {schema}.evsrc_stream_metadata AS m (stream, max_count, max_age)
VALUES ($1, $2, $3)
ON CONFLICT (stream) DO UPDATE
SET max_count = excluded.max_count, max_age = excluded.max_age, updated_at = now();

-- name: clear_metadata
DELETE FROM {schema}.evsrc_stream_metadata WHERE stream = $1;

-- name: retained_streams
-- A page of the streams that have retention settings, after $1, for the sweep.
SELECT stream FROM {schema}.evsrc_stream_metadata
WHERE stream > $1 ORDER BY stream LIMIT $2;

-- name: sweep_bounds
-- The first and last seq of stream $1 and its retention, for the sweep.
SELECT (SELECT min(x.seq) FROM {schema}.evsrc_events x WHERE x.stream = $1),
       (SELECT max(x.seq) FROM {schema}.evsrc_events x WHERE x.stream = $1),
       m.max_count, m.max_age
FROM {schema}.evsrc_stream_metadata m
WHERE m.stream = $1;

-- name: sweep_range
-- One batch of the sweep (evsrc_sweep_range, migration 0005): how many went.
SELECT {schema}.evsrc_sweep_range($1, $2, $3, $4, $5::timestamptz);
