-- 0001: the event table, its global-order index and the version stamp.
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
