-- A write about to be sent is recorded first (issue #4): resume re-checks every row caught in that window.
ALTER TABLE assets ADD COLUMN intent TEXT;  -- JSON: op, segment_id, run_id, start, end

-- One process at a time writes a ledger; a killed holder is detected by pid/host and heartbeat.
CREATE TABLE lock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    token TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    command TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    heartbeat REAL NOT NULL
);
