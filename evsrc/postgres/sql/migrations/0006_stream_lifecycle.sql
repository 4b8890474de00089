-- 0006: the stream lifecycle (docs/lifecycle.md): retention settings per stream,
-- deletion and truncation as functions that queue on the stream's append lock,
-- and evsrc_append refusing a tombstoned stream.

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

-- evsrc_append as in 0002, and a tombstoned stream raises SQLSTATE EV001.
CREATE OR REPLACE FUNCTION {schema}.evsrc_append(
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
DECLARE
    tombstoned boolean;
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

    SELECT e.seq,
           CASE WHEN e.type = '$stream-deleted'
                THEN coalesce((e.data ->> 'hard')::boolean, false) ELSE false END
    INTO head, tombstoned
    FROM {schema}.evsrc_events e
    WHERE e.stream = p_stream
    ORDER BY e.seq DESC
    LIMIT 1;
    IF tombstoned THEN
        -- A hard-deleted stream (docs/lifecycle.md): never written again.
        RAISE EXCEPTION USING ERRCODE = 'EV001', MESSAGE = 'evsrc: stream is deleted',
            DETAIL = p_stream;
    END IF;
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

-- Delete a stream: remove its events and append a $stream-deleted event at head + 1,
-- in one transaction, queued on the stream's append lock like an append (so the
-- deletion orders after every event of the stream; docs/postgres.md, "Appends").
-- tombstoned: the stream was hard-deleted already (nothing done). A soft delete of
-- a stream with nothing after its last deletion writes nothing (last_position NULL).
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
    PERFORM pg_advisory_xact_lock(hashtextextended(p_stream, 5308));
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
    PERFORM pg_advisory_xact_lock(hashtextextended(p_stream, 5308));
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
