-- The current schema in one piece, for a fresh database. setup() runs it when no
-- evsrc schema exists; an older schema is brought here by migrations/NNNN_*.sql.
-- tests/integration/test_pg_schema.py checks that both roads reach the same catalog.
-- {schema} is replaced by the quoted, validated schema name; nothing else is substituted.


CREATE TABLE {schema}.evsrc_schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {schema}.evsrc_events (
    -- Global position: unique, allocated at insert, NOT in commit order.
    position bigserial NOT NULL,
    -- The writing transaction (pg_current_xact_id()); readers order by (commit, position).
    commit xid8 NOT NULL,
    stream text NOT NULL,
    seq bigint NOT NULL,
    id uuid NOT NULL,
    type text NOT NULL,
    version integer NOT NULL,
    data jsonb NOT NULL,
    metadata jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT evsrc_events_pkey PRIMARY KEY (stream, seq),
    CONSTRAINT evsrc_events_id_key UNIQUE (id),
    CONSTRAINT evsrc_events_position_key UNIQUE (position),
    CONSTRAINT evsrc_events_seq_check CHECK (seq >= 1),
    CONSTRAINT evsrc_events_version_check CHECK (version >= 1)
);

CREATE INDEX evsrc_events_order_idx ON {schema}.evsrc_events (commit, position);

-- Filtered global reads (types=, stream_prefix=): each ends with the global order.
CREATE INDEX IF NOT EXISTS evsrc_events_type_idx
    ON {schema}.evsrc_events (type, commit, position);

CREATE INDEX IF NOT EXISTS evsrc_events_stream_idx
    ON {schema}.evsrc_events (stream COLLATE "C", commit, position);

-- One page of the events of one type after a checkpoint, in global order
-- (read_all_types merges one call per type). SET makes the planner take the
-- ordered range scan of evsrc_events_type_idx that stops after a page, also on
-- a table it has no statistics for yet (it would otherwise sort every match).
CREATE FUNCTION {schema}.evsrc_read_type(
    p_type text,
    p_commit xid8,
    p_position bigint,
    p_end xid8,
    p_prefix text,
    p_limit bigint
)
RETURNS SETOF {schema}.evsrc_events
LANGUAGE sql
STABLE
SET enable_sort = off
SET enable_bitmapscan = off
AS $fn$
    SELECT *
    FROM {schema}.evsrc_events x
    WHERE x.type = p_type
      AND (x.commit, x.position) > (p_commit, p_position) AND x.commit < p_end
      AND (p_prefix IS NULL OR starts_with(x.stream, p_prefix))
    ORDER BY x.commit, x.position
    LIMIT p_limit
$fn$;

CREATE FUNCTION {schema}.evsrc_append(
    p_stream text,
    p_expected bigint,
    p_ids uuid[],
    p_types text[],
    p_versions integer[],
    p_data text[],
    p_metadata text[],
    OUT head bigint,
    OUT last_position bigint,
    OUT commit_id xid8,
    OUT found_ids uuid[],
    OUT found_streams text[],
    OUT found_seqs bigint[],
    OUT found_positions bigint[],
    OUT found_commits xid8[]
)
LANGUAGE plpgsql
AS $fn$
BEGIN
    -- Writers of one stream queue on a transaction-scoped advisory lock keyed by
    -- the stream, taken BEFORE this transaction has an id. Two consequences:
    -- (1) each later statement runs on a fresh snapshot (READ COMMITTED, volatile
    --     function) that sees every earlier writer of the stream committed, so the
    --     head read below is exact and the expected-check never races;
    -- (2) the transaction id, assigned by pg_current_xact_id() below, is allocated
    --     after the previous writer of the stream has committed, so it is larger:
    --     ordering by (commit, position) keeps each stream in seq order.
    -- Writers of different streams share no lock (a 64-bit hash collision only
    -- makes two streams queue together; it is never incorrect).
    PERFORM pg_advisory_xact_lock(hashtextextended(p_stream, 5308));

    SELECT e.seq INTO head
    FROM {schema}.evsrc_events e
    WHERE e.stream = p_stream
    ORDER BY e.seq DESC
    LIMIT 1;
    head := coalesce(head, 0);

    IF p_expected IS NOT NULL AND head <> p_expected THEN
        -- A conflict, or an idempotent retry of an append that already committed:
        -- report where these ids are (if anywhere) and let the caller decide.
        SELECT array_agg(e.id), array_agg(e.stream), array_agg(e.seq),
               array_agg(e.position), array_agg(e.commit)
        INTO found_ids, found_streams, found_seqs, found_positions, found_commits
        FROM {schema}.evsrc_events e
        WHERE e.id = ANY (p_ids);
        RETURN;
    END IF;

    commit_id := pg_current_xact_id();
    -- The unique (stream, seq) key is the database's own guard against a gap or a
    -- duplicate; no ON CONFLICT clause may ever soften it.
    WITH inserted AS (
        INSERT INTO {schema}.evsrc_events
            (stream, seq, commit, id, type, version, data, metadata)
        SELECT p_stream, head + u.ord, commit_id, u.id, u.type, u.version,
               u.data::jsonb, u.metadata::jsonb
        FROM unnest(p_ids, p_types, p_versions, p_data, p_metadata)
             WITH ORDINALITY AS u (id, type, version, data, metadata, ord)
        ORDER BY u.ord
        RETURNING position
    )
    SELECT max(i.position) INTO last_position FROM inserted i;
END;
$fn$;

CREATE TABLE IF NOT EXISTS {schema}.evsrc_checkpoints (
    -- A projection's name and the text form ("commit:position") of its checkpoint.
    name text PRIMARY KEY,
    checkpoint text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The stream lifecycle (migration 0005, docs/lifecycle.md).

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
