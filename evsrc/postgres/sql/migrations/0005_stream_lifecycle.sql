-- 0005: the stream lifecycle (docs/lifecycle.md): retention settings per stream,
-- deletion, truncation and the sweep's batches as functions that first wait out the
-- appends in flight (see WHY EVERY REMOVAL... below). evsrc_append (0002) is left
-- as it is: the store no longer calls it (queries.sql, "append").

CREATE TABLE IF NOT EXISTS {schema}.evsrc_stream_metadata (
    stream text PRIMARY KEY,
    max_count bigint,
    max_age interval,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT evsrc_stream_metadata_max_count_check CHECK (max_count >= 1),
    CONSTRAINT evsrc_stream_metadata_max_age_check CHECK (max_age > interval '0')
);

-- The stream's head row: its seq, and whether it is a tombstone (a hard
-- $stream-deleted event). NULL seq: no events.
CREATE FUNCTION {schema}.evsrc_head(p_stream text, OUT seq bigint, OUT tombstoned boolean)
LANGUAGE sql
STABLE
AS $fn$
    SELECT e.seq,
           CASE WHEN e.type = '$stream-deleted'
                THEN coalesce((e.data ->> 'hard')::boolean, false) ELSE false END
    FROM {schema}.evsrc_events e
    WHERE e.stream = p_stream
    ORDER BY e.seq DESC
    LIMIT 1
$fn$;

-- WHY EVERY REMOVAL FIRST WAITS OUT THE APPENDS IN FLIGHT. Appends take no lock
-- (queries.sql, "append"): one that read head h inserts at h + 1 and relies on
-- the unique (stream, seq) key to fail if another writer got there first. A
-- row that was committed at h + 1 after that append's snapshot and then
-- removed is a dead tuple, which the key no longer counts: the late append
-- would land below the head, or behind a tombstone. So a removal locks the
-- events table in SHARE ROW EXCLUSIVE mode before it reads anything: that
-- waits for every append in flight (each holds ROW EXCLUSIVE from before its
-- snapshot to its commit), and appends that start meanwhile wait for the
-- removal to commit and then read the new head. Reads are not blocked.
-- Removals queue on each other (the mode conflicts with itself). The lock is
-- taken before this transaction has an id, so a deletion's event orders after
-- every event of the stream, as an append's does (docs/postgres.md).

-- Delete a stream: remove its events and append a $stream-deleted event at
-- head + 1, in one transaction. tombstoned: the stream was hard-deleted already
-- (nothing done). A soft delete of a stream with nothing after its last
-- deletion writes nothing (last_position NULL).
CREATE FUNCTION {schema}.evsrc_delete_stream(
    p_stream text,
    p_hard boolean,
    p_id uuid,
    OUT last_seq bigint,
    OUT last_position bigint,
    OUT commit_id xid8,
    OUT tombstoned boolean
)
LANGUAGE plpgsql
AS $fn$
DECLARE
    head_type text;
BEGIN
    LOCK TABLE {schema}.evsrc_events IN SHARE ROW EXCLUSIVE MODE;
    SELECT e.seq, e.type,
           CASE WHEN e.type = '$stream-deleted'
                THEN coalesce((e.data ->> 'hard')::boolean, false) ELSE false END
    INTO last_seq, head_type, tombstoned
    FROM {schema}.evsrc_events e
    WHERE e.stream = p_stream
    ORDER BY e.seq DESC
    LIMIT 1;
    last_seq := coalesce(last_seq, 0);
    tombstoned := coalesce(tombstoned, false);
    IF tombstoned OR (NOT p_hard AND (last_seq = 0 OR head_type = '$stream-deleted')) THEN
        RETURN;
    END IF;
    commit_id := pg_current_xact_id();
    DELETE FROM {schema}.evsrc_events e WHERE e.stream = p_stream;
    INSERT INTO {schema}.evsrc_events (stream, seq, commit, id, type, version, data, metadata)
    VALUES (p_stream, last_seq + 1, commit_id, p_id, '$stream-deleted', 1,
            jsonb_build_object('last_seq', last_seq, 'hard', p_hard), '{}'::jsonb)
    RETURNING position INTO last_position;
    IF p_hard THEN
        DELETE FROM {schema}.evsrc_stream_metadata m WHERE m.stream = p_stream;
    END IF;
END;
$fn$;

-- Remove the events of a stream with a seq below least(p_before, head): the head
-- stays. -1 for a tombstoned stream (nothing done), else how many went.
CREATE FUNCTION {schema}.evsrc_truncate(p_stream text, p_before bigint)
RETURNS bigint
LANGUAGE plpgsql
AS $fn$
DECLARE
    head bigint;
    tomb boolean;
    removed bigint;
BEGIN
    LOCK TABLE {schema}.evsrc_events IN SHARE ROW EXCLUSIVE MODE;
    SELECT h.seq, h.tombstoned INTO head, tomb FROM {schema}.evsrc_head(p_stream) h;
    IF tomb THEN
        RETURN -1;
    END IF;
    IF head IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM {schema}.evsrc_events e
    WHERE e.stream = p_stream AND e.seq < least(p_before, head);
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END;
$fn$;

-- One batch of the sweep: of stream p_stream's events with p_low < seq <= p_high
-- (a range of the primary key), those at or below the max_count floor p_floor or
-- recorded before p_cutoff, never the head. How many went.
CREATE FUNCTION {schema}.evsrc_sweep_range(
    p_stream text, p_low bigint, p_high bigint, p_floor bigint, p_cutoff timestamptz
)
RETURNS bigint
LANGUAGE plpgsql
AS $fn$
DECLARE
    head bigint;
    removed bigint;
BEGIN
    LOCK TABLE {schema}.evsrc_events IN SHARE ROW EXCLUSIVE MODE;
    SELECT max(e.seq) INTO head FROM {schema}.evsrc_events e WHERE e.stream = p_stream;
    DELETE FROM {schema}.evsrc_events e
    WHERE e.stream = p_stream AND e.seq > p_low AND e.seq <= least(p_high, head - 1)
      AND (e.seq <= p_floor OR e.recorded_at < p_cutoff);
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END;
$fn$;
