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
    after TEXT,                          -- JSON: what reversesync left: the 201/200 answer, or the write's expectation
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

-- 0.1 and 0.2 wrote. Their writes are known from the event log: each live run that moved a row into created or
-- updated made one (its segment is named in the event). They are logged here in the order they were made, since
-- an undo goes newest first. Only a row's last write kept a before-image (0.2's, of the fields it knew; 0.1 kept
-- none): an earlier update cannot be restored. An earlier create's times are the before-image times of the update
-- that followed it on the same segment, when that is the row's last write. A row an undo already reverted has its
-- last write marked undone by the latest undo run that touched it.
INSERT INTO writes (intent_id, run_id, asset_key, action, method, segment_id, before, start_ms, end_ms, outcome,
                    recorded_at, undone_by)
SELECT 'v02-' || w.asset_key || '-' || w.run_id, w.run_id, w.asset_key,
       CASE WHEN w.last THEN a.done_action ELSE w.action END,
       CASE WHEN (CASE WHEN w.last THEN a.done_action ELSE w.action END) = 'create' THEN 'POST' ELSE 'PUT' END,
       CASE WHEN w.last THEN coalesce(a.done_segment_id, w.segment_id) ELSE w.segment_id END,
       CASE WHEN w.last THEN a.done_before END,
       CASE WHEN w.last THEN coalesce(a.done_start_ms, a.time_start_ms)
            WHEN w.action = 'create' AND a.done_action = 'update' AND w.segment_id IS a.done_segment_id
            THEN json_extract(a.done_before, '$.time_start_milliseconds') END,
       CASE WHEN w.last THEN coalesce(a.done_end_ms, a.time_end_ms)
            WHEN w.action = 'create' AND a.done_action = 'update' AND w.segment_id IS a.done_segment_id
            THEN json_extract(a.done_before, '$.time_end_milliseconds') END,
       'applied', w.at,
       CASE WHEN w.last AND a.state = 'skipped' AND a.reason = 'undone' THEN
           (SELECT max(e.run_id) FROM events e JOIN runs r ON r.id = e.run_id
            WHERE e.asset_key = a.asset_key AND r.mode = 'undo') END
FROM (
    SELECT e.asset_key, e.run_id, min(e.id) AS first_event, max(e.at) AS at,
           CASE WHEN max(e.to_state = 'created') = 1 THEN 'create' ELSE 'update' END AS action,
           (SELECT substr(e2.detail, 17) FROM events e2 WHERE e2.asset_key = e.asset_key AND e2.run_id = e.run_id
              AND (e2.detail LIKE 'created segment %' OR e2.detail LIKE 'updated segment %')
            ORDER BY e2.id DESC LIMIT 1) AS segment_id,
           e.run_id IS (SELECT done_run_id FROM assets WHERE asset_key = e.asset_key) AS last
    FROM events e JOIN runs r ON r.id = e.run_id AND r.mode = 'live'
    WHERE e.to_state IN ('created', 'updated')
    GROUP BY e.asset_key, e.run_id
) w JOIN assets a ON a.asset_key = w.asset_key
ORDER BY w.first_event;

-- A row's last write whose run moved no event into created or updated (a repair kept it, say) is logged too.
INSERT OR IGNORE INTO writes (intent_id, run_id, asset_key, action, method, segment_id, before, start_ms, end_ms,
                              outcome, recorded_at)
SELECT 'v02-' || a.asset_key || '-' || coalesce(a.done_run_id, 0), a.done_run_id, a.asset_key, a.done_action,
       CASE a.done_action WHEN 'create' THEN 'POST' ELSE 'PUT' END, a.done_segment_id, a.done_before,
       coalesce(a.done_start_ms, a.time_start_ms), coalesce(a.done_end_ms, a.time_end_ms), 'applied', a.updated_at
FROM assets a
WHERE a.done_action IN ('create', 'update');

-- An intent still open in 0.2 (a write whose outcome is not known) becomes a pending write of its own (legacy,
-- like the rest: its before-image holds only the fields 0.2 knew); the row's intent column then holds its id.
INSERT OR IGNORE INTO writes (intent_id, run_id, asset_key, action, method, segment_id, marker, before, start_ms,
                              end_ms, outcome, recorded_at, sent_at, lost, undoes)
SELECT 'v02-' || coalesce(json_extract(a.intent, '$.id'), 'open-' || a.asset_key),
       json_extract(a.intent, '$.run_id'), a.asset_key, json_extract(a.intent, '$.op'),
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

UPDATE assets SET intent = 'v02-' || coalesce(json_extract(intent, '$.id'), 'open-' || asset_key)
WHERE intent IS NOT NULL AND json_valid(intent);
