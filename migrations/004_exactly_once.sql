-- Exactly once under adversity (issue #10) and history that survives re-checks (issue #11).
-- When the intent's write last went on the wire (epoch seconds): its settle time counts from here.
ALTER TABLE assets ADD COLUMN intent_sent_at REAL;
-- What reversesync last did to the asset, kept across re-checks: action, segment, run, and for an
-- update the segment's editable fields before it (JSON), so that a run can be undone.
ALTER TABLE assets ADD COLUMN done_action TEXT;
ALTER TABLE assets ADD COLUMN done_segment_id TEXT;
ALTER TABLE assets ADD COLUMN done_run_id INTEGER;
ALTER TABLE assets ADD COLUMN done_before TEXT;

-- The rows a run selected, chosen once: resume continues exactly these and never reselects.
ALTER TABLE runs ADD COLUMN selected_at TEXT;
CREATE TABLE run_rows (
    run_id INTEGER NOT NULL,
    asset_key TEXT NOT NULL,
    position INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, asset_key)
);

-- The lock's holder is a process, named by pid and start time (pids are reused).
ALTER TABLE lock ADD COLUMN started REAL;
CREATE TABLE lock_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    event TEXT NOT NULL,                 -- taken_over
    pid INTEGER,
    host TEXT,
    command TEXT,
    detail TEXT
);
