-- When each agent that can become silent (one with servers, not marked silent) was
-- last heard from (enrolled, if never): the sweep for silent agents reads only those
-- before its cutoff, through the index. NULL for the agents that cannot.
ALTER TABLE agents ADD COLUMN IF NOT EXISTS silent_since timestamptz;
UPDATE agents a SET silent_since = CASE
        WHEN NOT COALESCE((d.doc ->> 'stale')::boolean, false)
             AND (d.doc ->> 'server_count')::bigint > 0
        THEN COALESCE(a.last_seen, (d.doc ->> 'created_at')::timestamptz)
    END
    -- A NUL in a record (a laptop's host name may hold one) is escaped as \u0000, which
    -- PostgreSQL's JSON functions refuse: read as U+FFFD, an escape of the same form
    -- (so the text stays JSON), in fields this does not read.
    FROM (SELECT org, id,
                 replace(convert_from(doc, 'UTF8'), E'\\u0000', E'\\ufffd')::json AS doc
          FROM agents) d
    WHERE d.org = a.org AND d.id = a.id;
CREATE INDEX IF NOT EXISTS agents_by_silent_since ON agents (silent_since)
    WHERE silent_since IS NOT NULL;
