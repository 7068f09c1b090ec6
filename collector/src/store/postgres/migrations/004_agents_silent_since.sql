-- When each agent that can become silent (one with servers, not marked silent) was
-- last heard from (enrolled, if never): the sweep for silent agents reads only those
-- before its cutoff, through the index. NULL for the agents that cannot.
ALTER TABLE agents ADD COLUMN IF NOT EXISTS silent_since timestamptz;
UPDATE agents a SET silent_since = CASE
        WHEN NOT COALESCE((d.doc ->> 'stale')::boolean, false)
             AND (d.doc ->> 'server_count')::bigint > 0
        THEN COALESCE(a.last_seen, (d.doc ->> 'created_at')::timestamptz)
    END
    FROM (SELECT org, id, convert_from(doc, 'UTF8')::jsonb AS doc FROM agents) d
    WHERE d.org = a.org AND d.id = a.id;
CREATE INDEX IF NOT EXISTS agents_by_silent_since ON agents (silent_since)
    WHERE silent_since IS NOT NULL;
