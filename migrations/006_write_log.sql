-- The write log (issue #15): one row per write intent, so that every write reversesync made or may have made
-- can be settled, reported and undone, whatever the row now shows. The run that recorded an intent owns the
-- write and all its re-sends, whichever run settles it.
CREATE TABLE writes (
    id INTEGER PRIMARY KEY,
    intent_id TEXT NOT NULL UNIQUE,      -- a create's segment carries external_id "reversesync:<intent_id>"
    run_id INTEGER,                      -- the run that recorded the intent
    asset_key TEXT NOT NULL,
    action TEXT NOT NULL,                -- create / update (a run); delete / restore (an undo); repair_delete
    method TEXT NOT NULL,                -- POST / PATCH / DELETE; PUT for the updates of 0.1 and 0.2
    segment_id TEXT,                     -- the segment written; for a create, the one that landed once known
    marker TEXT,                         -- the external_id a create carries
    undoes INTEGER,                      -- an undo's write: the writes.id it reverts
    before TEXT,                         -- JSON: the segment as read by id right before the write, every field
    after TEXT,                          -- JSON: the 201/200 answer, or the read by id that settled it
    start_ms INTEGER,                    -- the times sent
    end_ms INTEGER,
    outcome TEXT NOT NULL,               -- pending / applied / not_applied / duplicated
    recorded_at TEXT NOT NULL,
    sent_at REAL,                        -- epoch seconds it last went on the wire: its settle time counts from here
    lost INTEGER NOT NULL DEFAULT 0,     -- an answer to it was lost: it may land late, after any settle time
    settled_at TEXT,
    undone_by INTEGER                    -- the undo run that reverted it, or found it reverted
);
CREATE INDEX writes_run ON writes (run_id);
CREATE INDEX writes_asset ON writes (asset_key);

-- 0.2 kept one before-image per row: the last create or update. It becomes that row's one logged write.
-- 0.2's before-image holds the editable fields it knew, not every field; 0.1 kept none (NULL: cannot restore).
-- Rows an undo already reverted are marked undone by the latest undo run that touched them.
INSERT INTO writes (intent_id, run_id, asset_key, action, method, segment_id, before, start_ms, end_ms, outcome,
                    recorded_at, undone_by)
SELECT 'v02-' || a.asset_key || '-' || coalesce(a.done_run_id, 0), a.done_run_id, a.asset_key, a.done_action,
       CASE a.done_action WHEN 'create' THEN 'POST' ELSE 'PUT' END, a.done_segment_id, a.done_before,
       coalesce(a.done_start_ms, a.time_start_ms), coalesce(a.done_end_ms, a.time_end_ms), 'applied', a.updated_at,
       CASE WHEN a.state = 'skipped' AND a.reason = 'undone' THEN
           (SELECT max(e.run_id) FROM events e JOIN runs r ON r.id = e.run_id
            WHERE e.asset_key = a.asset_key AND r.mode = 'undo') END
FROM assets a
WHERE a.done_action IN ('create', 'update');

-- An intent still open in 0.2 (a write whose outcome is not known) becomes a pending write; the row's intent
-- column then holds its intent id, and the log holds the rest.
INSERT OR IGNORE INTO writes (intent_id, run_id, asset_key, action, method, segment_id, marker, before, start_ms,
                              end_ms, outcome, recorded_at, sent_at, lost, undoes)
SELECT coalesce(json_extract(a.intent, '$.id'), 'v02-open-' || a.asset_key), json_extract(a.intent, '$.run_id'),
       a.asset_key, json_extract(a.intent, '$.op'),
       CASE json_extract(a.intent, '$.op') WHEN 'create' THEN 'POST' WHEN 'update' THEN 'PUT'
            WHEN 'restore' THEN 'PUT' ELSE 'DELETE' END,
       json_extract(a.intent, '$.segment_id'),
       CASE json_extract(a.intent, '$.op') WHEN 'create' THEN 'reversesync:' || json_extract(a.intent, '$.id') END,
       json_extract(a.intent, '$.before'), json_extract(a.intent, '$.start'), json_extract(a.intent, '$.end'),
       'pending', a.updated_at, a.intent_sent_at, 1,
       (SELECT max(w.id) FROM writes w WHERE w.asset_key = a.asset_key
        AND w.run_id = json_extract(a.intent, '$.undo'))
FROM assets a
WHERE a.intent IS NOT NULL AND json_valid(a.intent);

UPDATE assets SET intent = coalesce(json_extract(intent, '$.id'), 'v02-open-' || asset_key)
WHERE intent IS NOT NULL AND json_valid(intent);
