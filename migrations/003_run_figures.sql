-- Run history (issue #5): active time and writes per run, summed over resumes, and whether the run
-- has been appended to the spreadsheet's Sync_Log.
ALTER TABLE runs ADD COLUMN elapsed_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN writes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN sync_log_id TEXT;
