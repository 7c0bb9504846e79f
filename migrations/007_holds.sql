-- Holds (issue #15): a condition that stops every writing command until a person clears it. Today one kind:
-- Iconik answered a PATCH of the times with other fields changed, so its PATCH replaced the segment like a PUT;
-- each further PATCH would reset another person's work, a resume included.
CREATE TABLE holds (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                  -- patch_replaced
    run_id INTEGER,                      -- the run that found it
    at TEXT NOT NULL,
    detail TEXT NOT NULL,                -- what was found, the segments named
    cleared_at TEXT                      -- when a person cleared it (--patch-checked)
);
