-- 0003: retention settings per stream (docs/lifecycle.md). max_age in microseconds.

CREATE TABLE evsrc_stream_metadata (
    stream TEXT PRIMARY KEY,
    max_count INTEGER CHECK (max_count >= 1),
    max_age_us INTEGER CHECK (max_age_us > 0),
    updated_at TEXT NOT NULL
);
