-- What each event records, as a code modules can match (issue #16): events were free text, and the engine's
-- wording was matched by the ledger. 0.2's events are classified by their text once, here.
ALTER TABLE events ADD COLUMN kind TEXT NOT NULL DEFAULT 'other';

UPDATE events SET kind = CASE
    WHEN detail = 'loaded' THEN 'loaded'
    WHEN detail = 'source changed' THEN 'source_changed'
    WHEN detail = 'back in the source' THEN 'back_in_source'
    WHEN detail = 'no longer in the source' THEN 'left_source'
    WHEN detail = 're-check requested' THEN 'recheck'
    WHEN detail LIKE 'would %' THEN 'planned'
    WHEN detail LIKE 'about to %' THEN 'intent'
    WHEN detail LIKE 'write not applied%' OR detail LIKE '%: not applied%' THEN 'not_applied'
    WHEN detail LIKE 'outcome unknown%' THEN 'outcome_unknown'
    WHEN detail LIKE 're-checking%' THEN 'settling'
    WHEN detail LIKE '%confirmed by a settled re-check' OR detail LIKE 'an earlier % landed%'
         OR detail LIKE '% did not land (settled re-check)' OR detail LIKE 'unfinished write resolved%' THEN 'settled'
    WHEN detail LIKE 'created segment %' OR detail LIKE 'updated segment %' THEN 'written'
    WHEN detail LIKE 'undo%' THEN 'undo'
    WHEN detail LIKE 'repair%' THEN 'repair'
    WHEN to_state = 'failed' THEN 'failed'
    WHEN to_state = 'skipped' THEN 'decided'
    ELSE 'other'
END;

CREATE INDEX events_run ON events (run_id);
