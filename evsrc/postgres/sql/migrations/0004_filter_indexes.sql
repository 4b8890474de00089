-- 0004: indexes behind filtered read_all / subscribe (types=, stream_prefix=).
-- Each ends with the global order, so a filtered page is an index range scan.
-- The stream index compares in byte order ("C") so that a prefix is a range
-- whatever the database's collation.

CREATE INDEX IF NOT EXISTS evsrc_events_type_idx
    ON {schema}.evsrc_events (type, commit, position);

CREATE INDEX IF NOT EXISTS evsrc_events_stream_idx
    ON {schema}.evsrc_events (stream COLLATE "C", commit, position);
