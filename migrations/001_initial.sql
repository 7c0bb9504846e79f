-- The ledger: one row per asset, one per run, and an append-only event log.
CREATE TABLE assets (
    asset_key TEXT PRIMARY KEY,          -- canonical asset UUID, or "row:N" for a row whose id is unusable
    asset_id TEXT NOT NULL,              -- the id as the sheet wrote it
    row_numbers TEXT NOT NULL,           -- sheet row numbers, comma separated
    title TEXT,
    time_start_ms INTEGER,
    time_end_ms INTEGER,
    source_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    reason_text TEXT,
    action TEXT,                         -- create / update: planned, then done
    segment_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    http_status INTEGER,
    last_error TEXT,
    in_source INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX assets_state ON assets (state);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    mode TEXT NOT NULL,                  -- dry / live
    options TEXT NOT NULL,               -- JSON
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,                -- running / finished / failed / interrupted / aborted
    counts TEXT,                         -- JSON
    requests INTEGER NOT NULL DEFAULT 0,
    throttled INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    asset_key TEXT NOT NULL,
    run_id INTEGER,
    from_state TEXT,
    to_state TEXT NOT NULL,
    at TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX events_asset ON events (asset_key);
