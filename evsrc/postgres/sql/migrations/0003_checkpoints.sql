-- 0003: projection checkpoints, created by setup() (before: by PostgresCheckpointStore.setup()).
-- IF NOT EXISTS: a database set up by an older release may already hold the table.
-- checkpoint is the text form "commit:position"; runners update it only from the
-- value they last saved (UPDATE ... WHERE checkpoint = previous), never blindly.

CREATE TABLE IF NOT EXISTS {schema}.evsrc_checkpoints (
    name text PRIMARY KEY,
    checkpoint text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
