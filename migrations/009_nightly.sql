-- The nightly job (issue #17).
--
-- syncs: one row per `reversesync sync`: its live (or dry) run, how it ended, and the (asset, reason) pairs
-- that needed a person when it finished, so the next sync exits 1 only for pairs that are new.
CREATE TABLE syncs (
    id INTEGER PRIMARY KEY,
    run_id INTEGER REFERENCES runs (id),   -- its run over the rows (null until the run is recorded)
    dry INTEGER NOT NULL DEFAULT 0,
    options TEXT NOT NULL DEFAULT '{}',   -- JSON: retry_nights, repair_drift, ...
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,                  -- running / finished / stopped
    exit_status INTEGER,
    needs_person TEXT,                     -- JSON [[asset_key, reason], ...], when finished
    drift TEXT,                            -- JSON [[asset_key, reason], ...]: what the drift check found
    backup TEXT                            -- the ledger backup made before it
);

-- How many syncs in a row sent a row failed for a passing cause (5xx, lost connection, 429, 409) back for
-- another try; once it reaches --retry-nights the row needs a person. Cleared once the row ends otherwise.
ALTER TABLE assets ADD COLUMN sync_retries INTEGER NOT NULL DEFAULT 0;

-- A dry run never changes a finished row (created, updated, skipped, failed): what it would do to one is
-- stored here, with the run, instead of on the row.
CREATE TABLE plans (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    asset_key TEXT NOT NULL REFERENCES assets (asset_key),
    state TEXT NOT NULL,                   -- the row's state, which the dry run left as it was
    plan TEXT NOT NULL,                    -- 'would create' / 'would update' / the reason it would finish with
    text TEXT,                             -- the decision in words
    at TEXT NOT NULL,
    PRIMARY KEY (run_id, asset_key)
);
