-- mcpwatch schema 1. Records are JSON documents (the same serde bytes redb stores,
-- in bytea: text in a laptop's config may hold NUL characters, which jsonb and text
-- refuse); the columns beside them are what the indexes, filters and sorts need,
-- with NULs replaced. Every table but the
-- instance-wide ones (meta, the census queue) is keyed by organisation first.

CREATE TABLE orgs (
    id uuid PRIMARY KEY,
    doc bytea NOT NULL
);

CREATE TABLE users (
    org uuid NOT NULL,
    id uuid NOT NULL,
    email text NOT NULL UNIQUE,
    doc bytea NOT NULL,
    PRIMARY KEY (org, id)
);

CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    org uuid NOT NULL,
    user_id uuid NOT NULL,
    doc bytea NOT NULL
);
CREATE INDEX sessions_of_user ON sessions (org, user_id);

CREATE TABLE agents (
    org uuid NOT NULL,
    id uuid NOT NULL,
    key_hash bytea NOT NULL UNIQUE,
    -- Bumped by every write of one of the agent's servers (optimistic report planning).
    inventory_rev bigint NOT NULL DEFAULT 0,
    -- When it was last heard from (presence, shared by every instance).
    last_seen timestamptz,
    -- Its host name (else its name), lowercased: sorting servers by host.
    host text NOT NULL,
    doc bytea NOT NULL,
    PRIMARY KEY (org, id)
);
CREATE INDEX agents_by_last_seen ON agents (last_seen);

CREATE TABLE enroll_secrets (
    org uuid NOT NULL,
    id uuid NOT NULL,
    secret_hash bytea NOT NULL UNIQUE,
    doc bytea NOT NULL,
    PRIMARY KEY (org, id)
);

CREATE TABLE servers (
    org uuid NOT NULL,
    id uuid NOT NULL,
    agent uuid NOT NULL,
    -- sha256(client, config path, name): the server's identity within its agent.
    ident bytea NOT NULL,
    -- 0 critical .. 3 low; 255 - score, so that one ascending index is the risk order.
    rank smallint NOT NULL,
    inv_score smallint NOT NULL,
    status smallint NOT NULL,
    name_lc text NOT NULL,
    last_seen_at timestamptz NOT NULL,
    -- The rule set and policy version it was scored under (rescoring).
    rules_version integer NOT NULL,
    policy_version bigint NOT NULL,
    doc bytea NOT NULL,
    PRIMARY KEY (org, id),
    UNIQUE (org, agent, ident)
);
CREATE INDEX servers_by_rank ON servers (org, rank, inv_score, id);
CREATE INDEX servers_by_agent ON servers (org, agent, rank, inv_score, id);

CREATE TABLE server_changes (
    org uuid NOT NULL,
    server uuid NOT NULL,
    seq bigint NOT NULL,
    doc bytea NOT NULL,
    PRIMARY KEY (org, server, seq)
);

CREATE TABLE policies (
    org uuid PRIMARY KEY,
    version bigint NOT NULL,
    doc bytea NOT NULL
);

CREATE TABLE alerts (
    org uuid NOT NULL,
    id uuid NOT NULL,
    subject uuid NOT NULL,
    kind smallint NOT NULL,
    severity smallint NOT NULL,
    dismissed boolean NOT NULL,
    server uuid,
    created_at timestamptz NOT NULL,
    -- When it last changed (its creation until then).
    updated_at timestamptz NOT NULL,
    doc bytea NOT NULL,
    PRIMARY KEY (org, id)
);
-- One open alert per subject and kind.
CREATE UNIQUE INDEX alerts_open_subject ON alerts (org, subject, kind) WHERE NOT dismissed;
CREATE INDEX alerts_open ON alerts (org, id) WHERE NOT dismissed;
CREATE INDEX alerts_of_server ON alerts (org, server) WHERE server IS NOT NULL;

CREATE SEQUENCE event_seq;
CREATE TABLE events (
    org uuid NOT NULL,
    id bigint NOT NULL,
    at timestamptz NOT NULL,
    doc bytea NOT NULL,
    PRIMARY KEY (org, id)
);

CREATE TABLE channels (
    org uuid NOT NULL,
    id uuid NOT NULL,
    doc bytea NOT NULL,
    PRIMARY KEY (org, id)
);

CREATE TABLE deliveries (
    org uuid NOT NULL,
    id uuid NOT NULL,
    channel uuid NOT NULL,
    is_open boolean NOT NULL,
    status text NOT NULL,
    -- When it is next tried (open deliveries only).
    due timestamptz,
    doc bytea NOT NULL,
    PRIMARY KEY (org, id)
);
CREATE INDEX deliveries_due ON deliveries (due, org, id) WHERE due IS NOT NULL;

CREATE TABLE api_tokens (
    org uuid NOT NULL,
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    token_hash bytea NOT NULL UNIQUE,
    doc bytea NOT NULL,
    PRIMARY KEY (org, id)
);

CREATE TABLE audit (
    org uuid NOT NULL,
    id uuid NOT NULL,
    action text NOT NULL,
    actor_id text,
    -- The person behind an API token.
    actor_user text,
    target_id text,
    doc bytea NOT NULL,
    PRIMARY KEY (org, id)
);

CREATE INDEX audit_by_id ON audit (id);

CREATE TABLE census (
    org uuid NOT NULL,
    grp smallint NOT NULL,
    key bytea NOT NULL,
    hosts bigint NOT NULL,
    doc bytea NOT NULL,
    PRIMARY KEY (org, grp, key)
);
CREATE INDEX census_by_hosts ON census (org, grp, hosts, key);

CREATE TABLE census_members (
    member bytea PRIMARY KEY,
    n bigint NOT NULL
);

CREATE TABLE census_queue (
    seq bigserial PRIMARY KEY,
    doc bytea NOT NULL
);

-- Counts kept at write time (by the triggers below and by the store): servers by
-- `S`·rank·status, open alerts `A`, retained events `E`, deliveries `D`, census rows
-- `C`·group.
CREATE TABLE counts (
    org uuid NOT NULL,
    key text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (org, key)
);

CREATE FUNCTION bump_count(o uuid, k text, d bigint) RETURNS void LANGUAGE sql AS $$
    INSERT INTO counts (org, key, n) VALUES (o, k, d)
    ON CONFLICT (org, key) DO UPDATE SET n = counts.n + EXCLUDED.n;
$$;

CREATE FUNCTION count_servers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM bump_count(OLD.org, 'S' || OLD.rank || '.' || OLD.status, -1);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM bump_count(NEW.org, 'S' || NEW.rank || '.' || NEW.status, 1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER servers_counted AFTER INSERT OR DELETE ON servers
    FOR EACH ROW EXECUTE FUNCTION count_servers();
CREATE TRIGGER servers_recounted AFTER UPDATE ON servers
    FOR EACH ROW WHEN (OLD.rank <> NEW.rank OR OLD.status <> NEW.status)
    EXECUTE FUNCTION count_servers();

CREATE FUNCTION count_open_alerts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND NOT OLD.dismissed THEN
        PERFORM bump_count(OLD.org, 'A', -1);
    END IF;
    IF TG_OP <> 'DELETE' AND NOT NEW.dismissed THEN
        PERFORM bump_count(NEW.org, 'A', 1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER alerts_counted AFTER INSERT OR DELETE ON alerts
    FOR EACH ROW EXECUTE FUNCTION count_open_alerts();
CREATE TRIGGER alerts_recounted AFTER UPDATE ON alerts
    FOR EACH ROW WHEN (OLD.dismissed <> NEW.dismissed)
    EXECUTE FUNCTION count_open_alerts();

CREATE FUNCTION count_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM bump_count(NEW.org, TG_ARGV[0], 1);
    ELSE
        PERFORM bump_count(OLD.org, TG_ARGV[0], -1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER events_counted AFTER INSERT OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION count_rows('E');
CREATE TRIGGER deliveries_counted AFTER INSERT OR DELETE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION count_rows('D');

CREATE FUNCTION count_census_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM bump_count(NEW.org, 'C' || NEW.grp, 1);
    ELSE
        PERFORM bump_count(OLD.org, 'C' || OLD.grp, -1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER census_counted AFTER INSERT OR DELETE ON census
    FOR EACH ROW EXECUTE FUNCTION count_census_rows();

-- What every instance shares: the token-signing key.
CREATE TABLE instance_secrets (
    name text PRIMARY KEY,
    value bytea NOT NULL
);

-- The replay guard: signed request nonces seen, until their timestamps expire.
CREATE TABLE request_nonces (
    agent uuid NOT NULL,
    nonce bytea NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (agent, nonce)
);
CREATE INDEX request_nonces_expiry ON request_nonces (expires_at);
