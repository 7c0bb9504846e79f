-- The times reversesync wrote, kept with what it did (issue #12): a later load overwrites the sheet's times,
-- and `undo` must compare a segment with what was written, not with what the sheet says now.
ALTER TABLE assets ADD COLUMN done_start_ms INTEGER;
ALTER TABLE assets ADD COLUMN done_end_ms INTEGER;
