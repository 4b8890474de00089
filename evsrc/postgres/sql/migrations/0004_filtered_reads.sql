-- 0004: indexes (and a page function) behind filtered read_all / subscribe.
-- Each ends with the global order, so a filtered page is an index range scan.
-- The stream index compares in byte order ("C") so that a prefix is a range
-- whatever the database's collation.

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
